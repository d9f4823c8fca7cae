package dev.latte.bench;

import dev.latte.core.Conv2dParams;
import dev.latte.core.Int8Mode;
import dev.latte.core.Shape;
import dev.latte.core.StorageType;
import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.graph.GraphBuilder;
import dev.latte.graph.Op;
import dev.latte.graph.Value;
import dev.latte.graph.WeightFormat;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * The op-case table (ggml's {@code test-backend-ops}): every op the UNet uses, each built the way
 * the graph builder and {@link Fusion} build it. {@link #ci()} holds small shapes that still take
 * every kernel path (K not a multiple of 32, M and N not multiples of 64, head dims 40/64/80/160,
 * 77-token keys, odd sizes, in-place variants, int8) so the emulated CUDA device runs them in CI;
 * {@link #sd15()} is every distinct op of an SD1.5 step at 512² and 768² ({@link KernelCases}).
 * {@code -Dlatte.cases=ci|sd15|all} picks the table {@link #selected()} returns.
 */
public final class OpCases {
    /** The system property that picks the table: {@code ci} (default), {@code sd15} or {@code all}. */
    public static final String PROPERTY = "latte.cases";

    private OpCases() {
    }

    public static List<OpCase> selected() {
        String which = System.getProperty(PROPERTY, "ci");
        return switch (which) {
            case "ci" -> ci();
            case "sd15" -> sd15();
            case "all" -> {
                List<OpCase> all = new ArrayList<>(ci());
                all.addAll(sd15());
                yield all;
            }
            default -> throw new IllegalArgumentException("-D" + PROPERTY + " must be ci, sd15 or all, not '" + which
                    + "'");
        };
    }

    /** SD1.5's kernel table (batch 2, 77 tokens, 512² and 768²) as op cases. */
    public static List<OpCase> sd15() {
        List<OpCase> cases = new ArrayList<>();
        for (KernelCase k : KernelCases.sd15(2, Float.BYTES)) {
            cases.add(new OpCase(k.config() + " " + k.op() + " " + k.shape(), k.graph(), k.sample(), -1));
        }
        return cases;
    }

    public static List<OpCase> ci() {
        Conv2dParams s1p1 = Conv2dParams.of(1, 1), s1p0 = Conv2dParams.of(1, 0), s2p1 = Conv2dParams.of(2, 1);
        List<OpCase> cs = new ArrayList<>();
        // convolutions: conv_in, resnet convs (GN+SiLU on load, skip-add epilogue), shortcuts, samplers, conv_out
        cs.add(one("conv_in 3x3 4→40 12x10", b -> conv(b, b.input("x", Shape.of(2, 4, 12, 10)), 40, 3, s1p1)));
        cs.add(one("conv 3x3 40→24 9x7", b -> conv(b, b.input("x", Shape.of(1, 40, 9, 7)), 24, 3, s1p1)));
        OpCase fused = one("conv GN8+SiLU 3x3 48→40 10x6 +residual", b -> {
            Value x = b.input("x", Shape.of(2, 48, 10, 6)), res = b.input("res", Shape.of(2, 40, 10, 6));
            return b.add(res, conv(b, norm(b, x, 8, 1e-5, true), 40, 3, s1p1));
        });
        cs.add(fused);
        cs.add(fused.inPlace(fused.graph().inputs().get("res").id()));
        cs.add(one("conv GN8 eps 1e-6 1x1 72→40 5x7", b ->
                conv(b, norm(b, b.input("x", Shape.of(2, 72, 5, 7)), 8, 1e-6, false), 40, 1, s1p0)));
        cs.add(one("conv shortcut 1x1 72→40 6x6 +residual", b -> {
            Value x = b.input("x", Shape.of(2, 72, 6, 6)), res = b.input("res", Shape.of(2, 40, 6, 6));
            return b.add(res, conv(b, x, 40, 1, s1p0));
        }));
        cs.add(one("downsample 3x3 s2 40 11x9", b -> conv(b, b.input("x", Shape.of(2, 40, 11, 9)), 40, 3, s2p1)));
        cs.add(one("downsample pad 0,0,1,1 s2 24 13x11", b -> conv(b, b.input("x", Shape.of(1, 24, 13, 11)), 24, 3,
                new Conv2dParams(2, 2, 0, 0, 1, 1))));
        cs.add(one("upsample2d x2 then 3x3 24 5x4→10x8", b ->
                conv(b, b.upsampleNearest(b.input("x", Shape.of(2, 24, 5, 4)), 10, 8), 24, 3, s1p1)));
        cs.add(one("upsample2d to a skip's odd size 5x4→9x7", b ->
                conv(b, b.upsampleNearest(b.input("x", Shape.of(1, 24, 5, 4)), 9, 7), 24, 3, s1p1)));
        cs.add(one("conv 5x5 stride 1x2 pad 2,1,2,1 7→5 13x11", b -> conv(b, b.input("x", Shape.of(3, 7, 13, 11)), 5, 5,
                new Conv2dParams(1, 2, 2, 1, 2, 1))));
        cs.add(one("conv_out GN8+SiLU 3x3 40→4 8x8", b ->
                conv(b, norm(b, b.input("x", Shape.of(2, 40, 8, 8)), 8, 1e-5, true), 4, 3, s1p1)));
        // norms
        cs.add(one("groupNorm 8 +SiLU 40x9x7", b -> norm(b, b.input("x", Shape.of(2, 40, 9, 7)), 8, 1e-5, true)));
        cs.add(one("groupNorm 4 eps 1e-6 24x5x5", b -> norm(b, b.input("x", Shape.of(2, 24, 5, 5)), 4, 1e-6, false)));
        cs.add(one("layerNorm 77x100", b -> b.in("norm", () -> b.layerNorm(b.input("x", Shape.of(2, 77, 100)), 1e-5))));
        // linear: projections, context k/v (77 tokens), GEGLU proj, the time embedding MLP
        cs.add(one("linear 100→72 77 tokens +bias", b -> lin(b, b.input("x", Shape.of(2, 77, 100)), 72, true)));
        cs.add(one("linear context 96→40 77 tokens", b -> lin(b, b.input("x", Shape.of(2, 77, 96)), 40, false)));
        cs.add(one("linear GEGLU proj 40→320 50 tokens", b -> lin(b, b.input("x", Shape.of(1, 50, 40)), 320, true)));
        cs.add(one("linear time 40→160", b -> lin(b, b.input("x", Shape.of(2, 40)), 160, true)));
        // attention: SD's head dims 40/80/160 and 64, self and 77-key cross, and the generic path
        cs.add(attention("attention self h2 d40 s70", 2, 40, 70, 70));
        cs.add(attention("attention cross h2 d40 s70 k77", 2, 40, 70, 77));
        cs.add(attention("attention cross h1 d64 s50 k77", 1, 64, 50, 77));
        cs.add(attention("attention self h2 d80 s33", 2, 80, 33, 33));
        cs.add(attention("attention cross h1 d160 s20 k77", 1, 160, 20, 77));
        cs.add(attention("attention generic h3 d48 s30 k33", 3, 48, 30, 33));
        // the text encoder: causal self-attention (CLIP's 77 tokens), token + position embedding, quick-GELU
        cs.add(one("attention causal h2 d40 s77", b -> {
            Value q = b.input("q", Shape.of(2, 77, 80));
            return b.attention(q, b.input("k", Shape.of(2, 77, 80)), b.input("v", Shape.of(2, 77, 80)), 2, true);
        }));
        cs.add(one("attention causal h4 d8 s77", b -> {
            Value q = b.input("q", Shape.of(1, 77, 32));
            return b.attention(q, b.input("k", Shape.of(1, 77, 32)), b.input("v", Shape.of(1, 77, 32)), 4, true);
        }));
        // ids stored as fp32 on every backend (an fp16 one too): the 5000-row table draws ids above 2048,
        // which fp16 storage would round
        cs.add(one("embedding 77 tokens 600x40 +positions", b -> b.in("embeddings", () -> b.embedding(
                b.input("ids", Shape.of(2, 77), StorageType.F32), b.param("token_embedding", Shape.of(600, 40)),
                b.param("position_embedding", Shape.of(77, 40))))));
        cs.add(one("embedding 5 tokens 50x24", b -> b.in("embeddings", () -> b.embedding(
                b.input("ids", Shape.of(3, 5), StorageType.F32), b.param("token_embedding", Shape.of(50, 24)), null))));
        cs.add(one("embedding 9 tokens 5000x16 ids above 2048 +positions", b -> b.in("embeddings", () -> b.embedding(
                b.input("ids", Shape.of(2, 9), StorageType.F32), b.param("token_embedding", Shape.of(5000, 16)),
                b.param("position_embedding", Shape.of(9, 16))))));
        cs.addAll(withInPlace(one("quickGelu 77x148", b -> b.quickGelu(b.input("x", Shape.of(2, 77, 148))))));
        // activations, embeddings, resampling, plumbing
        cs.addAll(withInPlace(one("silu 40x9x7", b -> b.silu(b.input("x", Shape.of(2, 40, 9, 7))))));
        cs.addAll(withInPlace(one("gelu 50x160", b -> b.gelu(b.input("x", Shape.of(2, 50, 160))))));
        cs.add(one("geglu 50x320", b -> b.geglu(b.input("x", Shape.of(2, 50, 320)))));
        cs.add(one("timestepEmbedding 320 flip", b -> b.timestepEmbedding(b.input("t", Shape.of(2)), 320, true, 0)));
        cs.add(one("timestepEmbedding 321 shift 1", b -> b.timestepEmbedding(b.input("t", Shape.of(3)), 321, false, 1)));
        cs.add(one("upsampleNearest 24 5x4→10x8", b -> b.upsampleNearest(b.input("x", Shape.of(2, 24, 5, 4)), 10, 8)));
        cs.add(one("upsampleNearest 3x5→7x11", b -> b.upsampleNearest(b.input("x", Shape.of(2, 3, 3, 5)), 7, 11)));
        cs.add(one("concatChannels 40+24 9x7", b ->
                b.concatChannels(b.input("a", Shape.of(2, 40, 9, 7)), b.input("b", Shape.of(2, 24, 9, 7)))));
        cs.addAll(withInPlace(one("add 40x9x7", b ->
                b.add(b.input("a", Shape.of(2, 40, 9, 7)), b.input("b", Shape.of(2, 40, 9, 7))))));
        cs.addAll(withInPlace(one("addChannelBias 40x9x7", b ->
                b.addChannelBias(b.input("x", Shape.of(2, 40, 9, 7)), b.input("v", Shape.of(2, 40))))));
        cs.addAll(withInPlace(one("scale 0.18215 4x12x10", b -> b.scale(b.input("x", Shape.of(2, 4, 12, 10)), 0.18215))));
        cs.add(one("nchwToTokens 40x9x7", b -> b.toTokens(b.input("x", Shape.of(2, 40, 9, 7)))));
        cs.add(one("tokensToNchw 63x40", b -> b.fromTokens(b.input("x", Shape.of(2, 63, 40)), 9, 7)));
        // int8 weights
        for (Int8Mode mode : Int8Mode.values()) {
            cs.add(one("linearInt8 " + mode + " 100→72 77 tokens", int8(mode),
                    b -> lin(b, b.input("x", Shape.of(2, 77, 100)), 72, true)));
            cs.add(one("conv2dInt8 " + mode + " 3x3 40→24 9x7", int8(mode),
                    b -> conv(b, b.input("x", Shape.of(1, 40, 9, 7)), 24, 3, s1p1)));
        }
        return cs;
    }

    /** The case and one in-place variant per input it may overwrite. */
    private static List<OpCase> withInPlace(OpCase c) {
        List<OpCase> all = new ArrayList<>(List.of(c));
        for (int id : c.op().inPlaceInputs()) {
            if (c.graph().value(id).shape().equals(c.graph().value(c.op().out()).shape())) {
                OpCase v = c.inPlace(id);
                all.add(c.op().inPlaceInputs().length > 1
                        ? new OpCase(v.name() + " of " + c.graph().value(id).name(), v.graph(), v.op(), id) : v);
            }
        }
        return all;
    }

    private static OpCase attention(String name, int heads, int headDim, int queries, int keys) {
        return one(name, b -> {
            int c = heads * headDim;
            Value q = b.input("q", Shape.of(2, queries, c));
            Value k = b.input("k", Shape.of(2, keys, c)), v = b.input("v", Shape.of(2, keys, c));
            return b.attention(q, k, v, heads);
        });
    }

    private static Value conv(GraphBuilder b, Value x, int out, int kernel, Conv2dParams p) {
        return b.in("conv", () -> b.conv2d(x, out, kernel, p, true));
    }

    private static Value norm(GraphBuilder b, Value x, int groups, double eps, boolean silu) {
        return b.in("norm", () -> b.groupNorm(x, groups, eps, silu));
    }

    private static Value lin(GraphBuilder b, Value x, int out, boolean bias) {
        return b.in("proj", () -> b.linear(x, out, bias));
    }

    private static WeightFormat int8(Int8Mode mode) {
        return new WeightFormat() {
            public int[] shape(String name) {
                return null;
            }

            public boolean isInt8(String name) {
                return true;
            }

            public Int8Mode int8Mode() {
                return mode;
            }
        };
    }

    private static OpCase one(String name, Function<GraphBuilder, Value> body) {
        return one(name, WeightFormat.CONFIG, body);
    }

    /** The builder's graph, fused as the UNet's is; it must come down to exactly one op. */
    private static OpCase one(String name, WeightFormat format, Function<GraphBuilder, Value> body) {
        GraphBuilder b = new GraphBuilder(format);
        b.output("out", body.apply(b));
        Graph g = Fusion.fuse(b.build());
        if (g.ops().size() != 1) {
            throw new IllegalStateException(name + ": fused to " + g.ops().size() + " ops, not one");
        }
        Op op = g.ops().getFirst();
        return new OpCase(name, g, op, -1);
    }
}
