package dev.latte.cli;

import dev.latte.core.Backend;
import dev.latte.core.Compare;
import dev.latte.cpu.CpuBackend;
import dev.latte.graph.GraphException;
import dev.latte.graph.NonFiniteException;
import dev.latte.model.GoldenCase;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.weights.WeightsException;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * {@code latte COMMAND [--option value]...}. Exit codes: 0 success, 1 a validation below its
 * threshold, 2 bad input or usage (one line on stderr, no stack trace).
 */
public final class Main {
    static final String USAGE = """
            usage: latte COMMAND [options]
              validate --model DIR --golden CASE.safetensors [--backend cpu] [--min-psnr DB] [--threads N]
                  run the UNet on a golden case's inputs; PSNR per stored tensor; exit 1 below --min-psnr (110)
              info --model DIR
                  the model's config, parameter count and weight bytes per dtype
              bench unet --model DIR [--batch 2] [--height H] [--width W] [--context 77] [--warmup 3]
                         [--iters 10] [--backend cpu] [--threads N] [--json FILE]
                  time UNet forwards on random inputs; median and raw times, optionally as JSON
              bench sampling --model DIR --context CTX.safetensors [--repeat 3] [--seed 42] [--json FILE]
                  time whole DDIM-20, DDIM-50 (guidance 7.5) and LCM-4 runs; UNet evaluations per run
              sample --model DIR --context CTX.safetensors --out OUT [--scheduler ddim|lcm] [--steps 50|4]
                     [--guidance 7.5|1] [--seed 0] [--eta 0] [--spacing leading|trailing|linspace]
                     [--prediction epsilon|v_prediction|sample] [--original-steps 50] [--lora FILE]
                     [--lora-scale 1] [--init-latents FILE] [--noise FILE] [--height H] [--width W]
                     [--trace] [--backend cpu] [--threads N]
                  denoise seeded latents; writes OUT.safetensors ('latents'; every step with --trace) and OUT.png
              lora-merge --model DIR --lora FILE --out DIR2 [--scale 1]
                  write DIR's model with the LoRA merged into its weights to DIR2
            """;

    private Main() {
    }

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    /** Runs one command; returns its exit code. */
    public static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length == 0 || args[0].equals("--help") || args[0].equals("-h") || args[0].equals("help")) {
            (args.length == 0 ? err : out).print(USAGE);
            return args.length == 0 ? 2 : 0;
        }
        List<String> rest = Arrays.asList(args).subList(1, args.length);
        try {
            return switch (args[0]) {
                case "validate" -> validate(new Args("validate", rest,
                        Set.of("model", "golden", "backend", "min-psnr", "threads")), out, err);
                case "info" -> Info.run(new Args("info", rest, Set.of("model")), out);
                case "bench" -> Bench.run(rest, out, err);
                case "sample" -> Sample.run(new Args("sample", rest, Sample.OPTIONS, Sample.FLAGS), out, err);
                case "lora-merge" -> LoraMerge.run(new Args("lora-merge", rest, LoraMerge.OPTIONS), out, err);
                default -> throw new Args.UsageException("unknown command '" + args[0] + "'\n" + USAGE);
            };
        } catch (Args.UsageException | WeightsException | GraphException | NonFiniteException
                 | IllegalArgumentException e) {
            err.println("latte: " + e.getMessage());
            return 2;
        } catch (OutOfMemoryError e) {
            err.println("latte: out of Java heap (" + e.getMessage() + "); raise it with LATTE_JAVA_OPTS=-Xmx...");
            return 2;
        }
    }

    static Backend backend(Args a) {
        String name = a.get("backend", "cpu");
        int threads = a.getInt("threads", Runtime.getRuntime().availableProcessors());
        if (threads < 1) {
            throw new Args.UsageException("--threads must be at least 1");
        }
        if (name.equals("cpu")) {
            return new CpuBackend(threads);
        }
        throw new Args.UsageException("unknown backend '" + name + "' (this build has: cpu)");
    }

    private static int validate(Args a, PrintStream out, PrintStream err) {
        Path modelDir = Path.of(a.required("model"));
        Path golden = Path.of(a.required("golden"));
        double minPsnr = a.getDouble("min-psnr", 110);
        try (Backend backend = backend(a); UNetModel model = UNetModel.load(modelDir);
             UNetRunner runner = new UNetRunner(model, backend)) {
            err.println("latte: running " + golden.getFileName() + " on " + backend.name() + "...");
            long t0 = System.nanoTime();
            List<GoldenCase.Row> rows = GoldenCase.validate(runner, golden);
            long ms = (System.nanoTime() - t0) / 1_000_000;
            out.printf("%-24s %-18s %10s %12s%n", "tensor", "shape", "PSNR dB", "max |err|");
            int below = 0;
            for (GoldenCase.Row r : rows) {
                Compare c = r.compare();
                boolean ok = c.psnr() >= minPsnr;
                below += ok ? 0 : 1;
                out.printf("%-24s %-18s %10.2f %12.3e%s%n", r.name(), r.shape(), c.psnr(), c.maxAbsError(),
                        ok ? "" : "  < " + minPsnr);
            }
            out.printf("%s: %d tensors, %s (%d ms on %s)%n", golden.getFileName(), rows.size(),
                    below == 0 ? "all >= " + minPsnr + " dB" : below + " below " + minPsnr + " dB", ms,
                    backend.name());
            return below == 0 ? 0 : 1;
        }
    }
}
