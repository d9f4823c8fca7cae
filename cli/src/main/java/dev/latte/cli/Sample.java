package dev.latte.cli;

import dev.latte.core.Backend;
import dev.latte.core.Shape;
import dev.latte.lora.Lora;
import dev.latte.model.DeepCacheRunner;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.sampling.DdimScheduler;
import dev.latte.sampling.Gaussian;
import dev.latte.sampling.GuidedUNet;
import dev.latte.sampling.LatentPreview;
import dev.latte.sampling.LcmScheduler;
import dev.latte.sampling.NoiseSource;
import dev.latte.sampling.Sampler;
import dev.latte.sampling.SamplingInputs;
import dev.latte.sampling.Scheduler;
import dev.latte.sampling.SchedulerConfig;
import dev.latte.weights.SafeTensorsWriter;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * {@code latte sample}: seeded (or given) latents, the UNet with classifier-free guidance, DDIM or
 * LCM. Writes OUT.safetensors — {@code latents}, and with {@code --trace} also {@code x_T},
 * {@code timesteps}, every {@code noise.i} drawn and every step's {@code x.i}/{@code denoised.i}
 * (the scheduler goldens' layout, so a trace replays through --init-latents and --noise) — and
 * OUT.png, a preview of the latent channels.
 */
final class Sample {
    static final Set<String> OPTIONS = Set.of("model", "context", "scheduler", "steps", "guidance", "eta", "spacing",
            "prediction", "original-steps", "lora", "lora-scale", "seed", "init-latents", "noise", "height", "width",
            "backend", "dtype", "threads", "out", "deepcache-interval", "deepcache-branch");
    static final Set<String> FLAGS = Set.of("trace");

    private Sample() {
    }

    static int run(Args a, PrintStream out, PrintStream err) {
        String outBase = a.required("out").replaceFirst("\\.(safetensors|png)$", "");
        Path st = a.path("out", outBase + ".safetensors"), png = a.path("out", outBase + ".png");
        var inputs = a.inputs("out");
        inputs.checkFile(st, "sample: --out");
        inputs.checkFile(png, "sample: --out");
        Scheduler scheduler = scheduler(a);
        double guidance = a.getDouble("guidance", scheduler instanceof LcmScheduler ? 1.0 : 7.5);
        long seed = seed(a);
        try (Backend backend = Backends.open(a, "fp32"); UNetModel model = UNetModel.load(Path.of(a.required("model")))) {
            int channels = model.config().inChannels();
            if (model.config().outChannels() != channels) {
                throw new IllegalArgumentException(model.dir() + ": in_channels " + channels + " != out_channels "
                        + model.config().outChannels() + "; sampling needs a UNet that predicts its input's shape");
            }
            var ctx = SamplingInputs.context(Path.of(a.required("context")), model.unet().contextDim(), guidance > 1);
            Gaussian gaussian = new Gaussian(seed);
            SamplingInputs.Latents init = initLatents(a, model, ctx.batch(), gaussian);
            Shape shape = Shape.of(init.batch(), init.channels(), init.height(), init.width());
            NoiseSource noise = noise(a, scheduler, shape, gaussian, err);
            int[] deepCache = deepCache(a, model);
            try (UNetRunner runner = new UNetRunner(model, backend, loraWeights(a, model, err));
                 DeepCacheRunner cache = deepCache == null ? null : new DeepCacheRunner(deepCache[1])) {
                var unet = new GuidedUNet(runner, ctx, guidance, init.height(), init.width());
                if (cache != null) {
                    unet.withDeepCache(cache, deepCache[0]);
                }
                var trace = a.flag("trace") ? new Trace(noise) : null;
                Sampler.Listener bar = ProgressBar.forTerminal(err, scheduler.name(),
                        cache == null ? null : i -> unet.fullSteps().get(i));
                long t0 = System.nanoTime();
                float[] result = Sampler.run(scheduler, unet, init.values(), trace != null ? trace : noise,
                        (i, n, t, x, d) -> {
                            bar.onStep(i, n, t, x, d);
                            if (trace != null) {
                                trace.steps.put("x." + i, x);
                                trace.steps.put("denoised." + i, d);
                            }
                        });
                double seconds = (System.nanoTime() - t0) / 1e9;
                latentsFile(result, shape, init.values(), scheduler, trace, unet, metadata(a, scheduler, guidance,
                        seed, unet)).write(st);
                LatentPreview.write(result, init.batch(), channels, init.height(), init.width(), png);
                int[] ts = scheduler.timesteps();
                out.printf("%s, %d steps (t %d→%d), guidance %s%s, seed %d: %d UNet forwards (%d latents) in %.2f s"
                                + " (%.2f steps/s) on %s%n", scheduler.name(), ts.length, ts[0], ts[ts.length - 1],
                        guidance, unet.guided() ? "" : " (off)", seed, unet.forwards(), unet.evaluations(), seconds,
                        ts.length / seconds, backend.name());
                if (cache != null) {
                    long full = unet.fullSteps().stream().filter(f -> f).count();
                    long macs = unet.stepMacs().stream().mapToLong(Long::longValue).sum();
                    long uncached = ts.length * cache.stepMacs(runner, dims(unet, init))[0];
                    out.printf("DeepCache interval %d, branch %d: %d full + %d partial steps, UNet %.3f GMACs (%.1f%% of"
                                    + " %.3f uncached)%n", deepCache[0], deepCache[1], full, ts.length - full, macs / 1e9,
                            100.0 * macs / uncached, uncached / 1e9);
                }
                out.println("wrote " + st + (trace != null ? " (with every step)" : "") + " and " + png);
                return 0;
            }
        }
    }

    private static UNetRunner.Dims dims(GuidedUNet unet, SamplingInputs.Latents init) {
        return new UNetRunner.Dims(unet.guided() ? 2 * init.batch() : init.batch(), init.height(), init.width(),
                unet.contextTokens());
    }

    /** {interval, branch} from --deepcache-interval/--deepcache-branch, or null without them. */
    static int[] deepCache(Args a, UNetModel model) {
        String command = "sample";
        if (a.get("deepcache-interval", null) == null) {
            if (a.get("deepcache-branch", null) != null) {
                throw new Args.UsageException(command + ": --deepcache-branch needs --deepcache-interval");
            }
            return null;
        }
        int interval = a.getInt("deepcache-interval", 1);
        if (interval < 1) {
            throw new Args.UsageException(command + ": --deepcache-interval must be at least 1 (1: every step full),"
                    + " got " + interval);
        }
        int branch = a.getInt("deepcache-branch", 0);
        int branches = model.unet().deepCacheBranches();
        if (branch < 0 || branch >= branches) {
            throw new Args.UsageException(command + ": --deepcache-branch " + branch + " is out of range for "
                    + model.dir() + ": " + model.config().levels() + " down blocks, so branches 0.." + (branches - 1));
        }
        return new int[] {interval, branch};
    }

    static Scheduler scheduler(Args a) {
        String name = a.get("scheduler", "ddim");
        SchedulerConfig cfg = SchedulerConfig.SD15
                .withTimestepSpacing(SchedulerConfig.TimestepSpacing.parse(a.get("spacing", "leading")))
                .withPredictionType(SchedulerConfig.PredictionType.parse(a.get("prediction", "epsilon")));
        return switch (name) {
            case "ddim" -> {
                if (a.get("original-steps", null) != null) {
                    throw new Args.UsageException("sample: --original-steps is for --scheduler lcm");
                }
                double eta = a.getDouble("eta", 0);
                if (eta < 0) {
                    throw new Args.UsageException("sample: --eta must be >= 0, got " + eta);
                }
                yield new DdimScheduler(cfg, a.getInt("steps", 50, 1, 1000), eta);
            }
            case "lcm" -> {
                if (a.get("eta", null) != null || a.get("spacing", null) != null) {
                    throw new Args.UsageException("sample: --eta and --spacing are for --scheduler ddim");
                }
                yield new LcmScheduler(cfg.withOriginalInferenceSteps(a.getInt("original-steps", 50, 1, 1000)),
                        a.getInt("steps", 4, 1, 1000));
            }
            default -> throw new Args.UsageException("sample: unknown scheduler '" + name + "' (known: ddim, lcm)");
        };
    }

    /** From --init-latents, or the first draw of the seeded stream at the config's sample_size. */
    private static SamplingInputs.Latents initLatents(Args a, UNetModel model, int batch, Gaussian gaussian) {
        int channels = model.config().inChannels();
        String file = a.get("init-latents", null);
        if (file != null) {
            var l = SamplingInputs.latents(Path.of(file), batch, channels);
            if (a.getInt("height", l.height()) != l.height() || a.getInt("width", l.width()) != l.width()) {
                throw new Args.UsageException("sample: --height/--width disagree with " + file + "'s latents ["
                        + l.height() + "x" + l.width() + "]");
            }
            return l;
        }
        int side = model.config().sampleSize() == null ? 64 : model.config().sampleSize();
        int h = a.latentSide("height", side), w = a.latentSide("width", side);
        int step = 1 << (model.config().levels() - 1); // every down block but the last halves H and W
        if (h % step != 0 || w % step != 0) {
            throw new Args.UsageException("sample: --height and --width (latent pixels) must be multiples of " + step
                    + " for this model's " + model.config().levels() + " levels, got " + h + "x" + w);
        }
        return new SamplingInputs.Latents(gaussian.next(batch * channels * h * w), batch, channels, h, w);
    }

    private static NoiseSource noise(Args a, Scheduler s, Shape shape, Gaussian gaussian, PrintStream err) {
        String file = a.get("noise", null);
        if (s.noiseDraws() == 0) {
            if (file != null) {
                err.println("latte: warning: --noise " + file + " unused: " + s.name() + " with these settings draws"
                        + " no noise");
            }
            return NoiseSource.NONE;
        }
        return file == null ? gaussian : SamplingInputs.noise(Path.of(file), shape, s.noiseDraws());
    }

    /** The LoRA's targets, merged, to upload in place of the file's weights; none without --lora. */
    private static Map<String, float[]> loraWeights(Args a, UNetModel model, PrintStream err) {
        String file = a.get("lora", null);
        if (file == null) {
            if (a.get("lora-scale", null) != null) {
                throw new Args.UsageException("sample: --lora-scale needs --lora");
            }
            return Map.of();
        }
        Lora lora = Lora.load(Path.of(file), model.weights());
        LoraMerge.report(lora, err);
        return lora.mergedWeights(model.weights(), a.getDouble("lora-scale", 1.0));
    }

    /** Records the noise drawn and every step, for --trace. */
    private static final class Trace implements NoiseSource {
        final NoiseSource source;
        final List<float[]> draws = new ArrayList<>();
        final Map<String, float[]> steps = new LinkedHashMap<>();

        Trace(NoiseSource source) {
            this.source = source;
        }

        @Override
        public float[] next(int n) {
            float[] z = source.next(n);
            draws.add(z);
            return z;
        }
    }

    private static SafeTensorsWriter latentsFile(float[] result, Shape shape, float[] init, Scheduler s, Trace trace,
                                                 GuidedUNet unet, Map<String, String> metadata) {
        long[] dims = Arrays.stream(shape.dims()).asLongStream().toArray();
        var file = new SafeTensorsWriter().addF32("latents", dims, result);
        metadata.forEach(file::metadata);
        if (trace != null) {
            int[] ts = s.timesteps();
            file.addF32("x_T", dims, init)
                    .addI64("timesteps", new long[] {ts.length}, Arrays.stream(ts).asLongStream().toArray());
            for (int i = 0; i < trace.draws.size(); i++) {
                file.addF32("noise." + i, dims, trace.draws.get(i));
            }
            trace.steps.forEach((name, v) -> file.addF32(name, dims, v));
            // as DeepCache's goldens: 1 where the whole UNet ran, and the MACs each step's UNet call executed
            file.addI64("full_steps", new long[] {ts.length}, unet.fullSteps().stream().mapToLong(f -> f ? 1 : 0)
                    .toArray());
            file.addI64("step_macs", new long[] {ts.length}, unet.stepMacs().stream().mapToLong(Long::longValue)
                    .toArray());
        }
        return file;
    }

    private static Map<String, String> metadata(Args a, Scheduler s, double guidance, long seed, GuidedUNet unet) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("scheduler", s.name());
        m.put("steps", Integer.toString(s.timesteps().length));
        m.put("guidance", Double.toString(guidance));
        m.put("seed", Long.toString(seed));
        m.put("unet_forwards", Long.toString(unet.forwards()));
        m.put("full_steps", unet.fullSteps().stream().map(f -> f ? "1" : "0").collect(Collectors.joining(",")));
        for (String k : new String[] {"model", "context", "eta", "spacing", "prediction", "original-steps", "lora",
                "lora-scale", "init-latents", "noise", "deepcache-interval", "deepcache-branch"}) {
            String v = a.get(k, null);
            if (v != null) {
                m.put(k, v);
            }
        }
        return m;
    }

    private static long seed(Args a) {
        String v = a.get("seed", "0");
        try {
            return Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw new Args.UsageException("sample: --seed needs an integer, got '" + v + "'");
        }
    }
}
