package dev.latte.cpu;

import java.util.ArrayList;
import java.util.List;

/**
 * Reusable float buffers for per-call scratch (padded conv input, transposed weights, per-head
 * K and V). Multi-megabyte arrays allocated fresh each call cost more than the op itself while
 * the heap is still growing: every new page is faulted in and zeroed by the OS.
 */
final class ScratchPool {
    private static final int KEEP = 4;
    private final List<float[]> free = new ArrayList<>();

    /** A buffer of at least {@code length} floats with undefined contents. */
    synchronized float[] take(int length) {
        int best = -1;
        for (int i = 0; i < free.size(); i++) {
            int len = free.get(i).length;
            if (len >= length && (best < 0 || len < free.get(best).length)) {
                best = i;
            }
        }
        return best >= 0 ? free.remove(best) : new float[length];
    }

    /** Hands a buffer back; the largest few are kept. */
    synchronized void give(float[] buffer) {
        free.add(buffer);
        if (free.size() > KEEP) {
            int smallest = 0;
            for (int i = 1; i < free.size(); i++) {
                if (free.get(i).length < free.get(smallest).length) {
                    smallest = i;
                }
            }
            free.remove(smallest);
        }
    }

    synchronized void clear() {
        free.clear();
    }
}
