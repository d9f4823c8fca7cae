package dev.latte.cli;

import dev.latte.core.Backend;
import dev.latte.lora.Lora;
import dev.latte.pipeline.ImageFiles;
import dev.latte.pipeline.PipelineFolder;
import dev.latte.pipeline.StableDiffusion;
import dev.latte.sampling.DdimScheduler;
import dev.latte.sampling.Gaussian;
import dev.latte.sampling.LcmScheduler;
import dev.latte.sampling.Sampler;
import dev.latte.sampling.SamplingInputs;
import dev.latte.sampling.Scheduler;
import dev.latte.sampling.SchedulerConfig;
import dev.latte.weights.DType;
import dev.latte.weights.OutputGuard;
import dev.latte.weights.SafeTensorsWriter;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * {@code latte txt2img} and {@code latte img2img}: a diffusers pipeline folder from a prompt to an
 * 8-bit PNG (written atomically), with {@code --trace} a safetensors file beside it holding the
 * embeddings, every step's latents, the decoded sample and the image, named as the txt2img golden.
 */
final class Txt2Img {
    static final Set<String> OPTIONS = Set.of("model", "prompt", "negative-prompt", "steps", "guidance", "scheduler",
            "seed", "height", "width", "lora", "lora-scale", "backend", "dtype", "threads", "out", "init-latents", "eta",
            "image", "strength");
    static final Set<String> FLAGS = Set.of("trace", "vae-tiling");

    private Txt2Img() {
    }

