package dev.latte.graph;

import dev.latte.core.Backend;
import dev.latte.core.Conv2dParams;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cpu.CpuBackend;
import dev.latte.exec.Executor;
import org.junit.jupiter.api.Test;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GraphTest {
    /** x → conv → silu → add(x-shaped) : a residual, the smallest graph with a long-lived value. */
    static Graph residual() {
        GraphBuilder g = new GraphBuilder();
        Value x = g.input("x", Shape.of(1, 2, 3, 3));
        g.push("block");
        Value c = g.in("conv", () -> g.conv2d(x, 2, 3, Conv2dParams.of(1, 1), true));
        Value s = g.silu(c);
        Value out = g.add(x, s);
        g.pop();
        g.output("out", out);
        return g.build();
    }

    @Test
    void parametersCarryCheckpointNames() {
        Graph graph = residual();
        assertEquals(Set.of("block.conv.weight", "block.conv.bias"), graph.params().keySet());
        assertEquals(Shape.of(2, 2, 3, 3), graph.params().get("block.conv.weight").shape());
        assertEquals("block.conv.conv2d", graph.ops().getFirst().name());
    }

    @Test
    void lastUsesFollowReaders() {
        Graph graph = residual();
        int[] last = graph.lastUses();
        Value x = graph.inputs().get("x");
        assertEquals(2, last[x.id()], "x is read by the add, the third op");
        assertEquals(graph.ops().size(), last[graph.outputs().get("out").id()], "outputs live to the end");
    }

    @Test
    void shapeErrorsNameTheOp() {
        GraphBuilder g = new GraphBuilder();
        Value a = g.input("a", Shape.of(1, 4, 2, 2));
        Value b = g.input("b", Shape.of(1, 4, 2, 3));
        g.push("up_blocks.0");
        var e = assertThrows(GraphException.class, () -> g.add(a, b));
        assertTrue(e.getMessage().startsWith("up_blocks.0.add: expected [1, 4, 2, 2], got [1, 4, 2, 3]"), e.getMessage());
        e = assertThrows(GraphException.class, () -> g.groupNorm(a, 3, 1e-5, false));
        assertTrue(e.getMessage().contains("cannot be split into 3 groups"), e.getMessage());
    }

    @Test
    void executorReleasesEveryActivationAndKeepsOutputs() {
        Graph graph = residual();
        Set<Tensor> live = new HashSet<>();
        try (CpuBackend real = new CpuBackend(1)) {
            // every allocate and release passes through here on its way to the CPU backend
            Backend cpu = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(),
                    new Class<?>[] {Backend.class}, (proxy, method, args) -> {
                        Object r;
                        try {
                            r = method.invoke(real, args);
                        } catch (InvocationTargetException e) {
                            throw e.getCause();
                        }
                        if (method.getName().equals("allocate")) {
                            live.add((Tensor) r);
                        } else if (method.getName().equals("release")) {
                            assertTrue(live.remove((Tensor) args[0]), "released twice or never allocated");
                        }
                        return r;
                    });
            Map<String, Tensor> params = new HashMap<>();
            params.put("block.conv.weight", cpu.upload(Shape.of(2, 2, 3, 3), new float[36]));
            params.put("block.conv.bias", cpu.upload(Shape.of(2), new float[] {0, 0}));
            float[] x = {1, 2, 3, 4, 5, 6, 7, 8, 9, -1, -2, -3, -4, -5, -6, -7, -8, -9};
            var outs = Executor.run(graph, cpu, params, Map.of("x", cpu.upload(Shape.of(1, 2, 3, 3), x)), true);
            assertEquals(Set.of(outs.get("out")), live, "only the output is still allocated");
            // zero weights: conv = 0, silu(0) = 0, out = x
            assertArrayEquals(x, cpu.download(outs.get("out")));
        }
    }
}
