package dev.latte.model;

import dev.latte.core.Backend;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.exec.ArenaStep;
import dev.latte.exec.Executor;
import dev.latte.exec.PlannedArena;
import dev.latte.exec.Steps;
import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.graph.NonFiniteException;
import dev.latte.graph.Op;
import dev.latte.plan.MemoryPlan;
import dev.latte.plan.MemoryPlanner;
import dev.latte.unet.UNet2DConditionModel;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;

/**
 * DeepCache (arXiv 2312.00858) over a {@link UNetRunner}'s weights: a full step runs the whole
 * UNet and keeps the deep feature of one branch; a partial step runs only the shallow part of the
 * UNet and reads that feature instead of the deep part. Both are static fused graphs
 * ({@link UNet2DConditionModel#fullStepGraph}, {@link UNet2DConditionModel#partialStepGraph}),
 * each prepared as its own {@code Step} ({@link Steps#prepare}, on CUDA one captured CUDA graph)
 * in one shared arena as large as the larger plan (the steps never run at once); the feature is
 * one tensor outside it, which the full step's
 * graph writes and the partial step's graph reads in place, so nothing is copied and, once a
 * shape's steps exist, no step allocates.
 *
 * <p>The cache belongs to one (runner, input shape): a step for another runner (other weights,
 * e.g. a LoRA merged in) or another shape frees the old arenas and feature, and a partial step
 * asked for without a valid cache runs full instead. Not thread-safe.
 */
public final class DeepCacheRunner implements AutoCloseable {
    private final int branch;
    private State state;

    /** What one step ran. {@code macs}: multiply-adds of its convs, linears and attention matmuls. */
    public record Step(float[] out, boolean full, long macs) {
    }

    /** The graphs, plans and storage of one (runner, shape). */
    private static final class State implements AutoCloseable {
        final UNetRunner runner;
        final UNetRunner.Dims dims;
        final Graph full, partial;
        final long fullMacs, partialMacs;
        Tensor feature; // planned: allocated once; unplanned: the last full step's output, owned here
        Tensor arena;   // planned: the activations of both steps
        ArenaStep fullStep, partialStep;
        boolean valid;

        State(UNetRunner runner, UNetRunner.Dims d, int branch) {
            this.runner = runner;
            this.dims = d;
            UNetModel m = runner.model();
            var format = m.weightFormat(runner.int8Mode());
            full = Fusion.fuse(m.unet().fullStepGraph(d.batch(), d.height(), d.width(), d.contextLength(), format,
                    branch));
            partial = Fusion.fuse(m.unet().partialStepGraph(d.batch(), d.height(), d.width(), d.contextLength(),
                    format, branch));
            fullMacs = macs(full);
            partialMacs = macs(partial);
        }

        void bind() {
            Backend b = runner.backend();
            if (fullStep != null || !runner.planned()) {
                return;
            }
            Set<String> ext = Set.of(UNet2DConditionModel.CACHED_FEATURE);
            MemoryPlan fp = MemoryPlanner.plan(full, b.activationBytes(), Set.of(UNetRunner.OUT), ext,
                    MemoryPlanner.Options.defaults());
            MemoryPlan pp = MemoryPlanner.plan(partial, b.activationBytes(), Set.of(UNetRunner.OUT),
                    readsCache(partial) ? ext : Set.of(), MemoryPlanner.Options.defaults());
            feature = b.allocate(full.outputs().get(UNet2DConditionModel.CACHED_FEATURE).shape());
            Map<String, Tensor> bound = Map.of(UNet2DConditionModel.CACHED_FEATURE, feature);
            // one arena for both: the two steps never run at once, each is written before it runs and
            // read right after, and what outlives a step (the feature) lives outside
            arena = b.arena(Math.max(fp.arenaBytes(), pp.arenaBytes()));
            Steps.Options shared = Steps.Options.defaults().withArena(arena);
            // on CUDA each is captured once as a CUDA graph: the arena's and the feature's addresses never move
            fullStep = Steps.prepare(b, full, fp, runner.params(), bound, shared);
            partialStep = Steps.prepare(b, partial, pp, runner.params(), readsCache(partial) ? bound : Map.of(),
                    shared);
        }

        @Override
        public void close() {
            Backend b = runner.backend();
            if (fullStep != null) {
                fullStep.close();
            }
            if (partialStep != null) {
                partialStep.close();
            }
            if (feature != null) {
                b.release(feature);
            }
            if (arena != null) {
                b.release(arena);
            }
            fullStep = partialStep = null;
            feature = arena = null;
            valid = false;
        }
    }

    /** @param branch DeepCache's {@code cache_branch_id}; checked against each runner's model */
    public DeepCacheRunner(int branch) {
        if (branch < 0) {
            throw new IllegalArgumentException("DeepCache branch " + branch + " is negative");
        }
        this.branch = branch;
    }

    public int branch() {
        return branch;
    }

    /** Whether a partial step for (runner, d) would read a feature cached by a full step of the same. */
    public boolean cacheValid(UNetRunner runner, UNetRunner.Dims d) {
        return state != null && state.valid && state.runner == runner && state.dims.equals(d);
    }

    /** Drops the cached feature: the next step runs full. */
    public void invalidate() {
        if (state != null) {
            state.valid = false;
        }
    }

