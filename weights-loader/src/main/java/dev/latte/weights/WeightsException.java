package dev.latte.weights;

/**
 * Bad or inconsistent model input: a corrupt or truncated safetensors file, a header that lies,
 * a missing tensor, a config that contradicts its weights. The message is one line and names the
 * file and, where there is one, the tensor or config key.
 */
public class WeightsException extends RuntimeException {
    public WeightsException(String message) {
        super(message);
    }

    public WeightsException(String message, Throwable cause) {
        super(message, cause);
    }
}
