package dev.latte.lora;

import dev.latte.core.Shape;
import dev.latte.weights.Text;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.WeightsException;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.IntStream;

/**
 * A LoRA file resolved against a model's weights. Two key layouts are read:
 * <ul>
 * <li>kohya: {@code lora_unet_<module with '.' as '_'>.lora_down.weight / .lora_up.weight / .alpha}
 * (the released LCM-LoRA for SD1.5);</li>
 * <li>diffusers/peft: {@code [unet.|base_model.model.]<module>.lora_A.weight / .lora_B.weight}
 * (also {@code .lora.down/.lora.up}), with an optional {@code <module>.alpha}.</li>
 * </ul>
 * Each module adds {@code scale·(alpha/rank)·up·down} to {@code <module>.weight}, reshaped to the
 * weight's shape: linear [out, in], 1×1 and 3×3 convolutions [out, in, k, k] (down [r, in, k, k],
 * up [out, r, 1, 1]). A missing alpha means alpha = rank. Keys that name nothing in the model
 * (text-encoder modules, other adapter kinds) are collected in {@link #unknownKeys()}; a key that
 * names a module but does not fit it is an error naming the key.
 */
public final class Lora {
    private static final Map<String, Part> SUFFIXES = new LinkedHashMap<>();

    static {
        SUFFIXES.put(".lora_down.weight", Part.DOWN);
        SUFFIXES.put(".lora_up.weight", Part.UP);
        SUFFIXES.put(".lora_A.weight", Part.DOWN);
        SUFFIXES.put(".lora_B.weight", Part.UP);
        SUFFIXES.put(".lora.down.weight", Part.DOWN);
        SUFFIXES.put(".lora.up.weight", Part.UP);
        SUFFIXES.put(".alpha", Part.ALPHA);
    }

    private static final String KOHYA_PREFIX = "lora_unet_";
    private static final List<String> PEFT_PREFIXES = List.of("", "unet.", "base_model.model.");

    private enum Part { DOWN, UP, ALPHA }

    /**
     * One low-rank update of {@code target}: {@code down} [rank, …] and {@code up} [out, rank, …]
     * as stored, flattened.
     */
    public record Module(String key, String target, float[] down, float[] up, int rank, int out, int in, float alpha) {
    }

    private final String file;
    private final List<Module> modules;
    private final List<String> unknownKeys;

    private Lora(String file, List<Module> modules, List<String> unknownKeys) {
        this.file = file;
        this.modules = List.copyOf(modules);
        this.unknownKeys = List.copyOf(unknownKeys);
    }

    /** Reads {@code path} against the shapes of the model's tensors (name → shape). */
    public static Lora load(Path path, Map<String, int[]> modelShapes) {
        try (SafeTensorsFile f = SafeTensorsFile.open(path)) {
            String file = Text.quote(path.getFileName() == null ? path.toString() : path.getFileName().toString());
            Map<String, String> kohya = kohyaNames(modelShapes);
            // module key as in the file → its parts' tensor names
            Map<String, Map<Part, String>> groups = new TreeMap<>();
            Map<String, String> targets = new HashMap<>();
            List<String> unknown = new ArrayList<>();
            for (TensorInfo t : f.tensors()) {
                String name = t.name();
                var suffix = SUFFIXES.entrySet().stream().filter(e -> name.endsWith(e.getKey())).findFirst();
                String key = suffix.map(e -> name.substring(0, name.length() - e.getKey().length())).orElse(null);
                String target = key == null ? null : resolve(key, kohya, modelShapes);
                if (target == null) {
                    unknown.add(name);
                    continue;
                }
                targets.put(key, target);
                Map<Part, String> parts = groups.computeIfAbsent(key, k -> new LinkedHashMap<>());
                parts.put(suffix.get().getValue(), name);
            }
            List<Module> modules = new ArrayList<>();
            for (var g : groups.entrySet()) {
                modules.add(module(f, file, g.getKey(), targets.get(g.getKey()), g.getValue(),
                        modelShapes.get(targets.get(g.getKey()))));
            }
            return new Lora(file, modules, unknown);
        }
    }

