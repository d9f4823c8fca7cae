package dev.latte.tests.deepcache;

import dev.latte.cpu.CpuBackend;
import dev.latte.lora.Lora;
import dev.latte.model.DeepCacheRunner;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.sampling.DdimScheduler;
import dev.latte.sampling.Gaussian;
import dev.latte.sampling.GuidedUNet;
import dev.latte.sampling.LcmScheduler;
import dev.latte.sampling.NoiseSource;
import dev.latte.sampling.Sampler;
import dev.latte.sampling.SamplingInputs.Conditioning;
import dev.latte.sampling.Scheduler;
import dev.latte.sampling.SchedulerConfig;
import dev.latte.tests.Resources;
import dev.latte.tests.sampling.TinyLora;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What no golden covers: interval 1 is the plain loop bit for bit, LCM and unguided runs, and the
 * cache is never read across a change of shape, batch or weights (a LoRA merged in).
 */
class DeepCacheSamplingTest {
    static final int LATENT = 4 * 16 * 16, CTX = 77 * 32;
    static CpuBackend backend;
    static UNetModel model;
    static UNetRunner runner;
    @TempDir
    static Path tmp;

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

    static Conditioning context(long seed) {
        Gaussian g = new Gaussian(seed);
        return new Conditioning(g.next(CTX), g.next(CTX), 1, 77, 32);
    }

    /** Every step's latents of one run; interval 0: no DeepCache. */
    static List<float[]> run(Scheduler s, double guidance, int interval, List<Boolean> fullOut) {
        List<float[]> steps = new ArrayList<>();
        float[] init = new Gaussian(5).next(LATENT);
        try (DeepCacheRunner cache = new DeepCacheRunner(0)) {
            GuidedUNet unet = new GuidedUNet(runner, context(3), guidance, 16, 16);
            if (interval > 0) {
                unet.withDeepCache(cache, interval);
            }
            Sampler.run(s, unet, init, new Gaussian(9), (i, n, t, x, d) -> steps.add(x));
            fullOut.addAll(unet.fullSteps());
        }
        return steps;
    }

    @Test
    void intervalOneIsThePlainLoopBitForBit() {
        for (Scheduler s : List.of(new DdimScheduler(SchedulerConfig.SD15, 6, 0),
                new LcmScheduler(SchedulerConfig.SD15, 4))) {
            double guidance = s instanceof LcmScheduler ? 1 : 7.5;
            List<Boolean> full = new ArrayList<>();
            List<float[]> plain = run(s, guidance, 0, new ArrayList<>());
            List<float[]> cached = run(s, guidance, 1, full);
            assertEquals(java.util.Collections.nCopies(plain.size(), true), full);
            for (int i = 0; i < plain.size(); i++) {
                assertArrayEquals(plain.get(i), cached.get(i), s.name() + " step " + i);
            }
        }
    }

    @Test
    void lcmWithoutGuidanceCachesItsOneHalfBatch() {
        Scheduler lcm = new LcmScheduler(SchedulerConfig.SD15, 4);
        List<Boolean> full = new ArrayList<>();
        List<float[]> cached = run(lcm, 1, 2, full);
        List<float[]> plain = run(lcm, 1, 0, new ArrayList<>());
        assertEquals(List.of(true, false, true, false), full);
        assertArrayEquals(plain.get(0), cached.get(0), "step 0 is full");
        assertFalse(java.util.Arrays.equals(plain.get(1), cached.get(1)), "step 1 reads the cache");
    }

    static float[] plain(UNetRunner r, UNetRunner.Dims d, float[] x, float[] ctx) {
        return r.forward(d, x, new float[] {500}, ctx, Set.of(UNetRunner.OUT)).get(UNetRunner.OUT);
    }

    @Test
    void aNewShapeOrBatchRunsFullInsteadOfReadingTheCache() {
        Gaussian g = new Gaussian(21);
        var d16 = new UNetRunner.Dims(2, 16, 16, 77);
        var d8 = new UNetRunner.Dims(2, 8, 8, 77);
        var d16b1 = new UNetRunner.Dims(1, 16, 16, 77);
        float[] x16 = g.next(2 * LATENT), x8 = g.next(2 * 4 * 64), x16b1 = g.next(LATENT);
        float[] ctx2 = g.next(2 * CTX), ctx1 = g.next(CTX);
        try (DeepCacheRunner cache = new DeepCacheRunner(0)) {
            assertTrue(cache.forward(runner, d16, x16, new float[] {500}, ctx2, true).full());
            assertTrue(cache.cacheValid(runner, d16));
            assertFalse(cache.cacheValid(runner, d8));
            var s8 = cache.forward(runner, d8, x8, new float[] {500}, ctx2, false);
            assertTrue(s8.full(), "a new resolution must not read the 16x16 cache");
            assertArrayEquals(plain(runner, d8, x8, ctx2), s8.out());
            assertFalse(cache.forward(runner, d8, x8, new float[] {500}, ctx2, false).full(), "the 8x8 cache now");
            var b1 = cache.forward(runner, d16b1, x16b1, new float[] {500}, ctx1, false);
            assertTrue(b1.full(), "a new batch must not read the batch-2 cache");
            assertArrayEquals(plain(runner, d16b1, x16b1, ctx1), b1.out());
            var back = cache.forward(runner, d16, x16, new float[] {500}, ctx2, false);
            assertTrue(back.full(), "the 16x16 batch-2 cache was dropped when the shape changed");
        }
    }

    @Test
    void aLoraMergeRunsFullInsteadOfReadingTheCache() {
        Path loraFile = TinyLora.write(model.weights(), tmp.resolve("lora.safetensors"), 4);
        Map<String, float[]> merged = Lora.load(loraFile, model.weights()).mergedWeights(model.weights(), 1.0);
        Gaussian g = new Gaussian(22);
        var d = new UNetRunner.Dims(2, 16, 16, 77);
        float[] x = g.next(2 * LATENT), ctx = g.next(2 * CTX);
        try (UNetRunner lora = new UNetRunner(model, backend, merged); DeepCacheRunner cache = new DeepCacheRunner(0)) {
            assertTrue(cache.forward(runner, d, x, new float[] {500}, ctx, true).full());
            var s = cache.forward(lora, d, x, new float[] {500}, ctx, false);
            assertTrue(s.full(), "other weights must not read the base model's cache");
            float[] want = plain(lora, d, x, ctx);
            assertArrayEquals(want, s.out());
            assertNotEquals(0, java.util.Arrays.compare(want, plain(runner, d, x, ctx)), "the LoRA changes the output");
            assertFalse(cache.forward(lora, d, x, new float[] {500}, ctx, false).full());
            assertTrue(cache.forward(runner, d, x, new float[] {500}, ctx, false).full(), "and back");
        }
    }

    @Test
    void aBadIntervalIsRefused() {
        try (DeepCacheRunner cache = new DeepCacheRunner(0)) {
            var unet = new GuidedUNet(runner, context(1), 7.5, 16, 16);
            var e = assertThrows(IllegalArgumentException.class, () -> unet.withDeepCache(cache, 0));
            assertEquals("DeepCache interval must be at least 1, got 0", e.getMessage());
        }
    }
}