    /** MACs of a full and of a partial step for (runner, d): {full, partial}. */
    public long[] stepMacs(UNetRunner runner, UNetRunner.Dims d) {
        State s = state(runner, d);
        return new long[] {s.fullMacs, s.partialMacs};
    }

    /** The full step's and the partial step's graphs for (runner, d), fused. */
    public Graph[] graphs(UNetRunner runner, UNetRunner.Dims d) {
        State s = state(runner, d);
        return new Graph[] {s.full, s.partial};
    }

    /** The planned arenas {full, partial} of the current shape (views in one allocation), or null before its first planned step. */
    public PlannedArena[] arenas() {
        return state == null || state.fullStep == null ? null
                : new PlannedArena[] {state.fullStep.arena(), state.partialStep.arena()};
    }

    /**
     * One UNet step, full if {@code full} is asked or no valid cache exists for (runner, d),
     * partial otherwise. Inputs as {@link UNetRunner#forward}.
     */
    public Step forward(UNetRunner runner, UNetRunner.Dims d, float[] sample, float[] timesteps, float[] context,
                        boolean full) {
        State s = state(runner, d);
        boolean runFull = full || !s.valid;
        Graph graph = runFull ? s.full : s.partial;
        float[] t = timesteps.length == 1 && d.batch() > 1 ? broadcast(timesteps[0], d.batch()) : timesteps;
        Map<String, float[]> host = Map.of("sample", sample, "timestep", t, "encoder_hidden_states", context);
        for (String name : new String[] {"sample", "timestep", "encoder_hidden_states"}) {
            float[] v = host.get(name);
            Shape shape = graph.inputs().get(name).shape();
            if (v.length != shape.numel()) {
                throw new IllegalArgumentException("input '" + name + "' has " + v.length + " values, the graph"
                        + " expects " + shape);
            }
            long bad = Executor.nonFinite(v);
            if (bad > 0) {
                throw new NonFiniteException("input '" + name + "' holds " + bad + " NaN/Inf values");
            }
        }
        s.valid = false; // until this step succeeds: a failed full step leaves no half-written cache behind
        float[] out = runner.planned() ? runPlanned(s, runFull, host) : runAllocating(s, runFull, host);
        if (Executor.nonFinite(out) > 0) {
            throw new NonFiniteException("output 'out' of a " + (runFull ? "full" : "partial")
                    + " DeepCache step holds NaN/Inf values");
        }
        s.valid = true;
        return new Step(out, runFull, runFull ? s.fullMacs : s.partialMacs);
    }

    private static float[] runPlanned(State s, boolean full, Map<String, float[]> host) {
        s.bind();
        ArenaStep step = full ? s.fullStep : s.partialStep;
        host.forEach(step::write);
        step.run();
        float[] out = step.read(UNetRunner.OUT);
        if (Executor.nonFinite(out) > 0) {
            host.forEach(step::write); // the run overwrote inputs that died
            step.runCheckingEachOp(); // names the op that first went non-finite
        }
        return out;
    }

    private static float[] runAllocating(State s, boolean full, Map<String, float[]> host) {
        Backend b = s.runner.backend();
        Graph g = full ? s.full : s.partial;
        Map<String, Tensor> inputs = new HashMap<>();
        try {
            for (String name : host.keySet()) {
                inputs.put(name, b.upload(g.inputs().get(name).shape(), host.get(name)));
            }
            if (!full && readsCache(g)) {
                inputs.put(UNet2DConditionModel.CACHED_FEATURE, s.feature);
            }
            var outs = Executor.run(g, b, s.runner.params(), inputs, false);
            try {
                float[] out = b.download(outs.get(UNetRunner.OUT));
                if (full) {
                    if (s.feature != null) {
                        b.release(s.feature);
                    }
                    Tensor f = outs.remove(UNet2DConditionModel.CACHED_FEATURE); // kept as the cache
                    outs.values().removeIf(o -> o == f); // the same tensor under another name
                    s.feature = f;
                }
                return out;
            } finally {
                outs.values().forEach(b::release);
            }
        } finally {
            inputs.remove(UNet2DConditionModel.CACHED_FEATURE);
            inputs.values().forEach(b::release);
        }
    }

    private State state(UNetRunner runner, UNetRunner.Dims d) {
        if (state != null && state.runner == runner && state.dims.equals(d)) {
            return state;
        }
        runner.model().unet().checkDeepCacheBranch(branch);
        close(); // another shape or other weights: the old cache must never be read again
        state = new State(runner, d, branch);
        return state;
    }

    /** Whether a partial step's graph reads the cached feature (see {@link UNet2DConditionModel#partialStepGraph}). */
    public static boolean readsCache(Graph partial) {
        return partial.inputs().containsKey(UNet2DConditionModel.CACHED_FEATURE);
    }

    /** Multiply-adds of a graph's convs, linears and attention matmuls (QKᵀ and AV), as DeepCache counts them. */
    public static long macs(Graph g) {
        long total = 0;
        for (Op op : g.ops()) {
            if (op.computeBound()) {
                total += op.flops(g) / 2;
            }
        }
        return total;
    }

    private static float[] broadcast(float v, int n) {
        float[] a = new float[n];
        Arrays.fill(a, v);
        return a;
    }

    @Override
    public void close() {
        if (state != null) {
            state.close();
            state = null;
        }
    }
}
