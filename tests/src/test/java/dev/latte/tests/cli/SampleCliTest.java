package dev.latte.tests.cli;

import dev.latte.lora.Lora;
import dev.latte.sampling.Gaussian;
import dev.latte.tests.Resources;
import dev.latte.tests.sampling.TinyLora;
import dev.latte.weights.DType;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.TensorInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static dev.latte.tests.cli.Cli.assertBadInput;
import static dev.latte.tests.cli.Cli.latte;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code latte sample} and {@code latte lora-merge} on the bundled tiny model, and their bad input. */
class SampleCliTest {
    static final long[] CTX = {1, 77, 32};
    @TempDir
    Path tmp;

    static String model() {
        return Resources.unetTiny().toString();
    }

    /** cond and uncond [1, 77, 32], N(0, 1). */
    Path context() {
        Gaussian g = new Gaussian(3);
        Path f = tmp.resolve("ctx.safetensors");
        new SafeTensorsWriter().addF32("cond", CTX, g.next(77 * 32)).addF32("uncond", CTX, g.next(77 * 32)).write(f);
        return f;
    }

    Cli.Result sample(String... extra) {
        String[] base = {"sample", "--model", model(), "--context", context().toString()};
        String[] all = new String[base.length + extra.length];
        System.arraycopy(base, 0, all, 0, base.length);
        System.arraycopy(extra, 0, all, base.length, extra.length);
        return latte(all);
    }

    static float[] latents(Path f) {
        try (SafeTensorsFile s = SafeTensorsFile.open(f)) {
            assertArrayEquals(new long[] {1, 4, 16, 16}, s.info("latents").shape());
            return s.toFloatArray("latents");
        }
    }

    @Test
    void ddimWithGuidanceWritesLatentsAndAPreview() throws IOException {
        String out = tmp.resolve("run/a").toString();
        var r = sample("--scheduler", "ddim", "--steps", "3", "--guidance", "7.5", "--seed", "42", "--out", out);
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("ddim, 3 steps (t 667→1), guidance 7.5, seed 42: 3 UNet forwards (6 latents)"),
                r.out());
        assertEquals("", r.err(), "no progress bar without a terminal");
        float[] x = latents(Path.of(out + ".safetensors"));
        for (float v : x) {
            assertTrue(Float.isFinite(v));
        }
        BufferedImage png = ImageIO.read(Path.of(out + ".png").toFile());
        assertEquals(4 * 128 + 3 * 2, png.getWidth());
        assertEquals(128, png.getHeight());

