package dev.latte.tests.plan;

import dev.latte.cli.Backends;
import dev.latte.core.Backend;
import dev.latte.core.Conv2dParams;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cuda.CudaKernel;
import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.StepTactics;
import dev.latte.exec.ArenaStep;
import dev.latte.exec.Steps;
import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.graph.GraphBuilder;
import dev.latte.graph.Value;
import dev.latte.plan.MemoryPlan;
import dev.latte.plan.MemoryPlanner;
import dev.latte.ref.ReferenceBackend;
import org.junit.jupiter.api.Test;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@code Steps.prepare}: a step computes what the reference computes, run after run on new inputs;
 * on CUDA the second run is captured and later runs replay it without a single kernel launch from
 * Java; an op the backend cannot run is refused before anything runs, naming it.
 */
class StepTest {
    /** A ResNet-ish block with a cross-attention: GN+SiLU → conv (+skip), tokens, attention over 77 keys. */
    static Graph block() {
        GraphBuilder b = new GraphBuilder();
        Value x = b.input("x", Shape.of(2, 40, 6, 5)), ctx = b.input("ctx", Shape.of(2, 77, 40));
        Value h = b.in("norm", () -> b.groupNorm(x, 8, 1e-5, true));
        h = b.add(x, conv(b, h));
        Value tokens = b.toTokens(h);
        Value att = b.in("attn", () -> b.attention(tokens, ctx, ctx, 1));
        b.output("out", b.fromTokens(b.add(tokens, att), 6, 5));
        return Fusion.fuse(b.build());
    }

    private static Value conv(GraphBuilder b, Value x) {
        return b.in("conv", () -> b.conv2d(x, 40, 3, Conv2dParams.of(1, 1), true));
    }

    static Map<String, float[]> randomParams(Graph g, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        Map<String, float[]> p = new HashMap<>();
        g.params().forEach((name, v) -> {
            float[] a = new float[v.shape().size()];
            for (int i = 0; i < a.length; i++) {
                a[i] = (float) ((r.nextDouble() - 0.5) * (v.shape().rank() > 1 ? 0.2 : 1));
            }
            p.put(name, a);
        });
        return p;
    }

    static Map<String, float[]> randomInputs(Graph g, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        Map<String, float[]> in = new HashMap<>();
        g.inputs().forEach((name, v) -> {
            float[] a = new float[v.shape().size()];
            for (int i = 0; i < a.length; i++) {
                a[i] = (float) (r.nextDouble() * 2 - 1);
            }
            in.put(name, a);
        });
        return in;
    }

    /** The reference's output for these inputs. */
    static float[] expected(Graph g, Map<String, float[]> params, Map<String, float[]> in) {
        ReferenceBackend ref = new ReferenceBackend();
        try (ArenaStep s = prepare(ref, g, params, new Steps.Options(false))) {
            in.forEach(s::write);
            s.run();
            return s.read("out");
        }
    }

    static ArenaStep prepare(Backend b, Graph g, Map<String, float[]> params, Steps.Options o) {
        Map<String, Tensor> t = new HashMap<>();
        params.forEach((k, v) -> t.put(k, b.upload(g.params().get(k).shape(), v)));
        MemoryPlan plan = MemoryPlanner.plan(g, b.activationBytes());
        return Steps.prepare(b, g, plan, t, o);
    }

