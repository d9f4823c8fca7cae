package dev.latte.tests.cli;

import dev.latte.sampling.Gaussian;
import dev.latte.tests.Resources;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.SafeTensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Arrays;

import static dev.latte.tests.cli.Cli.assertBadInput;
import static dev.latte.tests.cli.Cli.latte;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code sample --deepcache-interval/--deepcache-branch}, {@code plan --deepcache-branch}, and their bad input. */
class DeepCacheCliTest {
    @TempDir
    Path tmp;

    Cli.Result sample(String... extra) {
        Path ctx = tmp.resolve("ctx.safetensors");
        Gaussian g = new Gaussian(3);
        long[] shape = {1, 77, 32};
        new SafeTensorsWriter().addF32("cond", shape, g.next(77 * 32)).addF32("uncond", shape, g.next(77 * 32)).write(ctx);
        String[] base = {"sample", "--model", Resources.unetTiny().toString(), "--context", ctx.toString(), "--seed", "42"};
        String[] all = Arrays.copyOf(base, base.length + extra.length);
        System.arraycopy(extra, 0, all, base.length, extra.length);
        return latte(all);
    }

    @Test
    void aTraceRecordsTheFullStepsAndTheirMacs() {
        Path out = tmp.resolve("dc");
        var r = sample("--scheduler", "ddim", "--steps", "7", "--deepcache-interval", "3", "--trace", "--out",
                out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("DeepCache interval 3, branch 0: 3 full + 4 partial steps"), r.out());
        var plain = sample("--scheduler", "ddim", "--steps", "7", "--trace", "--out", tmp.resolve("plain").toString());
        assertEquals(0, plain.code(), plain.err());
        try (SafeTensorsFile f = SafeTensorsFile.open(tmp.resolve("dc.safetensors"));
             SafeTensorsFile p = SafeTensorsFile.open(tmp.resolve("plain.safetensors"))) {
            assertArrayEquals(new long[] {1, 0, 0, 1, 0, 0, 1}, f.toLongArray("full_steps"));
            long full = 357_081_088L, partial = 38_146_048L; // unet-tiny, batch 2, 16x16 (golden/deepcache/macs.json)
            assertArrayEquals(new long[] {full, partial, partial, full, partial, partial, full}, f.toLongArray("step_macs"));
            assertEquals("1,0,0,1,0,0,1", f.metadata().get("full_steps"));
            assertEquals("3", f.metadata().get("deepcache-interval"));
            assertArrayEquals(p.toFloatArray("x.0"), f.toFloatArray("x.0"), "step 0 is full");
            assertFalse(Arrays.equals(p.toFloatArray("x.1"), f.toFloatArray("x.1")), "step 1 reads the cache");
        }
    }

    @Test
    void lcmWithAnotherBranch() {
        var r = sample("--scheduler", "lcm", "--steps", "4", "--deepcache-interval", "2", "--deepcache-branch", "8",
                "--out", tmp.resolve("lcm").toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("DeepCache interval 2, branch 8: 2 full + 2 partial steps"), r.out());
    }

    @Test
    void badDeepCacheOptionsAreOneLineErrors() {
        String out = tmp.resolve("x").toString();
        assertBadInput(sample("--deepcache-interval", "3", "--deepcache-branch", "9", "--out", out),
                "--deepcache-branch 9 is out of range", "3 down blocks, so branches 0..8");
        assertBadInput(sample("--deepcache-interval", "0", "--out", out), "--deepcache-interval must be at least 1");
        assertBadInput(sample("--deepcache-branch", "1", "--out", out), "--deepcache-branch needs --deepcache-interval");
        assertBadInput(sample("--deepcache-interval", "two", "--out", out), "--deepcache-interval needs an integer");
        assertFalse(tmp.resolve("x.safetensors").toFile().exists());
        assertBadInput(latte("plan", "--config", "sd15", "--deepcache-branch", "12"),
                "--deepcache-branch 12 is out of range", "4 down blocks, so branches 0..11");
        assertBadInput(latte("plan", "--config", "sd15", "--deepcache-branch", "0", "--keep", "all"),
                "--deepcache-branch plans sampling steps");
    }

    /** A DeepCache trace is an output like any other: never the model's weights or the context it reads. */
    @Test
    void aTraceNeverReplacesAnInput() throws java.io.IOException {
        Path weights = Resources.unetTiny().resolve("diffusion_pytorch_model.safetensors");
        byte[] before = java.nio.file.Files.readAllBytes(weights);
        Path link = java.nio.file.Files.createSymbolicLink(tmp.resolve("m"), Resources.unetTiny().toRealPath());
        assertBadInput(sample("--steps", "2", "--deepcache-interval", "2", "--trace", "--out",
                link.resolve("diffusion_pytorch_model").toString()), "--out", "would replace the input");
        assertBadInput(sample("--steps", "2", "--deepcache-interval", "2", "--trace", "--out",
                tmp.resolve("ctx").toString()), "--out", "would replace the input", "ctx.safetensors");
        assertArrayEquals(before, java.nio.file.Files.readAllBytes(weights));
        try (SafeTensorsFile ctx = SafeTensorsFile.open(tmp.resolve("ctx.safetensors"))) {
            assertTrue(ctx.contains("cond") && ctx.contains("uncond"));
        }
    }

    @Test
    void planCountsTheCachedFeatureOutsideTheArenas() {
        var r = latte("plan", "--config", Resources.unetTiny().toString(), "--height", "128", "--width", "128",
                "--batch", "2", "--dtype", "fp32", "--deepcache-branch", "0");
        assertEquals(0, r.code(), r.err());
        // conv_in's 32 channels at 16x16, batch 2, fp32: 64 KiB
        assertTrue(r.out().contains("cached feature       0.06 MiB  deepcache.feature [2, 32, 16, 16]"), r.out());
        assertTrue(r.out().contains("UNet MACs     full 357,081,088, partial 38,146,048: a partial step skips 89.3%"),
                r.out());
        var all = latte("plan", "--config", "sd15", "--height", "512", "--width", "512", "--deepcache-branch", "all");
        assertEquals(0, all.code(), all.err());
        assertTrue(all.out().lines().anyMatch(l -> l.startsWith("0 ") && l.endsWith("92.1%")), all.out());
        assertEquals(12, all.out().lines().filter(l -> l.matches("^\\d+ .*%$")).count(), all.out());
    }
}
