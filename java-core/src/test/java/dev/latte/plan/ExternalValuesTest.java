package dev.latte.plan;

import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cpu.CpuBackend;
import dev.latte.exec.Executor;
import dev.latte.exec.PlannedArena;
import dev.latte.graph.Graph;
import dev.latte.graph.GraphBuilder;
import dev.latte.graph.Value;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Values kept outside the arena (DeepCache's cached feature): one graph writes an external
 * output into the caller's tensor, another reads it as an external input, and neither arena
 * holds it.
 */
class ExternalValuesTest {
    static final CpuBackend CPU = new CpuBackend(1);
    static final Shape S = Shape.of(1, 4, 8, 8);

    @AfterAll
    static void close() {
        CPU.close();
    }

    /** x → silu → + x = "feature" → silu → "out". */
    static Graph writer() {
        GraphBuilder g = new GraphBuilder();
        Value x = g.input("x", S);
        Value f = g.add(g.silu(x), x);
        g.output("feature", f);
        g.output("out", g.silu(f));
        return g.build();
    }

    /** "feature" + x → "out". */
    static Graph reader() {
        GraphBuilder g = new GraphBuilder();
        Value x = g.input("x", S);
        Value f = g.input("feature", S);
        g.output("out", g.add(f, x));
        return g.build();
    }

    @Test
    void anExternalValueLivesInTheCallersTensorAcrossGraphs() {
        Graph w = writer(), r = reader();
        MemoryPlan wp = MemoryPlanner.plan(w, 4, Set.of("out"), Set.of("feature"), MemoryPlanner.Options.defaults());
        MemoryPlan rp = MemoryPlanner.plan(r, 4, Set.of("out"), Set.of("feature"), MemoryPlanner.Options.defaults());
        int fw = w.outputs().get("feature").id(), fr = r.inputs().get("feature").id();
        assertNull(wp.activation(fw), "the written feature is not in the arena");
        assertNull(rp.activation(fr), "the read feature is not in the arena");
        assertEquals(1, wp.external().size());
        assertEquals(S.numel() * 4L, wp.externalBytes());
        assertTrue(wp.toJson().contains("\"external\": [{\"name\": \"feature\""), wp.toJson());
        MemoryPlan all = MemoryPlanner.plan(w, 4, Set.of("out"));
        assertEquals(all.naiveBytes() - S.numel() * 4L, wp.naiveBytes());

        float[] x = new float[(int) S.numel()];
        for (int i = 0; i < x.length; i++) {
            x[i] = (i % 13 - 6) / 3f;
        }
        Tensor feature = CPU.allocate(S);
        try (PlannedArena wa = PlannedArena.bind(CPU, w, wp, Map.of("feature", feature));
             PlannedArena ra = PlannedArena.bind(CPU, r, rp, Map.of("feature", feature))) {
            CPU.write(wa.input("x"), x);
            Executor.run(w, CPU, wa, Map.of(), false);
            float[] want = new float[x.length];
            for (int i = 0; i < x.length; i++) {
                float s = (float) (x[i] / (1 + Math.exp(-x[i])));
                want[i] = s + x[i];
            }
            float[] f = CPU.download(feature);
            assertArrayEquals(CPU.download(Executor.run(w, CPU, Map.of(), Map.of("x", CPU.upload(S, x)), false)
                    .get("feature")), f, "the external tensor holds what the graph computed");
            for (int i = 0; i < x.length; i++) {
                assertEquals(want[i], f[i], 1e-6);
            }
            CPU.write(ra.input("x"), x);
            float[] out = CPU.download(Executor.run(r, CPU, ra, Map.of(), false).get("out"));
            for (int i = 0; i < x.length; i++) {
                assertEquals(f[i] + x[i], out[i], 0);
            }
        } finally {
            CPU.release(feature);
        }
    }

    @Test
    void missingOrUnknownExternalsAreNamed() {
        Graph w = writer();
        MemoryPlan wp = MemoryPlanner.plan(w, 4, Set.of("out"), Set.of("feature"), MemoryPlanner.Options.defaults());
        var e = assertThrows(IllegalArgumentException.class, () -> PlannedArena.bind(CPU, w, wp, Map.of()));
        assertTrue(e.getMessage().contains("'feature'") && e.getMessage().contains("no tensor was given"), e.getMessage());
        var u = assertThrows(IllegalArgumentException.class, () -> MemoryPlanner.plan(w, 4, Set.of("out"),
                Set.of("nope"), MemoryPlanner.Options.defaults()));
        assertTrue(u.getMessage().contains("'nope'"), u.getMessage());
    }
}
