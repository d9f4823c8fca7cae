package dev.latte.model;

import dev.latte.core.Backend;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.exec.Executor;
import dev.latte.graph.Graph;
import dev.latte.graph.NonFiniteException;
import dev.latte.graph.OpSupport;
import dev.latte.plan.MemoryPlan;
import dev.latte.plan.MemoryPlanner;
import dev.latte.exec.PlannedArena;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.WeightsException;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SequencedMap;
import java.util.Set;

/**
 * Any component's graphs (text encoder, VAE) on a backend: the weights a graph needs uploaded
 * once, each run from host inputs to the host outputs asked for. Where the backend supports
 * arenas a run is planned ({@code dev.latte.plan}): one arena per (graph, kept outputs), held
 * while the same graph runs again and freed before another is allocated.
 */
public final class GraphRunner implements AutoCloseable {
    private final Backend backend;
    private final SafeTensorsFile weights;
    private final Map<String, Tensor> params = new HashMap<>();
    private final boolean planned;
    private PlannedArena arena;
    private Object arenaKey;

    private final java.util.function.UnaryOperator<String> storedName;

    public GraphRunner(Backend backend, SafeTensorsFile weights) {
        this(backend, weights, java.util.function.UnaryOperator.identity());
    }

    /** {@code storedName} maps a graph parameter's name to its tensor's name in {@code weights}. */
    public GraphRunner(Backend backend, SafeTensorsFile weights, java.util.function.UnaryOperator<String> storedName) {
        this.backend = backend;
        this.weights = weights;
        this.storedName = storedName;
        this.planned = backend.supportsArena();
    }

    public Backend backend() {
        return backend;
    }

    /** The plan a run of {@code graph} keeping {@code kept} uses, at this backend's element size. */
    public MemoryPlan plan(Graph graph, Set<String> kept) {
        return MemoryPlanner.plan(graph, backend.activationBytes(), kept);
    }

    private void upload(Graph graph) {
        for (var e : graph.params().entrySet()) {
            if (params.containsKey(e.getKey())) {
                continue;
            }
            String stored = storedName.apply(e.getKey());
            long bad = weights.nonFiniteCount(stored);
            if (bad > 0) {
                throw new WeightsException(weights.path().getFileName() + ": tensor '" + stored + "' holds " + bad
                        + " NaN/Inf values");
            }
            params.put(e.getKey(), uploadStored(stored, e.getValue().shape()));
        }
    }

    /**
     * A stored float tensor as the graph's parameter: its mapped bytes, which a host backend reads
     * in place (the text encoder's token table is then never copied); otherwise widened and uploaded.
     */
    private Tensor uploadStored(String stored, Shape shape) {
        TensorInfo t = weights.info(stored);
        if (t.dtype().isFloatingPoint() && t.numel() == shape.numel()) {
            return backend.uploadMapped(shape, weights.data(stored), t.dtype());
        }
        return backend.upload(shape, weights.toFloatArray(stored));
    }

    /** Runs {@code graph} (fused or not) on host inputs by input name; returns the outputs in {@code wanted}. */
    public synchronized SequencedMap<String, float[]> run(Graph graph, Map<String, float[]> inputs, Set<String> wanted) {
        for (String w : wanted) {
            if (!graph.outputs().containsKey(w)) {
                throw new IllegalArgumentException("the graph has no output '" + w + "'; it has " + graph.outputs().keySet());
            }
        }
        for (var e : graph.inputs().entrySet()) {
            float[] v = inputs.get(e.getKey());
            Shape s = e.getValue().shape();
            if (v == null || v.length != s.numel()) {
                throw new IllegalArgumentException("input '" + e.getKey() + "' has " + (v == null ? "no" : v.length)
                        + " values, the graph expects " + s);
            }
            long bad = Executor.nonFinite(v);
            if (bad > 0) {
                throw new NonFiniteException("input '" + e.getKey() + "' holds " + bad + " NaN/Inf values");
            }
        }
        for (var op : graph.ops()) {
            String why = OpSupport.reason(backend, op, graph);
            if (why != null) {
                throw new IllegalArgumentException(backend.name() + " backend does not run op " + op.kind() + " ('"
                        + op.name() + "'): " + why + "; use --backend cpu");
            }
        }
        upload(graph);
        SequencedMap<String, float[]> result = new LinkedHashMap<>();
        if (planned) {
            var key = new Key(graph, Set.copyOf(wanted));
            if (arena == null || !key.equals(arenaKey)) {
                releaseArena();
                arena = PlannedArena.bind(backend, graph, plan(graph, wanted));
                arenaKey = key;
            }
            for (var e : graph.inputs().entrySet()) {
                backend.write(arena.input(e.getKey()), inputs.get(e.getKey()));
            }
            for (var e : Executor.run(graph, backend, arena, params, false).entrySet()) {
                result.put(e.getKey(), backend.download(e.getValue()));
            }
        } else {
            Map<String, Tensor> in = new HashMap<>();
            try {
                for (var e : graph.inputs().entrySet()) {
                    in.put(e.getKey(), backend.upload(e.getValue().shape(), inputs.get(e.getKey()), e.getValue().storage()));
                }
                SequencedMap<String, Tensor> outs = Executor.run(graph, backend, params, in, false);
                try {
                    for (var e : outs.entrySet()) {
                        if (wanted.contains(e.getKey())) {
                            result.put(e.getKey(), backend.download(e.getValue()));
                        }
                    }
                } finally {
                    outs.values().forEach(backend::release);
                }
            } finally {
                in.values().forEach(backend::release);
            }
        }
        for (var e : result.entrySet()) {
            if (Executor.nonFinite(e.getValue()) > 0) {
                throw new NonFiniteException("output '" + e.getKey() + "' holds NaN/Inf values");
            }
        }
        return result;
    }

    /** Identity of the graph object: a runner re-plans only when handed another graph. */
    private record Key(Graph graph, Set<String> kept) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Key k && k.graph == graph && k.kept.equals(kept);
        }

        @Override
        public int hashCode() {
            return System.identityHashCode(graph) * 31 + kept.hashCode();
        }
    }

    /** Frees the held arena (the next run allocates again). */
    public synchronized void releaseArena() {
        if (arena != null) {
            arena.close();
            arena = null;
            arenaKey = null;
        }
    }

    /** The parameters uploaded so far, by name (for a caller that accounts memory). */
    public long uploadedParameterBytes() {
        return params.values().stream().mapToLong(t -> t.shape().numel() * (long) Float.BYTES).sum();
    }

    @Override
    public synchronized void close() {
        releaseArena();
        params.values().forEach(backend::release);
        params.clear();
    }
}
