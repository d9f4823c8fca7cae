package dev.latte.unet;

import dev.latte.core.Conv2dParams;
import dev.latte.core.Shape;
import dev.latte.graph.Graph;
import dev.latte.graph.GraphBuilder;
import dev.latte.graph.Value;
import dev.latte.graph.WeightFormat;
import dev.latte.weights.Text;
import dev.latte.weights.UNetConfig;
import dev.latte.weights.WeightsException;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;

/**
 * diffusers' {@code UNet2DConditionModel} (v0.25.1 semantics) as a graph builder: for a given
 * batch, latent size and context length it emits the static op list, with parameters named as in
 * diffusers' checkpoints. Block types: {@code CrossAttnDownBlock2D}, {@code DownBlock2D},
 * {@code UNetMidBlock2DCrossAttn}, {@code UpBlock2D}, {@code CrossAttnUpBlock2D}.
 *
 * <p>Graph inputs: {@code sample} [B, in, H, W], {@code timestep} [B] (fp32, as diffusers casts
 * it), {@code encoder_hidden_states} [B, L, cross_attention_dim]. Named outputs: {@code out} and
 * the intermediates diffusers' goldens store ({@code time_embedding.out}, {@code conv_in.out},
 * {@code down_blocks.i.out}, {@code mid_block.out}, {@code up_blocks.i.out}, {@code conv_act.out}).
 */
public final class UNet2DConditionModel {
    private static final double TRANSFORMER_GN_EPS = 1e-6;
    private static final double LAYER_NORM_EPS = 1e-5;

    private final UNetConfig cfg;
    private final int levels;
    private final int contextDim;

    /** Checks that the config only uses what Latte implements; {@code source} names it in errors. */
    public UNet2DConditionModel(UNetConfig cfg, String source) {
        this.cfg = cfg;
        this.levels = cfg.levels();
        for (String t : cfg.downBlockTypes()) {
            require(t.equals("CrossAttnDownBlock2D") || t.equals("DownBlock2D"), source, "down_block_types", t);
        }
        for (String t : cfg.upBlockTypes()) {
            require(t.equals("CrossAttnUpBlock2D") || t.equals("UpBlock2D"), source, "up_block_types", t);
        }
        require(cfg.midBlockType() == null || cfg.midBlockType().equals("UNetMidBlock2DCrossAttn"),
                source, "mid_block_type", cfg.midBlockType());
        require(cfg.numAttentionHeads() == null, source, "num_attention_heads", cfg.numAttentionHeads());
        require(cfg.classEmbedType() == null && cfg.numClassEmbeds() == null, source, "class_embed_type",
                cfg.classEmbedType());
        require(cfg.additionEmbedType() == null, source, "addition_embed_type", cfg.additionEmbedType());
        require(cfg.encoderHidDim() == null && cfg.encoderHidDimType() == null, source, "encoder_hid_dim",
                cfg.encoderHidDim());
        require(cfg.timeCondProjDim() == null, source, "time_cond_proj_dim", cfg.timeCondProjDim());
        require("positional".equals(cfg.timeEmbeddingType()), source, "time_embedding_type",
                cfg.timeEmbeddingType());
        require("silu".equals(cfg.actFn()), source, "act_fn", cfg.actFn());
        require(cfg.timeEmbeddingActFn() == null, source, "time_embedding_act_fn", cfg.timeEmbeddingActFn());
        require(cfg.timestepPostAct() == null, source, "timestep_post_act", cfg.timestepPostAct());
        require(!cfg.dualCrossAttention(), source, "dual_cross_attention", true);
        require("default".equals(cfg.resnetTimeScaleShift()), source, "resnet_time_scale_shift",
                cfg.resnetTimeScaleShift());
        require("default".equals(cfg.attentionType()), source, "attention_type", cfg.attentionType());
        require(!cfg.centerInputSample(), source, "center_input_sample", true);
        require(cfg.normNumGroups() != null, source, "norm_num_groups", null);
        require(!cfg.reverseTransformerLayersPerBlockSet(), source, "reverse_transformer_layers_per_block",
                "set");
        require(cfg.crossAttentionNorm() == null, source, "cross_attention_norm", cfg.crossAttentionNorm());
        for (int k : new int[] {cfg.convInKernel(), cfg.convOutKernel()}) {
            if (k % 2 == 0 || k < 1) {
                throw new WeightsException(source + ": conv_in_kernel/conv_out_kernel must be odd, got " + k);
            }
        }
        if (cfg.crossAttentionDim().stream().distinct().count() != 1) {
            throw new WeightsException(source + ": cross_attention_dim " + cfg.crossAttentionDim()
                    + " differs per level; one encoder_hidden_states cannot feed them all");
        }
        this.contextDim = cfg.crossAttentionDim().getFirst();
    }

