package dev.latte.tests.pipeline;

import dev.latte.cpu.CpuBackend;
import dev.latte.pipeline.PipelineFolder;
import dev.latte.pipeline.StableDiffusion;
import dev.latte.sampling.DdimScheduler;
import dev.latte.sampling.Gaussian;
import dev.latte.tests.Resources;
import dev.latte.vae.TiledDecode;
import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** diffusers' tiled VAE decode: tiles, overlaps, blends and crops. */
class TiledDecodeTest {
    /** A "decoder" that is position-independent: each latent pixel becomes an 8×8 block of f(value, channel). */
    static TiledDecode.Tile blocks(float[] z, int[] hw) {
        int h = hw[0], w = hw[1];
        float[] out = new float[3 * h * 8 * w * 8];
        for (int c = 0; c < 3; c++) {
            for (int y = 0; y < h * 8; y++) {
                for (int x = 0; x < w * 8; x++) {
                    out[(c * h * 8 + y) * w * 8 + x] = z[(c % 4 * h + y / 8) * w + x / 8] * (c + 1);
                }
            }
        }
        return new TiledDecode.Tile(out, 1, 3, h * 8, w * 8);
    }

    @Test
    void aPositionIndependentDecoderIsReproducedThroughTheBlends() {
        int h = 37, w = 50; // tiles of 16 every 12, partial tiles at both edges
        float[] z = new float[4 * h * w];
        Random r = new Random(7);
        for (int i = 0; i < z.length; i++) {
            z[i] = (float) r.nextGaussian();
        }
        TiledDecode.Tile whole = blocks(z, new int[] {h, w});
        int[] calls = {0};
        TiledDecode.Tile tiled = TiledDecode.decode(z, 1, 4, h, w, 16, 128, (t, hw) -> {
            calls[0]++;
            assertTrue(hw[0] <= 16 && hw[1] <= 16);
            return blocks(t, hw);
        });
        assertEquals(4 * 5, calls[0]); // ceil(37/12) × ceil(50/12)
        // each kept tile contributes at most 96 = 128 − 32 rows; the last ones what is left
        assertEquals(3 * 96 + (37 - 36) * 8, tiled.height());
        assertEquals(4 * 96 + (50 - 48) * 8, tiled.width());
        for (int c = 0; c < 3; c++) {
            for (int y = 0; y < tiled.height(); y++) {
                for (int x = 0; x < tiled.width(); x++) {
                    float a = whole.values()[(c * whole.height() + y) * whole.width() + x];
                    float b = tiled.values()[(c * tiled.height() + y) * tiled.width() + x];
                    assertEquals(a, b, 1e-5 * (1 + Math.abs(a)), "c" + c + " y" + y + " x" + x);
                }
            }
        }
    }

    @Test
    void blendsAreLinearRampsInDiffusersOrder() {
        // latent 3×7, tiles of 4 every 3 → columns at 0, 3, 6 (widths 4, 4, 1), one row; each tile decodes to
        // a constant: its column index. Blend extent 8, crop 24.
        TiledDecode.Tile out = TiledDecode.decode(new float[3 * 7], 1, 1, 3, 7, 4, 32, (t, hw) -> {
            float[] v = new float[hw[0] * 8 * hw[1] * 8];
            java.util.Arrays.fill(v, hw[1] == 1 ? 2f : t == null ? 0f : counter[0]++);
            return new TiledDecode.Tile(v, 1, 1, hw[0] * 8, hw[1] * 8);
        });
        assertEquals(24, out.height());
        assertEquals(24 + 24 + 8, out.width());
        for (int x = 0; x < 8; x++) {
            assertEquals(0f, out.values()[x]);
            assertEquals(x / 8f, out.values()[24 + x], 1e-7); // tile 1 fades in from tile 0
            assertEquals(1f, out.values()[32 + x]);
            // tile 2 blends with tile 1 as blended (tile 1's columns 24..31 are 1): 1·(1 − x/8) + 2·(x/8)
            assertEquals(1 + x / 8f, out.values()[48 + x], 1e-6);
        }
    }

    private final int[] counter = {0};

    @Test
    void theTinyPipelineDecodesTiledAt256() {
        try (PipelineFolder p = PipelineFolder.load(Resources.golden("pipeline")); CpuBackend cpu = new CpuBackend()) {
            var req = new StableDiffusion.Request("a cat", "", new DdimScheduler(p.scheduler(), 1, 0), 7.5,
                    new Gaussian(1), 256, 256, null, Map.of(), true, null);
            StableDiffusion.Result r = StableDiffusion.run(p, cpu, req, new StableDiffusion.Listener() {
                @Override
                public void onStep(int i, int n, int t, float[] x, float[] d) {
                }
            });
            assertTrue(r.tiled());
            assertEquals(256, r.height());
            assertEquals(256, r.width());
            // untiled, the same latents decode to a different but same-sized image; both are finite
            var plain = StableDiffusion.decode(p, cpu, r.latents(), 32, 32, false);
            assertEquals(r.sample().length, plain.sample().length);
            double diff = 0;
            for (int i = 0; i < plain.sample().length; i++) {
                assertTrue(Float.isFinite(r.sample()[i]));
                diff = Math.max(diff, Math.abs(plain.sample()[i] - r.sample()[i]));
            }
            assertTrue(diff > 0, "tiling changed nothing at 256x256: were tiles decoded at all?");
        }
    }
}
