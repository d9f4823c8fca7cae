package dev.latte.cli;

import dev.latte.core.Backend;
import dev.latte.core.Shape;
import dev.latte.lora.Lora;
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
            "backend", "threads", "out");
    static final Set<String> FLAGS = Set.of("trace");

    private Sample() {
    }

    static int run(Args a, PrintStream out, PrintStream err) {
        String outBase = a.required("out").replaceFirst("\\.safetensors$", "");
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
            try (UNetRunner runner = new UNetRunner(model, backend, loraWeights(a, model, err))) {
                var unet = new GuidedUNet(runner, ctx, guidance, init.height(), init.width());
                var trace = a.flag("trace") ? new Trace(noise) : null;
                Sampler.Listener bar = ProgressBar.forTerminal(err, scheduler.name());
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
                Path st = Path.of(outBase + ".safetensors"), png = Path.of(outBase + ".png");
                createParent(st);
                latentsFile(result, shape, init.values(), scheduler, trace, metadata(a, scheduler, guidance, seed,
                        unet)).write(st);
                LatentPreview.write(result, init.batch(), channels, init.height(), init.width(), png);
                int[] ts = scheduler.timesteps();
                out.printf("%s, %d steps (t %d→%d), guidance %s%s, seed %d: %d UNet forwards (%d latents) in %.2f s"
                                + " (%.2f steps/s) on %s%n", scheduler.name(), ts.length, ts[0], ts[ts.length - 1],
                        guidance, unet.guided() ? "" : " (off)", seed, unet.forwards(), unet.evaluations(), seconds,
                        ts.length / seconds, backend.name());
                out.println("wrote " + st + (trace != null ? " (with every step)" : "") + " and " + png);
                return 0;
            }
        }
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
                yield new DdimScheduler(cfg, a.getInt("steps", 50), a.getDouble("eta", 0));
            }
            case "lcm" -> {
                if (a.get("eta", null) != null || a.get("spacing", null) != null) {
                    throw new Args.UsageException("sample: --eta and --spacing are for --scheduler ddim");
                }
                yield new LcmScheduler(cfg.withOriginalInferenceSteps(a.getInt("original-steps", 50)),
                        a.getInt("steps", 4));
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
        int h = a.getInt("height", side), w = a.getInt("width", side);
        if (h < 1 || w < 1) {
            throw new Args.UsageException("sample: --height and --width (latent pixels) must be positive");
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
                                                 Map<String, String> metadata) {
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
        for (String k : new String[] {"model", "context", "eta", "spacing", "prediction", "original-steps", "lora",
                "lora-scale", "init-latents", "noise"}) {
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

    static void createParent(Path file) {
        Path parent = file.toAbsolutePath().getParent();
        try {
            Files.createDirectories(parent);
        } catch (IOException e) {
            throw new IllegalArgumentException(parent + ": cannot create: " + e.getMessage());
        }
    }
}