    /** GroupNorm groups over a pruned width: whole groups of the unpruned outC/groups channels. */
    private static int prunedGroups(int inner, int outC, int groups) {
        int perGroup = outC / groups;
        if (outC % groups != 0 || inner % perGroup != 0) {
            throw new WeightsException("pruned width " + inner + " is not whole GroupNorm groups of " + perGroup
                    + " channels (" + outC + " channels, " + groups + " groups)");
        }
        return inner / perGroup;
    }

    private static void require(boolean ok, String source, String key, Object value) {
        if (!ok) {
            // the value comes from the file: escaped, so it cannot forge a line or repaint the terminal
            throw new WeightsException(Text.oneLine(source + ": " + key + " = " + Text.quote(String.valueOf(value))
                    + " is not supported by Latte"));
        }
    }

    public UNetConfig config() {
        return cfg;
    }

    /** The width of {@code encoder_hidden_states} this model expects. */
    public int contextDim() {
        return contextDim;
    }

    /** The op list for one input shape, every weight float with the config's shapes. */
    public Graph graph(int batch, int height, int width, int contextLength) {
        return graph(batch, height, width, contextLength, WeightFormat.CONFIG);
    }

    /**
     * The op list for one input shape with int8 ops where {@code format} says a weight is int8,
     * and pruned inner widths (a ResnetBlock2D's {@code conv1} out-channels, a feed-forward's
     * inner dim, an attention's inner dim) taken from the stored weights' shapes.
     */
    public Graph graph(int batch, int height, int width, int contextLength, WeightFormat format) {
        return new Builder(batch, height, width, contextLength, format).build();
    }

    // ---- DeepCache (arXiv 2312.00858): a partial step reuses a deep feature of the last full step ----

    /** The cached feature: a named output of {@link #fullStepGraph}, an input of {@link #partialStepGraph}. */
    public static final String CACHED_FEATURE = "deepcache.feature";

    /**
     * How many DeepCache branch ids this UNet has: 3 per down block, as DeepCache's
     * {@code cache_branch_id} b means block b / 3, layer b % 3 whatever {@code layers_per_block} is.
     */
    public int deepCacheBranches() {
        return 3 * levels;
    }

    /** Throws a usage error naming the valid range unless {@code branch} is one of this UNet's. */
    public void checkDeepCacheBranch(int branch) {
        if (branch < 0 || branch >= deepCacheBranches()) {
            throw new IllegalArgumentException("DeepCache branch " + branch + " is out of range: this UNet has "
                    + levels + " down blocks, so branches 0.." + (deepCacheBranches() - 1));
        }
    }

    /** The full step's graph with the tensor a partial step of {@code branch} reuses named {@link #CACHED_FEATURE}. */
    public Graph fullStepGraph(int batch, int height, int width, int contextLength, WeightFormat format, int branch) {
        checkDeepCacheBranch(branch);
        Builder b = new Builder(batch, height, width, contextLength, format);
        b.cacheBranch = branch;
        return b.build();
    }

    /**
     * A partial step of {@code branch} (block B = branch / 3, layer L = branch % 3), as DeepCache's
     * helper computes it: the time embedding, conv_in, down blocks before B and the first L
     * layers of block B fresh; then the up block mirroring B from its pair j* = max(0, n_res − 1 − L)
     * on, fed the input {@link #CACHED_FEATURE} in place of what the skipped part computed, with
     * the fresh skips; then every later up block and the output head. Inputs: those of
     * {@link #graph} and {@link #CACHED_FEATURE}. The helper also runs block B's downsampler when
     * L exceeds its resnets ({@code layers_per_block} 1, L = 2) and then never reads it; this
     * graph leaves that dead conv out. Without a mid block, a branch of the last down block with
     * L ≥ {@code layers_per_block} reuses nothing (the helper recomputes that whole block, whose
     * output feeds the up path directly): its partial step is the plain graph, with no
     * {@link #CACHED_FEATURE} input.
     */
    public Graph partialStepGraph(int batch, int height, int width, int contextLength, WeightFormat format,
                                  int branch) {
        Shape feature = fullStepGraph(batch, height, width, contextLength, format, branch).outputs()
                .get(CACHED_FEATURE).shape();
        Builder b = new Builder(batch, height, width, contextLength, format);
        b.cacheBranch = branch;
        return b.buildPartial(feature);
    }

