package dev.latte.model;

import dev.latte.core.Backend;
import dev.latte.core.Int8Mode;
import dev.latte.core.Shape;
import dev.latte.core.Step;
import dev.latte.core.Tensor;
import dev.latte.exec.ArenaStep;
import dev.latte.exec.Executor;
import dev.latte.exec.PlannedArena;
import dev.latte.exec.Steps;
import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.graph.NonFiniteException;
import dev.latte.plan.MemoryPlan;
import dev.latte.plan.MemoryPlanner;
import dev.latte.weights.DType;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.WeightsException;

import java.lang.foreign.ValueLayout;

import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SequencedMap;
import java.util.Set;

/**
 * A UNet bound to a backend: weights uploaded once, graphs built once per input shape, each
 * forward run from host inputs to the host outputs asked for. Where the backend supports arenas
 * (see {@link #setPlanned}), a forward runs as a prepared {@link Step} out of one planned arena
 * ({@code dev.latte.plan}, {@code Steps.prepare}): the plan is made once per (shape, outputs asked
 * for), the step (its arena, and on CUDA its captured graph) is made before the first forward of
 * that shape and kept while the shape stays, and nothing is allocated inside a step; a new shape
 * frees the old step before preparing the new one. Planned forwards are serialised.
 */
public final class UNetRunner implements AutoCloseable {
    public static final String OUT = "out";

    /** Shapes of one forward: batch, latent height and width, context length. */
    public record Dims(int batch, int height, int width, int contextLength) {
    }

    private final UNetModel model;
    private final Backend backend;
    private final Map<String, Tensor> params = new HashMap<>();
    private final Map<Dims, Graph> graphs = new HashMap<>();
    private final Map<PlanKey, MemoryPlan> plans = new HashMap<>();
    private boolean planned;
    private ArenaStep step;
    private PlanKey stepKey;
    private Int8Mode int8Mode = Int8Mode.W8A16;

    public UNetRunner(UNetModel model, Backend backend) {
        this(model, backend, Map.of());
    }

    /** A runner whose int8 layers (if the model has any) run in {@code int8Mode}. */
    public UNetRunner(UNetModel model, Backend backend, Int8Mode int8Mode) {
        this(model, backend, Map.of());
        this.int8Mode = int8Mode;
    }