    static int run(String command, Args a, PrintStream out, PrintStream err) {
        boolean img2img = command.equals("img2img");
        Path modelDir = Path.of(a.required("model"));
        String prompt = a.required("prompt");
        Path png = a.path("out", a.required("out"));
        if (!png.getFileName().toString().toLowerCase(java.util.Locale.ROOT).endsWith(".png")) {
            throw new Args.UsageException(command + ": --out must name a .png file, got '" + png + "'");
        }
        Path image = img2img ? Path.of(a.required("image")) : null;
        if (!img2img && (a.get("image", null) != null || a.get("strength", null) != null)) {
            throw new Args.UsageException("txt2img: --image and --strength are for img2img");
        }
        refuseInputs(command, a, png, modelDir);
        long seed = seed(a);
        try (PipelineFolder p = PipelineFolder.load(modelDir); Backend backend = Backends.open(a, "fp32")) {
            Scheduler scheduler = scheduler(command, a, p.scheduler());
            double guidance = a.getDouble("guidance", scheduler instanceof LcmScheduler ? 1.0 : 7.5);
            int scale = p.vaeScale();
            int side = p.unet().config().sampleSize() == null ? 64 * scale : p.unet().config().sampleSize() * scale;
            int height = a.getInt("height", side), width = a.getInt("width", side);
            StableDiffusion.InitImage init = null;
            if (img2img) {
                ImageFiles.Pixels px = ImageFiles.read(image);
                if (a.get("height", null) == null && a.get("width", null) == null) {
                    height = px.height();
                    width = px.width();
                }
                if (px.height() != height || px.width() != width || height % scale != 0 || width % scale != 0) {
                    throw new IllegalArgumentException(image + ": the image is " + px.width() + "x" + px.height()
                            + "; img2img needs " + (height % scale != 0 || width % scale != 0
                            ? "a width and height that are multiples of " + scale : width + "x" + height
                            + " (--width x --height)"));
                }
                init = new StableDiffusion.InitImage(px.values(), a.getDouble("strength", 0.8));
            }
            float[] initLatents = null;
            if (a.get("init-latents", null) != null) {
                if (img2img) {
                    throw new Args.UsageException("img2img: --init-latents is for txt2img (img2img starts from --image)");
                }
                // a txt2img trace (or the golden run) holds init_latents beside its final latents: replay the former
                Path file = Path.of(a.get("init-latents", null));
                boolean trace;
                try (var f = dev.latte.weights.SafeTensorsFile.open(file)) {
                    trace = f.contains("init_latents");
                }
                var l = SamplingInputs.latents(file, 1, p.vae().config().latentChannels(),
                        trace ? "init_latents" : "latents");
                if (a.get("height", null) == null && a.get("width", null) == null) {
                    height = l.height() * scale;
                    width = l.width() * scale;
                } else if (l.height() * scale != height || l.width() * scale != width) {
                    throw new Args.UsageException(command + ": --height/--width " + width + "x" + height + " disagree with "
                            + a.get("init-latents", null) + "'s latents (" + l.width() + "x" + l.height() + " latent pixels)");
                }
                initLatents = l.values();
            }
            Map<String, float[]> lora = Map.of();
            if (a.get("lora", null) != null) {
                Lora l = Lora.load(Path.of(a.get("lora", null)), p.unet().weights());
                LoraMerge.report(l, err);
                lora = l.mergedWeights(p.unet().weights(), a.getDouble("lora-scale", 1.0));
            } else if (a.get("lora-scale", null) != null) {
                throw new Args.UsageException(command + ": --lora-scale needs --lora");
            }
            var req = new StableDiffusion.Request(prompt, a.get("negative-prompt", ""), scheduler, guidance,
                    new Gaussian(seed), height, width, initLatents, lora, a.flag("vae-tiling"), init);
            Sampler.Listener bar = ProgressBar.forTerminal(err, scheduler.name());
            long t0 = System.nanoTime();
            long[] phaseStart = {t0};
            StringBuilder phases = new StringBuilder();
            String[] current = {null};
            StableDiffusion.Result r = StableDiffusion.run(p, backend, req, new StableDiffusion.Listener() {
                @Override
                public void phase(String name) {
                    long now = System.nanoTime();
                    if (current[0] != null) {
                        phases.append(String.format(java.util.Locale.ROOT, "%s %.2f s, ", current[0],
                                (now - phaseStart[0]) / 1e9));
                    }
                    current[0] = name;
                    phaseStart[0] = now;
                }

                @Override
                public void onStep(int i, int n, int t, float[] x, float[] d) {
                    bar.onStep(i, n, t, x, d);
                }
            });
            long end = System.nanoTime();
            phases.append(String.format(java.util.Locale.ROOT, "%s %.2f s", current[0], (end - phaseStart[0]) / 1e9));
            for (String w : r.warnings()) {
                err.println("latte: warning: " + w);
            }
            ImageFiles.writePng(r.imageUint8(), r.height(), r.width(), png);
            out.printf(java.util.Locale.ROOT, "%s: %dx%d, %s %d steps, guidance %s, seed %d%s, on %s in %.2f s (%s)%n",
                    command, r.width(), r.height(), scheduler.name(), r.timesteps().length, guidance, seed,
                    r.tiled() ? ", tiled VAE decode" : "", backend.name(), (end - t0) / 1e9, phases);
            out.println("wrote " + png);
            if (a.flag("trace")) {
                Path trace = traceFile(png);
                writeTrace(r, p, trace);
                out.println("wrote " + trace);
            }
            return 0;
        }
    }

    /** OUT.png → OUT.safetensors beside it. */
    static Path traceFile(Path png) {
        String name = png.getFileName().toString();
        return png.resolveSibling(name.substring(0, name.length() - 4) + ".safetensors");
    }

