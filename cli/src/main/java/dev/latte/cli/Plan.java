package dev.latte.cli;

import dev.latte.bench.BenchReport;
import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.graph.WeightFormat;
import dev.latte.model.DeepCacheRunner;
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
    static final Set<String> OPTIONS = Set.of("config", "height", "width", "batch", "context", "dtype", "keep", "deepcache-branch",
            "json");

    private Plan() {
    }

    static final Set<String> FLAGS = Set.of("pipeline", "vae-tiling");

    static int run(Args a, PrintStream out) {
        a.outputFile("json");
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
            source = (Files.isDirectory(p) ? p.resolve("config.json") : p).toString();
        }
        int height = a.imageSide("height", 512), width = a.imageSide("width", 512);
        int batch = a.batch(), context = a.context();
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
        UNet2DConditionModel unet = new UNet2DConditionModel(cfg, source);
        String dc = a.get("deepcache-branch", null);
        if (dc != null && a.get("keep", "out").equals("all")) {
            throw new Args.UsageException("plan: --deepcache-branch plans sampling steps, which keep 'out' only;"
                    + " drop --keep all");
        }
        if ("all".equals(dc)) {
            return deepCacheTable(unet, configName, batch, lh, lw, context, elementBytes, out);
        }
        int branch = dc == null ? -1 : deepCacheBranch(a, unet);
        Graph graph = Fusion.fuse(branch < 0 ? unet.graph(batch, lh, lw, context)
                : unet.fullStepGraph(batch, lh, lw, context, WeightFormat.CONFIG, branch));
        Set<String> external = branch < 0 ? Set.of() : Set.of(UNet2DConditionModel.CACHED_FEATURE);
        String keep = a.get("keep", "out");
        Set<String> kept = switch (keep) {
            case "all" -> graph.outputs().keySet();
            case "out" -> Set.of("out");
            default -> throw new Args.UsageException("plan: --keep must be 'out' (a sampling step) or 'all'"
                    + " (every named intermediate, as validate keeps them); got '" + keep + "'");
        };

        List<MemoryPlan> plans = MemoryPlanner.planEach(graph, elementBytes, kept, external,
                MemoryPlanner.Options.defaults());
        MemoryPlan best = plans.stream().min(Comparator.comparingLong(MemoryPlan::arenaBytes)).orElseThrow();
        best.verify();

        out.printf(Locale.ROOT, "plan %s: batch %d, %dx%d image (latent %dx%d), context %d, %s, %d ops, keeping %s%s%n",
                configName, batch, height, width, lh, lw, context, dtype, graph.ops().size(),
                keep.equals("all") ? "every named output" : "out",
                branch < 0 ? "" : "; DeepCache branch " + branch + ": the full step");
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
        if (branch >= 0) {
            printDeepCache(unet, graph, best, batch, lh, lw, context, elementBytes, branch, out);
        }
        String json = a.get("json", null);
        if (json != null) {
            BenchReport.write(Path.of(json), best.toJson());
            out.println("wrote " + json);
        }
        return 0;
    }

    private static int deepCacheBranch(Args a, UNet2DConditionModel unet) {
        int branch = a.getInt("deepcache-branch", 0);
        if (branch < 0 || branch >= unet.deepCacheBranches()) {
            throw new Args.UsageException("plan: --deepcache-branch " + branch + " is out of range: "
                    + unet.config().levels() + " down blocks, so branches 0.." + (unet.deepCacheBranches() - 1)
                    + " (or 'all')");
        }
        return branch;
    }

    /** The partial step's plan (the feature outside its arena too). */
    private static MemoryPlan partialPlan(Graph partial, int elementBytes, MemoryPlanner.Options o) {
        Set<String> ext = DeepCacheRunner.readsCache(partial) ? Set.of(UNet2DConditionModel.CACHED_FEATURE) : Set.of();
        return MemoryPlanner.plan(partial, elementBytes, Set.of("out"), ext, o);
    }

    private static void printDeepCache(UNet2DConditionModel unet, Graph full, MemoryPlan fullPlan, int batch, int lh,
                                       int lw, int context, int elementBytes, int branch, PrintStream out) {
        Graph partial = Fusion.fuse(unet.partialStepGraph(batch, lh, lw, context, WeightFormat.CONFIG, branch));
        MemoryPlan pp = partialPlan(partial, elementBytes, MemoryPlanner.Options.defaults());
        MemoryPlan.Activation f = fullPlan.external().getFirst();
        long fm = DeepCacheRunner.macs(full), pm = DeepCacheRunner.macs(partial);
        out.printf(Locale.ROOT, "cached feature %10.2f MiB  %s %s (written by full steps, read by partial steps;"
                + " outside both arenas)%n", mib(f.bytes()), f.name(), f.shape());
        out.printf(Locale.ROOT, "partial step  %11.2f MiB arena (%s), %d ops%n", mib(pp.arenaBytes()), pp.strategy(),
                partial.ops().size());
        out.printf(Locale.ROOT, "total         %11.2f MiB (full arena + partial arena + cached feature)%n",
                mib(fullPlan.arenaBytes() + pp.arenaBytes() + f.bytes()));
        out.printf(Locale.ROOT, "UNet MACs     full %,d, partial %,d: a partial step skips %.1f%%%n", fm, pm,
                100.0 * (fm - pm) / fm);
    }

    /** Every branch: the feature's bytes, the partial step's arena and MACs (arenas by greedy-by-size only). */
    private static int deepCacheTable(UNet2DConditionModel unet, String configName, int batch, int lh, int lw,
                                      int context, int elementBytes, PrintStream out) {
        var fast = MemoryPlanner.Options.defaults().with(MemoryPlanner.Strategy.GREEDY_BY_SIZE);
        Graph plain = Fusion.fuse(unet.graph(batch, lh, lw, context));
        long fullMacs = DeepCacheRunner.macs(plain);
        out.printf(Locale.ROOT, "DeepCache branches of %s: batch %d, latent %dx%d, context %d, %d-byte elements;"
                        + " full step %,d MACs, arena %.2f MiB (greedy by size)%n", configName, batch, lh, lw, context,
                elementBytes, fullMacs, mib(MemoryPlanner.plan(plain, elementBytes, Set.of("out"), fast).arenaBytes()));
        out.printf(Locale.ROOT, "%-7s %-6s %-6s %-26s %12s %14s %18s %9s%n", "branch", "block", "layer",
                "cached feature", "feature MiB", "partial arena", "partial MACs", "skipped");
        for (int b = 0; b < unet.deepCacheBranches(); b++) {
            Graph full = Fusion.fuse(unet.fullStepGraph(batch, lh, lw, context, WeightFormat.CONFIG, b));
            Graph partial = Fusion.fuse(unet.partialStepGraph(batch, lh, lw, context, WeightFormat.CONFIG, b));
            var feature = full.outputs().get(UNet2DConditionModel.CACHED_FEATURE).shape();
            long pm = DeepCacheRunner.macs(partial);
            out.printf(Locale.ROOT, "%-7d %-6d %-6d %-26s %12.2f %10.2f MiB %,18d %8.1f%%%n", b, b / 3, b % 3,
                    DeepCacheRunner.readsCache(partial) ? feature.toString() : "(none: nothing reused)",
                    mib(feature.numel() * (long) elementBytes), mib(partialPlan(partial, elementBytes, fast).arenaBytes()),
                    pm, 100.0 * (fullMacs - pm) / fullMacs);
        }
        return 0;
    }

    private static double mib(long bytes) {
        return bytes / 1048576.0;
    }
}
