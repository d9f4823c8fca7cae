package dev.latte.plan;

import dev.latte.core.Shape;
import dev.latte.graph.Graph;
import dev.latte.graph.Op;
import dev.latte.graph.Value;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Set;
import java.util.SequencedMap;
import java.util.stream.IntStream;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MemoryPlannerTest {

    /**
     * The property, checked from the graph alone (not from the plan's own lifetimes): two
     * activations live at the same op never share a byte, unless the later one is an allowed
     * in-place output written over an input that dies at that very op.
     */
    static void assertNoLiveOverlap(Graph g, MemoryPlan p, Set<String> kept) {
        int ops = g.ops().size();
        int[] first = new int[g.values().size()], last = new int[g.values().size()];
        java.util.Arrays.fill(first, -1);
        for (Value v : g.inputs().values()) {
            first[v.id()] = 0;
        }
        for (int i = 0; i < ops; i++) {
            first[g.ops().get(i).out()] = i;
            for (int id : g.ops().get(i).inputs()) {
                if (id >= 0) {
                    last[id] = i;
                }
            }
        }
        for (String k : kept) {
            last[g.outputs().get(k).id()] = ops;
        }
        List<MemoryPlan.Activation> acts = p.activations();
        for (Value v : g.values()) {
            if (first[v.id()] >= 0) {
                MemoryPlan.Activation a = p.activation(v.id());
                assertTrue(a != null, "value " + v.id() + " '" + v.name() + "' has no place in the plan");
                assertEquals(v.shape().numel() * p.elementBytes(), a.bytes(), v.name());
                assertEquals(0, a.offset() % MemoryPlanner.ALIGNMENT, v.name() + " alignment");
                assertTrue(a.offset() + a.bytes() <= p.arenaBytes(), v.name() + " inside the arena");
            }
        }
        for (MemoryPlan.Activation a : acts) {
            int fa = first[a.valueId()], la = Math.max(fa, last[a.valueId()]);
            for (MemoryPlan.Activation b : acts) {
                if (a.valueId() >= b.valueId()) {
                    continue;
                }
                int fb = first[b.valueId()], lb = Math.max(fb, last[b.valueId()]);
                boolean time = fa <= lb && fb <= la;
                boolean bytes = a.offset() < b.offset() + b.bytes() && b.offset() < a.offset() + a.bytes();
                if (time && bytes) {
                    // only legal: b is written in place over a at the op where a is last read
                    assertEquals(a.valueId(), b.inPlaceOf(), a.name() + " and " + b.name() + " share bytes while live");
                    assertEquals(la, fb, "in place only where the input dies");
                    assertEquals(a.offset(), b.offset());
                    Op op = g.ops().get(fb);
                    assertTrue(op instanceof Op.Unary || op instanceof Op.Add || op instanceof Op.Scale
                            || op instanceof Op.AddChannelBias || op instanceof Op.Conv2dFused,
                            "op " + op.name() + " may not run in place");
                    if (op instanceof Op.Conv2dFused f) {
                        assertEquals(a.valueId(), f.residual(), "a fused conv may only overwrite its residual");
                    }
                    assertFalse(kept.stream().anyMatch(k -> g.outputs().get(k).id() == a.valueId()),
                            "a kept output is overwritten");
                }
            }
        }
        assertTrue(p.lowerBoundBytes() <= p.arenaBytes(), "arena below the lower bound");
        assertTrue(p.arenaBytes() <= p.naiveBytes() + (long) acts.size() * MemoryPlanner.ALIGNMENT, "arena above naive");
    }

    @TestFactory
    Stream<DynamicTest> randomGraphsNeverOverlapLiveTensors() {
        return IntStream.range(0, 60).mapToObj(seed -> DynamicTest.dynamicTest("seed " + seed, () -> {
            Graph g = RandomGraphs.of(seed, 5 + seed % 40);
            for (boolean inPlace : new boolean[] {true, false}) {
                for (Set<String> kept : List.of(g.outputs().keySet(), Set.of("out"))) {
                    var o = MemoryPlanner.Options.defaults().withInPlace(inPlace);
                    for (MemoryPlan p : MemoryPlanner.planEach(g, 4, kept, o)) {
                        p.verify();
                        assertNoLiveOverlap(g, p, kept);
                    }
                    MemoryPlan best = MemoryPlanner.plan(g, 2, kept, o);
                    assertNoLiveOverlap(g, best, kept);
                    if (!inPlace) {
                        assertTrue(best.activations().stream().allMatch(a -> a.inPlaceOf() < 0));
                    }
                }
            }
        }));
    }

    /** x → silu → scale → add(·, y): one buffer carries the chain, the lower bound counts it once. */
    @Test
    void elementwiseChainRunsInPlace() {
        List<Value> vs = new ArrayList<>();
        Shape s = Shape.of(1, 64, 8, 8); // 16 KiB in fp32
        for (int i = 0; i < 5; i++) {
            vs.add(new Value(i, i < 2 ? Value.Kind.INPUT : Value.Kind.ACTIVATION, "v" + i, s));
        }
        List<Op> ops = List.of(new Op.Unary("silu", Op.Fn.SILU, 0, 2), new Op.Scale("scale", 2, 2f, 3),
                new Op.Add("add", 3, 1, 4));
        SequencedMap<String, Value> in = new LinkedHashMap<>(), out = new LinkedHashMap<>();
        in.put("x", vs.get(0));
        in.put("y", vs.get(1));
        out.put("out", vs.get(4));
        Graph g = new Graph(vs, ops, in, new LinkedHashMap<>(), out);
        MemoryPlan p = MemoryPlanner.plan(g, 4);
        assertEquals(0, p.activation(2).inPlaceOf());
        assertEquals(2, p.activation(3).inPlaceOf());
        assertEquals(3, p.activation(4).inPlaceOf());
        assertEquals(2 * 16384, p.lowerBoundBytes());
        assertEquals(2 * 16384, p.arenaBytes());
        assertEquals(5 * 16384, p.naiveBytes());
        MemoryPlan apart = MemoryPlanner.plan(g, 4, Set.of("out"), MemoryPlanner.Options.defaults().withInPlace(false));
        assertEquals(3 * 16384, apart.arenaBytes());
        assertTrue(p.toJson().contains("\"in_place_of\": \"v3\""));
    }

    @Test
    void everyStrategyIsReportedAndTheBestIsKept() {
        Graph g = RandomGraphs.of(7, 60);
        var all = MemoryPlanner.planEach(g, 2, g.outputs().keySet(), MemoryPlanner.Options.defaults());
        assertEquals(MemoryPlanner.Strategy.values().length, all.size());
        long min = all.stream().mapToLong(MemoryPlan::arenaBytes).min().orElseThrow();
        assertEquals(min, MemoryPlanner.plan(g, 2).arenaBytes());
        // the search starts from the best fixed order and never does worse
        long fixedBest = all.stream().filter(p -> !p.strategy().equals("SEARCH")
                && !p.strategy().equals("GREEDY_BY_SIZE_FIRST_FIT")).mapToLong(MemoryPlan::arenaBytes).min().orElseThrow();
        assertTrue(all.getLast().arenaBytes() <= fixedBest);
    }

    @Test
    void unknownKeptOutputIsNamed() {
        Graph g = RandomGraphs.of(1, 10);
        var e = assertThrows(IllegalArgumentException.class, () -> MemoryPlanner.plan(g, 4, Set.of("nope")));
        assertTrue(e.getMessage().contains("nope"), e.getMessage());
    }

    @Test
    void verifyCatchesAnOverlap() {
        Graph g = RandomGraphs.of(3, 20);
        MemoryPlan p = MemoryPlanner.plan(g, 4, Set.of("out"),
                MemoryPlanner.Options.defaults().withInPlace(false));
        // put everything at offset 0: the input and the first op's output are live together
        List<MemoryPlan.Activation> zero = p.activations().stream().map(a -> new MemoryPlan.Activation(a.valueId(),
                a.name(), a.shape(), a.bytes(), a.firstOp(), a.lastOp(), 0, -1)).toList();
        MemoryPlan bad = new MemoryPlan("bad", 4, 256, p.opCount(), zero, p.keptOutputs(), p.naiveBytes(),
                p.lowerBoundBytes(), p.arenaBytes());
        assertThrows(IllegalStateException.class, bad::verify);
    }
}
