package dev.latte.bench;

import dev.latte.core.Conv2dParams;
import dev.latte.core.Shape;
import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.graph.Op;
import dev.latte.graph.OpCost;
import dev.latte.graph.Value;
import dev.latte.plan.BuiltinConfigs;
import dev.latte.unet.UNet2DConditionModel;
import dev.latte.weights.UNetConfig;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The kernel-benchmark table, derived from the fused op list of a real UNet step rather than
 * written out by hand: every distinct (op kind, shapes, parameters) of the step, in order of first
 * appearance, with how many times it runs per step. For SD1.5 this is the convolutions at
 * 320/640/1280 channels from 64² down to 8² latents (512² images; 96²…12² at 768²), attention
 * with head dims 40/80/160 over self keys and 77 cross keys, the GEGLU and other linear GEMMs,
 * GroupNorm (where not fused), LayerNorm, GEGLU, the adds and the layout transposes.
 */
public final class KernelCases {
    /** The image sizes SD1.5 is benchmarked at (pixels; latent = /8). */
    public static final List<Integer> SD15_SIZES = List.of(512, 768);

    private KernelCases() {
    }

    /** The fused graph of one UNet step of {@code cfg} for an image of {@code height × width} pixels. */
    public static Graph graph(UNetConfig cfg, String source, int batch, int height, int width, int context) {
        if (height % BuiltinConfigs.VAE_SCALE != 0 || width % BuiltinConfigs.VAE_SCALE != 0) {
            throw new IllegalArgumentException("image size " + height + "x" + width + " is not a multiple of "
                    + BuiltinConfigs.VAE_SCALE);
        }
        return Fusion.fuse(new UNet2DConditionModel(cfg, source).graph(batch, height / BuiltinConfigs.VAE_SCALE,
                width / BuiltinConfigs.VAE_SCALE, context));
    }

    /** SD1.5's cases at each of {@link #SD15_SIZES}, square images, 77 context tokens. */
    public static List<KernelCase> sd15(int batch, int elementBytes) {
        List<KernelCase> all = new ArrayList<>();
        for (int side : SD15_SIZES) {
            Graph g = graph(BuiltinConfigs.sd15(), "built-in sd15", batch, side, side, 77);
            all.addAll(fromGraph(g, elementBytes, "sd15 " + side + "x" + side + " batch " + batch));
        }
        return all;
    }

    /** Every distinct op of {@code g}, in order of first appearance, with its count per step. */
    public static List<KernelCase> fromGraph(Graph g, int elementBytes, String config) {
        Map<String, List<Op>> byShape = new LinkedHashMap<>();
        for (Op op : g.ops()) {
            byShape.computeIfAbsent(OpCost.kind(op) + " " + describe(op, g), k -> new ArrayList<>()).add(op);
        }
        List<KernelCase> cases = new ArrayList<>();
        for (var e : byShape.entrySet()) {
            Op first = e.getValue().getFirst();
            String kind = OpCost.kind(first);
            cases.add(new KernelCase(config, kind, e.getKey().substring(kind.length() + 1), e.getValue().size(),
                    first.name(), OpCost.flops(first, g), OpCost.bytes(first, g, elementBytes),
                    OpCost.computeBound(first, g) ? "compute" : "memory", g, first));
        }
        return cases;
    }

    /** The op's shapes and parameters in one line, without names or value ids. */
    public static String describe(Op op, Graph g) {
        StringBuilder s = new StringBuilder();
        switch (op) {
            case Op.Conv2dFused c -> {
                s.append("x ").append(shape(g, c.x())).append(" w ").append(shape(g, c.w())).append(conv(c.p()));
                if (c.normGamma() >= 0) {
                    s.append(" groupnorm ").append(c.groups()).append(c.silu() ? "+silu" : "");
                }
                s.append(c.bias() >= 0 ? " bias" : "").append(c.residual() >= 0 ? " +residual" : "");
            }
            case Op.Conv2dUpsampled c -> s.append("x ").append(shape(g, c.x())).append(" upsampled to ")
                    .append(c.height()).append("x").append(c.width()).append(" w ").append(shape(g, c.w()))
                    .append(conv(c.p())).append(c.bias() >= 0 ? " bias" : "");
            case Op.Conv2d c -> s.append("x ").append(shape(g, c.x())).append(" w ").append(shape(g, c.w()))
                    .append(conv(c.p())).append(c.bias() >= 0 ? " bias" : "");
            case Op.Conv2dInt8 c -> s.append("x ").append(shape(g, c.x())).append(" w ").append(shape(g, c.w()))
                    .append(conv(c.p())).append(" ").append(c.mode());
            case Op.Linear l -> s.append("x ").append(shape(g, l.x())).append(" w ").append(shape(g, l.w()))
                    .append(l.bias() >= 0 ? " bias" : "");
            case Op.LinearInt8 l -> s.append("x ").append(shape(g, l.x())).append(" w ").append(shape(g, l.w()))
                    .append(" ").append(l.mode());
            case Op.Attention a -> {
                Shape q = shape(g, a.q()), k = shape(g, a.k());
                s.append(String.format(Locale.ROOT, "batch %d heads %d head_dim %d queries %d keys %d", q.dim(0),
                        a.heads(), q.dim(2) / a.heads(), q.dim(1), k.dim(1)));
            }
            case Op.GroupNorm n -> s.append("x ").append(shape(g, n.x())).append(" groups ").append(n.groups())
                    .append(n.silu() ? " +silu" : "");
            default -> {
                s.append("in");
                for (int id : op.inputs()) {
                    if (id >= 0 && g.value(id).kind() != Value.Kind.PARAM) {
                        s.append(' ').append(shape(g, id));
                    }
                }
                if (op instanceof Op.Scale sc) {
                    s.append(" by ").append(sc.s());
                }
            }
        }
        return s.append(" -> ").append(shape(g, op.out())).toString();
    }

    private static String conv(Conv2dParams p) {
        return p.strideH() == p.strideW() && p.padTop() == p.padLeft() && p.padTop() == p.padBottom()
                && p.padLeft() == p.padRight()
                ? " stride " + p.strideH() + " pad " + p.padTop()
                : " stride " + p.strideH() + "x" + p.strideW() + " pad " + p.padTop() + "," + p.padLeft() + ","
                + p.padBottom() + "," + p.padRight();
    }

    private static Shape shape(Graph g, int id) {
        return g.value(id).shape();
    }
}
