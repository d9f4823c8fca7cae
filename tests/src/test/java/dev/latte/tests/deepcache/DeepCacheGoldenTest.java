package dev.latte.tests.deepcache;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.latte.core.Backend;
import dev.latte.core.Compare;
import dev.latte.cpu.CpuBackend;
import dev.latte.model.DeepCacheRunner;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.sampling.DdimScheduler;
import dev.latte.sampling.GuidedUNet;
import dev.latte.sampling.NoiseSource;
import dev.latte.sampling.Sampler;
import dev.latte.sampling.SamplingInputs.Conditioning;
import dev.latte.sampling.SchedulerConfig;
import dev.latte.tests.Resources;
import dev.latte.weights.SafeTensorsFile;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Replays DeepCache's own trajectories (golden/deepcache, made by DeepCacheSDHelper around
 * diffusers): the same init latents and contexts, DDIM-20 with guidance 7.5, with and without
 * the cache; every step's guided noise prediction and latents must land ≥ 100 dB from the
 * golden, the full steps must be the helper's, and each step's executed MACs its hooks' count.
 */
public class DeepCacheGoldenTest {
    static final double MIN_PSNR = 100;
    static Backend backend;
    static UNetModel model;
    static UNetRunner runner;

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

    /** What one replay produced: per step, the guided eps and latents, full or not, MACs. */
    public record Replay(List<float[]> eps, List<float[]> latents, long[] fullSteps, long[] stepMacs) {
    }

    /** Replays {@code golden}'s inputs through DDIM-20 with guidance 7.5; interval 0: no DeepCache. */
    public static Replay replay(UNetRunner runner, SafeTensorsFile golden, int interval, int branch) {
        float[] init = golden.toFloatArray("init_latents");
        var ctx = new Conditioning(golden.toFloatArray("cond"), golden.toFloatArray("uncond"), 1, 77, 32);
        var scheduler = new DdimScheduler(SchedulerConfig.SD15, 20, 0);
        assertArrayEquals(golden.toLongArray("timesteps"),
                Arrays.stream(scheduler.timesteps()).asLongStream().toArray(), "timesteps");
        List<float[]> eps = new ArrayList<>(), latents = new ArrayList<>();
        try (DeepCacheRunner cache = new DeepCacheRunner(branch)) {
            GuidedUNet unet = new GuidedUNet(runner, ctx, 7.5, 16, 16);
            if (interval > 0) {
                unet.withDeepCache(cache, interval);
            }
            Sampler.run(scheduler, (x, t) -> {
                float[] e = unet.predict(x, t);
                eps.add(e);
                return e;
            }, init, NoiseSource.NONE, (i, n, t, x, d) -> latents.add(x));
            long[] full = unet.fullSteps().stream().mapToLong(f -> f ? 1 : 0).toArray();
            long[] macs = unet.stepMacs().stream().mapToLong(Long::longValue).toArray();
            return new Replay(eps, latents, full, macs);
        }
    }

