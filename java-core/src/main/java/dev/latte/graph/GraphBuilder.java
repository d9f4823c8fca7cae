package dev.latte.graph;

import dev.latte.core.Conv2dParams;
import dev.latte.core.Shape;
import dev.latte.core.StorageType;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.SequencedMap;
import java.util.function.Supplier;

/**
 * Builds a {@link Graph}. Model code opens scopes that mirror checkpoint keys
 * ({@code down_blocks.0.resnets.1}); parameters are declared by their local name and expected
 * shape, so a config that contradicts its weights shows up as a named shape mismatch. Every op
 * checks its operands' shapes here, once, so backends need not.
 */
public final class GraphBuilder {
    private final List<Value> values = new ArrayList<>();
    private final List<Op> ops = new ArrayList<>();
    private final SequencedMap<String, Value> inputs = new LinkedHashMap<>();
    private final SequencedMap<String, Value> params = new LinkedHashMap<>();
    private final SequencedMap<String, Value> outputs = new LinkedHashMap<>();
    private final Deque<String> scope = new ArrayDeque<>();
    private final WeightFormat format;

    /** A builder whose weights are all float with the config's shapes. */
    public GraphBuilder() {
        this(WeightFormat.CONFIG);
    }

    /** A builder that emits int8 ops for the weights {@code format} says are int8. */
    public GraphBuilder(WeightFormat format) {
        this.format = format;
    }

    /**
     * Dimension {@code dim} of the stored parameter {@code local} in the current scope, or
     * {@code fallback} where the format does not know it: how a builder reads the inner width of
     * a pruned module.
     */
    public int storedDim(String local, int dim, int fallback) {
        int[] s = format.shape(path(local));
        return s == null || s.length <= dim ? fallback : s[dim];
    }

    /** Enters a module scope (a checkpoint key prefix); {@link #pop} leaves it. */
    public void push(String name) {
        scope.addLast(name);
    }

    public void pop() {
        scope.removeLast();
    }

    /** Runs body inside a module scope. */
    public <T> T in(String name, Supplier<T> body) {
        scope.addLast(name);
        try {
            return body.get();
        } finally {
            scope.removeLast();
        }
    }

    private String path(String local) {
        return scope.isEmpty() ? local : String.join(".", scope) + "." + local;
    }

    /** The most elements one tensor may hold: a Java array's limit, which the CPU backend stores it in. */
    public static final long MAX_ELEMENTS = Integer.MAX_VALUE - 8;

    private Value newValue(Value.Kind kind, String name, Shape shape) {
        return newValue(kind, name, shape, null);
    }

    private Value newValue(Value.Kind kind, String name, Shape shape, StorageType storage) {
        long n;
        try {
            n = shape.numel();
        } catch (ArithmeticException overflow) {
            n = Long.MAX_VALUE;
        }
        if (n > MAX_ELEMENTS) {
            throw new GraphException(name + ": " + shape + " has more than the " + MAX_ELEMENTS
                    + " elements one tensor may hold (input too large for this model)");
        }
        Value v = new Value(values.size(), kind, name, shape, storage);
        values.add(v);
        return v;
    }

    public Value input(String name, Shape shape) {
        return input(name, shape, null);
    }

    /**
     * A graph input stored as {@code storage} on every backend (null: as the backend's
     * activations), e.g. token ids in fp32 under fp16 activations; only the ops that read such
     * an input ({@link Op#fixedStorageInputs}) may take it.
     */
    public Value input(String name, Shape shape, StorageType storage) {
        if (inputs.containsKey(name)) {
            throw new GraphException("duplicate graph input '" + name + "'");
        }
        Value v = newValue(Value.Kind.INPUT, name, shape, storage);
        inputs.put(name, v);
        return v;
    }

    /** A parameter by its checkpoint-local name, e.g. {@code param("weight", ...)} in scope {@code conv_in}. */
    public Value param(String local, Shape shape) {
        String name = path(local);
        Value existing = params.get(name);
        if (existing != null) {
            if (!existing.shape().equals(shape)) {
                throw new GraphException(name + ": declared as " + existing.shape() + " and " + shape);
            }
            return existing;
        }
        Value v = newValue(Value.Kind.PARAM, name, shape);
        params.put(name, v);
        return v;
    }

    /** Marks a value as a named result kept after the run. */
    public void output(String name, Value v) {
        if (outputs.putIfAbsent(name, v) != null) {
            throw new GraphException("duplicate graph output '" + name + "'");
        }
    }

    private Value act(String op, Shape shape) {
        return newValue(Value.Kind.ACTIVATION, path(op), shape);
    }

    private GraphException bad(String op, String what) {
        return new GraphException(path(op) + ": " + what);
    }

    private void requireRank(String op, Value v, int rank) {
        if (v.shape().rank() != rank) {
            throw bad(op, "expected a rank-" + rank + " input, got " + v.shape());
        }
    }

    private void requireShape(String op, Value v, Shape expected) {
        if (!v.shape().equals(expected)) {
            throw bad(op, "expected " + expected + ", got " + v.shape() + " (" + v.name() + ")");
        }
    }

