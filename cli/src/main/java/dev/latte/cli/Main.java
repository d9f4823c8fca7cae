package dev.latte.cli;

import dev.latte.core.Backend;
import dev.latte.core.Compare;
import dev.latte.core.Int8Mode;
import dev.latte.graph.GraphException;
import dev.latte.graph.NonFiniteException;
import dev.latte.model.Component;
import dev.latte.model.GoldenCase;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.weights.Text;
import dev.latte.weights.WeightsException;

import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * {@code latte COMMAND [--option value]...}. Exit codes: 0 success, 1 a validation below its
 * threshold, 2 bad input or usage (one line on stderr, no stack trace), 3 an internal error (a bug:
 * one line too, the stack trace with {@code LATTE_DEBUG=1}).
 */
public final class Main {
    static final String USAGE = """
            usage: latte COMMAND [options]
              validate --model DIR --golden CASE.safetensors [--backend cpu|cuda|ref] [--dtype fp32|fp16]
                       [--min-psnr DB] [--threads N]
                       [--int8-mode w8a16|w8a8]
                  run the UNet on a golden case's inputs; PSNR per stored tensor; exit 1 below --min-psnr
                  (default 110 on cpu, 100 on cuda fp32, 45 on cuda fp16)
              plan --config sd15|DIR [--height 512] [--width 512] [--batch 2] [--context 77] [--dtype fp16|fp32]
                     [--keep out|all] [--json FILE] [--deepcache-branch B|all]
                  plan one UNet step's activations into one arena (no weights needed); totals and largest tensors;
                  with a DeepCache branch also the partial step, the cached feature and MACs (all: every branch)
              plan --pipeline --config sd15|PIPELINE_DIR [--height 512] [--width 512] [--batch 2] [--dtype fp16|fp32]
                   [--vae-tiling]
                  each phase of a text-to-image run (text encoder, unet step, vae decode): weights, arena, peak;
                  --config TEXT_ENCODER_DIR|VAE_DIR plans that component alone
              info --model DIR
                  the model's config, parameter count and weight bytes per dtype
              bench unet --model DIR [--batch 2] [--height H] [--width W] [--context 77] [--warmup 3]
                         [--iters 10] [--backend cpu] [--threads N] [--json FILE]
                  time UNet forwards on random inputs; median and raw times, optionally as JSON
              bench unet --config sd15|DIR [--backend cpu|cuda] [--dtype fp32|fp16|int8] [--int8-mode w8a16|w8a8]
                         [--height 512] [--width 512] [--batch 2] [--context 77] [--warmup 3] [--iters 20]
                         [--seed 0] [--graph] [--threads N] [--json FILE]
                  one UNet step of a config with seeded random weights made in memory (H, W image pixels):
                  latency median/p10/p90, arena/weight/workspace bytes, ops and kernel launches per step;
                  --graph (cuda) replays the step as one captured CUDA graph
              bench unet --weights DIR [--load map|heap] [options as above but --config/--dtype/--seed]
                  the same with a diffusers UNet folder's own weights, memory-mapped (--load heap: each widened to
                  a heap copy first); adds the load time, the first step's time (weights are packed then) and
                  where the CPU backend's resident memory is (packed, in-place, heap weights, arena)
              bench kernels [--dtype fp16|fp32] [--runs 20] [--warmup 5] [--batch 2] [--config sd15|ci|DIR]
                            [--sizes 512,768] [--list] [--json FILE] [--kernels FAMILY=V,...] [--version FAMILY|all]
                  every distinct op of an SD1.5 step at 512 and 768 (ci: the op-case table's small rows) timed
                  with CUDA events: median, p10/p90,
                  TFLOP/s or GB/s and the fraction of the device's peak; --list prints the cases (no GPU);
                  without a GPU exits 2 saying why. --kernels forces kernel versions by name (attention=v1);
                  --version times every version of a family side by side (--list --version: the versions);
                  --backend cpu [--threads N] [--ops linear,attention,...] [--int8-mode w8a16|w8a8]: the same
                  cases on the CPU backend (fp32, host clock, --runs 5 --warmup 1), GFLOP/s per case; --int8-mode
                  makes every conv/linear weight int8 (ops conv2dInt8, linearInt8; GOP/s)
              export-random --config sd15|DIR --out DIR2 [--seed 0] [--dtype fp16|fp32]
                  write the config's seeded random weights (as bench unet --config makes them) as a diffusers folder
              bench sampling --model DIR --context CTX.safetensors [--repeat 3] [--seed 42] [--json FILE]
                     [--deepcache-interval 3] [--deepcache-branch 0]
                  time whole DDIM-20, DDIM-50 (guidance 7.5) and LCM-4 runs, each also with DeepCache (interval 0:
                  without); UNet evaluations and executed MACs per run
              txt2img --model PIPELINE_DIR --prompt TEXT --out IMAGE.png [--negative-prompt TEXT] [--steps 50|4]
                      [--guidance 7.5|1] [--scheduler ddim|lcm] [--seed 0] [--eta 0] [--height H --width W]
                      [--lora FILE --lora-scale 1] [--init-latents FILE] [--vae-tiling] [--trace]
                      [--backend cpu|cuda] [--dtype fp32|fp16] [--threads N]
                  a diffusers Stable Diffusion folder from a prompt to an 8-bit PNG (H, W image pixels); --trace
                  writes IMAGE.safetensors beside it (embeddings, every step's latents, sample, image)
              img2img --model PIPELINE_DIR --image IN.png --prompt TEXT --out IMAGE.png [--strength 0.8] [txt2img's options]
                  the same from an init image, encoded by the VAE and noised to the strength's first step (DDIM)
              tokenize --model PIPELINE_DIR|TOKENIZER_DIR [--json] PROMPT...
                  the text encoder's ids for each prompt (bos, BPE ids, eos, padding to 77)
              sample --model DIR --context CTX.safetensors --out OUT [--scheduler ddim|lcm] [--steps 50|4]
                     [--guidance 7.5|1] [--seed 0] [--eta 0] [--spacing leading|trailing|linspace]
                     [--prediction epsilon|v_prediction|sample] [--original-steps 50] [--lora FILE]
                     [--lora-scale 1] [--init-latents FILE] [--noise FILE] [--height H] [--width W]
                     [--trace] [--backend cpu|cuda] [--dtype fp32|fp16] [--threads N]
                     [--deepcache-interval N [--deepcache-branch 0]]
                  denoise seeded latents; writes OUT.safetensors ('latents'; every step with --trace) and OUT.png;
                  DeepCache: the whole UNet every N steps, a partial step reusing a cached deep feature between
                  them
              lora-merge --model DIR --lora FILE --out DIR2 [--scale 1]
                  write DIR's model with the LoRA merged into its weights to DIR2
              quantize --model DIR --out DIR2
                  write DIR's model with every conv/linear weight int8 per output channel (+ fp32 scales) to DIR2
              prune --model DIR --ratio R --out DIR2 [--grad GRADS.safetensors]
                  structured pruning of inner widths (resnet, attention, feed-forward) by L2 importance to DIR2
              compression-report --model DIR [--goldens DIR] [--json FILE] [--threads N]
                  fp32/fp16/int8 (W8A16, W8A8)/pruned 0.25 and 0.5: weight bytes, parameters, PSNR vs the goldens
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
                        Set.of("model", "golden", "backend", "dtype", "min-psnr", "threads", "int8-mode")), out, err);
                case "info" -> Info.run(new Args("info", rest, Set.of("model")), out);
                case "bench" -> Bench.run(rest, out, err);
                case "txt2img", "img2img" -> Txt2Img.run(args[0], new Args(args[0], rest, Txt2Img.OPTIONS,
                        Txt2Img.FLAGS), out, err);
                case "tokenize" -> Tokenize.run(rest, out);
                case "sample" -> Sample.run(new Args("sample", rest, Sample.OPTIONS, Sample.FLAGS), out, err);
                case "lora-merge" -> LoraMerge.run(new Args("lora-merge", rest, LoraMerge.OPTIONS), out, err);
                case "quantize" -> Quantize.run(new Args("quantize", rest, Quantize.OPTIONS), out);
                case "prune" -> Prune.run(new Args("prune", rest, Prune.OPTIONS), out);
                case "compression-report" -> CompressionReport.run(new Args("compression-report", rest,
                        CompressionReport.OPTIONS), out, err);
                case "plan" -> Plan.run(new Args("plan", rest, Plan.OPTIONS, Plan.FLAGS), out);
                case "export-random" -> UnetBench.export(new Args("export-random", rest,
                        Set.of("config", "out", "seed", "dtype")), out);
                default -> {
                    err.println("latte: unknown command '" + Text.quote(args[0]) + "'");
                    err.print(USAGE);
                    yield 2;
                }
            };
        } catch (Args.UsageException | WeightsException | GraphException | NonFiniteException
                 | IllegalArgumentException | UncheckedIOException e) {
            err.println("latte: " + Text.oneLine(e.getMessage()));
            return 2;
        } catch (OutOfMemoryError e) {
            err.println("latte: out of Java heap (" + e.getMessage() + "); raise it with LATTE_JAVA_OPTS=-Xmx...");
            return 2;
        } catch (RuntimeException e) {
            // a bug, not bad input: still one line, the trace on request
            if (System.getenv("LATTE_DEBUG") != null) {
                e.printStackTrace(err);
            }
            err.println("latte: internal error: " + e.getClass().getSimpleName() + ": " + Text.oneLine(e.getMessage())
                    + " (a bug; LATTE_DEBUG=1 prints the stack trace)");
            return 3;
        }
    }

    /** validate's default gate: 110 dB on the CPU, 100 on CUDA fp32, 45 on CUDA fp16 (DESIGN.md). */
    static double defaultMinPsnr(Args a) {
        if (!a.get("backend", "cpu").equals("cuda")) {
            return 110;
        }
        return a.get("dtype", "fp32").equals("fp16") ? 45 : 100;
    }

    private static int validate(Args a, PrintStream out, PrintStream err) {
        Path modelDir = Path.of(a.required("model"));
        Path golden = Path.of(a.required("golden"));
        double minPsnr = a.getDouble("min-psnr", defaultMinPsnr(a));
        String name = Text.quote(String.valueOf(golden.getFileName()));
        if (Component.of(modelDir) != Component.UNET) {
            try (Backend backend = Backends.open(a, "fp32")) {
                // progress on stdout: stderr holds nothing but the one error line, if any
                out.println("running " + name + " (" + Component.of(modelDir).className + ") on " + backend.name()
                        + "...");
                out.flush();
                long t0 = System.nanoTime();
                List<GoldenCase.Row> rows = Component.validate(modelDir, backend, golden);
                return table(rows, name, minPsnr, (System.nanoTime() - t0) / 1_000_000, backend, null, a, out);
            }
        }
        try (Backend backend = Backends.open(a, "fp32"); UNetModel model = UNetModel.load(modelDir);
             UNetRunner runner = new UNetRunner(model, backend,
                     Int8Mode.parse(a.get("int8-mode", "w8a16")))) {
            out.println("running " + name + " on " + backend.name() + "...");
            out.flush();
            long t0 = System.nanoTime();
            List<GoldenCase.Row> rows = GoldenCase.validate(runner, golden);
            long ms = (System.nanoTime() - t0) / 1_000_000;
            return table(rows, name, minPsnr, ms, backend, model, a, out);
        }
    }

    /** The PSNR table; {@code unet} (null for other components) adds its int8 device bytes and gate hint. */
    private static int table(List<GoldenCase.Row> rows, String golden, double minPsnr, long ms, Backend backend,
                             UNetModel unet, Args a, PrintStream out) {
        out.printf("%-24s %-18s %10s %12s%n", "tensor", "shape", "PSNR dB", "max |err|");
        int below = 0;
        for (GoldenCase.Row r : rows) {
            Compare c = r.compare();
            boolean ok = c.psnr() >= minPsnr;
            below += ok ? 0 : 1;
            out.printf("%-24s %-18s %10.2f %12.3e%s%n", r.name(), r.shape(), c.psnr(), c.maxAbsError(),
                    ok ? "" : "  < " + minPsnr);
        }
        boolean quantized = unet != null && unet.isQuantized();
        if (quantized) {
            long[] b = Info.deviceBytes(unet, backend.activationBytes());
            out.printf("weights on %s: %,d bytes (int8 %,d, float %,d)%n", backend.name(), b[0] + b[1], b[0], b[1]);
        }
        out.printf("%s: %d tensors, %s (%d ms on %s)%n", golden, rows.size(),
                below == 0 ? "all >= " + minPsnr + " dB" : below + " below " + minPsnr + " dB", ms, backend.name());
        if (below > 0 && quantized && a.get("min-psnr", null) == null) {
            out.println("note: int8 weights are rounded, so an int8 model lands near 40 dB (README, Compression),"
                    + " not at the fp32 gate; judge it with its own --min-psnr");
        }
        return below == 0 ? 0 : 1;
    }
}
