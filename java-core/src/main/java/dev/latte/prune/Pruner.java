package dev.latte.prune;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.latte.model.ModelWriter;
import dev.latte.model.UNetModel;
import dev.latte.weights.DType;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.Text;
import dev.latte.weights.UNetConfig;
import dev.latte.weights.WeightsException;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * {@code latte prune}: structured channel pruning of the inner widths that leave every block's
 * interface (its input, output and residual/skip channels) unchanged, so the pruned model is
 * the same UNet with narrower insides:
 * <ul>
 *   <li><b>ResnetBlock2D</b> inner channels: {@code conv1} out (weight rows, bias),
 *       {@code time_emb_proj} out, {@code norm2}, {@code conv2} in. The unit is a whole GroupNorm
 *       group of {@code norm2} (out/norm_num_groups consecutive channels), so the groups that stay
 *       keep exactly their statistics; the kept width is a multiple of lcm(4, channels per group)
 *       and {@code norm2} runs with (kept / channels per group) groups.
 *   <li><b>Feed-forward</b> inner dim: {@code ff.net.0.proj} rows of both GEGLU halves together
 *       (a and gate of channel j), {@code ff.net.2} in; units of 4 consecutive channels.
 *   <li><b>Attention</b> inner dim: every head keeps the same number d′ of its head_dim d
 *       channels (heads stay whole, head_dim equal across heads; each head picks its own most
 *       important d′), rows of {@code to_q/to_k/to_v}, columns of {@code to_out.0}; heads·d′ is a
 *       multiple of 4. diffusers scales scores by 1/√d fixed at construction while Latte's graph
 *       uses 1/√(stored head dim), so {@code to_q} is multiplied by √(d′/d) to keep the scale.
 * </ul>
 * Importance of a channel is the L2 norm of the weight rows that produce it ({@code conv1};
 * {@code to_q}, {@code to_k}, {@code to_v} together; both GEGLU rows) — or, when a gradient file
 * is given, of the same rows of the gradient tensor of that name; a unit's importance is the L2
 * norm over its channels. Kept width = ceil((1−R)·C·1.05) (a 5% elastic margin), rounded up to
 * the unit multiple and capped at C; so ratio 0 keeps everything and copies every tensor byte for
 * byte. The kept channels keep their original order. config.json gains {@code "latte_pruned"}
 * (ratio, margin, block, importance, and every module's width before and after), which tells the
 * loader to take inner widths from the weights' shapes.
 */
public final class Pruner {
    public static final String CONFIG_KEY = "latte_pruned";
    public static final int BLOCK = 4;
    public static final double MARGIN = 0.05;

    /** One pruned module: its checkpoint prefix, kind, and inner width before and after. */
    public record Module(String name, String kind, int before, int after) {
    }

    public record Result(List<Module> modules, long paramsBefore, long paramsAfter) {
    }

    private Pruner() {
    }

    /** ceil((1−ratio)·c·(1+margin)) rounded up to {@code multiple}, at least one multiple, at most c. */
    public static int keptWidth(int c, double ratio, int multiple) {
        if (!(ratio >= 0 && ratio < 1)) {
            throw new IllegalArgumentException("pruning ratio " + ratio + " is outside [0, 1)");
        }
        int keep = (int) Math.ceil((1 - ratio) * c * (1 + MARGIN) - 1e-9);
        keep = Math.ceilDiv(Math.max(keep, 1), multiple) * multiple;
        return Math.min(c, keep);
    }

    /** Kept inner width of a ResnetBlock2D with {@code c} inner channels in {@code groups} GroupNorm groups. */
    public static int keptResnetWidth(int c, int groups, double ratio) {
        int perGroup = c / groups;
        return keptWidth(c, ratio, Pruning.lcm(BLOCK, perGroup));
    }

    /** Kept head_dim of an attention with {@code heads} heads of {@code d}: heads·d′ a multiple of 4. */
    public static int keptHeadDim(int d, int heads, double ratio) {
        return keptWidth(d, ratio, BLOCK / Pruning.gcd(BLOCK, heads));
    }

    /** Kept inner dim of a feed-forward of inner dim {@code f}: blocks of 4. */
    public static int keptFeedForward(int f, double ratio) {
        return keptWidth(f, ratio, f % BLOCK == 0 ? BLOCK : 1);
    }

    /**
     * Every gradient must be a float tensor of a weight's name and shape, and finite: an unknown
     * name is a typo that would silently fall back to weight norms, and NaN would rank channels
     * arbitrarily.
     */
    static void checkGradients(SafeTensorsFile grads, SafeTensorsFile weights) {
        String file = Text.quote(String.valueOf(grads.path().getFileName()));
        for (TensorInfo g : grads.tensors()) {
            String name = Text.quote(g.name());
            if (!weights.contains(g.name())) {
                throw new WeightsException(file + ": gradient '" + name + "' names no weight of the model");
            }
            if (!g.dtype().isFloatingPoint()) {
                throw new WeightsException(file + ": gradient '" + name + "' has dtype " + g.dtype()
                        + "; gradients are F32, F16, BF16 or F64");
            }
            if (!Arrays.equals(g.shape(), weights.info(g.name()).shape())) {
                throw new WeightsException(file + ": gradient '" + name + "' has shape " + Arrays.toString(g.shape())
                        + ", the weight " + Arrays.toString(weights.info(g.name()).shape()));
            }
            long bad = grads.nonFiniteCount(g.name());
            if (bad > 0) {
                throw new WeightsException(file + ": gradient '" + name + "' holds " + bad + " NaN/Inf values");
            }
        }
    }

    /**
     * Prunes {@code model} at {@code ratio} into {@code outDir}; {@code grads} (nullable) holds
     * gradients by weight name for gradient-based importance.
     */
    public static Result prune(UNetModel model, double ratio, SafeTensorsFile grads, Path outDir) {
        if (model.isQuantized() || model.isPruned()) {
            throw new WeightsException(model.dir() + ": is already " + (model.isPruned() ? "pruned" : "quantised")
                    + "; prune the original fp32/fp16 model (then quantise)");
        }
        keptWidth(1, ratio, 1); // range check first
        if (grads != null) {
            checkGradients(grads, model.weights());
        }
        Pruning p = new Pruning(model, ratio, grads);
        p.plan();
        SafeTensorsFile weights = model.weights();
        SafeTensorsWriter w = new SafeTensorsWriter();
        weights.metadata().forEach(w::metadata);
        long before = 0, after = 0;
        for (TensorInfo t : weights.tensors()) {
            before += t.numel();
            Edited e = p.edited.get(t.name());
            if (e == null) {
                w.add(t.name(), t.dtype(), t.shape(), weights.data(t.name()));
                after += t.numel();
            } else {
                w.add(t.name(), t.dtype(), e.shape, e.data);
                after += Arrays.stream(e.shape).reduce(1, Math::multiplyExact);
            }
        }
        String importance = grads == null ? "l2 norm of weight rows"
                : "l2 norm of gradient rows (" + grads.path().getFileName() + ")";
        ModelWriter.write(model, outDir, cfg -> {
            ObjectNode o = cfg.putObject(CONFIG_KEY);
            o.put("ratio", ratio);
            o.put("margin", MARGIN);
            o.put("block", BLOCK);
            o.put("importance", importance);
            ObjectNode widths = o.putObject("widths");
            for (Module m : p.modules) {
                widths.putArray(m.name()).add(m.before()).add(m.after());
            }
        }, w);
        return new Result(List.copyOf(p.modules), before, after);
    }

    private record Edited(long[] shape, MemorySegment data) {
    }

    /** One pruning run: decides kept channels per module and slices the tensors they touch. */
    private static final class Pruning {
        private final SafeTensorsFile weights;
        private final SafeTensorsFile grads;
        private final double ratio;
        private final UNetConfig cfg;
        private final List<Module> modules = new ArrayList<>();
        private final Map<String, Edited> edited = new HashMap<>();

        Pruning(UNetModel model, double ratio, SafeTensorsFile grads) {
            this.weights = model.weights();
            this.grads = grads;
            this.ratio = ratio;
            this.cfg = model.config();
        }

        void plan() {
            for (TensorInfo t : weights.tensors()) {
                String n = t.name();
                if (n.endsWith(".conv1.weight") && weights.contains(prefix(n, ".conv1.weight") + ".norm2.weight")) {
                    resnet(prefix(n, ".conv1.weight"));
                } else if (n.endsWith(".ff.net.0.proj.weight")) {
                    feedForward(prefix(n, ".ff.net.0.proj.weight"));
                } else if (n.endsWith(".to_q.weight")) {
                    attention(prefix(n, ".to_q.weight"));
                }
            }
        }

        private void resnet(String p) {
            int c = rows(p + ".conv1.weight"), groups = cfg.normNumGroups();
            if (c % groups != 0) {
                return;
            }
            int perGroup = c / groups;
            int keep = keptResnetWidth(c, groups, ratio);
            double[] sq = rowSquares(p + ".conv1.weight");
            int[] idx = topUnits(sq, perGroup, keep / perGroup);
            modules.add(new Module(p, "resnet", c, idx.length));
            if (idx.length == c) {
                return;
            }
            for (String t : List.of(".conv1.weight", ".conv1.bias", ".time_emb_proj.weight", ".time_emb_proj.bias",
                    ".norm2.weight", ".norm2.bias")) {
                select(p + t, 0, idx);
            }
            select(p + ".conv2.weight", 1, idx);
        }

        private void feedForward(String p) {
            String proj = p + ".ff.net.0.proj.weight";
            int f = rows(proj) / 2;
            double[] sq = rowSquares(proj), both = new double[f];
            for (int j = 0; j < f; j++) {
                both[j] = sq[j] + sq[f + j];
            }
            int unit = f % BLOCK == 0 ? BLOCK : 1;
            int keep = keptFeedForward(f, ratio);
            int[] idx = topUnits(both, unit, keep / unit);
            modules.add(new Module(p + ".ff", "feed-forward", f, idx.length));
            if (idx.length == f) {
                return;
            }
            int[] rows = IntStream.concat(Arrays.stream(idx), Arrays.stream(idx).map(j -> j + f)).toArray();
            select(proj, 0, rows);
            select(p + ".ff.net.0.proj.bias", 0, rows);
            select(p + ".ff.net.2.weight", 1, idx);
        }

        private void attention(String p) {
            int inner = rows(p + ".to_q.weight"), heads = heads(p);
            if (inner % heads != 0) {
                return;
            }
            int d = inner / heads;
            int keep = keptHeadDim(d, heads, ratio);
            double[] q = rowSquares(p + ".to_q.weight"), k = rowSquares(p + ".to_k.weight");
            double[] v = rowSquares(p + ".to_v.weight");
            List<Integer> kept = new ArrayList<>();
            for (int h = 0; h < heads; h++) {
                double[] s = new double[d];
                for (int i = 0; i < d; i++) {
                    s[i] = q[h * d + i] + k[h * d + i] + v[h * d + i];
                }
                for (int i : topUnits(s, 1, keep)) {
                    kept.add(h * d + i);
                }
            }
            int[] idx = kept.stream().mapToInt(Integer::intValue).toArray();
            modules.add(new Module(p, "attention", inner, idx.length));
            if (idx.length == inner) {
                return;
            }
            for (String t : List.of(".to_q.weight", ".to_k.weight", ".to_v.weight")) {
                select(p + t, 0, idx);
            }
            select(p + ".to_out.0.weight", 1, idx);
            scaleTensor(p + ".to_q.weight", (float) Math.sqrt((double) keep / d));
        }

        /** Heads of the transformer a module belongs to, as the UNet builder assigns them per level. */
        private int heads(String p) {
            List<Integer> h = cfg.attentionHeadDim();
            String[] parts = p.split("\\.");
            return switch (parts[0]) {
                case "down_blocks" -> h.get(Integer.parseInt(parts[1]));
                case "up_blocks" -> h.get(cfg.levels() - 1 - Integer.parseInt(parts[1]));
                default -> h.getLast();
            };
        }

        private int rows(String name) {
            return weights.info(name).intShape()[0];
        }

        /** Σ of squares per row (dim 0) of the importance source: the gradient if given, else the weight. */
        private double[] rowSquares(String name) {
            SafeTensorsFile src = grads != null && grads.contains(name) ? grads : weights;
            if (src == grads && !Arrays.equals(grads.info(name).shape(), weights.info(name).shape())) {
                throw new WeightsException(grads.path().getFileName() + ": gradient '" + Text.quote(name) + "' has shape "
                        + Arrays.toString(grads.info(name).shape()) + ", the weight "
                        + Arrays.toString(weights.info(name).shape()));
            }
            float[] v = src.toFloatArray(name);
            int r = rows(name), cols = v.length / r;
            double[] sq = new double[r];
            for (int i = 0; i < r; i++) {
                for (int j = i * cols; j < (i + 1) * cols; j++) {
                    sq[i] += (double) v[j] * v[j];
                }
            }
            return sq;
        }

        /** Channels of the {@code count} most important units of {@code unit} consecutive channels, in order. */
        private static int[] topUnits(double[] channelSquares, int unit, int count) {
            int units = channelSquares.length / unit;
            double[] score = new double[units];
            for (int u = 0; u < units; u++) {
                for (int i = u * unit; i < (u + 1) * unit; i++) {
                    score[u] += channelSquares[i];
                }
            }
            return IntStream.range(0, units).boxed()
                    .sorted(Comparator.comparingDouble((Integer u) -> -score[u]).thenComparingInt(u -> u))
                    .limit(count).sorted()
                    .flatMapToInt(u -> IntStream.range(u * unit, (u + 1) * unit)).toArray();
        }

        /** Keeps indices {@code idx} of dimension {@code dim} of tensor {@code name} (raw bytes, any dtype). */
        private void select(String name, int dim, int[] idx) {
            TensorInfo t = weights.info(name);
            long[] shape = t.shape();
            MemorySegment src = weights.data(name);
            long outer = 1, inner = t.dtype().byteSize();
            for (int i = 0; i < dim; i++) {
                outer *= shape[i];
            }
            for (int i = dim + 1; i < shape.length; i++) {
                inner *= shape[i];
            }
            MemorySegment dst = MemorySegment.ofArray(new byte[Math.toIntExact(outer * idx.length * inner)]);
            long at = 0;
            for (long o = 0; o < outer; o++) {
                for (int i : idx) {
                    MemorySegment.copy(src, (o * shape[dim] + i) * inner, dst, at, inner);
                    at += inner;
                }
            }
            shape[dim] = idx.length;
            edited.put(name, new Edited(shape, dst));
        }

        /** Multiplies an already selected F32 or F16 tensor by {@code f}. */
        private void scaleTensor(String name, float f) {
            Edited e = edited.get(name);
            DType dtype = weights.info(name).dtype();
            var le = ByteOrder.LITTLE_ENDIAN;
            long n = e.data.byteSize() / dtype.byteSize();
            for (long i = 0; i < n; i++) {
                switch (dtype) {
                    case F32 -> {
                        var l = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(le);
                        e.data.setAtIndex(l, i, e.data.getAtIndex(l, i) * f);
                    }
                    case F16 -> {
                        var l = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(le);
                        e.data.setAtIndex(l, i, Float.floatToFloat16(Float.float16ToFloat(e.data.getAtIndex(l, i)) * f));
                    }
                    default -> throw new WeightsException(name + ": pruning an attention needs F32 or F16 weights, got "
                            + dtype);
                }
            }
        }

        private static String prefix(String name, String suffix) {
            return name.substring(0, name.length() - suffix.length());
        }

        private static int gcd(int a, int b) {
            return b == 0 ? a : gcd(b, a % b);
        }

        private static int lcm(int a, int b) {
            return a / gcd(a, b) * b;
        }
    }
}
