package dev.latte.cli;

import dev.latte.bench.BenchReport;
import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.plan.BuiltinConfigs;
import dev.latte.plan.MemoryPlan;
import dev.latte.plan.MemoryPlanner;
import dev.latte.unet.UNet2DConditionModel;
import dev.latte.weights.UNetConfig;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * {@code latte plan}: the memory plan of one UNet step for a config and an input shape, made
 * without weights. Prints every strategy's arena, the four totals and the ten largest tensors;
 * {@code --json} writes the whole plan.
 */
final class Plan {
    static final Set<String> OPTIONS = Set.of("config", "height", "width", "batch", "context", "dtype", "keep",
            "json");

    private Plan() {
    }

    static final Set<String> FLAGS = Set.of("pipeline", "vae-tiling");

    static int run(Args a, PrintStream out) {
        if (PipelinePlan.applies(a)) {
            return PipelinePlan.run(a, out);
        }
        if (a.flag("vae-tiling")) {
            throw new Args.UsageException("plan: --vae-tiling is for --pipeline or a VAE folder");
        }
        String configName = a.required("config");
        UNetConfig cfg = BuiltinConfigs.byName(configName);
        String source = "built-in " + configName;
        if (cfg == null) {
            Path p = Path.of(configName);
            if (!Files.exists(p)) {
                throw new Args.UsageException("plan: --config '" + configName + "' is neither a built-in config ("
                        + String.join(", ", BuiltinConfigs.names()) + ") nor a model folder or config.json");
            }
            cfg = UNetConfig.load(p);
            source = p.toString();
        }
        int height = a.getInt("height", 512), width = a.getInt("width", 512);
        int batch = a.getInt("batch", 2), context = a.getInt("context", 77);
        if (height <= 0 || width <= 0 || height % BuiltinConfigs.VAE_SCALE != 0 || width % BuiltinConfigs.VAE_SCALE != 0) {
            throw new Args.UsageException("plan: --height and --width are image pixels, positive multiples of "
                    + BuiltinConfigs.VAE_SCALE + "; got " + height + "x" + width);
        }
        if (batch <= 0 || context <= 0) {
            throw new Args.UsageException("plan: --batch and --context must be positive");
        }
        String dtype = a.get("dtype", "fp16");
        int elementBytes = switch (dtype) {
            case "fp16", "bf16" -> 2;
            case "fp32" -> 4;
            default -> throw new Args.UsageException("plan: --dtype must be fp16, bf16 or fp32; got '" + dtype + "'");
        };
        int lh = height / BuiltinConfigs.VAE_SCALE, lw = width / BuiltinConfigs.VAE_SCALE;
        Graph graph = Fusion.fuse(new UNet2DConditionModel(cfg, source).graph(batch, lh, lw, context));
        String keep = a.get("keep", "out");
        Set<String> kept = switch (keep) {
            case "all" -> graph.outputs().keySet();
            case "out" -> Set.of("out");
            default -> throw new Args.UsageException("plan: --keep must be 'out' (a sampling step) or 'all'"
                    + " (every named intermediate, as validate keeps them); got '" + keep + "'");
        };

        List<MemoryPlan> plans = MemoryPlanner.planEach(graph, elementBytes, kept, MemoryPlanner.Options.defaults());
        MemoryPlan best = plans.stream().min(Comparator.comparingLong(MemoryPlan::arenaBytes)).orElseThrow();
        best.verify();

        out.printf(Locale.ROOT, "plan %s: batch %d, %dx%d image (latent %dx%d), context %d, %s, %d ops, keeping %s%n",
                configName, batch, height, width, lh, lw, context, dtype, graph.ops().size(),
                keep.equals("all") ? "every named output" : "out");
        out.printf(Locale.ROOT, "%-28s %14s %14s%n", "strategy", "arena MiB", "/ lower bound");
        for (MemoryPlan p : plans) {
            out.printf(Locale.ROOT, "%-28s %14.2f %14.4f%n", p.strategy(), mib(p.arenaBytes()), p.ratioToLowerBound());
        }
        out.printf(Locale.ROOT, "naive        %12.2f MiB  (%d activations, one allocation each)%n",
                mib(best.naiveBytes()), best.activations().size());
        out.printf(Locale.ROOT, "lower bound  %12.2f MiB  (most bytes live at one op)%n", mib(best.lowerBoundBytes()));
        out.printf(Locale.ROOT, "arena        %12.2f MiB  (%s): %.4f x lower bound, %.4f x naive%n",
                mib(best.arenaBytes()), best.strategy(), best.ratioToLowerBound(), best.ratioToNaive());
        out.println("largest tensors:");
        out.printf(Locale.ROOT, "  %-64s %-22s %10s %11s %14s%n", "name", "shape", "MiB", "ops", "offset");
        for (MemoryPlan.Activation t : best.largest(10)) {
            out.printf(Locale.ROOT, "  %-64s %-22s %10.2f %5d..%-5d %14d%n", t.name(), t.shape(), mib(t.bytes()),
                    t.firstOp(), t.lastOp(), t.offset());
        }
        String json = a.get("json", null);
        if (json != null) {
            BenchReport.write(Path.of(json), best.toJson());
            out.println("wrote " + json);
        }
        return 0;
    }

    private static double mib(long bytes) {
        return bytes / 1048576.0;
    }
}