    /** One build: the graph under construction and the per-run state (time embedding, context). */
    private final class Builder {
        private final GraphBuilder g;
        private final Value sample;
        private final Value timestep;
        private final Value context;
        private Value tembAct;
        private int cacheBranch = -1;

        Builder(int batch, int height, int width, int contextLength, WeightFormat format) {
            g = new GraphBuilder(format);
            sample = g.input("sample", Shape.of(batch, cfg.inChannels(), height, width));
            timestep = g.input("timestep", Shape.of(batch));
            context = g.input("encoder_hidden_states", Shape.of(batch, contextLength, contextDim));
        }

        Graph build() {
            Deque<Value> skips = new ArrayDeque<>();
            Value h = stem(skips);
            for (int i = 0; i < levels; i++) {
                h = downBlock(i, h, skips, cfg.layersPerBlock().get(i), i < levels - 1);
                g.output("down_blocks." + i + ".out", h);
            }

            if (cfg.midBlockType() != null) {
                h = midBlock(h);
                g.output("mid_block.out", h);
            }

            for (int i = 0; i < levels; i++) {
                if (cacheBranch >= 0 && i == cachedUpBlock() && cachedPair() == 0) {
                    g.output(CACHED_FEATURE, h); // the mid block's output, or the previous up block's
                }
                h = upBlock(i, h, skips, 0);
                g.output("up_blocks." + i + ".out", h);
            }
            return head(h);
        }

        /** The up block (list position) a partial step enters: the mirror of block B. */
        private int cachedUpBlock() {
            return levels - 1 - cacheBranch / 3;
        }

        /** Its first pair a partial step computes: j* = max(0, n_res − 1 − L). */
        private int cachedPair() {
            int nRes = cfg.layersPerBlock().get(cacheBranch / 3) + 1;
            return Math.max(0, nRes - 1 - cacheBranch % 3);
        }

        Graph buildPartial(Shape featureShape) {
            int block = cacheBranch / 3, layer = cacheBranch % 3;
            if (cfg.midBlockType() == null && cachedUpBlock() == 0 && cachedPair() == 0) {
                cacheBranch = -1;
                return build();
            }
            Deque<Value> skips = new ArrayDeque<>();
            Value h = stem(skips);
            for (int i = 0; i < block; i++) {
                h = downBlock(i, h, skips, cfg.layersPerBlock().get(i), true);
                g.output("down_blocks." + i + ".out", h);
            }
            downBlock(block, h, skips, Math.min(layer, cfg.layersPerBlock().get(block)), false);
            h = g.input(CACHED_FEATURE, featureShape);
            for (int i = cachedUpBlock(); i < levels; i++) {
                h = upBlock(i, h, skips, i == cachedUpBlock() ? cachedPair() : 0);
                g.output("up_blocks." + i + ".out", h);
            }
            return head(h);
        }

        /** Time embedding and conv_in; pushes conv_in's output as the first skip. */
        private Value stem(Deque<Value> skips) {
            List<Integer> boc = cfg.blockOutChannels();
            int c0 = boc.getFirst();
            int timeDim = cfg.timeEmbedDim();

            Value tproj = g.in("time_proj", () -> g.timestepEmbedding(timestep, c0, cfg.flipSinToCos(),
                    cfg.freqShift()));
            g.push("time_embedding");
            Value emb = g.in("linear_1", () -> g.linear(tproj, timeDim, true));
            emb = g.silu(emb);
            Value embFinal = emb;
            emb = g.in("linear_2", () -> g.linear(embFinal, timeDim, true));
            g.pop();
            g.output("time_embedding.out", emb);
            // every ResnetBlock2D projects SiLU(temb): compute it once
            tembAct = g.silu(emb);

            Value h = g.in("conv_in", () -> g.conv2d(sample, c0, cfg.convInKernel(),
                    Conv2dParams.of(1, cfg.convInKernel() / 2), true));
            g.output("conv_in.out", h);
            skips.push(h);
            return h;
        }

