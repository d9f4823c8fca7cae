package dev.latte.sampling;

import dev.latte.sampling.SchedulerConfig.PredictionType;
import dev.latte.sampling.SchedulerConfig.TimestepSpacing;
import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Schedules against numpy running diffusers' own formulas (the expected arrays were printed by
 * it), and trajectories against identities that hold whatever the numbers: the three prediction
 * types describe one model, and η·σ·noise is exactly what η adds.
 */
class SchedulerTest {
    static final SchedulerConfig SD = SchedulerConfig.SD15;

    static int[] ddim(TimestepSpacing s, int n) {
        return DdimScheduler.timesteps(SD.withTimestepSpacing(s), n);
    }

    @Test
    void ddimLeadingMatchesDiffusers() {
        assertArrayEquals(new int[] {1}, ddim(TimestepSpacing.LEADING, 1));
        assertArrayEquals(new int[] {667, 334, 1}, ddim(TimestepSpacing.LEADING, 3));
        assertArrayEquals(new int[] {853, 711, 569, 427, 285, 143, 1}, ddim(TimestepSpacing.LEADING, 7));
        assertArrayEquals(new int[] {951, 901, 851, 801, 751, 701, 651, 601, 551, 501, 451, 401, 351, 301, 251, 201,
                151, 101, 51, 1}, ddim(TimestepSpacing.LEADING, 20));
    }

    @Test
    void ddimTrailingMatchesDiffusers() {
        assertArrayEquals(new int[] {999}, ddim(TimestepSpacing.TRAILING, 1));
        assertArrayEquals(new int[] {999, 666, 332}, ddim(TimestepSpacing.TRAILING, 3));
        assertArrayEquals(new int[] {999, 856, 713, 570, 428, 285, 142}, ddim(TimestepSpacing.TRAILING, 7));
        // 937.5 rounds half to even, as numpy does
        assertArrayEquals(new int[] {999, 937, 874, 811, 749, 687, 624, 561, 499, 437, 374, 311, 249, 187, 124, 61},
                ddim(TimestepSpacing.TRAILING, 16));
    }

    @Test
    void ddimLinspaceMatchesDiffusers() {
        assertArrayEquals(new int[] {0}, ddim(TimestepSpacing.LINSPACE, 1));
        assertArrayEquals(new int[] {999, 500, 0}, ddim(TimestepSpacing.LINSPACE, 3));
        assertArrayEquals(new int[] {999, 832, 666, 500, 333, 166, 0}, ddim(TimestepSpacing.LINSPACE, 7));
        assertArrayEquals(new int[] {999, 932, 866, 799, 733, 666, 599, 533, 466, 400, 333, 266, 200, 133, 67, 0},
                ddim(TimestepSpacing.LINSPACE, 16));
    }

    @Test
    void lcmMatchesDiffusers() {
        assertArrayEquals(new int[] {999}, LcmScheduler.timesteps(SD, 1));
        assertArrayEquals(new int[] {999, 499}, LcmScheduler.timesteps(SD, 2));
        assertArrayEquals(new int[] {999, 679, 339}, LcmScheduler.timesteps(SD, 3));
        assertArrayEquals(new int[] {999, 759, 499, 259}, LcmScheduler.timesteps(SD, 4));
        assertArrayEquals(new int[] {999, 879, 759, 639, 499, 379, 259, 139}, LcmScheduler.timesteps(SD, 8));
        assertArrayEquals(new int[] {999, 679, 359}, LcmScheduler.timesteps(SD.withOriginalInferenceSteps(25), 3));
    }

