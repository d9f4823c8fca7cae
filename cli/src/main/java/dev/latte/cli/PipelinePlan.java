package dev.latte.cli;

import dev.latte.clip.ClipTextModel;
import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.model.Component;
import dev.latte.model.ModelWeights;
import dev.latte.model.TextEncoderModel;
import dev.latte.model.VaeModel;
import dev.latte.pipeline.PipelineFolder;
import dev.latte.pipeline.Sd15Configs;
import dev.latte.plan.BuiltinConfigs;
import dev.latte.plan.MemoryPlan;
import dev.latte.plan.MemoryPlanner;
import dev.latte.unet.UNet2DConditionModel;
import dev.latte.vae.AutoencoderKL;
import dev.latte.vae.TiledDecode;
import dev.latte.weights.ClipTextConfig;
import dev.latte.weights.UNetConfig;
import dev.latte.weights.VaeConfig;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code latte plan --pipeline} (and {@code plan} on a text encoder or VAE folder): each phase of
 * a text-to-image run planned from configs alone: its weights, its activation arena, and the
 * peak when phases run one after another (each freed before the next) against all held at once.
 */
final class PipelinePlan {
    private PipelinePlan() {
    }

    record Phase(String name, long weightBytes, MemoryPlan plan) {
        long total() {
            return weightBytes + plan.arenaBytes();
        }
    }

    /** Whether {@code plan} should come here: --pipeline, or a text encoder / VAE / pipeline folder. */
    static boolean applies(Args a) {
        if (a.flag("pipeline")) {
            return true;
        }
        String c = a.get("config", "");
        if (BuiltinConfigs.byName(c) != null) {
            return false;
        }
        Path p = Path.of(c);
        if (PipelineFolder.isPipeline(p)) {
            return true;
        }
        if (!p.toFile().isDirectory()) {
            return false;
        }
        Component k = Component.of(p);
        return k == Component.TEXT_ENCODER || k == Component.VAE;
    }

