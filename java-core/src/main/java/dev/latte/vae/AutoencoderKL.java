package dev.latte.vae;

import dev.latte.core.Conv2dParams;
import dev.latte.core.Shape;
import dev.latte.graph.Graph;
import dev.latte.graph.GraphBuilder;
import dev.latte.graph.Value;
import dev.latte.weights.VaeConfig;

import java.util.List;

/**
 * diffusers' {@code AutoencoderKL} (v0.25.1 semantics) as two graph builders, parameters named as
 * in its checkpoints. Every GroupNorm in it has eps 1e-6; its ResnetBlock2Ds have no time
 * embedding; the mid block's attention is single-head over h·w tokens.
 *
 * <p>{@link #decoder}: input {@code z} [B, latent, h, w] (the pipeline's latents divided by
 * {@code scaling_factor}), outputs {@code post_quant_conv.out}, {@code decoder.conv_in.out},
 * {@code decoder.mid_block.out}, {@code decoder.up_blocks.i.out}, {@code decoder.conv_act.out} and
 * {@code sample} [B, out, 8h, 8w] (for SD's 4 levels).
 * {@link #encoder}: input {@code image} [B, in, H, W] in [-1, 1], outputs the encoder's
 * intermediates and {@code moments} [B, 2·latent, H/8, W/8] (mean, then log-variance).
 */
public final class AutoencoderKL {
    public static final double EPS = 1e-6;
    public static final String Z = "z";
    public static final String SAMPLE = "sample";
    public static final String IMAGE = "image";
    public static final String MOMENTS = "moments";

    private final VaeConfig cfg;

    public AutoencoderKL(VaeConfig cfg) {
        this.cfg = cfg;
    }

    public VaeConfig config() {
        return cfg;
    }

    public Graph decoder(int batch, int height, int width) {
        GraphBuilder g = new GraphBuilder();
        List<Integer> boc = cfg.blockOutChannels();
        int levels = boc.size();
        Value z = g.input(Z, Shape.of(batch, cfg.latentChannels(), height, width));
        Value h = z;
        if (cfg.usePostQuantConv()) {
            h = g.in("post_quant_conv", () -> g.conv2d(z, cfg.latentChannels(), 1, Conv2dParams.of(1, 0), true));
            g.output("post_quant_conv.out", h);
        }
        g.push("decoder");
        Value x0 = h;
        h = g.in("conv_in", () -> g.conv2d(x0, boc.getLast(), 3, Conv2dParams.of(1, 1), true));
        g.output("decoder.conv_in.out", h);
        h = midBlock(g, h);
        g.output("decoder.mid_block.out", h);
        int out = boc.getLast();
        for (int i = 0; i < levels; i++) {
            int in = out;
            out = boc.get(levels - 1 - i);
            g.push("up_blocks." + i);
            for (int j = 0; j < cfg.layersPerBlock() + 1; j++) {
                h = resnet(g, "resnets." + j, h, out);
            }
            if (i < levels - 1) {
                Shape s = h.shape();
                Value hu = h;
                int c = out;
                g.push("upsamplers.0");
                Value up = g.upsampleNearest(hu, s.dim(2) * 2, s.dim(3) * 2); // [B, C, 2h, 2w]
                h = g.in("conv", () -> g.conv2d(up, c, 3, Conv2dParams.of(1, 1), true));
                g.pop();
            }
            g.pop();
            g.output("decoder.up_blocks." + i + ".out", h);
        }
        Value hn = h;
        h = g.in("conv_norm_out", () -> g.groupNorm(hn, cfg.normNumGroups(), EPS, true));
        g.output("decoder.conv_act.out", h);
        Value act = h;
        h = g.in("conv_out", () -> g.conv2d(act, cfg.outChannels(), 3, Conv2dParams.of(1, 1), true));
        g.pop();
        g.output("decoder.conv_out.out", h);
        g.output(SAMPLE, h);
        return g.build();
    }