        /** conv_norm_out → SiLU → conv_out. */
        private Graph head(Value h) {
            Value hFinal = h;
            h = g.in("conv_norm_out", () -> g.groupNorm(hFinal, cfg.normNumGroups(), cfg.normEps(), true));
            g.output("conv_act.out", h);
            Value act = h;
            h = g.in("conv_out", () -> g.conv2d(act, cfg.outChannels(), cfg.convOutKernel(),
                    Conv2dParams.of(1, cfg.convOutKernel() / 2), true));
            g.output("out", h);
            return g.build();
        }

        /** The first {@code layers} (resnet, attention) pairs of down block i, then its downsampler if asked. */
        private Value downBlock(int i, Value h, Deque<Value> skips, int layers, boolean downsample) {
            int out = cfg.blockOutChannels().get(i);
            boolean cross = cfg.downBlockTypes().get(i).equals("CrossAttnDownBlock2D");
            g.push("down_blocks." + i);
            for (int j = 0; j < layers; j++) {
                h = resnet("resnets." + j, h, out, 1.0);
                if (cross) {
                    h = transformer("attentions." + j, h, cfg.attentionHeadDim().get(i),
                            cfg.transformerLayersPerBlock().get(i), cfg.onlyCrossAttention().get(i));
                }
                skips.push(h);
            }
            if (downsample) {
                g.push("downsamplers.0");
                g.push("conv");
                int pad = cfg.downsamplePadding();
                // diffusers pads right and bottom by one when downsample_padding is 0
                Conv2dParams p = pad == 0 ? new Conv2dParams(2, 2, 0, 0, 1, 1) : Conv2dParams.of(2, pad);
                h = g.conv2d(h, out, 3, p, true);
                g.pop();
                g.pop();
                skips.push(h);
            }
            g.pop();
            return h;
        }

        private Value midBlock(Value h) {
            int c = cfg.blockOutChannels().getLast();
            double scale = cfg.midBlockScaleFactor();
            g.push("mid_block");
            h = resnet("resnets.0", h, c, scale);
            h = transformer("attentions.0", h, cfg.attentionHeadDim().getLast(),
                    cfg.transformerLayersPerBlock().getLast(), false);
            h = resnet("resnets.1", h, c, scale);
            g.pop();
            return h;
        }

        /** Up block i from its pair {@code fromPair} on (0: the whole block). */
        private Value upBlock(int i, Value h, Deque<Value> skips, int fromPair) {
            int r = levels - 1 - i; // the down level this up block mirrors
            List<Integer> boc = cfg.blockOutChannels();
            int out = boc.get(r);
            boolean cross = cfg.upBlockTypes().get(i).equals("CrossAttnUpBlock2D");
            int layers = cfg.layersPerBlock().get(r) + 1;
            g.push("up_blocks." + i);
            for (int j = fromPair; j < layers; j++) {
                Value skip = skips.pop();
                h = g.concatChannels(h, skip); // [B, C + C_skip, H, W]
                h = resnet("resnets." + j, h, out, 1.0);
                if (cross) {
                    h = transformer("attentions." + j, h, cfg.attentionHeadDim().get(r),
                            cfg.transformerLayersPerBlock().get(r), cfg.onlyCrossAttention().get(r));
                }
                if (cacheBranch >= 0 && i == cachedUpBlock() && j == cachedPair() - 1) {
                    g.output(CACHED_FEATURE, h);
                }
            }
            if (i < levels - 1) {
                // nearest ×2, or to the next skip's size when the latent is not a multiple of 2^levels
                Shape next = skips.peek().shape();
                g.push("upsamplers.0");
                h = g.upsampleNearest(h, next.dim(2), next.dim(3));
                Value up = h;
                h = g.in("conv", () -> g.conv2d(up, out, 3, Conv2dParams.of(1, 1), true));
                g.pop();
            }
            g.pop();
            return h;
        }

