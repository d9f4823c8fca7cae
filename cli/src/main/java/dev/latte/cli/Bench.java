package dev.latte.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.latte.bench.BenchReport;
import dev.latte.core.Backend;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.Set;

/** {@code latte bench unet}: wall time of whole UNet forwards, written as JSON with the machine. */
final class Bench {
    private Bench() {
    }

    static int run(List<String> args, PrintStream out, PrintStream err) {
        if (!args.isEmpty() && args.getFirst().equals("sampling")) {
            return SamplingBench.run(args.subList(1, args.size()), out, err);
        }
        if (!args.isEmpty() && args.getFirst().equals("kernels")) {
            return KernelsBench.run(new Args("bench kernels", args.subList(1, args.size()), KernelsBench.OPTIONS,
                    KernelsBench.FLAGS), out, err);
        }
        if (args.isEmpty() || !args.getFirst().equals("unet")) {
            throw new Args.UsageException("bench: expected 'bench unet', 'bench kernels' or 'bench sampling'");
        }
        if (args.contains("--config") || args.contains("--weights")) {
            return UnetBench.run(new Args("bench unet", args.subList(1, args.size()), UnetBench.OPTIONS,
                    UnetBench.FLAGS), out, err);
        }
        Args a = new Args("bench unet", args.subList(1, args.size()), Set.of("model", "batch", "height", "width",
                "context", "warmup", "iters", "backend", "threads", "json"));
        a.outputFile("json");
        int warmup = a.getInt("warmup", 3), iters = a.getInt("iters", 10);
        if (warmup < 0 || iters < 1) {
            throw new Args.UsageException("bench unet: --warmup must be >= 0 and --iters >= 1");
        }
        try (Backend backend = Backends.open(a, "fp32"); UNetModel model = UNetModel.load(Path.of(a.required("model")));
             UNetRunner runner = new UNetRunner(model, backend)) {
            int side = model.config().sampleSize() == null ? 64 : model.config().sampleSize();
            var d = new UNetRunner.Dims(a.batch(), a.latentSide("height", side), a.latentSide("width", side),
                    a.context());
            Random rnd = new Random(0);
            float[] sample = gaussian(rnd, (long) d.batch() * model.config().inChannels() * d.height() * d.width());
            float[] context = gaussian(rnd, (long) d.batch() * d.contextLength() * model.unet().contextDim());
            float[] t = {500};
            double[] ms = new double[iters];
            for (int i = -warmup; i < iters; i++) {
                long t0 = System.nanoTime();
                runner.forward(d, sample, t, context, Set.of(UNetRunner.OUT));
                double elapsed = (System.nanoTime() - t0) / 1e6;
                if (i >= 0) {
                    ms[i] = elapsed;
                }
                err.printf("latte: %s %d/%d: %.1f ms%n", i < 0 ? "warm-up" : "run", i < 0 ? i + warmup + 1 : i + 1,
                        i < 0 ? warmup : iters, elapsed);
            }
            double[] sorted = ms.clone();
            Arrays.sort(sorted);
            double median = iters % 2 == 1 ? sorted[iters / 2] : (sorted[iters / 2 - 1] + sorted[iters / 2]) / 2;
            out.printf("unet forward on %s, batch %d, %dx%d latent, context %d: median %.2f ms (min %.2f, max %.2f)"
                    + " over %d runs after %d warm-up%n", backend.name(), d.batch(), d.height(), d.width(),
                    d.contextLength(), median, sorted[0], sorted[iters - 1], iters, warmup);
            String json = a.get("json", null);
            if (json != null) {
                write(Path.of(json), model, backend, d, warmup, ms, median);
                out.println("wrote " + json);
            }
            return 0;
        }
    }

    private static float[] gaussian(Random rnd, long n) {
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }

    private static void write(Path path, UNetModel model, Backend backend, UNetRunner.Dims d, int warmup,
                              double[] ms, double median) {
        ObjectNode root = BenchReport.JSON.createObjectNode();
        root.put("benchmark", "unet_forward");
        root.put("model", model.dir().toString());
        root.put("backend", backend.name());
        root.setAll(provenance());
        ObjectNode shape = root.putObject("input");
        shape.put("batch", d.batch());
        shape.put("height", d.height());
        shape.put("width", d.width());
        shape.put("context_length", d.contextLength());
        root.put("warmup_runs", warmup);
        root.put("median_ms", median);
        ArrayNode raw = root.putArray("raw_ms");
        for (double v : ms) {
            raw.add(v);
        }
        BenchReport.write(path, root);
    }

    /** date, commit, dirty worktree and the machine, as every bench JSON starts. */
    static ObjectNode provenance() {
        ObjectNode root = BenchReport.JSON.createObjectNode();
        root.put("date", Instant.now().toString());
        root.put("commit", git("rev-parse", "HEAD"));
        root.put("worktree_dirty", !git("status", "--porcelain", "--untracked-files=no").isEmpty());
        ObjectNode machine = root.putObject("machine");
        machine.put("cpu", cpuModel());
        machine.put("available_processors", Runtime.getRuntime().availableProcessors());
        machine.put("os", System.getProperty("os.name") + " " + System.getProperty("os.version") + " "
                + System.getProperty("os.arch"));
        machine.put("jdk", System.getProperty("java.vm.name") + " " + System.getProperty("java.runtime.version"));
        machine.put("max_heap_bytes", Runtime.getRuntime().maxMemory());
        return root;
    }

    static String cpuModel() {
        try {
            return Files.readAllLines(Path.of("/proc/cpuinfo")).stream().filter(l -> l.startsWith("model name"))
                    .map(l -> l.substring(l.indexOf(':') + 1).trim()).findFirst().orElse("unknown");
        } catch (IOException e) {
            return "unknown";
        }
    }

    static String git(String... args) {
        try {
            String[] cmd = new String[args.length + 1];
            cmd[0] = "git";
            System.arraycopy(args, 0, cmd, 1, args.length);
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            String s = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
            return p.waitFor() == 0 ? s : "unknown";
        } catch (IOException e) {
            return "unknown";
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "unknown";
        }
    }
}