    static double maxAbsDiff(float[] a, float[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]));
        }
        return m;
    }

    @Test
    void cpuStepMatchesTheReferenceRunAfterRun() {
        Graph g = block();
        Map<String, float[]> params = randomParams(g, 1);
        try (Backend cpu = Backends.open("cpu", "fp32", 2);
             ArenaStep step = prepare(cpu, g, params, Steps.Options.defaults())) {
            for (long seed = 10; seed < 13; seed++) {
                Map<String, float[]> in = randomInputs(g, seed);
                in.forEach(step::write);
                step.run();
                assertTrue(maxAbsDiff(expected(g, params, in), step.read("out")) < 1e-5, "run " + seed);
            }
            var e = assertThrows(IllegalArgumentException.class, () -> step.read("nope"));
            assertTrue(e.getMessage().contains("keeps no output 'nope'"), e.getMessage());
        }
    }

    @Test
    void cudaStepCapturesOnceAndReplays() {
        for (String dtype : new String[] {"fp32", "fp16"}) {
            Backend cuda;
            try {
                cuda = Backends.open("cuda", dtype, 1);
            } catch (Backends.Unavailable e) {
                assumeTrue(false, e.getMessage());
                return;
            }
            Graph g = block();
            Map<String, float[]> params = randomParams(g, 2);
            double tol = dtype.equals("fp32") ? 1e-4 : 2e-2;
            try (cuda; ArenaStep step = prepare(cuda, g, params, Steps.Options.defaults())) {
                for (long seed = 20; seed < 24; seed++) {
                    Map<String, float[]> in = randomInputs(g, seed);
                    in.forEach(step::write);
                    long before = CudaKernel.launchCount();
                    step.run();
                    long launches = CudaKernel.launchCount() - before;
                    // run 1 captured (launches recorded, then the graph launched: binding the plan reserved
                    // the backend's scratch, so nothing allocates in it), runs 2+ one cuGraphLaunch
                    assertTrue(seed < 21 ? launches > 0 : launches == 0, dtype + " run " + seed + ": " + launches
                            + " kernel launches");
                    double d = maxAbsDiff(expected(g, params, in), step.read("out"));
                    assertTrue(d < tol, dtype + " run " + seed + ": max |d| " + d);
                }
            }
        }
    }

    /**
     * A CUDA step resolves each op's kernel version once, as it is prepared: what it reports is the
     * tactic table's answer for each op's shapes, a version forced by name overrides the table, and
     * the step computes the reference's result either way.
     */
    @Test
    void cudaStepReportsTheKernelVersionsItChose() {
        Graph g = block();
        Map<String, float[]> params = randomParams(g, 5);
        Map<String, float[]> in = randomInputs(g, 50);
        float[] want = expected(g, params, in);
        for (String kernels : new String[] {"", "attention=v1,conv=v1"}) {
            Backend b;
            try {
                b = Backends.open("cuda", "fp16", 1, kernels);
            } catch (Backends.Unavailable e) {
                assumeTrue(false, e.getMessage());
                return;
            }
            try (b; ArenaStep step = prepare(b, g, params, Steps.Options.defaults())) {
                CudaBackend cuda = (CudaBackend) b;
                int cc = cuda.library().computeCapability();
                List<String> lines = StepTactics.resolve(g, cuda.tactics(), cuda.precision(), cc).lines();
                assertEquals(lines, step.tactics());
                System.out.println("[tactics " + (kernels.isEmpty() ? "default" : kernels) + ", sm_" + cc + "] " + lines);
                // the block's conv (GN+SiLU, 3x3, 40 channels: C·R·S 360) and its attention (head dim 40)
                assertEquals(2, lines.size(), lines.toString());
                String v = kernels.isEmpty() && cc >= 80 ? "v2" : "v1";
                assertTrue(lines.get(0).startsWith("conv2dFused ") && lines.get(0).endsWith(": conv=" + v), lines.get(0));
                assertTrue(lines.get(1).startsWith("attention ") && lines.get(1).endsWith(": attention=" + v),
                        lines.get(1));
                in.forEach(step::write);
                step.run();
                double d = maxAbsDiff(want, step.read("out"));
                assertTrue(d < 2e-2, kernels + ": max |d| " + d);
            }
        }
    }

    @Test
    void eagerCudaStepNeverCaptures() {
        Backend cuda;
        try {
            cuda = Backends.open("cuda", "fp32", 1);
        } catch (Backends.Unavailable e) {
            assumeTrue(false, e.getMessage());
            return;
        }
        Graph g = block();
        try (cuda; ArenaStep step = prepare(cuda, g, randomParams(g, 3), new Steps.Options(true))) {
            for (int i = 0; i < 3; i++) {
                randomInputs(g, i).forEach(step::write);
                long before = CudaKernel.launchCount();
                step.run();
                long launches = CudaKernel.launchCount() - before;
                assertTrue(launches >= g.ops().size(), "run " + i + " op by op: " + launches + " launches");
            }
        }
    }

    /** A backend that says it cannot run attention: the step is refused, naming the op, before anything runs. */
    @Test
    void anUnsupportedOpIsNamedBeforeTheStepRuns() {
        ReferenceBackend ref = new ReferenceBackend();
        Backend noAttention = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(),
                new Class<?>[] {Backend.class}, (proxy, m, args) -> {
                    if (m.getName().equals("supports")) {
                        return !args[0].equals("attention");
                    }
                    try {
                        return m.invoke(ref, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
        Graph g = block();
        var e = assertThrows(IllegalArgumentException.class, () -> prepare(noAttention, g, randomParams(g, 4),
                Steps.Options.defaults()));
        assertEquals("ref backend cannot run op 'attn.attention': ref backend has no attention", e.getMessage());
    }
}
