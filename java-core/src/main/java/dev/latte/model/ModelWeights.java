package dev.latte.model;

import dev.latte.core.Shape;
import dev.latte.graph.Value;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.WeightsException;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** The load-time checks every component folder gets: its graph's parameters against its safetensors file. */
public final class ModelWeights {
    private ModelWeights() {
    }

    /** The first of {@code names} in {@code dir} that is a file, or an error naming them all. */
    public static Path find(Path dir, List<String> names, String what) {
        return names.stream().map(dir::resolve).filter(Files::isRegularFile).findFirst()
                .orElseThrow(() -> new WeightsException(dir + ": no " + String.join(" or ", names) + " (" + what + ")"));
    }

    public static Path config(Path dir, String what) {
        if (!Files.isDirectory(dir)) {
            throw new WeightsException(dir + ": not a directory (expected " + what + ")");
        }
        Path c = dir.resolve("config.json");
        if (!Files.isRegularFile(c)) {
            throw new WeightsException(dir + ": no config.json (expected " + what + ")");
        }
        return c;
    }

    /**
     * Every parameter present with its shape and a float dtype, and every tensor used except
     * {@code ignorable} ones (buffers older writers saved, such as CLIP's {@code position_ids}).
     */
    public static void check(Map<String, Value> params, SafeTensorsFile weights, Set<String> ignorable) {
        String file = weights.path().getFileName().toString();
        for (Value p : params.values()) {
            if (!weights.contains(p.name())) {
                throw new WeightsException(file + ": no tensor '" + p.name() + "' (config.json implies " + p.shape() + ")");
            }
            TensorInfo info = weights.info(p.name());
            if (!Shape.of(info.intShape()).equals(p.shape())) {
                throw new WeightsException(file + ": tensor '" + p.name() + "' is " + info
                        + " but config.json implies " + p.shape() + " (config and weights disagree)");
            }
            if (!info.dtype().isFloatingPoint()) {
                throw new WeightsException(file + ": tensor '" + p.name() + "' has dtype " + info.dtype()
                        + "; weights must be F32, F16, BF16 or F64");
            }
        }
        List<String> unused = new ArrayList<>();
        for (TensorInfo t : weights.tensors()) {
            if (!params.containsKey(t.name()) && !ignorable.contains(t.name())) {
                unused.add(t.name());
            }
        }
        if (!unused.isEmpty()) {
            throw new WeightsException(file + ": " + unused.size() + " tensor(s) not used by config.json, first '"
                    + unused.getFirst() + "' (config and weights disagree)");
        }
    }

    /** Parameter elements the graph declares. */
    public static long parameterCount(Map<String, Value> params) {
        return params.values().stream().mapToLong(v -> v.shape().numel()).sum();
    }
}
