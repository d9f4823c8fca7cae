package dev.latte.tests.sampling;

import dev.latte.core.Compare;
import dev.latte.cpu.CpuBackend;
import dev.latte.lora.Lora;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.sampling.DdimScheduler;
import dev.latte.sampling.Gaussian;
import dev.latte.sampling.GuidedUNet;
import dev.latte.sampling.NoiseSource;
import dev.latte.sampling.Sampler;
import dev.latte.sampling.SamplingInputs.Conditioning;
import dev.latte.sampling.SchedulerConfig;
import dev.latte.tests.Resources;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.TensorInfo;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The UNet as the sampler's model: guidance arithmetic, and LoRA merged the two ways. */
class UNetSamplingTest {
    static final int LATENT = 4 * 16 * 16, CTX = 77 * 32;
    static CpuBackend backend;
    static UNetModel model;
    static UNetRunner runner;

    @TempDir
    Path tmp;

    @BeforeAll
    static void load() {
        backend = new CpuBackend();
        model = UNetModel.load(Resources.unetTiny());
        runner = new UNetRunner(model, backend);
    }

    @AfterAll
    static void close() {
        runner.close();
        model.close();
        backend.close();
    }

    static float[] unet(UNetRunner r, float[] x, int t, float[] ctx) {
        return r.forward(new UNetRunner.Dims(1, 16, 16, 77), x, new float[] {t}, ctx, Set.of(UNetRunner.OUT))
                .get(UNetRunner.OUT);
    }

    @Test
    void guidanceIsUncondPlusScaleTimesTheDifference() {
        Gaussian g = new Gaussian(11);
        float[] x = g.next(LATENT), cond = g.next(CTX), uncond = g.next(CTX);
        var guided = new GuidedUNet(runner, new Conditioning(cond, uncond, 1, 77, 32), 7.5, 16, 16);
        float[] eps = guided.predict(x, 500);
        assertEquals(1, guided.forwards());
        assertEquals(2, guided.evaluations());
        float[] u = unet(runner, x, 500, uncond), c = unet(runner, x, 500, cond);
        float[] want = new float[LATENT];
        for (int i = 0; i < LATENT; i++) {
            want[i] = u[i] + 7.5f * (c[i] - u[i]);
        }
        Compare cmp = Compare.of(want, eps);
        assertTrue(cmp.psnr() >= 110, "guided vs separate forwards: " + cmp.psnr() + " dB");

        var plain = new GuidedUNet(runner, new Conditioning(cond, uncond, 1, 77, 32), 1.0, 16, 16);
        assertArrayEquals(c, plain.predict(x, 500), "guidance 1 is the cond forward alone");
        assertEquals(1, plain.evaluations());
        assertThrows(IllegalArgumentException.class,
                () -> new GuidedUNet(runner, new Conditioning(cond, null, 1, 77, 32), 7.5, 16, 16));
    }

    /** Batch 2 with one negative prompt for both: each item as if it ran alone. */
    @Test
    void aBatchGuidesEachItemWithItsOwnPrompt() {
        Gaussian g = new Gaussian(14);
        float[] x = g.next(2 * LATENT), cond = g.next(2 * CTX), uncond = g.next(CTX);
        float[] both = new GuidedUNet(runner, new Conditioning(cond, repeat(uncond), 2, 77, 32), 4, 16, 16)
                .predict(x, 700);
        for (int b = 0; b < 2; b++) {
            float[] xb = Arrays.copyOfRange(x, b * LATENT, (b + 1) * LATENT);
            float[] cb = Arrays.copyOfRange(cond, b * CTX, (b + 1) * CTX);
            float[] one = new GuidedUNet(runner, new Conditioning(cb, uncond, 1, 77, 32), 4, 16, 16).predict(xb, 700);
            Compare c = Compare.of(one, Arrays.copyOfRange(both, b * LATENT, (b + 1) * LATENT));
            assertTrue(c.psnr() >= 110, "item " + b + ": " + c.psnr() + " dB");
        }
    }

