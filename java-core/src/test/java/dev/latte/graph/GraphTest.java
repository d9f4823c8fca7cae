package dev.latte.graph;

import dev.latte.core.Backend;
import dev.latte.core.Conv2dParams;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cpu.CpuBackend;
import dev.latte.exec.Executor;
import dev.latte.plan.BuiltinConfigs;
import dev.latte.unet.UNet2DConditionModel;
import org.junit.jupiter.api.Test;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
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

    /** Every op's own shape check accepts what the builders emit, fused or not, and names a misfit. */
    @Test
    void opsCheckTheirOwnShapes() {
        Graph sd15 = new UNet2DConditionModel(BuiltinConfigs.sd15(), "sd15").graph(2, 64, 64, 77);
        for (Graph g : List.of(sd15, Fusion.fuse(sd15), residual())) {
            for (Op op : g.ops()) {
                op.check(g);
            }
        }
        GraphBuilder b = new GraphBuilder();
        Value x = b.input("x", Shape.of(2, 3));
        b.linear(x, 4, true);
        Value z = b.input("z", Shape.of(2, 5));
        Graph g = b.build();
        Op.Linear l = (Op.Linear) g.ops().getFirst();
        Op.Linear wrong = new Op.Linear("wrong", z.id(), l.w(), l.bias(), l.out());
        var e = assertThrows(IllegalArgumentException.class, () -> wrong.check(g));
        assertEquals("linear: x [2, 5], w [4, 3], bias [4], out [2, 4]", e.getMessage());
        assertEquals("x [2, 3] w [4, 3] bias -> [2, 4]", l.describe(g));
        assertEquals(2L * 2 * 4 * 3, l.flops(g));
        assertEquals(4L * (2 * 3 + 4 * 3 + 4 + 2 * 4), l.bytes(g, 4));
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