    // ---- ops -------------------------------------------------------------------------------

    /** Conv2d with a parameter pair {@code weight}/{@code bias} in the current scope. */
    public Value conv2d(Value x, int outChannels, int kernel, Conv2dParams p, boolean bias) {
        requireRank("conv2d", x, 4);
        Shape s = x.shape();
        Value w = param("weight", Shape.of(outChannels, s.dim(1), kernel, kernel));
        Value b = bias ? param("bias", Shape.of(outChannels)) : null;
        int oh = p.outHeight(s.dim(2), kernel), ow = p.outWidth(s.dim(3), kernel);
        if (oh <= 0 || ow <= 0) {
            throw bad("conv2d", "input " + s + " too small for a " + kernel + "x" + kernel + " kernel");
        }
        Value out = act("conv2d", Shape.of(s.dim(0), outChannels, oh, ow));
        if (format.isInt8(w.name())) {
            Value sc = param("weight" + WeightFormat.SCALE_SUFFIX, Shape.of(outChannels));
            ops.add(new Op.Conv2dInt8(out.name(), x.id(), w.id(), sc.id(), b == null ? -1 : b.id(), p,
                    format.int8Mode(), out.id()));
            return out;
        }
        ops.add(new Op.Conv2d(out.name(), x.id(), w.id(), b == null ? -1 : b.id(), p, out.id()));
        return out;
    }

    /** GroupNorm with {@code weight}/{@code bias} in the current scope, optionally followed by SiLU. */
    public Value groupNorm(Value x, int groups, double eps, boolean silu) {
        Shape s = x.shape();
        if (s.rank() < 2 || groups <= 0 || s.dim(1) % groups != 0) {
            throw bad("group_norm", s + " cannot be split into " + groups + " groups");
        }
        Value g = param("weight", Shape.of(s.dim(1)));
        Value b = param("bias", Shape.of(s.dim(1)));
        Value out = act(silu ? "group_norm_silu" : "group_norm", s);
        ops.add(new Op.GroupNorm(out.name(), x.id(), g.id(), b.id(), groups, (float) eps, silu, out.id()));
        return out;
    }

    public Value layerNorm(Value x, double eps) {
        Shape s = x.shape();
        Value g = param("weight", Shape.of(s.dim(-1)));
        Value b = param("bias", Shape.of(s.dim(-1)));
        Value out = act("layer_norm", s);
        ops.add(new Op.LayerNorm(out.name(), x.id(), g.id(), b.id(), (float) eps, out.id()));
        return out;
    }

    /** Linear with {@code weight} [outFeatures, in] and optional {@code bias} in the current scope. */
    public Value linear(Value x, int outFeatures, boolean bias) {
        Shape s = x.shape();
        Value w = param("weight", Shape.of(outFeatures, s.dim(-1)));
        Value b = bias ? param("bias", Shape.of(outFeatures)) : null;
        int[] dims = s.dims();
        dims[dims.length - 1] = outFeatures;
        Value out = act("linear", Shape.of(dims));
        if (format.isInt8(w.name())) {
            Value sc = param("weight" + WeightFormat.SCALE_SUFFIX, Shape.of(outFeatures));
            ops.add(new Op.LinearInt8(out.name(), x.id(), w.id(), sc.id(), b == null ? -1 : b.id(),
                    format.int8Mode(), out.id()));
            return out;
        }
        ops.add(new Op.Linear(out.name(), x.id(), w.id(), b == null ? -1 : b.id(), out.id()));
        return out;
    }

    public Value attention(Value q, Value k, Value v, int heads) {
        return attention(q, k, v, heads, false);
    }

    /** Multi-head attention; {@code causal}: query i sees keys j ≤ i (q and k of one length). */
    public Value attention(Value q, Value k, Value v, int heads, boolean causal) {
        requireRank("attention", q, 3);
        requireRank("attention", k, 3);
        requireShape("attention", v, k.shape());
        int c = q.shape().dim(2);
        if (k.shape().dim(0) != q.shape().dim(0) || k.shape().dim(2) != c || c % heads != 0) {
            throw bad("attention", "q " + q.shape() + ", k " + k.shape() + " do not fit " + heads + " heads");
        }
        if (causal && k.shape().dim(1) != q.shape().dim(1)) {
            throw bad("attention", "causal attention needs as many keys as queries, got q " + q.shape() + ", k "
                    + k.shape());
        }
        float scale = (float) (1.0 / Math.sqrt(c / heads));
        Value out = act("attention", q.shape());
        ops.add(new Op.Attention(out.name(), q.id(), k.id(), v.id(), heads, scale, causal, out.id()));
        return out;
    }

    public Value silu(Value x) {
        return unary(Op.Fn.SILU, "silu", x, x.shape());
    }

    public Value gelu(Value x) {
        return unary(Op.Fn.GELU, "gelu", x, x.shape());
    }

    public Value quickGelu(Value x) {
        return unary(Op.Fn.QUICK_GELU, "quick_gelu", x, x.shape());
    }

