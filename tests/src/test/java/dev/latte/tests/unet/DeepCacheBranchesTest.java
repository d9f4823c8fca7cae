package dev.latte.tests.unet;

import dev.latte.core.Compare;
import dev.latte.core.Tensor;
import dev.latte.cpu.CpuBackend;
import dev.latte.graph.Graph;
import dev.latte.graph.Op;
import dev.latte.model.DeepCacheRunner;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.unet.UNet2DConditionModel;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every DeepCache branch id of configs no golden covers — layers_per_block 1 (where branches
 * 3B+1 and 3B+2 reuse the same feature), four levels, no mid block — checked against an oracle
 * made from the full graph alone: a partial step at inputs x2 with the feature cached at x1 must
 * equal the full graph run at x2 with its {@code deepcache.feature} value overwritten by the
 * x1 feature (what DeepCache's skipped modules do: return their stored output). At equal inputs a
 * partial step must reproduce the full step exactly, and it must execute fewer MACs.
 */
class DeepCacheBranchesTest {
    static CpuBackend backend;
    @TempDir
    static Path tmp;
    static final Map<String, String> CONFIGS = Map.of(
            "lpb1-3levels", RandomModels.tinyConfig(""),
            "lpb2-4levels", RandomModels.tinyConfig("""
                    "block_out_channels": [32, 32, 64, 64], "layers_per_block": 2,
                    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                         "DownBlock2D"],
                    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
                    """),
            "lpb1-4levels-nomid", RandomModels.tinyConfig("""
                    "block_out_channels": [32, 32, 64, 64], "mid_block_type": null,
                    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"]
                    """));
    static final Map<String, UNetModel> models = new HashMap<>();
    static final Map<String, UNetRunner> runners = new HashMap<>();

    @BeforeAll
    static void start() throws IOException {
        backend = new CpuBackend();
        long seed = 31;
        for (var e : CONFIGS.entrySet()) {
            UNetModel m = UNetModel.load(RandomModels.write(tmp.resolve(e.getKey()), e.getValue(), seed++));
            models.put(e.getKey(), m);
            runners.put(e.getKey(), new UNetRunner(m, backend));
        }
    }

    @AfterAll
    static void stop() {
        runners.values().forEach(UNetRunner::close);
        models.values().forEach(UNetModel::close);
        backend.close();
    }

    @TestFactory
    List<DynamicTest> everyBranchIsTheFullGraphWithTheFeatureReplaced() {
        List<DynamicTest> tests = new ArrayList<>();
        for (String name : List.of("lpb1-3levels", "lpb2-4levels", "lpb1-4levels-nomid")) {
            int branches = models.get(name).unet().deepCacheBranches();
            assertEquals(3 * models.get(name).config().levels(), branches);
            long[] partialMacs = new long[branches];
            for (int b = 0; b < branches; b++) {
                int branch = b;
                tests.add(DynamicTest.dynamicTest(name + " branch " + b, () -> partialMacs[branch] = check(name, branch)));
            }
            tests.add(DynamicTest.dynamicTest(name + " MACs grow with the branch id", () -> {
                for (int b = 1; b < branches; b++) {
                    assertTrue(partialMacs[b] >= partialMacs[b - 1] && partialMacs[b - 1] > 0,
                            "branch " + b + " runs fewer MACs than " + (b - 1));
                }
                if (models.get(name).config().layersPerBlock().getFirst() == 1) {
                    // DeepCache's 3 layers per block over 2 pairs: L 1 and 2 reuse the same feature
                    for (int blk = 0; blk < branches / 3; blk++) {
                        assertEquals(partialMacs[3 * blk + 1], partialMacs[3 * blk + 2], "block " + blk);
                    }
                }
            }));
        }
        return tests;
    }

    /** Checks one branch; returns its partial step's MACs. */
    static long check(String name, int branch) {
        UNetRunner runner = runners.get(name);
        var d = new UNetRunner.Dims(2, 16, 16, 5);
        Random rnd = new Random(100 + branch);
        float[] x1 = RandomModels.gaussian(rnd, 2 * 4 * 16 * 16), x2 = RandomModels.gaussian(rnd, 2 * 4 * 16 * 16);
        float[] ctx = RandomModels.gaussian(rnd, 2 * 5 * 32);
        float[] t1 = {801, 801}, t2 = {741, 741};
        try (DeepCacheRunner cache = new DeepCacheRunner(branch)) {
            var full = cache.forward(runner, d, x1, t1, ctx, true);
            assertTrue(full.full());
            assertArrayEquals(plain(runner, d, x1, t1, ctx), full.out(), "full step vs the plain UNet");
            var same = cache.forward(runner, d, x1, t1, ctx, false);
            assertFalse(same.full());
            assertArrayEquals(full.out(), same.out(), "partial step at the full step's inputs");

            Graph fullGraph = cache.graphs(runner, d)[0];
            if (!DeepCacheRunner.readsCache(cache.graphs(runner, d)[1])) {
                // no mid block, last down block, L >= layers_per_block: the helper recomputes everything
                var p = cache.forward(runner, d, x2, t2, ctx, false);
                assertArrayEquals(plain(runner, d, x2, t2, ctx), p.out(), "a partial step that reuses nothing");
                assertEquals(full.macs(), p.macs());
                return p.macs();
            }
            float[] feature = run(fullGraph, runner, x1, t1, ctx, -1, null, UNet2DConditionModel.CACHED_FEATURE);
            float[] oracle = run(fullGraph, runner, x2, t2, ctx, fullGraph.outputs()
                    .get(UNet2DConditionModel.CACHED_FEATURE).id(), feature, UNetRunner.OUT);
            var partial = cache.forward(runner, d, x2, t2, ctx, false);
            assertFalse(partial.full());
            assertArrayEquals(oracle, partial.out(), "partial step vs the full graph with the cached feature");
            Compare vsFresh = Compare.of(plain(runner, d, x2, t2, ctx), partial.out());
            assertTrue(vsFresh.psnr() < 100, "the partial step reads the cache: " + vsFresh.psnr() + " dB from fresh");
            assertTrue(partial.macs() < full.macs(), partial.macs() + " >= " + full.macs());
            assertEquals(DeepCacheRunner.macs(runner.graph(d)), full.macs());
            return partial.macs();
        }
    }

    static float[] plain(UNetRunner r, UNetRunner.Dims d, float[] x, float[] t, float[] ctx) {
        return r.forward(d, x, t, ctx, Set.of(UNetRunner.OUT)).get(UNetRunner.OUT);
    }

    /** Runs g op by op, overwriting value {@code replaceId} with {@code replacement} once written; returns output {@code want}. */
    static float[] run(Graph g, UNetRunner r, float[] x, float[] t, float[] ctx, int replaceId, float[] replacement,
                       String want) {
        Tensor[] env = new Tensor[g.values().size()];
        List<Tensor> owned = new ArrayList<>();
        try {
            g.params().forEach((n, v) -> env[v.id()] = r.params().get(n));
            Map<String, float[]> host = Map.of("sample", x, "timestep", t, "encoder_hidden_states", ctx);
            g.inputs().forEach((n, v) -> owned.add(env[v.id()] = backend.upload(v.shape(), host.get(n))));
            for (Op op : g.ops()) {
                owned.add(env[op.out()] = backend.allocate(g.value(op.out()).shape()));
                op.run(backend, env);
                if (op.out() == replaceId) {
                    backend.write(env[op.out()], replacement);
                }
            }
            return backend.download(env[g.outputs().get(want).id()]);
        } finally {
            owned.forEach(backend::release);
        }
    }

    @Test
    void anUnsupportedBranchNamesTheValidRange() {
        UNetRunner runner = runners.get("lpb2-4levels");
        try (DeepCacheRunner cache = new DeepCacheRunner(12)) {
            var e = assertThrows(IllegalArgumentException.class, () -> cache.forward(runner,
                    new UNetRunner.Dims(1, 16, 16, 5), new float[4 * 256], new float[] {1}, new float[5 * 32], true));
            assertEquals("DeepCache branch 12 is out of range: this UNet has 4 down blocks, so branches 0..11",
                    e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> new DeepCacheRunner(-1));
    }
}
