package dev.latte.tests.cuda;

import dev.latte.cuda.CudaContext;
import dev.latte.model.UNetModel;
import dev.latte.tests.Resources;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;


/**
 * The CUDA context and the loaded unet-tiny that the CUDA UNet tests share per class. Skips the
 * class, naming the reason, where no CUDA device can be opened.
 */
public abstract class CudaUNetTinyFixture extends CudaContextFixture {
    protected static UNetModel model;

    @BeforeAll
    static void loadModel() {
        model = UNetModel.load(Resources.unetTiny());
    }

    @AfterAll
    static void closeModel() {
        if (model != null) {
            model.close();
            model = null;
        }
    }
}
