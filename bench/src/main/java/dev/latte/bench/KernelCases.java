package dev.latte.bench;

import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.graph.Op;
import dev.latte.graph.WeightFormat;
import dev.latte.plan.BuiltinConfigs;
import dev.latte.unet.UNet2DConditionModel;
import dev.latte.weights.UNetConfig;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
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
        return graph(cfg, source, batch, height, width, context, WeightFormat.CONFIG);
    }

    /** The same with the conv and linear weights {@code format} says are int8 run as int8 ops. */
    public static Graph graph(UNetConfig cfg, String source, int batch, int height, int width, int context,
                              WeightFormat format) {
        if (height % BuiltinConfigs.VAE_SCALE != 0 || width % BuiltinConfigs.VAE_SCALE != 0) {
            throw new IllegalArgumentException("image size " + height + "x" + width + " is not a multiple of "
                    + BuiltinConfigs.VAE_SCALE);
        }
        return Fusion.fuse(new UNet2DConditionModel(cfg, source).graph(batch, height / BuiltinConfigs.VAE_SCALE,
                width / BuiltinConfigs.VAE_SCALE, context, format));
    }

    /** SD1.5's cases at each of {@link #SD15_SIZES}, square images, 77 context tokens. */
    public static List<KernelCase> sd15(int batch, int elementBytes) {
        return sd15(batch, elementBytes, WeightFormat.CONFIG, "");
    }

    /** The same with weights in {@code format}; {@code tag} (e.g. " w8a8") ends each case's config label. */
    public static List<KernelCase> sd15(int batch, int elementBytes, WeightFormat format, String tag) {
        List<KernelCase> all = new ArrayList<>();
        for (int side : SD15_SIZES) {
            Graph g = graph(BuiltinConfigs.sd15(), "built-in sd15", batch, side, side, 77, format);
            all.addAll(fromGraph(g, elementBytes, "sd15 " + side + "x" + side + " batch " + batch + tag));
        }
        return all;
    }

    /**
     * The op-case table's rows ({@link OpCases}) as bench cases, each counted once; in-place
     * variants are left out (they time the same kernel).
     */
    public static List<KernelCase> fromOpCases(List<OpCase> cases, int elementBytes, String config) {
        List<KernelCase> all = new ArrayList<>();
        for (OpCase c : cases) {
            if (c.inPlace() < 0) {
                Op op = c.op();
                Graph g = c.graph();
                all.add(new KernelCase(config, op.kind(), op.describe(g), 1, c.name(), op.flops(g),
                        op.bytes(g, elementBytes), op.computeBound() ? "compute" : "memory", g, op));
            }
        }
        return all;
    }

    /** Every distinct op of {@code g}, in order of first appearance, with its count per step. */
    public static List<KernelCase> fromGraph(Graph g, int elementBytes, String config) {
        Map<String, List<Op>> byShape = new LinkedHashMap<>();
        for (Op op : g.ops()) {
            byShape.computeIfAbsent(op.kind() + " " + op.describe(g), k -> new ArrayList<>()).add(op);
        }
        List<KernelCase> cases = new ArrayList<>();
        for (var e : byShape.entrySet()) {
            Op first = e.getValue().getFirst();
            String kind = first.kind();
            cases.add(new KernelCase(config, kind, e.getKey().substring(kind.length() + 1), e.getValue().size(),
                    first.name(), first.flops(g), first.bytes(g, elementBytes),
                    first.computeBound() ? "compute" : "memory", g, first));
        }
        return cases;
    }
}
