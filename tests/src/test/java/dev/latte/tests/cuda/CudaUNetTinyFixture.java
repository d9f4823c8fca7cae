package dev.latte.tests.cuda;

import dev.latte.cuda.CudaContext;
import dev.latte.model.UNetModel;
import dev.latte.tests.Resources;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The CUDA context and the loaded unet-tiny that the CUDA UNet tests share per class. Skips the
 * class, naming the reason, where no CUDA device can be opened.
 */
public abstract class CudaUNetTinyFixture {
    protected static CudaContext ctx;
    protected static UNetModel model;

    @BeforeAll
    static void open() {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        ctx = CudaContext.open(0);
        model = UNetModel.load(Resources.unetTiny());
    }

    @AfterAll
    static void close() {
        if (model != null) {
            model.close();
            model = null;
        }
        if (ctx != null) {
            ctx.close();
            ctx = null;
        }
    }
}
