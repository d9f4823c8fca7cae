package dev.latte.graph;

/** NaN or Inf where a finite value belongs, with the input or op that first produced it. */
public class NonFiniteException extends RuntimeException {
    public NonFiniteException(String message) {
        super(message);
    }
}