    /**
     * Embedding of {@code ids} [B, L] by the parameter {@code table} [vocab, dim] in the current
     * scope, plus {@code positions} (a parameter [P ≥ L, dim], nullable) row l at position l.
     */
    public Value embedding(Value ids, Value table, Value positions) {
        requireRank("embedding", ids, 2);
        if (ids.storage() != StorageType.F32) {
            throw bad("embedding", "ids '" + ids.name() + "' must be an input stored as fp32 (token ids above 2048"
                    + " are not exact in fp16): input(name, shape, StorageType.F32)");
        }
        int dim = table.shape().dim(1);
        if (positions != null && (positions.shape().dim(1) != dim || positions.shape().dim(0) < ids.shape().dim(1))) {
            throw bad("embedding", "positions " + positions.shape() + " do not cover " + ids.shape().dim(1)
                    + " tokens of width " + dim);
        }
        Value out = act("embedding", Shape.of(ids.shape().dim(0), ids.shape().dim(1), dim));
        ops.add(new Op.Embedding(out.name(), ids.id(), table.id(), positions == null ? -1 : positions.id(), out.id()));
        return out;
    }

    public Value geglu(Value x) {
        int[] dims = x.shape().dims();
        if (dims[dims.length - 1] % 2 != 0) {
            throw bad("geglu", "odd last dimension in " + x.shape());
        }
        dims[dims.length - 1] /= 2;
        return unary(Op.Fn.GEGLU, "geglu", x, Shape.of(dims));
    }

    private Value unary(Op.Fn fn, String op, Value x, Shape outShape) {
        Value out = act(op, outShape);
        ops.add(new Op.Unary(out.name(), fn, x.id(), out.id()));
        return out;
    }

    public Value timestepEmbedding(Value t, int dim, boolean flipSinToCos, double freqShift) {
        requireRank("time_proj", t, 1);
        Value out = act("time_proj", Shape.of(t.shape().dim(0), dim));
        ops.add(new Op.TimestepEmbedding(out.name(), t.id(), flipSinToCos, (float) freqShift, out.id()));
        return out;
    }

    /** Nearest-neighbour resize of x to height × width. */
    public Value upsampleNearest(Value x, int height, int width) {
        requireRank("upsample", x, 4);
        Shape s = x.shape();
        Value out = act("upsample", Shape.of(s.dim(0), s.dim(1), height, width));
        ops.add(new Op.UpsampleNearest(out.name(), x.id(), out.id()));
        return out;
    }

    public Value concatChannels(Value a, Value b) {
        requireRank("concat", a, 4);
        requireRank("concat", b, 4);
        Shape sa = a.shape(), sb = b.shape();
        if (sa.dim(0) != sb.dim(0) || sa.dim(2) != sb.dim(2) || sa.dim(3) != sb.dim(3)) {
            throw bad("concat", "cannot concatenate " + sa + " and " + sb + " along channels");
        }
        Value out = act("concat", Shape.of(sa.dim(0), sa.dim(1) + sb.dim(1), sa.dim(2), sa.dim(3)));
        ops.add(new Op.ConcatChannels(out.name(), a.id(), b.id(), out.id()));
        return out;
    }

    public Value add(Value a, Value b) {
        requireShape("add", b, a.shape());
        Value out = act("add", a.shape());
        ops.add(new Op.Add(out.name(), a.id(), b.id(), out.id()));
        return out;
    }

    /** x [N,C,H,W] + v [N,C] broadcast over H and W. */
    public Value addChannelBias(Value x, Value v) {
        requireRank("add_temb", x, 4);
        requireShape("add_temb", v, Shape.of(x.shape().dim(0), x.shape().dim(1)));
        Value out = act("add_temb", x.shape());
        ops.add(new Op.AddChannelBias(out.name(), x.id(), v.id(), out.id()));
        return out;
    }

    public Value scale(Value x, double s) {
        Value out = act("scale", x.shape());
        ops.add(new Op.Scale(out.name(), x.id(), (float) s, out.id()));
        return out;
    }

    /** [N,C,H,W] → [N,H·W,C]. */
    public Value toTokens(Value x) {
        requireRank("to_tokens", x, 4);
        Shape s = x.shape();
        Value out = act("to_tokens", Shape.of(s.dim(0), s.dim(2) * s.dim(3), s.dim(1)));
        ops.add(new Op.ToTokens(out.name(), x.id(), out.id()));
        return out;
    }

    /** [N,H·W,C] → [N,C,H,W]. */
    public Value fromTokens(Value x, int height, int width) {
        requireRank("from_tokens", x, 3);
        Shape s = x.shape();
        if (s.dim(1) != height * width) {
            throw bad("from_tokens", s + " does not hold " + height + "x" + width + " tokens");
        }
        Value out = act("from_tokens", Shape.of(s.dim(0), s.dim(2), height, width));
        ops.add(new Op.FromTokens(out.name(), x.id(), out.id()));
        return out;
    }

    public Graph build() {
        if (!scope.isEmpty()) {
            throw new IllegalStateException("unclosed scope " + scope);
        }
        return new Graph(values, ops, inputs, params, outputs);
    }
}