        /** ResnetBlock2D: GN→SiLU→conv1, + time_emb_proj(SiLU(temb)), GN→SiLU→conv2, + shortcut. */
        private Value resnet(String scope, Value x, int outC, double outputScaleFactor) {
            int groups = cfg.normNumGroups();
            double eps = cfg.normEps();
            int inC = x.shape().dim(1);
            g.push(scope);
            // inner width: outC, or fewer where pruned (whole GroupNorm groups of outC/groups channels)
            int inner = g.storedDim("conv1.weight", 0, outC);
            int groups2 = inner == outC ? groups : prunedGroups(inner, outC, groups);
            Value h = g.in("norm1", () -> g.groupNorm(x, groups, eps, true));
            Value h1 = h;
            h = g.in("conv1", () -> g.conv2d(h1, inner, 3, Conv2dParams.of(1, 1), true));
            Value t = g.in("time_emb_proj", () -> g.linear(tembAct, inner, true)); // [B, inner]
            h = g.addChannelBias(h, t);
            Value h2 = h;
            h = g.in("norm2", () -> g.groupNorm(h2, groups2, eps, true));
            Value h3 = h;
            h = g.in("conv2", () -> g.conv2d(h3, outC, 3, Conv2dParams.of(1, 1), true));
            Value shortcut = inC == outC ? x
                    : g.in("conv_shortcut", () -> g.conv2d(x, outC, 1, Conv2dParams.of(1, 0), true));
            h = g.add(shortcut, h);
            if (outputScaleFactor != 1.0) {
                h = g.scale(h, 1.0 / outputScaleFactor);
            }
            g.pop();
            return h;
        }

        /** Transformer2DModel: GN → proj_in → BasicTransformerBlocks → proj_out → + input. */
        private Value transformer(String scope, Value x, int heads, int layers, boolean onlyCross) {
            Shape s = x.shape(); // [B, C, H, W]
            int c = s.dim(1), height = s.dim(2), width = s.dim(3);
            int inner = heads * (c / heads);
            boolean linearProj = cfg.useLinearProjection();
            g.push(scope);
            Value h = g.in("norm", () -> g.groupNorm(x, cfg.normNumGroups(), TRANSFORMER_GN_EPS, false));
            Value n = h;
            if (linearProj) {
                Value tokens = g.toTokens(n);
                h = g.in("proj_in", () -> g.linear(tokens, inner, true));
            } else {
                Value p = g.in("proj_in", () -> g.conv2d(n, inner, 1, Conv2dParams.of(1, 0), true));
                h = g.toTokens(p); // [B, H·W, inner]
            }
            for (int l = 0; l < layers; l++) {
                h = basicTransformerBlock("transformer_blocks." + l, h, heads, onlyCross);
            }
            Value tokens = h;
            if (linearProj) {
                Value p = g.in("proj_out", () -> g.linear(tokens, c, true));
                h = g.fromTokens(p, height, width);
            } else {
                Value img = g.fromTokens(tokens, height, width);
                h = g.in("proj_out", () -> g.conv2d(img, c, 1, Conv2dParams.of(1, 0), true));
            }
            h = g.add(h, x);
            g.pop();
            return h;
        }

        private Value basicTransformerBlock(String scope, Value h, int heads, boolean onlyCross) {
            int dim = h.shape().dim(2);
            g.push(scope);
            Value x0 = h;
            Value n1 = g.in("norm1", () -> g.layerNorm(x0, LAYER_NORM_EPS));
            h = g.add(attention("attn1", n1, onlyCross ? context : n1, heads), h);
            Value x1 = h;
            Value n2 = g.in("norm2", () -> g.layerNorm(x1, LAYER_NORM_EPS));
            h = g.add(attention("attn2", n2, context, heads), h);
            Value x2 = h;
            Value n3 = g.in("norm3", () -> g.layerNorm(x2, LAYER_NORM_EPS));
            int ffInner = g.storedDim("ff.net.2.weight", 1, dim * 4); // 4·dim, or fewer where pruned
            Value proj = g.in("ff.net.0.proj", () -> g.linear(n3, ffInner * 2, true));
            Value gated = g.in("ff.net.0", () -> g.geglu(proj)); // [B, S, 4·dim]
            Value ff = g.in("ff.net.2", () -> g.linear(gated, dim, true));
            h = g.add(ff, h);
            g.pop();
            return h;
        }

        private Value attention(String scope, Value x, Value kv, int heads) {
            int dim = x.shape().dim(2);
            g.push(scope);
            int inner = g.storedDim("to_q.weight", 0, dim); // heads · head_dim, head_dim smaller where pruned
            Value q = g.in("to_q", () -> g.linear(x, inner, false));
            Value k = g.in("to_k", () -> g.linear(kv, inner, false));
            Value v = g.in("to_v", () -> g.linear(kv, inner, false));
            Value a = g.attention(q, k, v, heads);
            Value out = g.in("to_out.0", () -> g.linear(a, dim, true));
            g.pop();
            return out;
        }
    }
}