    /**
     * @param replaced weights to upload instead of the file's (e.g. with a LoRA merged in), by
     *                 tensor name; each must be a tensor of the model, with its element count
     */
    public UNetRunner(UNetModel model, Backend backend, Map<String, float[]> replaced) {
        this.model = model;
        this.backend = backend;
        this.planned = backend.supportsArena();
        for (var e : replaced.entrySet()) {
            if (!model.weights().contains(e.getKey())
                    || model.weights().info(e.getKey()).numel() != e.getValue().length) {
                throw new IllegalArgumentException("replacement weight '" + e.getKey() + "' ("
                        + e.getValue().length + " values) is not a tensor of " + model.dir() + " of that size");
            }
        }
        try {
            for (TensorInfo t : model.weights().tensors()) {
                float[] v = replaced.get(t.name());
                if (t.dtype() == DType.I8) {
                    if (v != null) {
                        throw new IllegalArgumentException("replacement weight '" + t.name() + "' is int8 in "
                                + model.dir() + "; merge into the float model before quantising");
                    }
                    params.put(t.name(), backend.uploadInt8(Shape.of(t.intShape()),
                            model.weights().data(t.name()).toArray(ValueLayout.JAVA_BYTE)));
                    continue;
                }
                if (v == null) {
                    // the file's own bytes, which UNetModel.load checked for NaN/Inf: a host backend reads them in place
                    params.put(t.name(), backend.uploadMapped(Shape.of(t.intShape()), model.weights().data(t.name()),
                            t.dtype()));
                    continue;
                }
                long bad = Executor.nonFinite(v);
                if (bad > 0) {
                    // caught here, the tensor is named; caught after a forward, only the op that read it
                    throw new WeightsException(model.weights().path().getFileName() + ": tensor '" + t.name()
                            + "' holds " + bad + " NaN/Inf values after the LoRA merge");
                }
                params.put(t.name(), backend.upload(Shape.of(t.intShape()), v));
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    public UNetModel model() {
        return model;
    }

    public Backend backend() {
        return backend;
    }

    /** The uploaded weights by tensor name, owned by this runner (valid until it is closed). */
    public Map<String, Tensor> params() {
        return Collections.unmodifiableMap(params);
    }

    /** How int8 layers (if the model has any) run: the weight format every graph of this runner uses. */
    public Int8Mode int8Mode() {
        return int8Mode;
    }

    /** The fused op list for one input shape, built once. */
    public Graph graph(Dims d) {
        return graphs.computeIfAbsent(d, k -> Fusion.fuse(model.graph(k.batch, k.height, k.width, k.contextLength,
                int8Mode)));
    }

    /**
     * One UNet forward.
     *
     * @param sample    [B, in_channels, H, W]
     * @param timesteps B values, or one broadcast to the batch as diffusers does
     * @param context   [B, L, cross_attention_dim]
     * @param wanted    names of the outputs to return ({@link #OUT} and/or intermediates)
     */
    public SequencedMap<String, float[]> forward(Dims d, float[] sample, float[] timesteps, float[] context,
                                                 Set<String> wanted) {
        Graph graph = graph(d);
        float[] t = timesteps.length == 1 && d.batch > 1 ? broadcast(timesteps[0], d.batch) : timesteps;
        Map<String, float[]> host = Map.of("sample", sample, "timestep", t, "encoder_hidden_states", context);
        for (String w : wanted) {
            if (!graph.outputs().containsKey(w)) {
                throw new IllegalArgumentException("the UNet has no output '" + w + "'; it has "
                        + graph.outputs().keySet());
            }
        }
        for (var e : graph.inputs().entrySet()) {
            float[] v = host.get(e.getKey());
            Shape s = e.getValue().shape();
            if (v.length != s.numel()) {
                throw new IllegalArgumentException("input '" + e.getKey() + "' has " + v.length
                        + " values, the graph expects " + s);
            }
            long bad = Executor.nonFinite(v);
            if (bad > 0) {
                throw new NonFiniteException("input '" + e.getKey() + "' holds " + bad + " NaN/Inf values");
            }
        }
        if (planned) {
            return forwardPlanned(d, graph, host, wanted);
        }
        Map<String, Tensor> inputs = new HashMap<>();
        try {
            for (var e : graph.inputs().entrySet()) {
                inputs.put(e.getKey(), backend.upload(e.getValue().shape(), host.get(e.getKey())));
            }
            SequencedMap<String, Tensor> outs = Executor.run(graph, backend, params, inputs, false);
            SequencedMap<String, float[]> result = new LinkedHashMap<>();
            try {
                for (var e : outs.entrySet()) {
                    if (wanted.contains(e.getKey())) {
                        result.put(e.getKey(), backend.download(e.getValue()));
                    }
                }
            } finally {
                outs.values().forEach(backend::release);
            }
            for (var e : result.entrySet()) {
                if (Executor.nonFinite(e.getValue()) > 0) {
                    // rerun op by op to name the op that first went non-finite
                    Executor.run(graph, backend, params, inputs, true).values().forEach(backend::release);
                    throw new NonFiniteException("output '" + e.getKey() + "' holds NaN/Inf values");
                }
            }
            return result;
        } finally {
            inputs.values().forEach(backend::release);
        }
    }

    /** Whether forwards run from a planned arena (the default where the backend supports arenas). */
    public boolean planned() {
        return planned;
    }

    /**
     * Runs forwards from planned arenas ({@code true}, the default where the backend supports
     * them) or allocating per op ({@code false}); switching off frees the current arena.
     */
    public synchronized void setPlanned(boolean on) {
        if (on && !backend.supportsArena()) {
            throw new UnsupportedOperationException(backend.name() + " backend cannot run from a planned arena");
        }
        planned = on;
        if (!on) {
            releaseArena();
        }
    }

    /**
     * The memory plan of one forward that keeps the outputs {@code kept} to the end, made once per
     * (shape, kept outputs) at the backend's activation size.
     */
    public synchronized MemoryPlan plan(Dims d, Set<String> kept) {
        return plans.computeIfAbsent(new PlanKey(d, Set.copyOf(kept)),
                k -> MemoryPlanner.plan(graph(d), backend.activationBytes(), k.kept()));
    }

    /** The arena of the last planned forward, or null: one at a time, a new shape frees the old. */
    public synchronized PlannedArena arena() {
        return step == null ? null : step.arena();
    }

    /**
     * The step of the last planned forward ({@code Steps.prepare}: on the CUDA backend a captured
     * CUDA graph from its second run on, unless {@code -Dlatte.eager=true}), or null.
     */
    public synchronized Step step() {
        return step;
    }

    private record PlanKey(Dims dims, Set<String> kept) {
    }

    private synchronized SequencedMap<String, float[]> forwardPlanned(Dims d, Graph graph, Map<String, float[]> host,
                                                                      Set<String> wanted) {
        PlanKey key = new PlanKey(d, Set.copyOf(wanted));
        if (step == null || !key.equals(stepKey)) {
            MemoryPlan plan = plan(d, wanted);
            releaseArena(); // before the new one: only one arena is held at a time
            step = Steps.prepare(backend, graph, plan, params);
            stepKey = key;
        }
        for (var e : graph.inputs().entrySet()) {
            step.write(e.getKey(), host.get(e.getKey()));
        }
        step.run();
        SequencedMap<String, float[]> result = new LinkedHashMap<>();
        for (String name : step.arena().plan().keptOutputs()) {
            result.put(name, step.read(name));
        }
        for (var e : result.entrySet()) {
            if (Executor.nonFinite(e.getValue()) > 0) {
                // rerun op by op to name the op that first went non-finite; the step overwrote dead inputs
                for (var in : graph.inputs().entrySet()) {
                    step.write(in.getKey(), host.get(in.getKey()));
                }
                step.runCheckingEachOp();
                throw new NonFiniteException("output '" + e.getKey() + "' holds NaN/Inf values");
            }
        }
        return result;
    }

    private void releaseArena() {
        if (step != null) {
            step.close();
            step = null;
            stepKey = null;
        }
    }

    private static float[] broadcast(float v, int n) {
        float[] a = new float[n];
        Arrays.fill(a, v);
        return a;
    }

    @Override
    public synchronized void close() {
        releaseArena();
        params.values().forEach(backend::release);
        params.clear();
    }
}
