package dev.latte.graph;

import dev.latte.core.Backend;
import dev.latte.core.Conv2dParams;
import dev.latte.core.Int8Mode;
import dev.latte.core.NormAct;
import dev.latte.core.Tensor;

/**
 * One step of a static op list: reads tensors by value id, writes one new value. Ops are data:
 * the model emits them once per input shape, a backend runs them, a planner can reorder memory
 * around them. {@code name} is the diffusers module path plus the op, for errors and profiles.
 */
public sealed interface Op {
    String name();

    /** Value ids read; -1 marks an absent optional input (a bias). */
    int[] inputs();

    int out();

    void run(Backend b, Tensor[] env);

    private static Tensor opt(Tensor[] env, int id) {
        return id < 0 ? null : env[id];
    }

    record Conv2d(String name, int x, int w, int bias, Conv2dParams p, int out) implements Op {
        public int[] inputs() { return new int[] {x, w, bias}; }
        public void run(Backend b, Tensor[] e) { b.conv2d(e[x], e[w], opt(e, bias), p, e[out]); }
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
    }

    /** conv(upsampleNearest(x to height × width)) + bias, made by {@link Fusion}. */
    record Conv2dUpsampled(String name, int x, int height, int width, int w, int bias, Conv2dParams p, int out)
            implements Op {
        public int[] inputs() { return new int[] {x, w, bias}; }
        public void run(Backend b, Tensor[] e) { b.conv2dUpsampled(e[x], height, width, e[w], opt(e, bias), p, e[out]); }
    }

    record GroupNorm(String name, int x, int gamma, int beta, int groups, float eps, boolean silu, int out)
            implements Op {
        public int[] inputs() { return new int[] {x, gamma, beta}; }
        public void run(Backend b, Tensor[] e) { b.groupNorm(e[x], e[gamma], e[beta], groups, eps, silu, e[out]); }
    }

    record LayerNorm(String name, int x, int gamma, int beta, float eps, int out) implements Op {
        public int[] inputs() { return new int[] {x, gamma, beta}; }
        public void run(Backend b, Tensor[] e) { b.layerNorm(e[x], e[gamma], e[beta], eps, e[out]); }
    }

    record Linear(String name, int x, int w, int bias, int out) implements Op {
        public int[] inputs() { return new int[] {x, w, bias}; }
        public void run(Backend b, Tensor[] e) { b.linear(e[x], e[w], opt(e, bias), e[out]); }
    }

    /** {@link Linear} with int8 weights {@code w} and their per-row scales {@code wScale}. */
    record LinearInt8(String name, int x, int w, int wScale, int bias, Int8Mode mode, int out) implements Op {
        public int[] inputs() { return new int[] {x, w, wScale, bias}; }
        public void run(Backend b, Tensor[] e) { b.linearInt8(e[x], e[w], e[wScale], opt(e, bias), mode, e[out]); }
    }

    /** {@link Conv2d} with int8 weights {@code w} and their per-output-channel scales {@code wScale}. */
    record Conv2dInt8(String name, int x, int w, int wScale, int bias, Conv2dParams p, Int8Mode mode, int out)
            implements Op {
        public int[] inputs() { return new int[] {x, w, wScale, bias}; }
        public void run(Backend b, Tensor[] e) {
            b.conv2dInt8(e[x], e[w], e[wScale], opt(e, bias), p, mode, e[out]);
        }
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
    }

    /** out[b, l] = table[ids[b, l]] (+ positions[l]): token (and position) embedding lookup. */
    record Embedding(String name, int ids, int table, int positions, int out) implements Op {
        public int[] inputs() { return new int[] {ids, table, positions}; }
        public void run(Backend b, Tensor[] e) { b.embedding(e[ids], e[table], opt(e, positions), e[out]); }
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
    }

    record TimestepEmbedding(String name, int t, boolean flipSinToCos, float freqShift, int out) implements Op {
        public int[] inputs() { return new int[] {t}; }
        public void run(Backend b, Tensor[] e) { b.timestepEmbedding(e[t], flipSinToCos, freqShift, e[out]); }
    }

    record UpsampleNearest(String name, int x, int out) implements Op {
        public int[] inputs() { return new int[] {x}; }
        public void run(Backend b, Tensor[] e) { b.upsampleNearest(e[x], e[out]); }
    }

    record ConcatChannels(String name, int a, int bIn, int out) implements Op {
        public int[] inputs() { return new int[] {a, bIn}; }
        public void run(Backend b, Tensor[] e) { b.concatChannels(e[a], e[bIn], e[out]); }
    }

    record Add(String name, int a, int bIn, int out) implements Op {
        public int[] inputs() { return new int[] {a, bIn}; }
        public void run(Backend b, Tensor[] e) { b.add(e[a], e[bIn], e[out]); }
    }

    record AddChannelBias(String name, int x, int v, int out) implements Op {
        public int[] inputs() { return new int[] {x, v}; }
        public void run(Backend b, Tensor[] e) { b.addChannelBias(e[x], e[v], e[out]); }
    }

    record Scale(String name, int x, float s, int out) implements Op {
        public int[] inputs() { return new int[] {x}; }
        public void run(Backend b, Tensor[] e) { b.scale(e[x], s, e[out]); }
    }

    record ToTokens(String name, int x, int out) implements Op {
        public int[] inputs() { return new int[] {x}; }
        public void run(Backend b, Tensor[] e) { b.nchwToTokens(e[x], e[out]); }
    }

    record FromTokens(String name, int x, int out) implements Op {
        public int[] inputs() { return new int[] {x}; }
        public void run(Backend b, Tensor[] e) { b.tokensToNchw(e[x], e[out]); }
    }
}