    public Graph encoder(int batch, int height, int width) {
        GraphBuilder g = new GraphBuilder();
        List<Integer> boc = cfg.blockOutChannels();
        int levels = boc.size();
        Value image = g.input(IMAGE, Shape.of(batch, cfg.inChannels(), height, width));
        g.push("encoder");
        Value h = g.in("conv_in", () -> g.conv2d(image, boc.getFirst(), 3, Conv2dParams.of(1, 1), true));
        g.output("encoder.conv_in.out", h);
        for (int i = 0; i < levels; i++) {
            int out = boc.get(i);
            g.push("down_blocks." + i);
            for (int j = 0; j < cfg.layersPerBlock(); j++) {
                h = resnet(g, "resnets." + j, h, out);
            }
            if (i < levels - 1) {
                Value hd = h;
                // Downsample2D(padding=0): pad right and bottom by one, then a 3×3 stride-2 conv
                h = g.in("downsamplers.0.conv", () -> g.conv2d(hd, out, 3, new Conv2dParams(2, 2, 0, 0, 1, 1), true));
            }
            g.pop();
            g.output("encoder.down_blocks." + i + ".out", h);
        }
        h = midBlock(g, h);
        g.output("encoder.mid_block.out", h);
        Value hn = h;
        h = g.in("conv_norm_out", () -> g.groupNorm(hn, cfg.normNumGroups(), EPS, true));
        g.output("encoder.conv_act.out", h);
        Value act = h;
        h = g.in("conv_out", () -> g.conv2d(act, 2 * cfg.latentChannels(), 3, Conv2dParams.of(1, 1), true));
        g.pop();
        g.output("encoder.conv_out.out", h);
        if (cfg.useQuantConv()) {
            Value e = h;
            h = g.in("quant_conv", () -> g.conv2d(e, 2 * cfg.latentChannels(), 1, Conv2dParams.of(1, 0), true));
            g.output("quant_conv.out", h);
        }
        g.output(MOMENTS, h);
        return g.build();
    }

    /** UNetMidBlock2D without time embedding: resnet, single-head attention, resnet. */
    private Value midBlock(GraphBuilder g, Value h) {
        int c = h.shape().dim(1);
        g.push("mid_block");
        h = resnet(g, "resnets.0", h, c);
        if (cfg.midBlockAddAttention()) {
            h = attention(g, "attentions.0", h);
        }
        h = resnet(g, "resnets.1", h, c);
        g.pop();
        return h;
    }

    /** ResnetBlock2D, no time embedding: GN→SiLU→conv1, GN→SiLU→conv2, + (1×1 conv) shortcut. */
    private Value resnet(GraphBuilder g, String scope, Value x, int outC) {
        int groups = cfg.normNumGroups();
        int inC = x.shape().dim(1);
        g.push(scope);
        Value h = g.in("norm1", () -> g.groupNorm(x, groups, EPS, true));
        Value h1 = h;
        h = g.in("conv1", () -> g.conv2d(h1, outC, 3, Conv2dParams.of(1, 1), true));
        Value h2 = h;
        h = g.in("norm2", () -> g.groupNorm(h2, groups, EPS, true));
        Value h3 = h;
        h = g.in("conv2", () -> g.conv2d(h3, outC, 3, Conv2dParams.of(1, 1), true));
        Value shortcut = inC == outC ? x
                : g.in("conv_shortcut", () -> g.conv2d(x, outC, 1, Conv2dParams.of(1, 0), true));
        h = g.add(shortcut, h);
        g.pop();
        return h;
    }

    /** diffusers' Attention with group_norm, one head of width C over the h·w pixels, + residual. */
    private Value attention(GraphBuilder g, String scope, Value x) {
        Shape s = x.shape();
        int c = s.dim(1);
        g.push(scope);
        Value n = g.in("group_norm", () -> g.groupNorm(x, cfg.normNumGroups(), EPS, false));
        Value t = g.toTokens(n); // [B, h·w, C]
        Value q = g.in("to_q", () -> g.linear(t, c, true));
        Value k = g.in("to_k", () -> g.linear(t, c, true));
        Value v = g.in("to_v", () -> g.linear(t, c, true));
        Value a = g.attention(q, k, v, 1);
        Value o = g.in("to_out.0", () -> g.linear(a, c, true));
        Value img = g.fromTokens(o, s.dim(2), s.dim(3));
        Value out = g.add(img, x);
        g.pop();
        return out;
    }
}
