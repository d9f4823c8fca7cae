package dev.latte.graph;

import dev.latte.core.Backend;

/**
 * Whether a backend runs an op of a graph, and if not why: implemented by backends whose limits
 * depend on the op's parameters or shapes (the CUDA attention kernels stop at head dim 256), so
 * that a step is refused before it starts, naming the op, rather than failing halfway.
 */
public interface OpSupport {
    /** Null where this backend runs {@code op} of {@code g}; otherwise why not, in one line. */
    String unsupported(Op op, Graph g);

    /**
     * {@code b}'s answer for {@code op}: whether it stores the op's inputs of fixed storage
     * ({@link Op#fixedStorageInputs}), then its own answer where it implements this, else its
     * {@link Backend#supports(String)}.
     */
    static String reason(Backend b, Op op, Graph g) {
        for (int id : op.fixedStorageInputs()) {
            Value v = id < 0 ? null : g.value(id);
            if (v != null && !b.stores(v.storage())) {
                return b.name() + " backend does not store '" + v.name() + "' as " + v.storage().label();
            }
        }
        if (b instanceof OpSupport s) {
            return s.unsupported(op, g);
        }
        return b.supports(op.kind()) ? null : b.name() + " backend has no " + op.kind();
    }
}
