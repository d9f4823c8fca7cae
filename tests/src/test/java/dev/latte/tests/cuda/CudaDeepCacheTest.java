package dev.latte.tests.cuda;

import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.CudaBackend.Precision;
import dev.latte.model.DeepCacheRunner;
import dev.latte.model.UNetRunner;
import dev.latte.tests.Resources;
import dev.latte.tests.deepcache.DeepCacheGoldenTest;
import dev.latte.weights.SafeTensorsFile;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * DeepCache on the CUDA backend, fp32: the replay of DeepCache's own i3-b0 trajectory at the
 * CUDA fp32 gate (≥ 100 dB on every eps.i and latents.i, the helper's full steps and MACs), and
 * partial and full steps that make no device allocation once the shape's arenas exist. Skips,
 * naming the reason, where no CUDA device can be opened.
 */
class CudaDeepCacheTest extends CudaUNetTinyFixture {
    @Test
    void replaysDeepCachesOwnTrajectoryInFp32() {
        try (CudaBackend backend = new CudaBackend(ctx, Precision.FP32); UNetRunner runner = new UNetRunner(model, backend);
             SafeTensorsFile golden = SafeTensorsFile.open(
                     Resources.golden("deepcache/tiny-ddim20-cfg7.5-i3-b0.safetensors"))) {
            var r = DeepCacheGoldenTest.replay(runner, golden, 3, 0);
            DeepCacheGoldenTest.check(golden, r, "i3-b0 (cuda fp32)");
            assertArrayEquals(golden.toLongArray("full_steps"), r.fullSteps(), "full_steps");
            assertArrayEquals(golden.toLongArray("step_macs"), r.stepMacs(), "executed MACs per step");
        }
    }

    @Test
    void stepsAllocateNothing() {
        try (CudaBackend backend = new CudaBackend(ctx, Precision.FP32); UNetRunner runner = new UNetRunner(model, backend);
             DeepCacheRunner cache = new DeepCacheRunner(0)) {
            var d = new UNetRunner.Dims(2, 16, 16, 77);
            Random rnd = new Random(7);
            float[] x = new float[2 * 4 * 16 * 16], c = new float[2 * 77 * 32];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) rnd.nextGaussian();
            }
            for (int i = 0; i < c.length; i++) {
                c[i] = (float) rnd.nextGaussian();
            }
            assertTrue(cache.forward(runner, d, x, new float[] {901}, c, true).full()); // makes the arenas
            long before = ctx.allocationCount();
            var partial = cache.forward(runner, d, x, new float[] {851}, c, false);
            var again = cache.forward(runner, d, x, new float[] {851}, c, false);
            var full = cache.forward(runner, d, x, new float[] {801}, c, true);
            assertEquals(before, ctx.allocationCount(), "cuMemAlloc calls inside DeepCache steps");
            assertFalse(partial.full());
            assertTrue(full.full());
            assertArrayEquals(partial.out(), again.out(), "a partial step reads the cache, not its own leftovers");
        }
    }
}
