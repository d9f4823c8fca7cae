package dev.latte.graph;

import dev.latte.core.Shape;
import dev.latte.core.StorageType;
import dev.latte.cpu.CpuBackend;
import dev.latte.exec.PlannedArena;
import dev.latte.plan.MemoryPlan;
import dev.latte.plan.MemoryPlanner;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Storage per value: token ids keep fp32 under fp16 activations. The graph says which ops read a
 * value of fixed storage, the planner sizes it at its own width, a backend that cannot store a type
 * says so by name.
 */
class StorageTypeTest {
    /** ids [2, 5] (fp32) → embedding [2, 5, 8] → SiLU. */
    static Graph textGraph() {
        GraphBuilder b = new GraphBuilder();
        Value ids = b.input("ids", Shape.of(2, 5), StorageType.F32);
        Value e = b.in("embeddings", () -> b.embedding(ids, b.param("token_embedding", Shape.of(3000, 8)), null));
        b.output("out", b.silu(e));
        return b.build();
    }

    @Test
    void embeddingIdsMustBeDeclaredFp32() {
        GraphBuilder b = new GraphBuilder();
        Value ids = b.input("ids", Shape.of(2, 5));
        var e = assertThrows(GraphException.class, () -> b.in("embeddings",
                () -> b.embedding(ids, b.param("token_embedding", Shape.of(30, 8)), null)));
        assertEquals("embeddings.embedding: ids 'ids' must be an input stored as fp32 (token ids above 2048 are not"
                + " exact in fp16): input(name, shape, StorageType.F32)", e.getMessage());
    }

    @Test
    void onlyAnOpThatSaysSoReadsAValueOfFixedStorage() {
        GraphBuilder b = new GraphBuilder();
        Value ids = b.input("ids", Shape.of(2, 5), StorageType.F32);
        b.output("out", b.in("act", () -> b.silu(ids)));
        var e = assertThrows(GraphException.class, b::build);
        assertEquals("op 'act.silu' (silu) reads 'ids', stored as fp32; it reads only the backend's activation type",
                e.getMessage());
    }

    @Test
    void anOpCheckNamesIdsOfTheWrongStorage() {
        Graph g = textGraph();
        Op.Embedding emb = (Op.Embedding) g.ops().get(0);
        List<Value> values = new ArrayList<>(g.values());
        Value ids = values.get(emb.ids());
        values.set(ids.id(), new Value(ids.id(), ids.kind(), ids.name(), ids.shape(), StorageType.F16));
        Map<String, Value> in = new LinkedHashMap<>(Map.of("ids", values.get(ids.id())));
        Graph f16 = new Graph(values, g.ops(), new LinkedHashMap<>(in), new LinkedHashMap<>(g.params()),
                new LinkedHashMap<>(g.outputs()));
        var e = assertThrows(IllegalArgumentException.class, () -> emb.check(f16));
        assertEquals("embedding 'embeddings.embedding': ids 'ids' must be stored as fp32 (token ids above 2048 are not"
                + " exact in fp16)", e.getMessage());
        // a backend that cannot hold the type says so before a step is made
        try (CpuBackend cpu = new CpuBackend()) {
            assertEquals("cpu backend does not store 'ids' as fp16", OpSupport.reason(cpu, emb, f16));
            assertNull(OpSupport.reason(cpu, emb, g));
        }
    }

    @Test
    void theFp16PlanKeepsIdsAtFourBytes() {
        Graph g = textGraph();
        int idsId = g.inputs().get("ids").id();
        for (int width : new int[] {2, 4}) {
            MemoryPlan plan = MemoryPlanner.plan(g, width);
            for (MemoryPlan.Activation a : plan.activations()) {
                long expected = a.shape().numel() * (a.valueId() == idsId ? 4L : width);
                assertEquals(expected, a.bytes(), a.name() + " in a plan at " + width + " bytes");
            }
        }
        assertEquals(2 * 5 * 4 + 2 * (2 * 5 * 8 * 2), g.ops().get(0).bytes(g, 2)); // ids at 4, gathered rows at 2
    }

    @Test
    void anFp32BackendStoresIdsAsItsActivationsAndRefusesFp16() {
        try (CpuBackend cpu = new CpuBackend()) {
            Graph g = textGraph();
            try (PlannedArena arena = PlannedArena.bind(cpu, g, MemoryPlanner.plan(g, cpu.activationBytes()))) {
                cpu.write(arena.input("ids"), new float[] {0, 1, 2, 2999, 2049, 5, 6, 7, 8, 9});
                assertArrayEquals(new float[] {0, 1, 2, 2999, 2049, 5, 6, 7, 8, 9}, cpu.download(arena.input("ids")));
            }
            var e = assertThrows(UnsupportedOperationException.class,
                    () -> cpu.upload(Shape.of(2), new float[2], StorageType.F16));
            assertEquals("cpu backend: upload: tensors stored as fp16 are not supported (it stores fp32)",
                    e.getMessage());
        }
    }
}