    @Test
    void badStepCountsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> ddim(TimestepSpacing.LEADING, 0));
        // leading + steps_offset 1 would index ᾱ[1000]
        var e = assertThrows(IllegalArgumentException.class, () -> ddim(TimestepSpacing.LEADING, 1000));
        assertTrue(e.getMessage().contains("1000"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> LcmScheduler.timesteps(SD, 51));
        assertThrows(IllegalArgumentException.class, () -> new DdimScheduler(SD, 10, -0.5));
    }

    @Test
    void alphasCumprodIsTheScaledLinearSchedule() {
        float[] a = SD.alphasCumprod();
        assertEquals(1000, a.length);
        assertEquals(1 - 0.00085, a[0], 1e-7);
        // ᾱ_999 = ∏(1 − β_i), β_i = (√0.00085 + i·(√0.012 − √0.00085)/999)², in double
        double p = 1;
        for (int i = 0; i < 1000; i++) {
            double b = Math.sqrt(0.00085) + i * (Math.sqrt(0.012) - Math.sqrt(0.00085)) / 999;
            p *= 1 - b * b;
        }
        assertEquals(p, a[999], 1e-6 * p);
        for (int i = 1; i < 1000; i++) {
            assertTrue(a[i] < a[i - 1], "not decreasing at " + i);
        }
    }

    /** The goldens' synthetic model. */
    static float[] eps(float[] x, int t) {
        float[] e = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            e[i] = (float) (0.1 * x[i] + Math.sin(t / 100.0));
        }
        return e;
    }

    /** The same model, asked for v or x₀ instead of ε. */
    static NoiseModel reparameterised(PredictionType type) {
        float[] ac = SD.alphasCumprod();
        return (x, t) -> {
            float[] e = eps(x, t);
            double sa = Math.sqrt(ac[t]), sb = Math.sqrt(1 - ac[t]);
            float[] out = new float[x.length];
            for (int i = 0; i < x.length; i++) {
                double x0 = (x[i] - sb * e[i]) / sa;
                out[i] = (float) (type == PredictionType.V_PREDICTION ? sa * e[i] - sb * x0 : x0);
            }
            return out;
        };
    }

    static float[] start() {
        return new Gaussian(7).next(2 * 4 * 8 * 8);
    }

    static void assertClose(float[] want, float[] got, double tol) {
        assertEquals(want.length, got.length);
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], got[i], tol * Math.max(1, Math.abs(want[i])), "at " + i);
        }
    }

    @Test
    void vAndSamplePredictionFollowTheEpsilonTrajectory() {
        for (PredictionType type : new PredictionType[] {PredictionType.V_PREDICTION, PredictionType.SAMPLE}) {
            float[] ref = Sampler.run(new DdimScheduler(SD, 20, 0), SchedulerTest::eps, start(), NoiseSource.NONE,
                    Sampler.Listener.NONE);
            float[] got = Sampler.run(new DdimScheduler(SD.withPredictionType(type), 20, 0), reparameterised(type),
                    start(), NoiseSource.NONE, Sampler.Listener.NONE);
            assertClose(ref, got, 2e-4);

            ref = Sampler.run(new LcmScheduler(SD, 4), SchedulerTest::eps, start(), new Gaussian(1),
                    Sampler.Listener.NONE);
            got = Sampler.run(new LcmScheduler(SD.withPredictionType(type), 4), reparameterised(type), start(),
                    new Gaussian(1), Sampler.Listener.NONE);
            assertClose(ref, got, 2e-4);
        }
    }

    @Test
    void etaAddsExactlyEtaSigmaNoise() {
        double eta = 0.7;
        float[] x = start();
        float[] z = new Gaussian(3).next(x.length);
        int i = 5;
        var det = new DdimScheduler(SD, 20, 0);
        var sto = new DdimScheduler(SD, 20, eta);
        int t = det.timesteps()[i], prev = t - 50;
        float[] out = eps(x, t);
        float[] a = det.step(i, out, x, NoiseSource.NONE).prevSample();
        float[] b = sto.step(i, out, x, n -> z.clone()).prevSample();
        float[] ac = SD.alphasCumprod();
        double at = ac[t], ap = ac[prev];
        double sigma2 = (1 - ap) / (1 - at) * (1 - at / ap);
        double std = eta * Math.sqrt(sigma2);
        for (int j = 0; j < x.length; j++) {
            double x0 = (x[j] - Math.sqrt(1 - at) * out[j]) / Math.sqrt(at);
            // deterministic part shrinks its ε direction from √(1−ᾱ') to √(1−ᾱ'−σ²)
            double want = a[j] + (Math.sqrt(1 - ap - std * std) - Math.sqrt(1 - ap)) * out[j] + std * z[j];
            assertEquals(want, b[j], 1e-5, "at " + j);
            assertEquals(Math.sqrt(ap) * x0 + Math.sqrt(1 - ap) * out[j], a[j], 1e-5);
        }
    }

    /** Counts draws and checks each is one latent's worth. */
    static final class Counting implements NoiseSource {
        final AtomicInteger draws = new AtomicInteger();
        final Gaussian g = new Gaussian(9);

        @Override
        public float[] next(int n) {
            draws.incrementAndGet();
            return g.next(n);
        }
    }

    @Test
    void noiseIsDrawnWhereDiffusersDrawsIt() {
        for (Scheduler s : new Scheduler[] {new LcmScheduler(SD, 4), new LcmScheduler(SD, 1),
                new DdimScheduler(SD, 10, 0), new DdimScheduler(SD, 10, 1)}) {
            var c = new Counting();
            Sampler.run(s, SchedulerTest::eps, start(), c, Sampler.Listener.NONE);
            assertEquals(s.noiseDraws(), c.draws.get(), s.name());
        }
        assertEquals(3, new LcmScheduler(SD, 4).noiseDraws());
        assertEquals(0, new DdimScheduler(SD, 10, 0).noiseDraws());
        assertEquals(10, new DdimScheduler(SD, 10, 1).noiseDraws());
    }

    @Test
    void lcmLastStepReturnsTheDenoisedSample() {
        var lcm = new LcmScheduler(SD, 2);
        float[] x = start();
        var s = lcm.step(1, eps(x, 499), x, NoiseSource.NONE);
        assertArrayEquals(s.denoised(), s.prevSample());
        // at t = 999 the boundary condition is almost pure c_out·x₀
        var first = lcm.step(0, eps(x, 999), x, new Gaussian(2));
        double at = SD.alphasCumprod()[999];
        float[] e = eps(x, 999);
        double x0 = (x[0] - Math.sqrt(1 - at) * e[0]) / Math.sqrt(at);
        assertEquals(x0, first.denoised()[0], 1e-4 * Math.abs(x0));
    }

    /**
     * denoised = c_out·x₀ + c_skip·x with s = 10·t: c_skip = 0.25/(s² + 0.25), c_out = s/√(s² + 0.25).
     * The goldens cannot see c_skip (≈ 4e-8 at t = 259), so it is pinned here.
     */
    @Test
    void lcmBoundaryConditionScalesTheTimestep() {
        var lcm = new LcmScheduler(SD.withPredictionType(PredictionType.SAMPLE), 4); // model output is x₀
        float[] x = {1000, 0}, x0 = {0, 1};
        float[] d = lcm.step(3, x0, x, NoiseSource.NONE).denoised();  // t = 259, the last step: no noise
        double s = 2590;
        assertEquals(1000 * 0.25 / (s * s + 0.25), d[0], 1e-6 * d[0]);
        assertEquals(s / Math.sqrt(s * s + 0.25), d[1], 1e-7);
    }

    @Test
    void listenerSeesEveryStep() {
        var seen = new StringBuilder();
        Sampler.run(new DdimScheduler(SD, 3, 0), SchedulerTest::eps, start(), NoiseSource.NONE,
                (i, n, t, x, d) -> seen.append(i).append('/').append(n).append('@').append(t).append(' '));
        assertEquals("0/3@667 1/3@334 2/3@1 ", seen.toString());
    }
}
