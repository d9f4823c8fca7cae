package dev.latte.graph;

/** A graph that cannot be built: shapes that do not fit, named by the op that rejects them. */
public class GraphException extends RuntimeException {
    public GraphException(String message) {
        super(message);
    }
}
