package dev.latte.tests.plan;

import dev.latte.cuda.CudaContext;
import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.CudaBackend.Precision;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.tests.Resources;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * On a GPU: after the first step of a shape (which makes the plan's one arena), a run of steps
 * of that shape makes no device allocation at all (cuMemAlloc counted by the context). Skips,
 * naming the reason, where no CUDA device can be opened.
 */
class PlannedCudaTest {
    static CudaContext ctx;
    static UNetModel model;

    @BeforeAll
    static void open() {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        ctx = CudaContext.open(0);
        model = UNetModel.load(Resources.unetTiny());
    }

    @AfterAll
    static void close() {
        if (model != null) {
            model.close();
        }
        if (ctx != null) {
            ctx.close();
        }
    }

    @ParameterizedTest
    @EnumSource(Precision.class)
    void noDeviceAllocationInsideASamplingLoop(Precision precision) {
        PlannedUNetTinyTest.Inputs in = PlannedUNetTinyTest.inputs("case-0");
        try (CudaBackend backend = new CudaBackend(ctx, precision); UNetRunner runner = new UNetRunner(model, backend)) {
            runner.setPlanned(true);
            Set<String> out = Set.of(UNetRunner.OUT);
            float[] first = runner.forward(in.dims(), in.sample(), in.timestep(), in.context(), out).get(UNetRunner.OUT);
            long before = ctx.allocationCount();
            float[] last = first;
            for (int step = 0; step < 5; step++) {
                last = runner.forward(in.dims(), in.sample(), in.timestep(), in.context(), out).get(UNetRunner.OUT);
            }
            assertEquals(before, ctx.allocationCount(), precision + ": cuMemAlloc calls inside 5 planned steps");
            assertArrayEquals(first, last, "the same inputs give the same output from the same arena");
            System.out.printf("cuda %s unet-tiny %s: %s%n", precision, in.dims(), runner.arena().plan().summary());
        }
    }
}
