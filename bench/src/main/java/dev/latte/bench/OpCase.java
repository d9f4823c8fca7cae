package dev.latte.bench;

import dev.latte.graph.Graph;
import dev.latte.graph.Op;

/**
 * One row of the op-case table: an op as a graph builder emits it (its graph holds every value it
 * reads, with shapes), checked on every backend against the reference and timed by
 * {@code latte bench kernels}.
 *
 * @param name    what the row tests, e.g. {@code "conv GN32+SiLU 3x3 40→24 9x7 +residual"}
 * @param graph   the graph the op belongs to (values, shapes, which ids are parameters)
 * @param op      the op under test
 * @param inPlace the input whose bytes the output is ({@link Op#inPlaceInputs}), or -1 for a
 *                separate output
 */
public record OpCase(String name, Graph graph, Op op, int inPlace) {
    public OpCase {
        op.check(graph);
        if (inPlace >= 0 && !contains(op.inPlaceInputs(), inPlace)) {
            throw new IllegalArgumentException(name + ": " + op.kind() + " cannot run in place over value " + inPlace);
        }
    }

    /** The same op writing over its input {@code input}'s bytes. */
    public OpCase inPlace(int input) {
        return new OpCase(name + " in place", graph, op, input);
    }

    private static boolean contains(int[] a, int v) {
        for (int x : a) {
            if (x == v) {
                return true;
            }
        }
        return false;
    }
}