    /** {@link #load(Path, Map)} against the tensors of a model's weights file. */
    public static Lora load(Path path, SafeTensorsFile modelWeights) {
        Map<String, int[]> shapes = new HashMap<>();
        for (TensorInfo t : modelWeights.tensors()) {
            shapes.put(t.name(), t.intShape());
        }
        return load(path, shapes);
    }

    public String file() {
        return file;
    }

    public List<Module> modules() {
        return modules;
    }

    /** Tensors in the file that were not applied, sorted by name. */
    public List<String> unknownKeys() {
        return unknownKeys;
    }

    /**
     * {@code scale·(alpha/rank)·up·down}, shaped like the target weight (flattened), accumulated
     * in double and rounded once.
     */
    public static float[] delta(Module m, double scale) {
        double factor = scale * m.alpha() / m.rank();
        int out = m.out(), in = m.in(), r = m.rank();
        float[] d = new float[out * in];
        IntStream.range(0, out).parallel().forEach(o -> {
            double[] acc = new double[in];
            for (int q = 0; q < r; q++) {
                double u = m.up()[o * r + q];
                int base = q * in;
                for (int j = 0; j < in; j++) {
                    acc[j] += u * m.down()[base + j];
                }
            }
            for (int j = 0; j < in; j++) {
                d[o * in + j] = (float) (factor * acc[j]);
            }
        });
        return d;
    }

    /** Adds every module's delta to its target in {@code weights} (name → values), in place. */
    public void merge(Map<String, float[]> weights, double scale) {
        apply(weights, scale, 1);
    }

    /** Subtracts what {@link #merge} added: the same weights back, to float32 rounding. */
    public void unmerge(Map<String, float[]> weights, double scale) {
        apply(weights, scale, -1);
    }

    /**
     * Copies of the targeted weights from {@code modelWeights}, merged: the replacement map a
     * {@code UNetRunner} takes. Untouched weights are not copied.
     */
    public Map<String, float[]> mergedWeights(SafeTensorsFile modelWeights, double scale) {
        Map<String, float[]> w = new LinkedHashMap<>();
        for (Module m : modules) {
            w.computeIfAbsent(m.target(), modelWeights::toFloatArray);
        }
        merge(w, scale);
        for (var e : w.entrySet()) {
            long bad = 0;
            for (float x : e.getValue()) {
                bad += Float.isFinite(x) ? 0 : 1;
            }
            if (bad > 0) {
                // the parts were finite; their product (or the sum with the weight) overflowed float32
                throw new WeightsException(file + ": merged at scale " + scale + ", weight '" + e.getKey() + "' holds "
                        + bad + " NaN/Inf values (the LoRA's values are too large for float32)");
            }
        }
        return w;
    }

    private void apply(Map<String, float[]> weights, double scale, int sign) {
        for (Module m : modules) {
            float[] w = weights.get(m.target());
            if (w == null || w.length != m.out() * m.in()) {
                throw new IllegalArgumentException(file + ": '" + Text.quote(m.key()) + "' targets '" + m.target() + "', which "
                        + (w == null ? "is not among the weights given" : "has " + w.length + " values, not "
                        + m.out() * m.in()));
            }
            float[] d = delta(m, scale);
            for (int i = 0; i < w.length; i++) {
                w[i] = sign > 0 ? w[i] + d[i] : w[i] - d[i];
            }
        }
    }

    /** kohya's flattened module name → the model's weight, for every matrix or kernel weight. */
    private static Map<String, String> kohyaNames(Map<String, int[]> shapes) {
        Map<String, String> m = new HashMap<>();
        for (var e : shapes.entrySet()) {
            if (e.getKey().endsWith(".weight") && e.getValue().length >= 2) {
                String module = e.getKey().substring(0, e.getKey().length() - ".weight".length());
                m.put(module.replace('.', '_'), e.getKey());
            }
        }
        return m;
    }

