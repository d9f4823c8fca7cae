package dev.latte.model;

import dev.latte.core.Compare;
import dev.latte.core.Shape;
import dev.latte.graph.Graph;
import dev.latte.graph.Value;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.WeightsException;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.SequencedMap;
import java.util.Set;
import java.util.function.Function;

/**
 * A golden case of a component other than the UNet: graph inputs, tensors named as the graph's
 * outputs, and tensors the pipeline derives from those on the host (the VAE's clamped
 * {@code image}, the encoder's {@code mean}/{@code logvar}, CLIP's pooled output). Every stored
 * tensor must be one of these; each is compared.
 */
public final class ComponentGolden {
    private ComponentGolden() {
    }

    /**
     * @param inputs  the graph inputs, read from the case by the caller
     * @param skip    stored tensors that are neither (pipeline-side inputs such as {@code latents})
     * @param derived host computations from the graph outputs, by stored name
     */
    public static List<GoldenCase.Row> validate(GraphRunner runner, Graph graph, SafeTensorsFile f,
                                                Map<String, float[]> inputs, Set<String> skip,
                                                Map<String, Function<Map<String, float[]>, float[]>> derived) {
        String file = f.path().getFileName().toString();
        Set<String> wanted = new LinkedHashSet<>();
        for (TensorInfo t : f.tensors()) {
            if (inputs.containsKey(t.name()) || skip.contains(t.name()) || derived.containsKey(t.name())) {
                continue;
            }
            Value out = graph.outputs().get(t.name());
            if (out == null) {
                throw new WeightsException(file + ": tensor '" + t.name() + "' is not an output of this component (known: "
                        + graph.outputs().keySet() + ")");
            }
            if (!Shape.of(t.intShape()).equals(out.shape())) {
                throw new WeightsException(file + ": tensor '" + t.name() + "' is " + Shape.of(t.intShape())
                        + ", the graph makes " + out.shape());
            }
            wanted.add(t.name());
        }
        boolean anyDerived = f.tensors().stream().anyMatch(t -> derived.containsKey(t.name()));
        Set<String> run = new LinkedHashSet<>(wanted);
        if (anyDerived) {
            run.addAll(graph.outputs().keySet().stream().filter(n -> !n.contains(".")).toList()); // final outputs
        }
        if (wanted.isEmpty() && !anyDerived) {
            throw new WeightsException(file + ": holds inputs only, no expected outputs to compare");
        }
        SequencedMap<String, float[]> results = runner.run(graph, inputs, run);
        List<GoldenCase.Row> rows = new ArrayList<>();
        for (String name : graph.outputs().keySet()) {
            if (wanted.contains(name)) {
                rows.add(new GoldenCase.Row(name, graph.outputs().get(name).shape(),
                        Compare.of(f.toFloatArray(name), results.get(name))));
            }
        }
        for (TensorInfo t : f.tensors()) {
            var fn = derived.get(t.name());
            if (fn != null) {
                float[] got = fn.apply(results);
                float[] ref = f.toFloatArray(t.name());
                if (got.length != ref.length) {
                    throw new WeightsException(file + ": tensor '" + t.name() + "' has " + ref.length + " values, "
                            + "the pipeline makes " + got.length);
                }
                rows.add(new GoldenCase.Row(t.name(), Shape.of(t.intShape()), Compare.of(ref, got)));
            }
        }
        return rows;
    }

    /** Integer ids (I64/I32) of a case as floats, as the graph takes them. */
    public static float[] ids(SafeTensorsFile f, String name) {
        if (!f.contains(name)) {
            throw new WeightsException(f.path().getFileName() + ": no tensor '" + name + "'");
        }
        long[] v = f.toLongArray(name);
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            if (v[i] < 0 || v[i] >= (1 << 24)) {
                throw new WeightsException(f.path().getFileName() + ": tensor '" + name + "' holds id " + v[i]);
            }
            out[i] = v[i];
        }
        return out;
    }
}
