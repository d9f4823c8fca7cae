package dev.latte.tests.plan;

import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.plan.BuiltinConfigs;
import dev.latte.plan.MemoryPlan;
import dev.latte.plan.MemoryPlanner;
import dev.latte.unet.UNet2DConditionModel;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The planner on the real SD1.5 UNet graph (fused, as it runs), fp16, no weights needed: the
 * arena within 3% of the lower bound (the issue asks 5%) and under a quarter of naive.
 */
class PlanSd15Test {
    static final UNet2DConditionModel SD15 = new UNet2DConditionModel(BuiltinConfigs.sd15(), "sd15");

    @ParameterizedTest(name = "{0}x{0} batch {1}, keep {2}")
    @CsvSource({"512, 1, out", "512, 2, out", "768, 1, out", "768, 2, out", "512, 2, all", "768, 2, all"})
    void arenaIsNearTheLowerBound(int pixels, int batch, String keep) {
        int latent = pixels / BuiltinConfigs.VAE_SCALE;
        Graph g = Fusion.fuse(SD15.graph(batch, latent, latent, 77));
        Set<String> kept = keep.equals("all") ? g.outputs().keySet() : Set.of("out");
        MemoryPlan p = MemoryPlanner.plan(g, 2, kept);
        System.out.printf("sd15 %dx%d batch %d keep %s: %s%n", pixels, pixels, batch, keep, p.summary());
        p.verify();
        assertTrue(p.arenaBytes() <= 1.05 * p.lowerBoundBytes(), p.summary());
        assertTrue(p.arenaBytes() <= 1.03 * p.lowerBoundBytes(), p.summary());
        assertTrue(p.arenaBytes() <= 0.25 * p.naiveBytes(), p.summary());
        // every op's output and every graph input has a place
        assertEquals(g.ops().size() + g.inputs().size(), p.activations().size());
    }

    /** Every strategy, with and without in-place reuse, gives a valid plan; their ratios are printed. */
    @ParameterizedTest(name = "{0}x{0} batch {1}")
    @CsvSource({"512, 1", "768, 2"})
    void everyStrategyIsValid(int pixels, int batch) {
        int latent = pixels / BuiltinConfigs.VAE_SCALE;
        Graph g = Fusion.fuse(SD15.graph(batch, latent, latent, 77));
        for (boolean inPlace : new boolean[] {true, false}) {
            for (MemoryPlan p : MemoryPlanner.planEach(g, 2, Set.of("out"),
                    MemoryPlanner.Options.defaults().withInPlace(inPlace))) {
                p.verify();
                System.out.printf("sd15 %dx%d batch %d in-place %s %-26s %.4f x lower bound%n", pixels, pixels, batch,
                        inPlace, p.strategy(), p.ratioToLowerBound());
                assertTrue(p.arenaBytes() >= p.lowerBoundBytes());
            }
        }
    }
}
