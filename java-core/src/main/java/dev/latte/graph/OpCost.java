package dev.latte.graph;

import dev.latte.core.Shape;

/**
 * FLOPs and minimum bytes of one op of a graph (ggml's {@code op_flops}/{@code op_nbytes}).
 * A multiply-add counts 2. Convolution: {@code 2·N·K·P·Q·C·R·S}; linear: {@code 2·M·in·out};
 * attention: {@code 4·B·heads·Sq·Sk·d} (QKᵀ and PV; softmax not counted). Elementwise ops, norms,
 * transposes, concat and upsample count one FLOP per output element and are memory-bound. Bytes:
 * every input (activations and weights) read once and the output written once, activations and
 * float weights at {@code elementBytes}, int8 weights 1 byte, their scales and timesteps 4.
 */
public final class OpCost {
    private OpCost() {
    }

    public static long flops(Op op, Graph g) {
        if (op instanceof Op.Attention a) {
            Shape q = shape(g, a.q()), k = shape(g, a.k());
            long d = q.dim(2) / a.heads();
            return 4L * q.dim(0) * a.heads() * q.dim(1) * k.dim(1) * d;
        }
        int w = weight(op, g);
        if (w >= 0) {
            Shape ws = shape(g, w), os = shape(g, op.out());
            // conv: out [N, K, P, Q], w [K, C, R, S]; linear: out [..., outF], w [outF, in]
            return ws.rank() == 4 ? 2L * os.numel() * ws.dim(1) * ws.dim(2) * ws.dim(3) : 2L * os.numel() * ws.dim(1);
        }
        return shape(g, op.out()).numel();
    }

    /**
     * The weight a conv- or linear-like op multiplies by: its parameter input of rank 4
     * [K, C, R, S] with K the output's channels, or of rank 2 [outF, in] with outF the output's
     * last dim; -1 for other ops. Generic on purpose: fused variants (normalise-on-load,
     * upsample-on-load, int8) are all counted the same way.
     */
    static int weight(Op op, Graph g) {
        Shape os = shape(g, op.out());
        for (int id : op.inputs()) {
            if (id < 0 || g.value(id).kind() != Value.Kind.PARAM) {
                continue;
            }
            Shape ws = shape(g, id);
            if (ws.rank() == 4 && os.rank() == 4 && ws.dim(0) == os.dim(1)) {
                return id;
            }
            if (ws.rank() == 2 && os.rank() >= 2 && ws.dim(0) == os.dim(-1)) {
                return id;
            }
        }
        return -1;
    }

    /** Whether the op is limited by arithmetic (conv, GEMM, attention) rather than memory. */
    public static boolean computeBound(Op op, Graph g) {
        return op instanceof Op.Attention || weight(op, g) >= 0;
    }

    public static long bytes(Op op, Graph g, int elementBytes) {
        long total = shape(g, op.out()).numel() * elementBytes;
        int int8Weight = -1, int8Scale = -1;
        if (op instanceof Op.LinearInt8 l) {
            int8Weight = l.w();
            int8Scale = l.wScale();
        } else if (op instanceof Op.Conv2dInt8 c) {
            int8Weight = c.w();
            int8Scale = c.wScale();
        }
        int[] ins = op.inputs();
        for (int i = 0; i < ins.length; i++) {
            int id = ins[i];
            if (id < 0 || indexOf(ins, id) < i) {
                continue; // absent, or the same value read twice (self-attention's k and v are distinct values)
            }
            long n = shape(g, id).numel();
            int width = id == int8Weight ? 1 : id == int8Scale ? 4
                    : op instanceof Op.TimestepEmbedding ? 4 : elementBytes;
            total += n * width;
        }
        return total;
    }

    /** The op kind as the bench names it: the record's name with a lower-case first letter. */
    public static String kind(Op op) {
        String s = op.getClass().getSimpleName();
        if (op instanceof Op.Unary u) {
            return u.fn().name().toLowerCase(java.util.Locale.ROOT);
        }
        return Character.toLowerCase(s.charAt(0)) + s.substring(1);
    }

    private static int indexOf(int[] a, int v) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] == v) {
                return i;
            }
        }
        return -1;
    }

    static Shape shape(Graph g, int id) {
        return g.value(id).shape();
    }
}
