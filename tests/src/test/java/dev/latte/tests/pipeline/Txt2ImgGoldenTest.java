package dev.latte.tests.pipeline;

import dev.latte.core.Compare;
import dev.latte.cpu.CpuBackend;
import dev.latte.pipeline.PipelineFolder;
import dev.latte.pipeline.StableDiffusion;
import dev.latte.sampling.DdimScheduler;
import dev.latte.sampling.NoiseSource;
import dev.latte.tests.Resources;
import dev.latte.weights.SafeTensorsFile;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole tiny text-to-image run (tokenizer, text encoder, unet-tiny with DDIM-20 and guidance
 * 7.5, VAE) against diffusers' StableDiffusionPipeline from the golden's initial latents.
 */
class Txt2ImgGoldenTest {
    static Path pipeline() {
        return Resources.golden("pipeline");
    }

    static Path golden() {
        return Resources.golden("pipeline/txt2img/tiny-ddim20-cfg7.5.safetensors");
    }

    @Test
    void reproducesTheGoldenRun() {
        try (PipelineFolder p = PipelineFolder.load(pipeline()); CpuBackend cpu = new CpuBackend();
             SafeTensorsFile g = SafeTensorsFile.open(golden())) {
            var scheduler = new DdimScheduler(p.scheduler(), 20, 0);
            var req = new StableDiffusion.Request("a photograph of an astronaut riding a horse", "", scheduler, 7.5,
                    NoiseSource.NONE, 128, 128, g.toFloatArray("init_latents"), Map.of(), false, null);
            StableDiffusion.Result r = StableDiffusion.run(p, cpu, req, new StableDiffusion.Listener() {
                @Override
                public void onStep(int i, int n, int t, float[] x, float[] d) {
                }
            });
            assertArrayEquals(ints(g.toLongArray("input_ids_cond")), r.condIds());
            assertArrayEquals(ints(g.toLongArray("input_ids_uncond")), r.uncondIds());
            assertArrayEquals(ints(g.toLongArray("timesteps")), r.timesteps());
            psnr("cond_embeds", g, r.condEmbeds(), 110);
            psnr("uncond_embeds", g, r.uncondEmbeds(), 110);
            double worst = Double.POSITIVE_INFINITY;
            for (int i = 0; i < 20; i++) {
                worst = Math.min(worst, psnr("latents." + i, g, r.stepLatents().get(i), 100));
                psnr("noise_pred." + i, g, r.noisePreds().get(i), 100);
            }
            System.out.printf("txt2img: lowest step latents %.1f dB%n", worst);
            psnr("latents", g, r.latents(), 100);
            psnr("sample", g, r.sample(), 100);
            psnr("image", g, r.image(), 100);

            long[] ref = g.toLongArray("image_uint8"); // [1, 128, 128, 3]
            float[] refImage = g.toFloatArray("image"); // [1, 3, 128, 128]
            int differ = 0, nearBoundary = 0;
            for (int i = 0; i < ref.length; i++) {
                int got = Byte.toUnsignedInt(r.imageUint8()[i]);
                if (got != ref[i]) {
                    differ++;
                    int c = i % 3, pix = i / 3;
                    float v = refImage[c * 128 * 128 + pix] * 255f;
                    double toBoundary = Math.abs(v - Math.floor(v) - 0.5) / 255; // in [0, 1] image units
                    assertTrue(toBoundary <= 1e-3, "pixel " + pix + " channel " + c + ": " + got + " vs " + ref[i]
                            + ", golden float " + v / 255 + " is " + toBoundary + " from a rounding boundary");
                    nearBoundary++;
                    assertEquals(1, Math.abs(got - ref[i]));
                }
            }
            System.out.printf("txt2img: 8-bit image: %d of %d values differ, all within 1e-3 of a rounding boundary%n",
                    differ, ref.length);
            assertEquals(differ, nearBoundary);
        }
    }

    static double psnr(String name, SafeTensorsFile g, float[] got, double gate) {
        Compare c = Compare.of(g.toFloatArray(name), got);
        System.out.printf("txt2img %-16s %.1f dB%n", name, c.psnr());
        assertTrue(c.psnr() >= gate, name + ": " + c.psnr() + " dB < " + gate);
        return c.psnr();
    }

    static int[] ints(long[] v) {
        int[] r = new int[v.length];
        for (int i = 0; i < v.length; i++) {
            r[i] = (int) v[i];
        }
        return r;
    }
}