    static int run(Args a, PrintStream out) {
        String c = a.required("config");
        int height = a.getInt("height", 512), width = a.getInt("width", 512);
        int batch = a.getInt("batch", 2), context = a.getInt("context", 77);
        String dtype = a.get("dtype", "fp16");
        int eb = switch (dtype) {
            case "fp16", "bf16" -> 2;
            case "fp32" -> 4;
            default -> throw new Args.UsageException("plan: --dtype must be fp16, bf16 or fp32; got '" + dtype + "'");
        };
        boolean tiling = a.flag("vae-tiling");
        ClipTextConfig te = null;
        UNetConfig unet = null;
        VaeConfig vae = null;
        Path p = Path.of(c);
        if (c.equals("sd15")) {
            te = Sd15Configs.textEncoder();
            unet = BuiltinConfigs.sd15();
            vae = Sd15Configs.vae();
        } else if (PipelineFolder.isPipeline(p)) {
            te = ClipTextConfig.load(p.resolve("text_encoder"));
            unet = UNetConfig.load(p.resolve("unet"));
            vae = VaeConfig.load(p.resolve("vae"));
        } else if (p.toFile().isDirectory() && Component.of(p) == Component.TEXT_ENCODER) {
            te = ClipTextConfig.load(p);
        } else if (p.toFile().isDirectory() && Component.of(p) == Component.VAE) {
            vae = VaeConfig.load(p);
        } else {
            throw new Args.UsageException("plan --pipeline: --config must be sd15 or a pipeline folder, got '" + c + "'");
        }
        int scale = vae != null ? vae.downscale() : BuiltinConfigs.VAE_SCALE;
        if (height <= 0 || width <= 0 || height % scale != 0 || width % scale != 0 || batch <= 0 || context <= 0) {
            throw new Args.UsageException("plan: --height and --width must be positive multiples of " + scale
                    + ", --batch and --context positive; got " + height + "x" + width);
        }
        int lh = height / scale, lw = width / scale, images = Math.max(1, batch / 2);
        List<Phase> phases = new ArrayList<>();
        if (te != null) {
            ClipTextModel m = new ClipTextModel(te);
            Graph g = Fusion.fuse(m.graph(batch, Math.min(context, te.maxPositionEmbeddings())));
            phases.add(new Phase("text encoder (batch " + batch + ", " + context + " tokens)",
                    eb * ModelWeights.parameterCount(TextEncoderModel.parameters(m)),
                    MemoryPlanner.plan(g, eb, Set.of(ClipTextModel.OUT))));
        }
        if (unet != null) {
            UNet2DConditionModel m = new UNet2DConditionModel(unet, c);
            Graph g = Fusion.fuse(m.graph(batch, lh, lw, context));
            phases.add(new Phase("unet step (batch " + batch + ", latent " + lh + "x" + lw + ")",
                    eb * ModelWeights.parameterCount(m.graph(1, 2 << unet.levels(), 2 << unet.levels(), 1).params()),
                    MemoryPlanner.plan(g, eb, Set.of("out"))));
        }
        MemoryPlan untiled = null;
        if (vae != null) {
            AutoencoderKL m = new AutoencoderKL(vae);
            long vaeWeights = eb * ModelWeights.parameterCount(VaeModel.parameters(m));
            long decoderWeights = eb * ModelWeights.parameterCount(m.decoder(1, 1, 1).params());
            untiled = MemoryPlanner.plan(Fusion.fuse(m.decoder(images, lh, lw)), eb, Set.of(AutoencoderKL.SAMPLE));
            int tileLatent = vae.sampleSize() / vae.downscale();
            if (tiling && TiledDecode.needed(lh, lw, tileLatent)) {
                MemoryPlan tile = MemoryPlanner.plan(Fusion.fuse(m.decoder(images, Math.min(lh, tileLatent),
                        Math.min(lw, tileLatent))), eb, Set.of(AutoencoderKL.SAMPLE));
                phases.add(new Phase("vae decode, tiled (" + tileLatent + "x" + tileLatent + " latent tiles)",
                        decoderWeights, tile));
            } else {
                phases.add(new Phase("vae decode (batch " + images + ", latent " + lh + "x" + lw + ")", decoderWeights,
                        untiled));
                untiled = null;
            }
            if (te == null) {
                out.printf(Locale.ROOT, "vae: %,d parameters (decoder %,d)%n", vaeWeights / eb, decoderWeights / eb);
            }
        }
        out.printf(Locale.ROOT, "plan %s: %dx%d image (latent %dx%d), batch %d, context %d, %s%n", c, height, width,
                lh, lw, batch, context, dtype);
        out.printf(Locale.ROOT, "%-48s %12s %12s %12s %12s%n", "phase", "weights MiB", "arena MiB", "bound MiB",
                "total MiB");
        long peak = 0, sum = 0;
        for (Phase ph : phases) {
            out.printf(Locale.ROOT, "%-48s %12.2f %12.2f %12.2f %12.2f%n", ph.name, mib(ph.weightBytes),
                    mib(ph.plan.arenaBytes()), mib(ph.plan.lowerBoundBytes()), mib(ph.total()));
            peak = Math.max(peak, ph.total());
            sum += ph.total();
        }
        if (phases.size() > 1) {
            out.printf(Locale.ROOT, "peak, phases one at a time (each freed before the next): %.2f MiB%n", mib(peak));
            out.printf(Locale.ROOT, "all phases held at once:                                  %.2f MiB%n", mib(sum));
        }
        if (untiled != null) {
            out.printf(Locale.ROOT, "vae decode untiled would need an arena of %.2f MiB; tiling saves %.2f MiB%n",
                    mib(untiled.arenaBytes()), mib(untiled.arenaBytes() - phases.getLast().plan.arenaBytes()));
        }
        return 0;
    }

    private static double mib(long bytes) {
        return bytes / 1048576.0;
    }
}
