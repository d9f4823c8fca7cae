package dev.latte.graph;

import dev.latte.core.Backend;
import dev.latte.core.Conv2dParams;
import dev.latte.core.Int8Mode;
import dev.latte.core.NormAct;
import dev.latte.core.OpChecks;
import dev.latte.core.Shape;
import dev.latte.core.StorageType;
import dev.latte.core.Tensor;

import java.util.Locale;

/**
 * One step of a static op list: reads tensors by value id, writes one new value. Ops are data:
 * the model emits them once per input shape, a backend runs them, a planner can reorder memory
 * around them. {@code name} is the diffusers module path plus the op, for errors and profiles.
 *
 * <p>An op carries its own facts, so that adding one touches its record, the backends and the
 * op-case table, not switches across the tree: how to run it ({@link #run}), its shape check
 * ({@link #check}), which inputs it may overwrite ({@link #inPlaceInputs}), its cost
 * ({@link #flops}, {@link #bytes}, {@link #computeBound}) and a one-line description of its
 * shapes ({@link #describe}). FLOPs count a multiply-add as 2 (ggml's {@code op_flops}); bytes are
 * the fewest one run must move: every input read once (a value read twice counted once) and the
 * output written once, activations and float weights at {@code elementBytes}, int8 weights 1,
 * their scales and timesteps 4.
 */
public sealed interface Op {
    String name();

    /** Value ids read; -1 marks an absent optional input (a bias). */
    int[] inputs();

    int out();

    void run(Backend b, Tensor[] env);

    /**
     * Checks the op's shapes against the graph's values with the same rules (and messages) every
     * backend applies ({@link OpChecks}); throws {@link IllegalArgumentException} naming the op.
     */
    void check(Graph g);

    /**
     * Inputs whose bytes the output may be: the op reads each element of these before writing
     * the same element of out, so the memory planner may run it in place over one that dies here.
     */
    default int[] inPlaceInputs() {
        return new int[0];
    }

    /**
     * Inputs this op reads in the storage type their value fixes ({@link Value#storage}) rather
     * than the backend's activation type: embedding's token ids, fp32 on every backend. A graph
     * refuses any other op reading a value of fixed storage.
     */
    default int[] fixedStorageInputs() {
        return new int[0];
    }

    /** The op kind as tables name it: the record's name with a lower-case first letter. */
    default String kind() {
        String s = getClass().getSimpleName();
        return Character.toLowerCase(s.charAt(0)) + s.substring(1);
    }

    /** Arithmetic per run; elementwise ops, norms and data movement count one per output element. */
    default long flops(Graph g) {
        return shape(g, out()).numel();
    }

    /** Whether the op is limited by arithmetic (conv, GEMM, attention) rather than memory. */
    default boolean computeBound() {
        return false;
    }

    /** The int8 weight and its scales, or -1: read at 1 and 4 bytes an element. */
    default int int8Weight() {
        return -1;
    }

    default int int8Scale() {
        return -1;
    }

    default long bytes(Graph g, int elementBytes) {
        long total = shape(g, out()).numel() * elementBytes;
        int[] ins = inputs();
        for (int i = 0; i < ins.length; i++) {
            int id = ins[i];
            if (id < 0 || indexOf(ins, id) < i) {
                continue; // absent, or the same value read twice
            }
            int width = id == int8Weight() ? 1 : id == int8Scale() || this instanceof TimestepEmbedding ? 4
                    : g.value(id).storage() != null ? g.value(id).storage().bytes() : elementBytes;
            total += shape(g, id).numel() * width;
        }
        return total;
    }

    /** The op's shapes and parameters in one line, without names or value ids. */
    default String describe(Graph g) {
        StringBuilder s = new StringBuilder("in");
        for (int id : inputs()) {
            if (id >= 0 && g.value(id).kind() != Value.Kind.PARAM) {
                s.append(' ').append(shape(g, id));
            }
        }
        return s.append(" -> ").append(shape(g, out())).toString();
    }

