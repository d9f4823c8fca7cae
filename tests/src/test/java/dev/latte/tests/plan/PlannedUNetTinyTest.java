package dev.latte.tests.plan;

import dev.latte.cpu.CpuBackend;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.plan.MemoryPlan;
import dev.latte.tests.Resources;
import dev.latte.weights.SafeTensorsFile;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.LinkedHashSet;
import java.util.Set;
import java.util.SequencedMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CPU UNet run out of its planned arena against the same UNet allocating per op, on the
 * unet-tiny goldens' inputs: every output and intermediate bit-identical, no allocation inside a
 * step, one arena per shape.
 */
class PlannedUNetTinyTest {
    static CpuBackend backend;
    static UNetModel model;
    static UNetRunner planned;
    static UNetRunner unplanned;

    @BeforeAll
    static void load() {
        backend = new CpuBackend();
        model = UNetModel.load(Resources.unetTiny());
        planned = new UNetRunner(model, backend);
        unplanned = new UNetRunner(model, backend);
        unplanned.setPlanned(false);
    }

    @AfterAll
    static void close() {
        planned.close();
        unplanned.close();
        model.close();
        backend.close();
    }

    record Inputs(UNetRunner.Dims dims, float[] sample, float[] timestep, float[] context) {
    }

    static Inputs inputs(String c) {
        try (SafeTensorsFile f = SafeTensorsFile.open(Resources.golden("unet-tiny/" + c + ".safetensors"))) {
            int[] s = f.info("sample").intShape(), ctx = f.info("encoder_hidden_states").intShape();
            return new Inputs(new UNetRunner.Dims(s[0], s[2], s[3], ctx[1]), f.toFloatArray("sample"),
                    f.toFloatArray("timestep"), f.toFloatArray("encoder_hidden_states"));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"case-0", "case-1", "case-2"})
    void plannedIsBitIdenticalToUnplanned(String c) {
        Inputs in = inputs(c);
        Set<String> all = new LinkedHashSet<>(planned.graph(in.dims()).outputs().keySet());
        for (Set<String> wanted : java.util.List.of(all, Set.of(UNetRunner.OUT))) {
            SequencedMap<String, float[]> ref = unplanned.forward(in.dims(), in.sample(), in.timestep(), in.context(), wanted);
            SequencedMap<String, float[]> got = planned.forward(in.dims(), in.sample(), in.timestep(), in.context(), wanted);
            assertEquals(ref.keySet(), got.keySet());
            for (String name : ref.keySet()) {
                assertArrayEquals(ref.get(name), got.get(name), c + " " + name);
            }
            assertTrue(planned.arena() != null && planned.arena().plan().keptOutputs().containsAll(wanted));
        }
    }

    @Test
    void aStepAllocatesNothingAndANewShapeMakesANewArena() {
        Inputs in = inputs("case-0");
        Set<String> out = Set.of(UNetRunner.OUT);
        planned.forward(in.dims(), in.sample(), in.timestep(), in.context(), out);
        var arena = planned.arena();
        MemoryPlan plan = arena.plan();
        System.out.println("unet-tiny " + in.dims() + " fp32: " + plan.summary());
        assertTrue(plan.arenaBytes() < plan.naiveBytes());
        long before = backend.allocations();
        float[] first = planned.forward(in.dims(), in.sample(), in.timestep(), in.context(), out).get(UNetRunner.OUT);
        float[] again = planned.forward(in.dims(), in.sample(), in.timestep(), in.context(), out).get(UNetRunner.OUT);
        assertEquals(before, backend.allocations(), "backend allocations inside planned steps");
        assertSame(arena, planned.arena(), "the arena is kept across steps of one shape");
        assertArrayEquals(first, again);

        // another latent size: a new plan, the old arena released before the new one is made
        var bigger = new UNetRunner.Dims(in.dims().batch(), in.dims().height() * 2, in.dims().width() * 2,
                in.dims().contextLength());
        int n = bigger.batch() * model.config().inChannels() * bigger.height() * bigger.width();
        planned.forward(bigger, new float[n], in.timestep(), in.context(), out);
        assertNotSame(arena, planned.arena());
        assertFalse(planned.arena().plan().arenaBytes() == plan.arenaBytes() && planned.arena().plan() == plan);
        var e = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
                () -> backend.download(arena.input("sample")));
        assertTrue(e.getMessage().contains("arena"), e.getMessage());
        assertSame(planned.plan(in.dims(), out), plan, "plans are cached per shape");
    }

    @Test
    void unplannedRunnerHoldsNoArena() {
        assertNull(unplanned.arena());
        assertFalse(unplanned.planned());
        assertTrue(planned.planned());
    }
}