    /**
     * Never replace an input: the PNG and its trace are checked (real paths and file identity)
     * against every option's file and every file of the pipeline's components, and may not land
     * anywhere inside the model folder, reached by its own path or through a link.
     */
    private static void refuseInputs(String command, Args a, Path png, Path modelDir) {
        OutputGuard guard = a.inputs("out");
        List<Path> roots = new ArrayList<>(List.of(modelDir.toAbsolutePath().normalize()));
        if (Files.isDirectory(modelDir)) {
            try (Stream<Path> s = Files.list(modelDir)) {
                for (Path c : s.toList()) {
                    guard.input(c); // a component folder: its files are inputs
                    if (Files.isDirectory(c)) {
                        roots.add(c.toRealPath());
                    }
                }
                roots.add(modelDir.toRealPath());
            } catch (IOException e) {
                // a model folder that cannot be listed cannot be loaded either; PipelineFolder says why
            }
        }
        List<Path> outs = new ArrayList<>(List.of(png));
        if (a.flag("trace")) {
            outs.add(traceFile(png));
        }
        for (Path o : outs) {
            String option = command + (o == png ? ": --out" : ": --trace (beside --out)");
            for (Path p : List.of(o.toAbsolutePath().normalize(), planned(o))) {
                for (Path root : roots) {
                    if (p.startsWith(root)) {
                        throw new Args.UsageException(option + " " + o + " is inside the model folder " + modelDir
                                + "; refusing to write among the model's files");
                    }
                }
            }
            guard.checkFile(o, option);
        }
    }

    /** {@code p} with its nearest existing ancestor's links resolved: where a write to it would land. */
    private static Path planned(Path p) {
        Path abs = p.toAbsolutePath().normalize();
        Path existing = abs;
        while (existing != null && !Files.exists(existing)) {
            existing = existing.getParent();
        }
        if (existing == null) {
            return abs;
        }
        try {
            return existing.toRealPath().resolve(existing.relativize(abs));
        } catch (IOException e) {
            return abs;
        }
    }

    static Scheduler scheduler(String command, Args a, SchedulerConfig cfg) {
        String name = a.get("scheduler", "ddim");
        return switch (name) {
            case "ddim" -> new DdimScheduler(cfg, a.getInt("steps", 50), a.getDouble("eta", 0));
            case "lcm" -> {
                if (a.get("eta", null) != null) {
                    throw new Args.UsageException(command + ": --eta is for --scheduler ddim");
                }
                if (command.equals("img2img")) {
                    throw new Args.UsageException("img2img: --scheduler lcm is not supported yet (LCM's img2img schedule "
                            + "differs); use ddim");
                }
                yield new LcmScheduler(cfg, a.getInt("steps", 4));
            }
            default -> throw new Args.UsageException(command + ": unknown scheduler '" + name + "' (known: ddim, lcm)");
        };
    }

    private static long seed(Args a) {
        String v = a.get("seed", "0");
        try {
            return Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw new Args.UsageException("--seed needs an integer, got '" + v + "'");
        }
    }

    private static void writeTrace(StableDiffusion.Result r, PipelineFolder p, Path file) {
        int len = p.tokenizer().maxLength(), dim = p.textEncoder().config().hiddenSize();
        int lc = p.vae().config().latentChannels(), s = p.vaeScale();
        long[] lat = {1, lc, r.height() / s, r.width() / s};
        long[] img = {1, 3, r.height(), r.width()};
        var w = new SafeTensorsWriter();
        w.addI64("input_ids_cond", new long[] {1, len}, Arrays.stream(r.condIds()).asLongStream().toArray());
        if (r.uncondIds() != null) {
            w.addI64("input_ids_uncond", new long[] {1, len}, Arrays.stream(r.uncondIds()).asLongStream().toArray());
        }
        w.addI64("timesteps", new long[] {r.timesteps().length}, Arrays.stream(r.timesteps()).asLongStream().toArray());
        for (var e : StableDiffusion.traceTensors(r).entrySet()) {
            long[] shape = e.getKey().endsWith("_embeds") ? new long[] {1, len, dim}
                    : e.getKey().equals("sample") || e.getKey().equals("image") ? img : lat;
            w.addF32(e.getKey(), shape, e.getValue());
        }
        w.add("image_uint8", DType.U8, new long[] {1, r.height(), r.width(), 3},
                MemorySegment.ofArray(r.imageUint8().clone()));
        w.write(file);
    }
}
