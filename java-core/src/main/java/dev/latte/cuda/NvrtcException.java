package dev.latte.cuda;

/**
 * NVRTC failed. For a compile error the message is the failing call on the first line followed by
 * NVRTC's whole log, whose lines carry file and line ({@code conv.cu(42): error: ...}).
 */
public final class NvrtcException extends CudaException {
    private final String log;

    NvrtcException(String call, int result, String errorName, String log) {
        super(call + ": " + errorName + (log.isBlank() ? "" : "\n" + log.strip()), call, result, errorName);
        this.log = log;
    }

    /** NVRTC's program log (empty when the failure came before compilation). */
    public String log() {
        return log;
    }
}
