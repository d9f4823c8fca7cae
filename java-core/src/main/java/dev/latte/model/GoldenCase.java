package dev.latte.model;

import dev.latte.core.Compare;
import dev.latte.core.Shape;
import dev.latte.exec.Executor;
import dev.latte.graph.Graph;
import dev.latte.graph.Value;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.WeightsException;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
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

    public static List<Row> validate(UNetRunner runner, Path caseFile) {
        try (SafeTensorsFile f = SafeTensorsFile.open(caseFile)) {
            String file = caseFile.getFileName().toString();
            int in = runner.model().config().inChannels();
            int ctxDim = runner.model().unet().contextDim();
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
            Graph graph = runner.graph(dims);
            Set<String> wanted = new LinkedHashSet<>();
            for (TensorInfo t : f.tensors()) {
                if (INPUTS.contains(t.name())) {
                    continue;
                }
                Value out = graph.outputs().get(t.name());
                if (out == null) {
                    throw new WeightsException(file + ": tensor '" + t.name() + "' is not a UNet output (known: "
                            + graph.outputs().keySet() + ")");
                }
                if (!Shape.of(t.intShape()).equals(out.shape())) {
                    throw bad(file, t.name(), Shape.of(t.intShape()), out.shape().toString());
                }
                wanted.add(t.name());
            }
            if (wanted.isEmpty()) {
                throw new WeightsException(file + ": holds inputs only, no expected outputs to compare");
            }
            float[] sample = finite(f, file, "sample"), timestep = finite(f, file, "timestep");
            float[] context = finite(f, file, "encoder_hidden_states");
            var results = runner.forward(dims, sample, timestep, context, wanted);
            List<Row> rows = new ArrayList<>();
            for (String name : graph.outputs().keySet()) {
                if (wanted.contains(name)) {
                    rows.add(new Row(name, graph.outputs().get(name).shape(),
                            Compare.of(f.toFloatArray(name), results.get(name))));
                }
            }
            return rows;
        }
    }

    private static float[] finite(SafeTensorsFile f, String file, String name) {
        float[] v = f.toFloatArray(name);
        long bad = Executor.nonFinite(v);
        if (bad > 0) {
            throw new WeightsException(file + ": tensor '" + name + "' holds " + bad + " NaN/Inf values");
        }
        return v;
    }

    private static String require(SafeTensorsFile f, String file, String name) {
        if (!f.contains(name)) {
            throw new WeightsException(file + ": no tensor '" + name + "' (a golden case needs sample, timestep"
                    + " and encoder_hidden_states)");
        }
        return name;
    }

    private static int[] shape(SafeTensorsFile f, String file, String name, int rank) {
        int[] s = f.info(require(f, file, name)).intShape();
        if (s.length != rank) {
            throw new WeightsException(file + ": tensor '" + name + "' has shape " + Shape.of(s) + ", expected rank "
                    + rank);
        }
        return s;
    }

    private static WeightsException bad(String file, String tensor, Shape got, String expected) {
        return new WeightsException(file + ": tensor '" + tensor + "' has shape " + got + ", the model expects "
                + expected);
    }
}