    private static int indexOf(int[] a, int v) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] == v) {
                return i;
            }
        }
        return -1;
    }

    private static Shape shape(Graph g, int id) {
        return g.value(id).shape();
    }

    /** A value's shape as a tensor for {@link OpChecks}; null for an absent optional input. */
    private static Tensor tensor(Graph g, int id) {
        if (id < 0) {
            return null;
        }
        Shape s = g.value(id).shape();
        return () -> s;
    }

    private static Tensor opt(Tensor[] env, int id) {
        return id < 0 ? null : env[id];
    }

    private static String conv(Graph g, int x, int w, Conv2dParams p) {
        String pad = p.strideH() == p.strideW() && p.padTop() == p.padLeft() && p.padTop() == p.padBottom()
                && p.padLeft() == p.padRight()
                ? " stride " + p.strideH() + " pad " + p.padTop()
                : " stride " + p.strideH() + "x" + p.strideW() + " pad " + p.padTop() + "," + p.padLeft() + ","
                + p.padBottom() + "," + p.padRight();
        return "x " + shape(g, x) + " w " + shape(g, w) + pad;
    }

    /** 2·out·C·R·S for a conv with weight [K, C, R, S]. */
    private static long convFlops(Graph g, int w, int out) {
        Shape ws = shape(g, w);
        return 2L * shape(g, out).numel() * ws.dim(1) * ws.dim(2) * ws.dim(3);
    }

    private static void scaleShape(Graph g, int w, int scale, String what) {
        if (!shape(g, scale).equals(Shape.of(shape(g, w).dim(0)))) {
            throw new IllegalArgumentException(what + ": scale " + shape(g, scale) + " for weight " + shape(g, w));
        }
    }

    record Conv2d(String name, int x, int w, int bias, Conv2dParams p, int out) implements Op {
        public int[] inputs() { return new int[] {x, w, bias}; }
        public void run(Backend b, Tensor[] e) { b.conv2d(e[x], e[w], opt(e, bias), p, e[out]); }
        public void check(Graph g) {
            OpChecks.conv2d(tensor(g, x), shape(g, x).dim(-2), shape(g, x).dim(-1), tensor(g, w), tensor(g, bias), p, tensor(g, out), "");
        }
        public long flops(Graph g) { return convFlops(g, w, out); }
        public boolean computeBound() { return true; }
        public String describe(Graph g) {
            return conv(g, x, w, p) + (bias >= 0 ? " bias" : "") + " -> " + shape(g, out);
        }
    }

    /**
     * conv(norm(x)) + bias (+ residual): a GroupNorm(+SiLU) read on load and a skip-add in the
     * epilogue, made by {@link Fusion} from the ops it replaces. normGamma &lt; 0: no norm;
     * residual &lt; 0: no skip-add.
     */
    record Conv2dFused(String name, int x, int normGamma, int normBeta, int groups, float eps, boolean silu,
                       int w, int bias, Conv2dParams p, int residual, int out) implements Op {
        public int[] inputs() { return new int[] {x, normGamma, normBeta, w, bias, residual}; }
        public void run(Backend b, Tensor[] e) {
            NormAct norm = normGamma < 0 ? null : new NormAct(e[normGamma], e[normBeta], groups, eps, silu);
            b.conv2dFused(e[x], norm, e[w], opt(e, bias), p, opt(e, residual), e[out]);
        }
        public void check(Graph g) {
            OpChecks.conv2d(tensor(g, x), shape(g, x).dim(-2), shape(g, x).dim(-1), tensor(g, w), tensor(g, bias), p, tensor(g, out), "");
            if (normGamma >= 0) {
                OpChecks.groupNorm(tensor(g, x), tensor(g, normGamma), tensor(g, normBeta), groups, tensor(g, x));
            }
            if (residual >= 0 && !shape(g, residual).equals(shape(g, out))) {
                throw new IllegalArgumentException(name + ": residual " + shape(g, residual) + ", out " + shape(g, out));
            }
        }
        public int[] inPlaceInputs() { return residual >= 0 && residual != x ? new int[] {residual} : new int[0]; }
        public long flops(Graph g) { return convFlops(g, w, out); }
        public boolean computeBound() { return true; }
        public String describe(Graph g) {
            return conv(g, x, w, p) + (normGamma >= 0 ? " groupnorm " + groups + (silu ? "+silu" : "") : "")
                    + (bias >= 0 ? " bias" : "") + (residual >= 0 ? " +residual" : "") + " -> " + shape(g, out);
        }
    }

    /** conv(upsampleNearest(x to height × width)) + bias, made by {@link Fusion}. */
    record Conv2dUpsampled(String name, int x, int height, int width, int w, int bias, Conv2dParams p, int out)
            implements Op {
        public int[] inputs() { return new int[] {x, w, bias}; }
        public void run(Backend b, Tensor[] e) { b.conv2dUpsampled(e[x], height, width, e[w], opt(e, bias), p, e[out]); }
        public void check(Graph g) { OpChecks.conv2d(tensor(g, x), height, width, tensor(g, w), tensor(g, bias), p, tensor(g, out), ""); }
        public long flops(Graph g) { return convFlops(g, w, out); }
        public boolean computeBound() { return true; }
        public String describe(Graph g) {
            return "x " + shape(g, x) + " upsampled to " + height + "x" + width
                    + conv(g, x, w, p).substring(("x " + shape(g, x)).length()) + (bias >= 0 ? " bias" : "")
                    + " -> " + shape(g, out);
        }
    }

    record GroupNorm(String name, int x, int gamma, int beta, int groups, float eps, boolean silu, int out)
            implements Op {
        public int[] inputs() { return new int[] {x, gamma, beta}; }
        public void run(Backend b, Tensor[] e) { b.groupNorm(e[x], e[gamma], e[beta], groups, eps, silu, e[out]); }
        public void check(Graph g) { OpChecks.groupNorm(tensor(g, x), tensor(g, gamma), tensor(g, beta), groups, tensor(g, out)); }
        public String describe(Graph g) {
            return "x " + shape(g, x) + " groups " + groups + (silu ? " +silu" : "") + " -> " + shape(g, out);
        }
    }

    record LayerNorm(String name, int x, int gamma, int beta, float eps, int out) implements Op {
        public int[] inputs() { return new int[] {x, gamma, beta}; }
        public void run(Backend b, Tensor[] e) { b.layerNorm(e[x], e[gamma], e[beta], eps, e[out]); }
        public void check(Graph g) { OpChecks.layerNorm(tensor(g, x), tensor(g, gamma), tensor(g, beta), tensor(g, out)); }
    }

    record Linear(String name, int x, int w, int bias, int out) implements Op {
        public int[] inputs() { return new int[] {x, w, bias}; }
        public void run(Backend b, Tensor[] e) { b.linear(e[x], e[w], opt(e, bias), e[out]); }
        public void check(Graph g) { OpChecks.linear(tensor(g, x), tensor(g, w), tensor(g, bias), tensor(g, out)); }
        public long flops(Graph g) { return 2L * shape(g, out).numel() * shape(g, w).dim(1); }
        public boolean computeBound() { return true; }
        public String describe(Graph g) {
            return "x " + shape(g, x) + " w " + shape(g, w) + (bias >= 0 ? " bias" : "") + " -> " + shape(g, out);
        }
    }

    /** {@link Linear} with int8 weights {@code w} and their per-row scales {@code wScale}. */
    record LinearInt8(String name, int x, int w, int wScale, int bias, Int8Mode mode, int out) implements Op {
        public int[] inputs() { return new int[] {x, w, wScale, bias}; }
        public void run(Backend b, Tensor[] e) { b.linearInt8(e[x], e[w], e[wScale], opt(e, bias), mode, e[out]); }
        public void check(Graph g) {
            OpChecks.linear(tensor(g, x), tensor(g, w), tensor(g, bias), tensor(g, out));
            scaleShape(g, w, wScale, name);
        }
        public long flops(Graph g) { return 2L * shape(g, out).numel() * shape(g, w).dim(1); }
        public boolean computeBound() { return true; }
        public int int8Weight() { return w; }
        public int int8Scale() { return wScale; }
        public String describe(Graph g) {
            return "x " + shape(g, x) + " w " + shape(g, w) + " " + mode + " -> " + shape(g, out);
        }
    }

    /** {@link Conv2d} with int8 weights {@code w} and their per-output-channel scales {@code wScale}. */
    record Conv2dInt8(String name, int x, int w, int wScale, int bias, Conv2dParams p, Int8Mode mode, int out)
            implements Op {
        public int[] inputs() { return new int[] {x, w, wScale, bias}; }
        public void run(Backend b, Tensor[] e) {
            b.conv2dInt8(e[x], e[w], e[wScale], opt(e, bias), p, mode, e[out]);
        }
        public void check(Graph g) {
            OpChecks.conv2d(tensor(g, x), shape(g, x).dim(-2), shape(g, x).dim(-1), tensor(g, w), tensor(g, bias), p, tensor(g, out), "");
            scaleShape(g, w, wScale, name);
        }
        public long flops(Graph g) { return convFlops(g, w, out); }
        public boolean computeBound() { return true; }
        public int int8Weight() { return w; }
        public int int8Scale() { return wScale; }
        public String describe(Graph g) { return conv(g, x, w, p) + " " + mode + " -> " + shape(g, out); }
    }

    /** {@code causal}: query i attends to keys j ≤ i only (CLIP's text encoder); no mask is materialised. */
    record Attention(String name, int q, int k, int v, int heads, float scale, boolean causal, int out) implements Op {
        public int[] inputs() { return new int[] {q, k, v}; }
        public void run(Backend b, Tensor[] e) {
            if (causal) {
                b.attention(e[q], e[k], e[v], heads, scale, true, e[out]);
            } else {
                b.attention(e[q], e[k], e[v], heads, scale, e[out]);
            }
        }
        public void check(Graph g) {
            OpChecks.attention(tensor(g, q), tensor(g, k), tensor(g, v), heads, tensor(g, out));
            if (causal && shape(g, q).dim(1) != shape(g, k).dim(1)) {
                throw new IllegalArgumentException(name + ": causal attention over " + shape(g, q).dim(1)
                        + " queries and " + shape(g, k).dim(1) + " keys");
            }
        }
        public String kind() { return causal ? "attentionCausal" : "attention"; }
        /** QKᵀ and PV; the softmax is not counted (a causal run does about half of it). */
        public long flops(Graph g) {
            Shape qs = shape(g, q);
            return 4L * qs.dim(0) * heads * qs.dim(1) * shape(g, k).dim(1) * (qs.dim(2) / heads);
        }
        public boolean computeBound() { return true; }
        public String describe(Graph g) {
            Shape qs = shape(g, q);
            return String.format(Locale.ROOT, "batch %d heads %d head_dim %d queries %d keys %d", qs.dim(0), heads,
                    qs.dim(2) / heads, qs.dim(1), shape(g, k).dim(1)) + (causal ? " causal" : "") + " -> "
                    + shape(g, out);
        }
    }

    /** out[b, l] = table[ids[b, l]] (+ positions[l]): token (and position) embedding lookup. */
    record Embedding(String name, int ids, int table, int positions, int out) implements Op {
        public int[] inputs() { return new int[] {ids, table, positions}; }
        public void run(Backend b, Tensor[] e) { b.embedding(e[ids], e[table], opt(e, positions), e[out]); }
        /** Token ids are integers up to the vocabulary size (49408 for CLIP): fp16 holds them exactly only to 2048. */
        public int[] fixedStorageInputs() { return new int[] {ids}; }
        public void check(Graph g) {
            OpChecks.embedding(tensor(g, ids), tensor(g, table), tensor(g, positions), tensor(g, out));
            if (g.value(ids).storage() != StorageType.F32) {
                throw new IllegalArgumentException("embedding '" + name + "': ids '" + g.value(ids).name() + "' must be stored as fp32"
                        + " (token ids above 2048 are not exact in fp16)");
            }
        }
        /** Rows gathered: the table is read only where ids point, not whole. */
        public long bytes(Graph g, int elementBytes) {
            return shape(g, ids).numel() * 4 + 2 * shape(g, out).numel() * elementBytes
                    + (positions >= 0 ? shape(g, out).numel() / shape(g, ids).dim(0) * elementBytes : 0);
        }
        public String describe(Graph g) {
            return "ids " + shape(g, ids) + " table " + shape(g, table) + (positions >= 0 ? " +positions" : "")
                    + " -> " + shape(g, out);
        }
    }

    enum Fn { SILU, GELU, GEGLU, QUICK_GELU }

    record Unary(String name, Fn fn, int x, int out) implements Op {
        public int[] inputs() { return new int[] {x}; }
        public void run(Backend b, Tensor[] e) {
            switch (fn) {
                case SILU -> b.silu(e[x], e[out]);
                case GELU -> b.gelu(e[x], e[out]);
                case GEGLU -> b.geglu(e[x], e[out]);
                case QUICK_GELU -> b.quickGelu(e[x], e[out]);
            }
        }
        public void check(Graph g) {
            if (fn == Fn.GEGLU) {
                OpChecks.geglu(tensor(g, x), tensor(g, out));
            } else {
                OpChecks.unary(kind(), tensor(g, x), tensor(g, out));
            }
        }
        public int[] inPlaceInputs() { return fn == Fn.GEGLU ? new int[0] : new int[] {x}; }
        public String kind() { return fn.name().toLowerCase(Locale.ROOT); }
    }

    record TimestepEmbedding(String name, int t, boolean flipSinToCos, float freqShift, int out) implements Op {
        public int[] inputs() { return new int[] {t}; }
        public void run(Backend b, Tensor[] e) { b.timestepEmbedding(e[t], flipSinToCos, freqShift, e[out]); }
        public void check(Graph g) { OpChecks.timestepEmbedding(tensor(g, t), tensor(g, out)); }
    }

    record UpsampleNearest(String name, int x, int out) implements Op {
        public int[] inputs() { return new int[] {x}; }
        public void run(Backend b, Tensor[] e) { b.upsampleNearest(e[x], e[out]); }
        public void check(Graph g) { OpChecks.upsampleNearest(tensor(g, x), tensor(g, out)); }
    }

    record ConcatChannels(String name, int a, int bIn, int out) implements Op {
        public int[] inputs() { return new int[] {a, bIn}; }
        public void run(Backend b, Tensor[] e) { b.concatChannels(e[a], e[bIn], e[out]); }
        public void check(Graph g) { OpChecks.concatChannels(tensor(g, a), tensor(g, bIn), tensor(g, out)); }
    }

    record Add(String name, int a, int bIn, int out) implements Op {
        public int[] inputs() { return new int[] {a, bIn}; }
        public void run(Backend b, Tensor[] e) { b.add(e[a], e[bIn], e[out]); }
        public void check(Graph g) { OpChecks.add(tensor(g, a), tensor(g, bIn), tensor(g, out)); }
        public int[] inPlaceInputs() { return new int[] {a, bIn}; }
    }

    record AddChannelBias(String name, int x, int v, int out) implements Op {
        public int[] inputs() { return new int[] {x, v}; }
        public void run(Backend b, Tensor[] e) { b.addChannelBias(e[x], e[v], e[out]); }
        public void check(Graph g) { OpChecks.addChannelBias(tensor(g, x), tensor(g, v), tensor(g, out)); }
        public int[] inPlaceInputs() { return new int[] {x}; }
    }

    record Scale(String name, int x, float s, int out) implements Op {
        public int[] inputs() { return new int[] {x}; }
        public void run(Backend b, Tensor[] e) { b.scale(e[x], s, e[out]); }
        public void check(Graph g) { OpChecks.unary("scale", tensor(g, x), tensor(g, out)); }
        public int[] inPlaceInputs() { return new int[] {x}; }
        public String describe(Graph g) { return "in " + shape(g, x) + " by " + s + " -> " + shape(g, out); }
    }

    record ToTokens(String name, int x, int out) implements Op {
        public int[] inputs() { return new int[] {x}; }
        public void run(Backend b, Tensor[] e) { b.nchwToTokens(e[x], e[out]); }
        public void check(Graph g) { OpChecks.nchwToTokens(tensor(g, x), tensor(g, out)); }
    }

    record FromTokens(String name, int x, int out) implements Op {
        public int[] inputs() { return new int[] {x}; }
        public void run(Backend b, Tensor[] e) { b.tokensToNchw(e[x], e[out]); }
        public void check(Graph g) { OpChecks.tokensToNchw(tensor(g, x), tensor(g, out)); }
    }
}
