package dev.latte.plan;

import dev.latte.core.Tensor;
import dev.latte.cpu.CpuBackend;
import dev.latte.exec.Executor;
import dev.latte.exec.PlannedArena;
import dev.latte.graph.Graph;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.util.HashMap;
import java.util.Map;
import java.util.SequencedMap;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Random graphs run on the CPU backend twice: allocating per op, and out of their planned arena
 * (in-place ops included). Every kept output must be bit-identical, and the planned step must
 * allocate nothing.
 */
class PlannedExecutionTest {
    static final CpuBackend CPU = new CpuBackend(2);

    @AfterAll
    static void close() {
        CPU.close();
    }

    static float[] random(SplittableRandom rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return v;
    }

    @TestFactory
    Stream<DynamicTest> plannedRunIsBitIdenticalAndAllocatesNothing() {
        return IntStream.range(0, 40).mapToObj(seed -> DynamicTest.dynamicTest("seed " + seed, () -> {
            Graph g = RandomGraphs.of(seed, 5 + seed % 30);
            SplittableRandom rnd = new SplittableRandom(1000 + seed);
            Map<String, Tensor> params = new HashMap<>();
            for (var e : g.params().entrySet()) {
                params.put(e.getKey(), CPU.upload(e.getValue().shape(), random(rnd, e.getValue().shape().size())));
            }
            Map<String, float[]> host = new HashMap<>();
            Map<String, Tensor> inputs = new HashMap<>();
            for (var e : g.inputs().entrySet()) {
                float[] v = random(rnd, e.getValue().shape().size());
                host.put(e.getKey(), v);
                inputs.put(e.getKey(), CPU.upload(e.getValue().shape(), v));
            }
            SequencedMap<String, Tensor> ref = Executor.run(g, CPU, params, inputs, false);

            for (Set<String> kept : java.util.List.of(g.outputs().keySet(), Set.of("out"))) {
                MemoryPlan plan = MemoryPlanner.plan(g, Float.BYTES, kept);
                try (PlannedArena arena = PlannedArena.bind(CPU, g, plan)) {
                    for (int step = 0; step < 2; step++) { // the second step reuses the same arena
                        for (var e : host.entrySet()) {
                            CPU.write(arena.input(e.getKey()), e.getValue());
                        }
                        long before = CPU.allocations();
                        SequencedMap<String, Tensor> got = Executor.run(g, CPU, arena, params, step == 1);
                        assertEquals(before, CPU.allocations(), "allocations inside a planned step");
                        assertEquals(plan.keptOutputs(), java.util.List.copyOf(got.keySet()));
                        for (var e : got.entrySet()) {
                            assertArrayEquals(CPU.download(ref.get(e.getKey())), CPU.download(e.getValue()),
                                    "output " + e.getKey() + ", kept " + kept + ", step " + step);
                        }
                    }
                }
            }
            ref.values().forEach(CPU::release);
            inputs.values().forEach(CPU::release);
            params.values().forEach(CPU::release);
        }));
    }

    static long inPlaceOps(MemoryPlan p) {
        return p.activations().stream().filter(a -> a.inPlaceOf() >= 0).count();
    }

    @TestFactory
    Stream<DynamicTest> randomGraphsExerciseInPlace() {
        // the generator must actually produce in-place ops, or the bit-identity test above proves little
        long total = IntStream.range(0, 40).mapToLong(seed -> inPlaceOps(
                MemoryPlanner.plan(RandomGraphs.of(seed, 5 + seed % 30), 4, Set.of("out")))).sum();
        return Stream.of(DynamicTest.dynamicTest("in-place outputs over 40 graphs: " + total,
                () -> org.junit.jupiter.api.Assertions.assertTrue(total >= 20, "only " + total + " in-place outputs")));
    }
}
