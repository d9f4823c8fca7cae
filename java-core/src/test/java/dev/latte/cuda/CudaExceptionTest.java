package dev.latte.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class CudaExceptionTest {
    @Test
    void messageNamesCallErrorAndString() {
        CudaException e = new CudaException("cuLaunchKernel", 1, "CUDA_ERROR_INVALID_VALUE", "invalid argument");
        assertEquals("cuLaunchKernel: CUDA_ERROR_INVALID_VALUE (invalid argument)", e.getMessage());
        assertEquals("cuLaunchKernel", e.call());
        assertEquals(1, e.result());
        assertEquals("CUDA_ERROR_INVALID_VALUE", e.errorName());
    }

    @Test
    void descriptionEqualToNameIsNotRepeated() {
        assertEquals("nvrtcVersion: NVRTC_ERROR_INVALID_INPUT",
                new CudaException("nvrtcVersion", 3, "NVRTC_ERROR_INVALID_INPUT", "NVRTC_ERROR_INVALID_INPUT").getMessage());
    }

    @Test
    void nvrtcExceptionCarriesTheLog() {
        NvrtcException e = new NvrtcException("nvrtcCompileProgram(bad.cu)", 6, "NVRTC_ERROR_COMPILATION",
                "bad.cu(3): error: identifier \"y\" is undefined\n\n1 error detected\n");
        assertEquals("nvrtcCompileProgram(bad.cu): NVRTC_ERROR_COMPILATION\n"
                + "bad.cu(3): error: identifier \"y\" is undefined\n\n1 error detected", e.getMessage());
        assertEquals(6, e.result());
    }
}
