package dev.latte.tests.cuda;

import dev.latte.cpu.CpuBackend;
import dev.latte.cuda.CudaContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;


/**
 * The CUDA context and the CPU backend that the CUDA-vs-CPU kernel tests share per class. Skips the
 * class, naming the reason, where no CUDA device can be opened.
 */
abstract class CudaVsCpuFixture extends CudaContextFixture {
    static CpuBackend cpu;

    @BeforeAll
    static void openCpu() {
        cpu = new CpuBackend();
    }

    @AfterAll
    static void closeCpu() {
        if (cpu != null) {
            cpu.close();
            cpu = null;
        }
    }
}
