package dev.latte.tests.compression;

import dev.latte.tests.Resources;
import dev.latte.tests.cli.Cli.Result;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static dev.latte.tests.cli.Cli.latte;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code latte quantize}, {@code latte prune}, {@code info}'s mode and {@code validate --int8-mode}. */
class CompressionCliTest {
    @TempDir
    Path tmp;

    @Test
    void pruneThenQuantizeThenValidate() {
        String tiny = Resources.unetTiny().toString();
        Path pruned = tmp.resolve("pruned"), both = tmp.resolve("pruned-int8");
        Result r = latte("prune", "--model", tiny, "--ratio", "0.25", "--out", pruned.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("pruned "), r.out());
        r = latte("quantize", "--model", pruned.toString(), "--out", both.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("quantised "), r.out());
        r = latte("info", "--model", both.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("mode: int8-per-channel, pruned"), r.out());
        assertTrue(latte("info", "--model", tiny).out().contains("mode: fp32"));
        String golden = Resources.golden("unet-tiny/case-1.safetensors").toString();
        for (String mode : new String[] {"w8a16", "w8a8"}) {
            // far from the fp32 golden (pruned random weights), but it runs: exit 1 is "below --min-psnr"
            r = latte("validate", "--model", both.toString(), "--golden", golden, "--int8-mode", mode, "--min-psnr", "0");
            assertEquals(0, r.code(), r.err());
            assertTrue(r.out().contains("out "), r.out());
        }
    }

    @Test
    void badUseIsOneLine() {
        String tiny = Resources.unetTiny().toString();
        Result r = latte("prune", "--model", tiny, "--ratio", "1.5", "--out", tmp.resolve("x").toString());
        assertEquals(2, r.code());
        assertEquals("latte: prune: --ratio must be a number in [0, 1), got 1.5\n", r.err());
        r = latte("validate", "--model", tiny, "--golden", "x", "--int8-mode", "w4a4");
        assertEquals(2, r.code());
        assertEquals("latte: unknown int8 mode 'w4a4' (w8a16 or w8a8)\n", r.err());
        r = latte("quantize", "--model", tiny, "--out", tiny);
        assertEquals(2, r.code());
        assertTrue(r.err().contains("is the input"), r.err());
    }
}
