package dev.latte.tests.cuda;

import dev.latte.cuda.CudaContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The CUDA context a CUDA test class shares. Skips the class, naming the reason, where no CUDA
 * device can be opened. Subclasses add their own per-class state in differently named
 * {@code @BeforeAll}/{@code @AfterAll} methods (JUnit runs this class's first and closes it last).
 */
public abstract class CudaContextFixture {
    protected static CudaContext ctx;

    @BeforeAll
    static void openContext() {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        ctx = CudaContext.open(0);
    }

    @AfterAll
    static void closeContext() {
        if (ctx != null) {
            ctx.close();
            ctx = null;
        }
    }
}