    private static String resolve(String key, Map<String, String> kohya, Map<String, int[]> shapes) {
        if (key.startsWith(KOHYA_PREFIX)) {
            return kohya.get(key.substring(KOHYA_PREFIX.length()));
        }
        for (String prefix : PEFT_PREFIXES) {
            if (key.startsWith(prefix)) {
                String target = key.substring(prefix.length()) + ".weight";
                int[] s = shapes.get(target);
                if (s != null && s.length >= 2) {
                    return target;
                }
            }
        }
        return null;
    }

    private static Module module(SafeTensorsFile f, String file, String key, String target, Map<Part, String> parts,
                                 int[] w) {
        String down = parts.get(Part.DOWN), up = parts.get(Part.UP), alpha = parts.get(Part.ALPHA);
        if (down == null || up == null) {
            String have = parts.values().iterator().next();
            throw new WeightsException(file + ": tensor '" + Text.quote(have) + "' has no matching "
                    + (down == null ? "down (lora_down / lora_A)" : "up (lora_up / lora_B)") + " tensor");
        }
        int[] ds = floatShape(f, file, down), us = floatShape(f, file, up);
        int[] wTail = Arrays.copyOfRange(w, 1, w.length);
        int in = (int) Shape.of(wTail).numel();
        int rank = ds.length >= 2 ? ds[0] : -1;
        // The down projection carries the weight's input side (and the kernel for 3×3 convs); the up
        // projection is [out, rank] or [out, rank, 1, 1]. Trailing 1s are ignored so a 1×1-conv LoRA
        // fits a linear proj_in and the other way round.
        if (rank < 1 || !Arrays.equals(trimOnes(Arrays.copyOfRange(ds, 1, ds.length)), trimOnes(wTail))) {
            throw misfit(file, down, ds, target, w, "[rank, " + Shape.of(wTail).toString().replaceAll("[\\[\\]]", "")
                    + "]");
        }
        if (us.length < 2 || us[0] != w[0] || us[1] != rank || trimOnes(us).length > 2) {
            throw misfit(file, up, us, target, w, "[" + w[0] + ", " + rank + "] (or [" + w[0] + ", " + rank
                    + ", 1, 1])");
        }
        float a = rank;
        if (alpha != null) {
            float[] av = f.toFloatArray(alpha);
            if (av.length != 1 || !Float.isFinite(av[0])) {
                throw new WeightsException(file + ": tensor '" + Text.quote(alpha) + "' must be one finite number, has "
                        + av.length + " values" + (av.length == 1 ? " (" + av[0] + ")" : ""));
            }
            a = av[0];
        }
        return new Module(key, target, finite(f, file, down), finite(f, file, up), rank, w[0], in, a);
    }

    private static WeightsException misfit(String file, String tensor, int[] got, String target, int[] w,
                                           String expected) {
        return new WeightsException(file + ": tensor '" + Text.quote(tensor) + "' has shape " + Shape.of(got) + ", which does"
                + " not fit '" + target + "' " + Shape.of(w) + " (expected " + expected + ")");
    }

    private static int[] floatShape(SafeTensorsFile f, String file, String name) {
        TensorInfo t = f.info(name);
        if (!t.dtype().isFloatingPoint()) {
            throw new WeightsException(file + ": tensor '" + Text.quote(name) + "' has dtype " + t.dtype() + ", expected a float type");
        }
        return t.intShape();
    }

    private static float[] finite(SafeTensorsFile f, String file, String name) {
        float[] v = f.toFloatArray(name);
        for (float x : v) {
            if (!Float.isFinite(x)) {
                throw new WeightsException(file + ": tensor '" + Text.quote(name) + "' holds NaN/Inf values");
            }
        }
        return v;
    }

    private static int[] trimOnes(int[] s) {
        int n = s.length;
        while (n > 0 && s[n - 1] == 1) {
            n--;
        }
        return Arrays.copyOf(s, n);
    }
}
