package dev.latte.tests.plan;

import dev.latte.core.Tensor;
import dev.latte.cuda.CudaGraph;
import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.CudaBackend.Precision;
import dev.latte.exec.Executor;
import dev.latte.exec.PlannedArena;
import dev.latte.graph.Graph;
import dev.latte.model.UNetRunner;
import dev.latte.tests.cuda.CudaUNetTinyFixture;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * On a CUDA device (real or emulated): after a plan's arena is bound, steps of that shape make no
 * device allocation at all (cuMemAlloc counted by the context), so the first step already
 * captures as a CUDA graph. Skips, naming the reason, where no CUDA device can be opened.
 */
class PlannedCudaTest extends CudaUNetTinyFixture {
    @ParameterizedTest
    @EnumSource(Precision.class)
    void noDeviceAllocationInsideASamplingLoop(Precision precision) {
        // batch 1 at 8x8 (unet-tiny's goldens are 2 x 16x16): the emulated device in CI runs this
        UNetRunner.Dims d = new UNetRunner.Dims(1, 8, 8, 7);
        Random rnd = new Random(4);
        float[] sample = gaussian(rnd, 4 * 8 * 8), context = gaussian(rnd, 7 * 32), timestep = {601};
        try (CudaBackend backend = new CudaBackend(ctx, precision); UNetRunner runner = new UNetRunner(model, backend)) {
            runner.setPlanned(true);
            Set<String> out = Set.of(UNetRunner.OUT);
            float[] first = runner.forward(d, sample, timestep, context, out).get(UNetRunner.OUT);
            long before = ctx.allocationCount();
            float[] last = first;
            for (int step = 0; step < 2; step++) {
                last = runner.forward(d, sample, timestep, context, out).get(UNetRunner.OUT);
            }
            assertEquals(before, ctx.allocationCount(), precision + ": cuMemAlloc calls inside 2 planned steps");
            assertArrayEquals(first, last, "the same inputs give the same output from the same arena");
            System.out.printf("cuda %s unet-tiny %s: %s%n", precision, d, runner.arena().plan().summary());
        }
    }

    /**
     * Binding a plan reserves the backend's scratch and tables, so even the first step allocates
     * nothing: captured as a CUDA graph straight away, its replay computes what an eager step does.
     * (The first GroupNorm's statistics scratch used to be allocated inside the step.)
     */
    @ParameterizedTest
    @EnumSource(Precision.class)
    void theFirstStepAfterBindingCapturesAsACudaGraph(Precision precision) {
        UNetRunner.Dims d = new UNetRunner.Dims(1, 8, 8, 7);
        Random rnd = new Random(3);
        float[] sample = gaussian(rnd, 4 * 8 * 8), context = gaussian(rnd, 7 * 32), timestep = {417};
        try (CudaBackend backend = new CudaBackend(ctx, precision); UNetRunner runner = new UNetRunner(model, backend)) {
            Graph graph = runner.graph(d);
            try (PlannedArena arena = PlannedArena.bind(backend, graph, runner.plan(d, Set.of(UNetRunner.OUT)))) {
                Runnable inputs = () -> {
                    backend.write(arena.input("sample"), sample);
                    backend.write(arena.input("timestep"), timestep);
                    backend.write(arena.input("encoder_hidden_states"), context);
                };
                Tensor out = arena.view(graph.outputs().get(UNetRunner.OUT).id());
                inputs.run();
                long allocations = ctx.allocationCount();
                ctx.beginCapture();
                CudaGraph step;
                try {
                    Executor.run(graph, backend, arena, runner.params(), false);
                } finally {
                    step = ctx.endCapture();
                }
                step.launch();
                float[] replayed = backend.download(out);
                assertEquals(allocations, ctx.allocationCount(), precision + ": cuMemAlloc calls in the first step");
                inputs.run();
                Executor.run(graph, backend, arena, runner.params(), false);
                float[] eager = backend.download(out);
                assertEquals(0, Executor.nonFinite(eager));
                assertArrayEquals(eager, replayed, precision + ": replayed graph vs eager step");
                step.close();
            }
        }
    }

    private static float[] gaussian(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }
}
