package dev.latte.graph;

import dev.latte.core.Shape;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Rewrites a graph so ResNet blocks cost fewer passes over memory (DESIGN.md, "fusion follows
 * the ResNet block"): a GroupNorm(+SiLU) read only by a convolution becomes that convolution's
 * normalise-on-load, an add of a convolution's output, read nowhere else, becomes that
 * convolution's epilogue, and a nearest upsample read only by a convolution (Upsample2D) becomes
 * a resize in that convolution's load. (The skip concatenation feeds both a GroupNorm and
 * conv_shortcut, so it stays a tensor.) In transformer blocks, an add of a linear's output read
 * nowhere else becomes that linear's epilogue ({@link Op.LinearResidual}) and a GEGLU of a
 * linear's output becomes one op ({@link Op.LinearGeglu}); a self-attention's three projections
 * of one input become one GEMM ({@link Op.LinearQkv}) whose [3, ...] output the attention reads
 * ({@link Op.AttentionQkv}), the one value fusion adds. Values that are named outputs are never
 * fused away. Value ids are kept, so a fused graph's outputs are the unfused graph's.
 */
public final class Fusion {
    private Fusion() {
    }

    public static Graph fuse(Graph g) {
        Op[] ops = g.ops().toArray(Op[]::new);
        int[] readers = new int[g.values().size()];
        for (Op op : ops) {
            for (int id : op.inputs()) {
                if (id >= 0) {
                    readers[id]++;
                }
            }
        }
        boolean[] named = new boolean[readers.length];
        g.outputs().values().forEach(v -> named[v.id()] = true);
        int[] producer = new int[readers.length];
        Arrays.fill(producer, -1);
        for (int i = 0; i < ops.length; i++) {
            producer[ops[i].out()] = i;
        }

        // GroupNorm → Conv2d: the fused op takes the conv's place, the norm's inputs exist by then
        for (int i = 0; i < ops.length; i++) {
            if (ops[i] instanceof Op.Conv2d c && producer[c.x()] >= 0
                    && ops[producer[c.x()]] instanceof Op.GroupNorm n && readers[n.out()] == 1 && !named[n.out()]) {
                ops[producer[c.x()]] = null;
                ops[i] = new Op.Conv2dFused(c.name(), n.x(), n.gamma(), n.beta(), n.groups(), n.eps(), n.silu(),
                        c.w(), c.bias(), c.p(), -1, c.out());
            }
        }
        // UpsampleNearest → Conv2d (diffusers' Upsample2D): the resize happens in the conv's load
        for (int i = 0; i < ops.length; i++) {
            if (ops[i] instanceof Op.Conv2d c && producer[c.x()] >= 0
                    && ops[producer[c.x()]] instanceof Op.UpsampleNearest u && readers[u.out()] == 1 && !named[u.out()]) {
                Shape up = g.value(u.out()).shape();
                ops[producer[c.x()]] = null;
                ops[i] = new Op.Conv2dUpsampled(c.name(), u.x(), up.dim(2), up.dim(3), c.w(), c.bias(), c.p(), c.out());
            }
        }
        // Conv → Add: the fused op takes the add's place, where the other operand exists
        for (int i = 0; i < ops.length; i++) {
            if (ops[i] instanceof Op.Add a) {
                Op.Conv2dFused conv = fusable(ops, producer, readers, named, a.bIn());
                int residual = a.a();
                if (conv == null) {
                    conv = fusable(ops, producer, readers, named, a.a());
                    residual = a.bIn();
                }
                if (conv != null) {
                    ops[producer[conv.out()]] = null;
                    ops[i] = new Op.Conv2dFused(conv.name(), conv.x(), conv.normGamma(), conv.normBeta(),
                            conv.groups(), conv.eps(), conv.silu(), conv.w(), conv.bias(), conv.p(), residual, a.out());
                }
            }
        }
        // three Linear → Attention (self-attention): one GEMM writing q, k and v blocks the attention reads
        List<Value> values = new ArrayList<>(g.values());
        for (int i = 0; i < ops.length; i++) {
            if (ops[i] instanceof Op.Attention a) {
                Op.Linear q = linear(ops, producer, readers, named, a.q()), k = linear(ops, producer, readers, named, a.k()),
                        v = linear(ops, producer, readers, named, a.v());
                if (q == null || k == null || v == null || q == k || k == v || q == v || q.x() != k.x() || q.x() != v.x()
                        || (q.bias() < 0) != (k.bias() < 0) || (q.bias() < 0) != (v.bias() < 0)) {
                    continue;
                }
                Shape ws = g.value(q.w()).shape();
                if (!g.value(k.w()).shape().equals(ws) || !g.value(v.w()).shape().equals(ws)) {
                    continue;
                }
                int[] d = g.value(a.q()).shape().dims();
                int[] qd = new int[d.length + 1];
                qd[0] = 3;
                System.arraycopy(d, 0, qd, 1, d.length);
                String scope = a.name().contains(".") ? a.name().substring(0, a.name().lastIndexOf('.') + 1) : "";
                Value qkv = new Value(values.size(), Value.Kind.ACTIVATION, scope + "to_qkv", Shape.of(qd));
                values.add(qkv);
                // at the last projection's place: x and the weights exist by then
                int at = Math.max(producer[a.q()], Math.max(producer[a.k()], producer[a.v()]));
                ops[producer[a.q()]] = null;
                ops[producer[a.k()]] = null;
                ops[producer[a.v()]] = null;
                ops[at] = new Op.LinearQkv(qkv.name(), q.x(), q.w(), k.w(), v.w(), q.bias(), k.bias(), v.bias(), qkv.id());
                ops[i] = new Op.AttentionQkv(a.name(), qkv.id(), a.heads(), a.scale(), a.causal(), a.out());
            }
        }
        // Linear → GEGLU (diffusers' FeedForward): the projection is never stored
        for (int i = 0; i < ops.length; i++) {
            if (ops[i] instanceof Op.Unary u && u.fn() == Op.Fn.GEGLU && producer[u.x()] >= 0
                    && ops[producer[u.x()]] instanceof Op.Linear l && readers[l.out()] == 1 && !named[l.out()]) {
                ops[producer[u.x()]] = null;
                ops[i] = new Op.LinearGeglu(l.name(), l.x(), l.w(), l.bias(), u.out());
            }
        }
        // Linear → Add (a transformer's out-projections and feed-forward + their input): the add
        // becomes the linear's epilogue, at the add's place, where the other operand exists
        for (int i = 0; i < ops.length; i++) {
            if (ops[i] instanceof Op.Add a) {
                int residual = a.a();
                Op.Linear l = linear(ops, producer, readers, named, a.bIn());
                if (l == null) {
                    l = linear(ops, producer, readers, named, a.a());
                    residual = a.bIn();
                }
                if (l != null && residual != l.out()) {
                    ops[producer[l.out()]] = null;
                    ops[i] = new Op.LinearResidual(l.name(), l.x(), l.w(), l.bias(), residual, a.out());
                }
            }
        }
        List<Op> fused = new ArrayList<>();
        for (Op op : ops) {
            if (op != null) {
                fused.add(op);
            }
        }
        return new Graph(values, fused, g.inputs(), g.params(), g.outputs());
    }

    /** The float linear producing {@code id}, if the add of {@code id} may become its epilogue. */
    private static Op.Linear linear(Op[] ops, int[] producer, int[] readers, boolean[] named, int id) {
        if (producer[id] < 0 || readers[id] != 1 || named[id]) {
            return null;
        }
        return ops[producer[id]] instanceof Op.Linear l ? l : null;
    }

    /** The conv producing {@code id} as a fused op without a residual, if it may absorb the add. */
    private static Op.Conv2dFused fusable(Op[] ops, int[] producer, int[] readers, boolean[] named, int id) {
        if (producer[id] < 0 || readers[id] != 1 || named[id]) {
            return null;
        }
        return switch (ops[producer[id]]) {
            case Op.Conv2d c -> new Op.Conv2dFused(c.name(), c.x(), -1, -1, 0, 0, false, c.w(), c.bias(), c.p(), -1,
                    c.out());
            case Op.Conv2dFused f when f.residual() < 0 -> f;
            case null, default -> null;
        };
    }
}
