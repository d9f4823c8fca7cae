package dev.latte.model;

import dev.latte.core.Backend;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.graph.Executor;
import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.graph.NonFiniteException;
import dev.latte.weights.TensorInfo;

import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SequencedMap;
import java.util.Set;

/**
 * A UNet bound to a backend: weights uploaded once, graphs built once per input shape, each
 * forward run from host inputs to the host outputs asked for.
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

    public UNetRunner(UNetModel model, Backend backend) {
        this(model, backend, Map.of());
    }

    /**
     * @param replaced weights to upload instead of the file's (e.g. with a LoRA merged in), by
     *                 tensor name; each must be a tensor of the model, with its element count
     */
    public UNetRunner(UNetModel model, Backend backend, Map<String, float[]> replaced) {
        this.model = model;
        this.backend = backend;
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
                params.put(t.name(), backend.upload(Shape.of(t.intShape()),
                        v != null ? v : model.weights().toFloatArray(t.name())));
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    public UNetModel model() {
        return model;
    }

    /** The fused op list for one input shape, built once. */
    public Graph graph(Dims d) {
        return graphs.computeIfAbsent(d, k -> Fusion.fuse(model.graph(k.batch, k.height, k.width, k.contextLength)));
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
        Map<String, Tensor> inputs = new HashMap<>();
        try {
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
                inputs.put(e.getKey(), backend.upload(s, v));
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

    private static float[] broadcast(float v, int n) {
        float[] a = new float[n];
        Arrays.fill(a, v);
        return a;
    }

    @Override
    public void close() {
        params.values().forEach(backend::release);
        params.clear();
    }
}