    /** Every latents.i and eps.i ≥ 100 dB; returns the lowest PSNR of each, printed for the README. */
    public static double[] check(SafeTensorsFile golden, Replay r, String label) {
        double worstEps = Double.POSITIVE_INFINITY, worstLatents = Double.POSITIVE_INFINITY;
        List<String> failures = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            Compare e = Compare.of(golden.toFloatArray("eps." + i), r.eps().get(i));
            Compare l = Compare.of(golden.toFloatArray("latents." + i), r.latents().get(i));
            worstEps = Math.min(worstEps, e.psnr());
            worstLatents = Math.min(worstLatents, l.psnr());
            if (!(e.psnr() >= MIN_PSNR) || !(l.psnr() >= MIN_PSNR)) {
                failures.add(String.format("step %d: eps %.1f dB, latents %.1f dB", i, e.psnr(), l.psnr()));
            }
        }
        Compare fin = Compare.of(golden.toFloatArray("latents"), r.latents().get(19));
        System.out.printf("%s: lowest eps.i %.1f dB, lowest latents.i %.1f dB, final %.1f dB%n", label, worstEps,
                worstLatents, fin.psnr());
        assertTrue(failures.isEmpty(), label + ": " + failures);
        return new double[] {worstEps, worstLatents};
    }

    @ParameterizedTest
    @ValueSource(strings = {"nocache", "i3-b0"})
    void replaysDeepCachesOwnTrajectory(String run) {
        try (SafeTensorsFile golden = SafeTensorsFile.open(
                Resources.golden("deepcache/tiny-ddim20-cfg7.5-" + run + ".safetensors"))) {
            boolean cached = run.equals("i3-b0");
            Replay r = replay(runner, golden, cached ? 3 : 0, 0);
            check(golden, r, run + " (cpu)");
            assertArrayEquals(golden.toLongArray("full_steps"), r.fullSteps(), "full_steps");
            assertArrayEquals(golden.toLongArray("step_macs"), r.stepMacs(), "executed MACs per step");
        }
    }

    /**
     * The full and the partial step share one arena (as large as the larger plan) and compute, step
     * after step, exactly what each computes in an arena of its own, with the feature one tensor
     * outside both.
     */
    @Test
    void fullAndPartialStepsShareOneArenaAndComputeTheSame() {
        UNetRunner.Dims d = new UNetRunner.Dims(2, 16, 16, 77);
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(9);
        try (DeepCacheRunner cache = new DeepCacheRunner(0)) {
            dev.latte.graph.Graph[] g = cache.graphs(runner, d);
            String feature = dev.latte.unet.UNet2DConditionModel.CACHED_FEATURE;
            java.util.Set<String> ext = java.util.Set.of(feature);
            var fp = dev.latte.plan.MemoryPlanner.plan(g[0], backend.activationBytes(), java.util.Set.of("out"), ext,
                    dev.latte.plan.MemoryPlanner.Options.defaults());
            var pp = dev.latte.plan.MemoryPlanner.plan(g[1], backend.activationBytes(), java.util.Set.of("out"), ext,
                    dev.latte.plan.MemoryPlanner.Options.defaults());
            dev.latte.core.Tensor f = backend.allocate(g[0].outputs().get(feature).shape());
            var bound = java.util.Map.of(feature, f);
            var o = dev.latte.exec.Steps.Options.defaults();
            try (var full = dev.latte.exec.Steps.prepare(backend, g[0], fp, runner.params(), bound, o);
                 var partial = dev.latte.exec.Steps.prepare(backend, g[1], pp, runner.params(), bound, o)) {
                boolean[] fullSteps = {true, false, false, true, false};
                for (int i = 0; i < fullSteps.length; i++) {
                    float[] x = gaussian(rnd, 2 * 4 * 16 * 16), ctx = gaussian(rnd, 2 * 77 * 32);
                    float[] t = {900 - 100 * i, 900 - 100 * i};
                    DeepCacheRunner.Step got = cache.forward(runner, d, x, t, ctx, fullSteps[i]);
                    assertEquals(fullSteps[i], got.full());
                    var own = fullSteps[i] ? full : partial;
                    own.write("sample", x);
                    own.write("timestep", t);
                    own.write("encoder_hidden_states", ctx);
                    own.run();
                    assertArrayEquals(own.read("out"), got.out(), "step " + i + (fullSteps[i] ? " (full)" : " (partial)"));
                }
            } finally {
                backend.release(f);
            }
            var arenas = cache.arenas();
            assertTrue(arenas[0].arena() == arenas[1].arena(), "one arena for both steps");
            long size = arenas[0].arena().shape().numel() * (long) backend.activationBytes();
            assertTrue(size >= Math.max(fp.arenaBytes(), pp.arenaBytes()) && size < fp.arenaBytes() + pp.arenaBytes(),
                    size + " bytes for plans of " + fp.arenaBytes() + " and " + pp.arenaBytes());
            System.out.printf("deepcache unet-tiny 2x16x16: one arena of %d bytes for plans of %d and %d bytes%n",
                    Math.max(fp.arenaBytes(), pp.arenaBytes()), fp.arenaBytes(), pp.arenaBytes());
        }
    }

    private static float[] gaussian(java.util.SplittableRandom rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }

    /**
     * Branches 1–8 have no stored trajectory, but summary.json has the helper's final-latent PSNR
     * against the baseline for each (interval 3) and macs.json each partial call's MACs: a replay
     * that follows the helper lands on the same PSNR to a few thousandths of a dB.
     */
    @Test
    void everyBranchMatchesTheHelpersSweep() throws IOException {
        ObjectMapper json = new ObjectMapper();
        JsonNode macs = json.readTree(Resources.golden("deepcache/macs.json").toFile()).get("unet-tiny");
        JsonNode sweep = json.readTree(Resources.golden("deepcache/summary.json").toFile()).get("sweep_interval3")
                .get("tiny (public inputs)");
        long fullMacs = macs.get("full").get("total").asLong();
        try (SafeTensorsFile golden = SafeTensorsFile.open(
                Resources.golden("deepcache/tiny-ddim20-cfg7.5-nocache.safetensors"))) {
            float[] baseline = golden.toFloatArray("latents");
            for (JsonNode row : sweep) {
                int b = row.get("branch").asInt();
                Replay r = replay(runner, golden, 3, b);
                double psnr = Compare.of(baseline, r.latents().get(19)).psnr();
                double want = row.get("psnr_final_db").asDouble();
                System.out.printf("branch %d: %.4f dB vs baseline (helper %.4f dB)%n", b, psnr, want);
                assertEquals(want, psnr, 0.01, "branch " + b + ": final latents vs the no-cache baseline");
                long partial = macs.get("partial").get(Integer.toString(b)).get("total").asLong();
                for (int i = 0; i < 20; i++) {
                    assertEquals(i % 3 == 0 ? fullMacs : partial, r.stepMacs()[i], "branch " + b + " step " + i);
                }
            }
        }
    }
}
