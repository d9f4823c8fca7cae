package dev.latte.exec;

/**
 * What a backend does around each op of a planned run: the CUDA backend pins the kernel version
 * its step chose for the op when the step was prepared, so a launch does not choose again.
 */
public interface OpScope {
    /** Nothing around any op. */
    OpScope NONE = new OpScope() {
        @Override
        public void enter(int op) {
        }

        @Override
        public void exit() {
        }
    };

    /** Op {@code op} (its index in the graph's op list) is about to run. */
    void enter(int op);

    /** The op entered last has run, or failed. */
    void exit();
}