    static float[] repeat(float[] v) {
        float[] r = Arrays.copyOf(v, 2 * v.length);
        System.arraycopy(v, 0, r, v.length, v.length);
        return r;
    }

    @Test
    void samplingIsDeterministic() {
        Gaussian g = new Gaussian(12);
        float[] cond = g.next(CTX), uncond = g.next(CTX);
        var guided = new GuidedUNet(runner, new Conditioning(cond, uncond, 1, 77, 32), 5, 16, 16);
        var ddim = new DdimScheduler(SchedulerConfig.SD15, 3, 0);
        float[] a = Sampler.run(ddim, guided, new Gaussian(42).next(LATENT), NoiseSource.NONE, Sampler.Listener.NONE);
        float[] b = Sampler.run(ddim, guided, new Gaussian(42).next(LATENT), NoiseSource.NONE, Sampler.Listener.NONE);
        assertArrayEquals(a, b);
        assertEquals(6, guided.forwards());
    }

    /**
     * A LoRA merged by {@link Lora} and uploaded as replacement weights gives what a model saved
     * with weights merged here, by the textbook formula, gives.
     */
    @Test
    void mergedLoraEqualsAPreMergedModel() throws IOException {
        Path loraFile = TinyLora.write(model.weights(), tmp.resolve("lora.safetensors"), 5);
        Lora lora = Lora.load(loraFile, model.weights());
        assertEquals(TinyLora.MODULES.size(), lora.modules().size());
        assertEquals(List.of(TinyLora.TEXT_ENCODER_KEY), lora.unknownKeys());
        double scale = 0.8;

        Path dir = Files.createDirectories(tmp.resolve("premerged"));
        Files.copy(Resources.unetTiny().resolve("config.json"), dir.resolve("config.json"));
        SafeTensorsWriter w = new SafeTensorsWriter();
        try (SafeTensorsFile lf = SafeTensorsFile.open(loraFile)) {
            for (TensorInfo t : model.weights().tensors()) {
                float[] v = model.weights().toFloatArray(t.name());
                String module = t.name().substring(0, t.name().length() - ".weight".length());
                if (t.name().endsWith(".weight") && TinyLora.MODULES.contains(module)) {
                    String key = "lora_unet_" + module.replace('.', '_');
                    float[] down = lf.toFloatArray(key + ".lora_down.weight");
                    float[] up = lf.toFloatArray(key + ".lora_up.weight");
                    int out = (int) t.shape()[0], in = v.length / out, r = TinyLora.RANK;
                    for (int o = 0; o < out; o++) {
                        for (int j = 0; j < in; j++) {
                            double s = 0;
                            for (int q = 0; q < r; q++) {
                                s += (double) up[o * r + q] * down[q * in + j];
                            }
                            v[o * in + j] += (float) (scale * TinyLora.ALPHA / r * s);
                        }
                    }
                }
                w.addF32(t.name(), t.shape(), v);
            }
        }
        w.write(dir.resolve("diffusion_pytorch_model.safetensors"));

        Gaussian g = new Gaussian(13);
        float[] x = g.next(LATENT), ctx = g.next(CTX);
        float[] merged;
        Map<String, float[]> replaced = lora.mergedWeights(model.weights(), scale);
        assertEquals(TinyLora.MODULES.size(), replaced.size());
        try (var r = new UNetRunner(model, backend, replaced)) {
            merged = unet(r, x, 400, ctx);
        }
        float[] premerged;
        try (var m = UNetModel.load(dir); var r = new UNetRunner(m, backend)) {
            premerged = unet(r, x, 400, ctx);
        }
        float[] base = unet(runner, x, 400, ctx);
        Compare same = Compare.of(premerged, merged), changed = Compare.of(base, merged);
        System.out.printf("LoRA: merged vs pre-merged %.1f dB; vs no LoRA %.1f dB%n", same.psnr(), changed.psnr());
        assertTrue(same.psnr() >= 120, "merged vs pre-merged: " + same.psnr() + " dB");
        assertTrue(changed.psnr() < 50, "the LoRA barely changed the output: " + changed.psnr() + " dB");
    }
}
