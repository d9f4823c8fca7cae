package dev.latte.cuda;

/**
 * A CUDA driver or NVRTC call returned an error. The message is one line naming the call, the
 * error's name and its description: {@code cuLaunchKernel: CUDA_ERROR_INVALID_VALUE (invalid argument)}.
 */
public class CudaException extends RuntimeException {
    private final String call;
    private final int result;
    private final String errorName;

    /** {@code description} is left out of the message when empty or equal to the name. */
    public CudaException(String call, int result, String errorName, String description) {
        this(call + ": " + errorName
                        + (description == null || description.isEmpty() || description.equals(errorName)
                                ? "" : " (" + description + ")"),
                call, result, errorName);
    }

    /** For subclasses that build their own message. */
    protected CudaException(String message, String call, int result, String errorName) {
        super(message);
        this.call = call;
        this.result = result;
        this.errorName = errorName;
    }

    /** The API call that failed, e.g. {@code cuMemAlloc}, possibly with context in parentheses. */
    public String call() {
        return call;
    }

    /** The raw {@code CUresult} / {@code nvrtcResult}. */
    public int result() {
        return result;
    }

    /** e.g. {@code CUDA_ERROR_OUT_OF_MEMORY}. */
    public String errorName() {
        return errorName;
    }
}
