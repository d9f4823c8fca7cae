package dev.latte.model;

import dev.latte.core.Compare;
import dev.latte.core.Shape;
import dev.latte.exec.Executor;
import dev.latte.graph.Graph;
import dev.latte.graph.GraphException;
import dev.latte.graph.Value;
import dev.latte.weights.Text;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.WeightsException;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.SequencedMap;
import java.util.List;
import java.util.Set;

/**
 * A golden case: UNet inputs ({@code sample}, {@code timestep}, {@code encoder_hidden_states})
 * and the tensors diffusers produced from them, each named as a UNet output. Validation runs the
 * UNet on the inputs and compares every stored tensor.
 */
public final class GoldenCase {
    private static final Set<String> INPUTS = Set.of("sample", "timestep", "encoder_hidden_states");

    public record Row(String name, Shape shape, Compare compare) {
    }

    private GoldenCase() {
    }

    /** A golden case read and checked against a model: the inputs and every expected output. */
    public record Loaded(UNetRunner.Dims dims, float[] sample, float[] timestep, float[] context,
                         SequencedMap<String, float[]> expected) {
    }

    public static List<Row> validate(UNetRunner runner, Path caseFile) {
        Loaded c = read(runner.model(), caseFile);
        Graph graph = runner.graph(c.dims());
        var results = runner.forward(c.dims(), c.sample(), c.timestep(), c.context(), c.expected().keySet());
        List<Row> rows = new ArrayList<>();
        for (String name : graph.outputs().keySet()) {
            if (c.expected().containsKey(name)) {
                rows.add(new Row(name, graph.outputs().get(name).shape(),
                        Compare.of(c.expected().get(name), results.get(name))));
            }
        }
        return rows;
    }

    /**
     * Reads {@code caseFile} and checks it against {@code model} before any work: input shapes,
     * finite inputs, every stored tensor a UNet output of the right shape, and every reference
     * finite and not all zeros (a PSNR against either means nothing: a bad golden).
     */
    public static Loaded read(UNetModel model, Path caseFile) {
        try (SafeTensorsFile f = SafeTensorsFile.open(caseFile)) {
            String file = Text.quote(String.valueOf(caseFile.getFileName()));
            int in = model.config().inChannels();
            int ctxDim = model.unet().contextDim();
            int[] s = shape(f, file, "sample", 4);
            if (s[1] != in) {
                throw bad(file, "sample", Shape.of(s), "[B, " + in + ", H, W] (in_channels " + in + ")");
            }
            int[] c = shape(f, file, "encoder_hidden_states", 3);
            if (c[0] != s[0] || c[2] != ctxDim) {
                throw bad(file, "encoder_hidden_states", Shape.of(c), "[" + s[0] + ", L, " + ctxDim + "]");
            }
            long nt = f.info(require(f, file, "timestep")).numel();
            if (nt != 1 && nt != s[0]) {
                throw bad(file, "timestep", Shape.of(f.info("timestep").intShape()), "[1] or [" + s[0] + "]");
            }
            UNetRunner.Dims dims = new UNetRunner.Dims(s[0], s[2], s[3], c[1]);
            if (s[0] < 1 || s[2] < 1 || s[3] < 1 || c[1] < 1) {
                throw new WeightsException(file + ": empty inputs (sample " + Shape.of(s) + ", encoder_hidden_states "
                        + Shape.of(c) + ")");
            }
            Graph graph;
            try {
                graph = model.graph(dims.batch(), dims.height(), dims.width(), dims.contextLength());
            } catch (GraphException e) {
                throw new WeightsException(file + ": the model cannot run these inputs: " + e.getMessage());
            }
            SequencedMap<String, float[]> expected = new LinkedHashMap<>();
            for (TensorInfo t : f.tensors()) {
                if (INPUTS.contains(t.name())) {
                    continue;
                }
                Value out = graph.outputs().get(t.name());
                if (out == null) {
                    throw new WeightsException(file + ": tensor '" + Text.quote(t.name()) + "' is not a UNet output (known: "
                            + graph.outputs().keySet() + ")");
                }
                if (!Shape.of(t.intShape()).equals(out.shape())) {
                    throw bad(file, t.name(), Shape.of(t.intShape()), out.shape().toString());
                }
                expected.put(t.name(), null);
            }
            if (expected.isEmpty()) {
                throw new WeightsException(file + ": holds inputs only, no expected outputs to compare");
            }
            float[] sample = finite(f, file, "sample"), timestep = finite(f, file, "timestep");
            float[] context = finite(f, file, "encoder_hidden_states");
            for (String name : expected.keySet()) {
                float[] ref = f.toFloatArray(name);
                long nonFinite = Executor.nonFinite(ref);
                if (nonFinite > 0) {
                    throw new WeightsException(file + ": bad golden: reference '" + Text.quote(name) + "' holds "
                            + nonFinite + " NaN/Inf values");
                }
                boolean zero = true;
                for (float v : ref) {
                    zero &= v == 0;
                }
                if (zero) {
                    throw new WeightsException(file + ": bad golden: reference '" + Text.quote(name)
                            + "' is all zeros (a PSNR against it has no peak)");
                }
                expected.put(name, ref);
            }
            return new Loaded(dims, sample, timestep, context, expected);
        }
    }

    private static float[] finite(SafeTensorsFile f, String file, String name) {
        float[] v = f.toFloatArray(name);
        long bad = Executor.nonFinite(v);
        if (bad > 0) {
            throw new WeightsException(file + ": tensor '" + Text.quote(name) + "' holds " + bad + " NaN/Inf values");
        }
        return v;
    }

    private static String require(SafeTensorsFile f, String file, String name) {
        if (!f.contains(name)) {
            throw new WeightsException(file + ": no tensor '" + Text.quote(name) + "' (a golden case needs sample, timestep"
                    + " and encoder_hidden_states)");
        }
        return name;
    }

    private static int[] shape(SafeTensorsFile f, String file, String name, int rank) {
        int[] s = f.info(require(f, file, name)).intShape();
        if (s.length != rank) {
            throw new WeightsException(file + ": tensor '" + Text.quote(name) + "' has shape " + Shape.of(s) + ", expected rank "
                    + rank);
        }
        return s;
    }

    private static WeightsException bad(String file, String tensor, Shape got, String expected) {
        return new WeightsException(file + ": tensor '" + tensor + "' has shape " + got + ", the model expects "
                + expected);
    }
}
