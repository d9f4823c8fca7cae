package dev.latte.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.latte.bench.BenchReport;
import dev.latte.core.Backend;
import dev.latte.model.DeepCacheRunner;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.sampling.DdimScheduler;
import dev.latte.sampling.Gaussian;
import dev.latte.sampling.GuidedUNet;
import dev.latte.sampling.LcmScheduler;
import dev.latte.sampling.Sampler;
import dev.latte.sampling.SamplingInputs;
import dev.latte.sampling.Scheduler;
import dev.latte.sampling.SchedulerConfig;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * {@code latte bench sampling}: whole sampling runs — DDIM-20 and DDIM-50 with guidance 7.5,
 * LCM-4 without — timed end to end, with the number of UNet evaluations each costs.
 */
final class SamplingBench {
    private static String loadAverage() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).trim();
        } catch (IOException e) {
            return "unknown";
        }
    }

    /** One run kind; {@code interval} 0: no DeepCache. */
    private record Config(String name, Scheduler scheduler, double guidance, int interval) {
    }

    private SamplingBench() {
    }

    static int run(List<String> args, PrintStream out, PrintStream err) {
        Args a = new Args("bench sampling", args, Set.of("model", "context", "repeat", "seed", "backend", "threads",
                "json", "deepcache-interval", "deepcache-branch"));
        a.outputFile("json");
        int repeat = a.getInt("repeat", 3);
        if (repeat < 1) {
            throw new Args.UsageException("bench sampling: --repeat must be >= 1");
        }
        SchedulerConfig sd = SchedulerConfig.SD15;
        int interval = a.getInt("deepcache-interval", 3);
        if (interval < 0) {
            throw new Args.UsageException("bench sampling: --deepcache-interval must be >= 0 (0: no DeepCache runs)");
        }
        List<Config> configs = new ArrayList<>();
        for (Config c : List.of(new Config("ddim-20", new DdimScheduler(sd, 20, 0), 7.5, 0),
                new Config("ddim-50", new DdimScheduler(sd, 50, 0), 7.5, 0),
                new Config("lcm-4", new LcmScheduler(sd, 4), 1.0, 0))) {
            configs.add(c);
            if (interval > 0) {
                configs.add(new Config(c.name() + "-deepcache", c.scheduler(), c.guidance(), interval));
            }
        }
        int branch = a.getInt("deepcache-branch", 0);
        try (Backend backend = Backends.open(a, "fp32"); UNetModel model = UNetModel.load(Path.of(a.required("model")));
             UNetRunner runner = new UNetRunner(model, backend);
             DeepCacheRunner cache = new DeepCacheRunner(Math.max(branch, 0))) {
            if (branch < 0 || branch >= model.unet().deepCacheBranches()) {
                throw new Args.UsageException("bench sampling: --deepcache-branch " + branch + " is out of range for "
                        + model.dir() + ": " + model.config().levels() + " down blocks, so branches 0.."
                        + (model.unet().deepCacheBranches() - 1));
            }
            var ctx = SamplingInputs.context(Path.of(a.required("context")), model.unet().contextDim(), true);
            int side = model.config().sampleSize() == null ? 64 : model.config().sampleSize();
            int n = ctx.batch() * model.config().inChannels() * side * side;
            long seed = a.getInt("seed", 42);
            ObjectNode root = BenchReport.JSON.createObjectNode();
            root.put("benchmark", "sampling");
            root.put("model", model.dir().toString());
            root.put("backend", backend.name());
            root.setAll(Bench.provenance());
            // other work on the machine skews wall times
            ((ObjectNode) root.get("machine")).put("loadavg_at_start", loadAverage());
            ObjectNode input = root.putObject("input");
            input.put("batch", ctx.batch());
            input.put("latent_height", side);
            input.put("latent_width", side);
            input.put("context_length", ctx.tokens());
            input.put("seed", seed);
            root.put("note", "wall time of whole runs (UNet forwards + scheduler), after one warm-up run each;"
                    + " unet_macs: multiply-adds of the convs, linears and attention matmuls the UNet executed");
            ArrayNode runs = root.putArray("runs");
            for (Config c : configs) {
                double[] ms = new double[repeat];
                long forwards = 0, evaluations = 0, macs = 0, fullSteps = 0;
                for (int r = -1; r < repeat; r++) {
                    var unet = new GuidedUNet(runner, ctx, c.guidance(), side, side);
                    if (c.interval() > 0) {
                        unet.withDeepCache(cache, c.interval());
                    }
                    Gaussian g = new Gaussian(seed);
                    float[] init = g.next(n);
                    long t0 = System.nanoTime();
                    Sampler.run(c.scheduler(), unet, init, g, Sampler.Listener.NONE);
                    double elapsed = (System.nanoTime() - t0) / 1e6;
                    if (r >= 0) {
                        ms[r] = elapsed;
                    }
                    forwards = unet.forwards();
                    evaluations = unet.evaluations();
                    macs = unet.stepMacs().stream().mapToLong(Long::longValue).sum();
                    fullSteps = unet.fullSteps().stream().filter(f -> f).count();
                    err.printf("latte: %s %s: %.0f ms%n", c.name(), r < 0 ? "warm-up" : "run " + (r + 1), elapsed);
                }
                double[] sorted = ms.clone();
                Arrays.sort(sorted);
                double median = repeat % 2 == 1 ? sorted[repeat / 2] : (sorted[repeat / 2 - 1] + sorted[repeat / 2]) / 2;
                int steps = c.scheduler().timesteps().length;
                out.printf("%-18s guidance %-4s %3d UNet forwards (%3d latents, %3d full)  %8.3f GMACs  median %8.1f ms"
                                + "  %.1f ms/step%n", c.name(), c.guidance(), forwards, evaluations, fullSteps, macs / 1e9,
                        median, median / steps);
                ObjectNode run = runs.addObject();
                run.put("name", c.name());
                run.put("scheduler", c.scheduler().name());
                run.put("steps", steps);
                run.put("guidance", c.guidance());
                run.put("unet_forwards", forwards);
                run.put("unet_batch_per_forward", evaluations / forwards);
                run.put("unet_latent_evaluations", evaluations);
                run.put("unet_full_steps", fullSteps);
                run.put("unet_macs", macs);
                if (c.interval() > 0) {
                    ObjectNode dc = run.putObject("deepcache");
                    dc.put("interval", c.interval());
                    dc.put("branch", branch);
                } else {
                    run.putNull("deepcache");
                }
                run.put("median_ms", median);
                run.put("median_ms_per_step", median / steps);
                ArrayNode raw = run.putArray("raw_ms");
                Arrays.stream(ms).forEach(raw::add);
            }
            root.put("loadavg_at_end", loadAverage());
            String file = a.get("json", null);
            if (file != null) {
                BenchReport.write(Path.of(file), root);
                out.println("wrote " + file);
            }
            return 0;
        }
    }
}
