package dev.latte.tests.cuda;

import dev.latte.cpu.CpuBackend;
import dev.latte.cuda.CudaContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The CUDA context and the CPU backend that the CUDA-vs-CPU kernel tests share per class. Skips the
 * class, naming the reason, where no CUDA device can be opened.
 */
abstract class CudaVsCpuFixture {
    static CudaContext ctx;
    static CpuBackend cpu;

    @BeforeAll
    static void open() {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        ctx = CudaContext.open(0);
        cpu = new CpuBackend();
    }

    @AfterAll
    static void close() {
        if (cpu != null) {
            cpu.close();
            cpu = null;
        }
        if (ctx != null) {
            ctx.close();
            ctx = null;
        }
    }
}
