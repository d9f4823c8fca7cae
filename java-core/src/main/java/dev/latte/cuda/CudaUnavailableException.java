package dev.latte.cuda;

/**
 * CUDA cannot be used here: no {@code libcuda.so.1}, no device, no NVRTC or a driver too old.
 * The message is one line saying what is missing and listing what was tried.
 */
public class CudaUnavailableException extends RuntimeException {
    public CudaUnavailableException(String message) {
        super(message);
    }
}
