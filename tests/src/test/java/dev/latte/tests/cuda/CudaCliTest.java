package dev.latte.tests.cuda;

import static dev.latte.tests.cli.Cli.latte;
import static dev.latte.tests.cli.Cli.latteWithoutDevice;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.latte.core.Compare;
import dev.latte.cuda.CudaContext;
import dev.latte.sampling.Gaussian;
import dev.latte.tests.Resources;
import dev.latte.tests.cli.Cli.Result;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.SafeTensorsWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code latte validate} and {@code sample} with {@code --backend cuda}: on a device they pass their gates; without one they say why, exit 2. */
class CudaCliTest {
    static String[] validate(String dtype) {
        return new String[] {"validate", "--model", Resources.unetTiny().toString(), "--golden",
                Resources.golden("unet-tiny/case-0.safetensors").toString(), "--backend", "cuda", "--dtype", dtype};
    }

    @Test
    void validateFp16OnTheGpu() {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        Result r = latte(validate("fp16"));
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("all >= 45.0 dB") && r.out().contains("cuda-fp16"), r.out());
    }

    @Test
    void validateFp32OnTheGpu() {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        Result r = latte(validate("fp32"));
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("all >= 100.0 dB") && r.out().contains("cuda-fp32"), r.out());
    }

    /**
     * Without a device: one line naming the reason, exit 2, no stack trace. In a child JVM that
     * sees no device, so it runs everywhere, the emulated device included.
     */
    @Test
    void withoutADeviceItSaysWhy() {
        Result r = latteWithoutDevice(validate("fp16"));
        assertEquals(2, r.code(), r.err());
        List<String> lines = r.err().strip().lines().toList();
        assertEquals(1, lines.size(), r.err());
        String reason = CudaContext.unavailableReason();
        String expected = "latte: cuda backend unavailable: " + (reason != null ? reason : "no device (");
        assertTrue(lines.get(0).startsWith(expected), lines.get(0));
    }

    /** {@code sample --backend cuda --dtype fp16}: the latents of the CPU's run, to fp16's gate. */
    @Test
    void sampleOnTheGpu(@TempDir Path tmp) {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        Gaussian g = new Gaussian(3);
        Path ctx = tmp.resolve("ctx.safetensors");
        long[] shape = {1, 77, 32};
        new SafeTensorsWriter().addF32("cond", shape, g.next(77 * 32)).addF32("uncond", shape, g.next(77 * 32)).write(ctx);
        float[][] latents = new float[2][];
        String[][] backends = {{"--backend", "cpu"}, {"--backend", "cuda", "--dtype", "fp16"}};
        for (int i = 0; i < 2; i++) {
            List<String> args = new ArrayList<>(List.of("sample", "--model", Resources.unetTiny().toString(), "--context",
                    ctx.toString(), "--scheduler", "lcm", "--steps", "1", "--seed", "7", "--out",
                    tmp.resolve("s" + i).toString()));
            args.addAll(List.of(backends[i]));
            Result r = latte(args.toArray(String[]::new));
            assertEquals(0, r.code(), r.out() + r.err());
            try (SafeTensorsFile f = SafeTensorsFile.open(tmp.resolve("s" + i + ".safetensors"))) {
                latents[i] = f.toFloatArray("latents");
            }
        }
        double psnr = Compare.of(latents[0], latents[1]).psnr();
        assertTrue(psnr >= 45, "cuda fp16 vs cpu latents: " + psnr + " dB");
    }

    /**
     * validate --int8-mode w8a16|w8a8 on a quantised unet-tiny on cuda fp32: the PSNR of out within
     * 0.5 dB of what the CPU's int8 reference gets, and the weight bytes the device holds.
     */
    @Test
    void validateQuantisedOnTheGpu(@TempDir Path tmp) {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        Path q = tmp.resolve("q");
        Result quantised = latte("quantize", "--model", Resources.unetTiny().toString(), "--out", q.toString());
        assertEquals(0, quantised.code(), quantised.err());
        for (String mode : List.of("w8a16", "w8a8")) {
            double[] psnr = new double[2];
            String[][] backends = {{"--backend", "cpu"}, {"--backend", "cuda", "--dtype", "fp32"}};
            for (int i = 0; i < 2; i++) {
                List<String> args = new ArrayList<>(List.of("validate", "--model", q.toString(), "--golden",
                        Resources.golden("unet-tiny/case-0.safetensors").toString(), "--int8-mode", mode,
                        "--min-psnr", "30"));
                args.addAll(List.of(backends[i]));
                Result r = latte(args.toArray(String[]::new));
                assertEquals(0, r.code(), r.out() + r.err());
                String outLine = r.out().lines().filter(l -> l.startsWith("out ")).findFirst().orElseThrow();
                psnr[i] = Double.parseDouble(outLine.substring(outLine.indexOf(']') + 1).trim().split("\\s+")[0]);
                if (i == 1) {
                    assertTrue(r.out().contains("weights on cuda-fp32: 2,280,992 bytes"), r.out());
                }
            }
            System.out.printf(Locale.ROOT, "quantised unet-tiny %s: out %.2f dB on the CPU, %.2f dB on cuda fp32%n", mode,
                    psnr[0], psnr[1]);
            assertEquals(psnr[0], psnr[1], 0.5, mode + ": cuda vs cpu int8 PSNR of out");
        }
    }

    @Test
    void badDtype() {
        Result r = latte(validate("bf16"));
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("--dtype must be fp16 or fp32"), r.err());
    }

    /**
     * {@code txt2img --backend cuda --dtype fp16} on the bundled tiny pipeline: the text encoder's
     * token ids stay fp32 under fp16 activations, so it runs (it used to refuse: "cuda-fp16 backend
     * does not run op embedding"), and its picture is the CPU's within fp16's reach.
     */
    @Test
    void txt2imgInFp16(@TempDir Path tmp) throws java.io.IOException {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        java.awt.image.BufferedImage[] images = new java.awt.image.BufferedImage[2];
        String[][] backends = {{"--backend", "cpu"}, {"--backend", "cuda", "--dtype", "fp16"}};
        for (int i = 0; i < 2; i++) {
            Path png = tmp.resolve("t" + i + ".png");
            List<String> args = new ArrayList<>(List.of("txt2img", "--model", Resources.golden("pipeline").toString(),
                    "--prompt", "a photograph of an astronaut", "--steps", "1", "--height", "64", "--width", "64",
                    "--seed", "5", "--out", png.toString()));
            args.addAll(List.of(backends[i]));
            Result r = latte(args.toArray(String[]::new));
            assertEquals(0, r.code(), r.out() + r.err());
            images[i] = javax.imageio.ImageIO.read(png.toFile());
            assertEquals(64, images[i].getWidth());
        }
        float[][] px = new float[2][64 * 64 * 3];
        for (int i = 0; i < 2; i++) {
            for (int y = 0, k = 0; y < 64; y++) {
                for (int x = 0; x < 64; x++) {
                    int rgb = images[i].getRGB(x, y);
                    px[i][k++] = (rgb >> 16) & 255;
                    px[i][k++] = (rgb >> 8) & 255;
                    px[i][k++] = rgb & 255;
                }
            }
        }
        double psnr = Compare.of(px[0], px[1]).psnr();
        System.out.printf(Locale.ROOT, "txt2img 64x64 1 step: cuda fp16 vs cpu 8-bit image %.1f dB%n", psnr);
        assertTrue(psnr >= 40, "cuda fp16 image vs cpu: " + psnr + " dB");
    }
}