        // the same seed gives the same latents; another seed does not
        var again = sample("--scheduler", "ddim", "--steps", "3", "--seed", "42", "--out", tmp.resolve("b").toString());
        assertEquals(0, again.code(), again.err());
        assertArrayEquals(x, latents(tmp.resolve("b.safetensors")));
        sample("--scheduler", "ddim", "--steps", "3", "--seed", "43", "--out", tmp.resolve("c").toString());
        assertFalse(Arrays.equals(x, latents(tmp.resolve("c.safetensors"))));
    }

    /** A trace holds what reproduces the run: its x_T as --init-latents and its noise.i as --noise. */
    @Test
    void aTraceReplaysThroughInitLatentsAndNoise() {
        Path first = tmp.resolve("lcm.safetensors");
        var r = sample("--scheduler", "lcm", "--steps", "4", "--seed", "7", "--trace", "--out", first.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("lcm, 4 steps (t 999→259), guidance 1.0 (off), seed 7: 4 UNet forwards (4 latents)"),
                r.out());
        Path init = tmp.resolve("init.safetensors");
        try (SafeTensorsFile t = SafeTensorsFile.open(first)) {
            assertArrayEquals(new long[] {999, 759, 499, 259}, t.toLongArray("timesteps"));
            for (String name : new String[] {"x_T", "noise.0", "noise.2", "x.0", "x.3", "denoised.3"}) {
                assertTrue(t.contains(name), name);
            }
            assertFalse(t.contains("noise.3"), "the last LCM step draws no noise");
            assertArrayEquals(t.toFloatArray("x.3"), t.toFloatArray("latents"));
            new SafeTensorsWriter().addF32("latents", new long[] {1, 4, 16, 16}, t.toFloatArray("x_T")).write(init);
        }
        Path second = tmp.resolve("replay.safetensors");
        r = sample("--scheduler", "lcm", "--steps", "4", "--seed", "999", "--init-latents", init.toString(), "--noise",
                first.toString(), "--out", second.toString());
        assertEquals(0, r.code(), r.err());
        assertArrayEquals(latents(first), latents(second));

        // DDIM with eta > 0 draws noise at every step (the last included), and replays the same way
        Path ddim = tmp.resolve("ddim-eta.safetensors"), again = tmp.resolve("ddim-again.safetensors");
        r = sample("--steps", "2", "--eta", "1", "--seed", "5", "--trace", "--out", ddim.toString());
        assertEquals(0, r.code(), r.err());
        try (SafeTensorsFile t = SafeTensorsFile.open(ddim)) {
            assertTrue(t.contains("noise.1") && !t.contains("noise.2"), "eta 1 draws once per step");
            new SafeTensorsWriter().addF32("latents", new long[] {1, 4, 16, 16}, t.toFloatArray("x_T")).write(init);
        }
        r = sample("--steps", "2", "--eta", "1", "--seed", "6", "--init-latents", init.toString(), "--noise",
                ddim.toString(), "--out", again.toString());
        assertEquals(0, r.code(), r.err());
        assertArrayEquals(latents(ddim), latents(again));
    }

    @Test
    void loraMergeWritesAModelThatSamplesAsTheLoraDoes() throws IOException {
        Path lora;
        try (SafeTensorsFile w = SafeTensorsFile.open(Resources.unetTiny().resolve(CliTest.WEIGHTS))) {
            lora = TinyLora.write(w, tmp.resolve("lora.safetensors"), 9);
        }
        Path merged = tmp.resolve("merged");
        var r = latte("lora-merge", "--model", model(), "--lora", lora.toString(), "--scale", "0.7", "--out",
                merged.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("merged " + TinyLora.MODULES.size() + " LoRA modules (rank 4, alpha 2) at scale 0.7"),
                r.out());
        assertTrue(r.err().startsWith("latte: warning: lora.safetensors: 1 tensor(s) match no UNet weight")
                && r.err().contains(TinyLora.TEXT_ENCODER_KEY), r.err());
        assertTrue(Files.isRegularFile(merged.resolve("config.json")));

        var a = latte("sample", "--model", merged.toString(), "--context", context().toString(), "--steps", "2",
                "--out", tmp.resolve("m").toString());
        var b = sample("--steps", "2", "--lora", lora.toString(), "--lora-scale", "0.7", "--out",
                tmp.resolve("l").toString());
        var c = sample("--steps", "2", "--out", tmp.resolve("n").toString());
        assertEquals(0, a.code() + b.code() + c.code(), a.err() + b.err() + c.err());
        assertArrayEquals(latents(tmp.resolve("m.safetensors")), latents(tmp.resolve("l.safetensors")));
        assertFalse(Arrays.equals(latents(tmp.resolve("n.safetensors")), latents(tmp.resolve("l.safetensors"))));
    }

    /** An fp16 model stays fp16: merged tensors rounded once, untouched ones copied byte for byte. */
    @Test
    void loraMergeKeepsHalfPrecisionWeightsHalf() throws IOException {
        Path half = Files.createDirectories(tmp.resolve("half"));
        Files.copy(Resources.unetTiny().resolve("config.json"), half.resolve("config.json"));
        Path lora;
        var w16 = new SafeTensorsWriter();
        try (SafeTensorsFile w = SafeTensorsFile.open(Resources.unetTiny().resolve(CliTest.WEIGHTS))) {
            lora = TinyLora.write(w, tmp.resolve("lora.safetensors"), 9);
            for (TensorInfo t : w.tensors()) {
                float[] v = w.toFloatArray(t.name());
                MemorySegment bytes = MemorySegment.ofArray(new byte[2 * v.length]);
                for (int i = 0; i < v.length; i++) {
                    bytes.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i,
                            Float.floatToFloat16(v[i]));
                }
                w16.add(t.name(), DType.F16, t.shape(), bytes);
            }
        }
        w16.write(half.resolve("diffusion_pytorch_model.fp16.safetensors"));
        Path out = tmp.resolve("half-merged");
        var r = latte("lora-merge", "--model", half.toString(), "--lora", lora.toString(), "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        String target = TinyLora.MODULES.get(7) + ".weight"; // a 3×3 conv
        try (SafeTensorsFile in = SafeTensorsFile.open(half.resolve("diffusion_pytorch_model.fp16.safetensors"));
             SafeTensorsFile merged = SafeTensorsFile.open(out.resolve("diffusion_pytorch_model.fp16.safetensors"))) {
            assertTrue(merged.tensors().stream().allMatch(t -> t.dtype() == DType.F16));
            Lora l = Lora.load(lora, in);
            float[] want = l.mergedWeights(in, 1.0).get(target), got = merged.toFloatArray(target);
            for (int i = 0; i < want.length; i++) {
                assertEquals(Float.float16ToFloat(Float.floatToFloat16(want[i])), got[i], 0f, target + " at " + i);
            }
            assertArrayEquals(in.data("conv_in.weight").toArray(ValueLayout.JAVA_BYTE),
                    merged.data("conv_in.weight").toArray(ValueLayout.JAVA_BYTE));
        }
    }

    @Test
    void loraMergeRefusesToOverwriteItsInput() throws IOException {
        Path lora;
        try (SafeTensorsFile w = SafeTensorsFile.open(Resources.unetTiny().resolve(CliTest.WEIGHTS))) {
            lora = TinyLora.write(w, tmp.resolve("lora.safetensors"), 9);
        }
        assertBadInput(latte("lora-merge", "--model", model(), "--lora", lora.toString(), "--out", model()),
                "is the input");
        Path bad = tmp.resolve("bad-lora.safetensors");
        new SafeTensorsWriter()
                .addF32("lora_unet_mid_block_resnets_0_conv1.lora_down.weight", new long[] {4, 64, 1, 1}, new float[256])
                .addF32("lora_unet_mid_block_resnets_0_conv1.lora_up.weight", new long[] {64, 4, 1, 1}, new float[256])
                .write(bad);
        assertBadInput(latte("lora-merge", "--model", model(), "--lora", bad.toString(), "--out",
                tmp.resolve("o").toString()), "bad-lora.safetensors",
                "'lora_unet_mid_block_resnets_0_conv1.lora_down.weight'", "[4, 64, 1, 1]");
    }

    @Test
    void badContextFiles() {
        Path f = tmp.resolve("bad-ctx.safetensors");
        String out = tmp.resolve("x").toString();
        new SafeTensorsWriter().addF32("uncond", CTX, new float[77 * 32]).write(f);
        assertBadInput(latte("sample", "--model", model(), "--context", f.toString(), "--out", out),
                "bad-ctx.safetensors", "no tensor 'cond'");

        new SafeTensorsWriter().addF32("cond", new long[] {1, 77, 16}, new float[77 * 16]).write(f);
        assertBadInput(latte("sample", "--model", model(), "--context", f.toString(), "--out", out),
                "bad-ctx.safetensors", "'cond'", "[1, 77, 16]", "32");

        new SafeTensorsWriter().addF32("cond", CTX, new float[77 * 32]).write(f);
        assertBadInput(latte("sample", "--model", model(), "--context", f.toString(), "--out", out),
                "bad-ctx.safetensors", "no tensor 'uncond'", "guidance");

        float[] nan = new float[77 * 32];
        nan[100] = Float.NaN;
        new SafeTensorsWriter().addF32("cond", CTX, new float[77 * 32]).addF32("uncond", CTX, nan).write(f);
        assertBadInput(latte("sample", "--model", model(), "--context", f.toString(), "--out", out),
                "bad-ctx.safetensors", "'uncond'", "NaN");

        new SafeTensorsWriter().addF32("cond", CTX, new float[77 * 32])
                .addF32("uncond", new long[] {1, 76, 32}, new float[76 * 32]).write(f);
        assertBadInput(latte("sample", "--model", model(), "--context", f.toString(), "--out", out),
                "bad-ctx.safetensors", "'uncond'", "[1, 76, 32]");
    }

    @Test
    void badLatentsNoiseAndOptions() {
        String out = tmp.resolve("x").toString();
        Path init = tmp.resolve("init.safetensors");
        new SafeTensorsWriter().addF32("latents", new long[] {1, 3, 16, 16}, new float[3 * 256]).write(init);
        assertBadInput(sample("--init-latents", init.toString(), "--out", out), "init.safetensors", "'latents'",
                "[1, 3, 16, 16]");

        Path noise = tmp.resolve("noise.safetensors");
        new SafeTensorsWriter().addF32("noise.0", new long[] {1, 4, 16, 16}, new float[1024])
                .addF32("noise.1", new long[] {1, 4, 16, 16}, new float[1024]).write(noise);
        assertBadInput(sample("--scheduler", "lcm", "--steps", "4", "--noise", noise.toString(), "--out", out),
                "noise.safetensors", "no tensor 'noise.2'");

        assertBadInput(sample("--scheduler", "euler", "--out", out), "unknown scheduler 'euler'");
        assertBadInput(sample("--scheduler", "lcm", "--steps", "51", "--out", out), "lcm: steps must be in 1..50");
        assertBadInput(sample("--steps", "0", "--out", out), "--steps must be in 1..1000");
        assertBadInput(sample("--spacing", "sideways", "--out", out), "unknown timestep spacing 'sideways'");
        assertBadInput(sample("--backend", "tpu", "--out", out), "unknown backend 'tpu'");
        assertBadInput(sample("--scheduler", "lcm", "--eta", "1", "--out", out), "--eta");
        assertBadInput(latte("sample", "--model", model(), "--out", out), "--context is required");
    }
}
