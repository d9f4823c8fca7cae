package dev.latte.core;

import dev.latte.graph.Graph;
import dev.latte.weights.DType;
import dev.latte.weights.SafeTensorsFile;
import java.lang.foreign.MemorySegment;

/**
 * Executes ops on tensors it owns. One method per op; every op writes into an output tensor the
 * caller allocated, so a static plan decides where every activation lives. Shapes are checked by
 * the graph builder; a backend may assume consistent shapes but must reject ones it cannot run.
 * Float tensors are NCHW for images and [batch, tokens, channels] for sequences.
 */
public interface Backend extends AutoCloseable {
    String name();

    /** A new activation tensor, contents undefined. */
    Tensor allocate(Shape shape);

    /** A tensor holding a copy of host fp32 values. */
    Tensor upload(Shape shape, float[] values);

    /**
     * A weight whose values are {@code bytes}, a tensor of a memory-mapped safetensors file
     * ({@code SafeTensorsFile.data}) in a floating-point {@code dtype}. The mapping must outlive the
     * tensor. By default the values are widened to fp32 and uploaded; a host backend may read the
     * file bytes in place instead of holding a copy.
     */
    default Tensor uploadMapped(Shape shape, MemorySegment bytes, DType dtype) {
        if (!dtype.isFloatingPoint() || bytes.byteSize() != shape.numel() * dtype.byteSize()) {
            throw new IllegalArgumentException("uploadMapped: " + bytes.byteSize() + " bytes of " + dtype
                    + " for shape " + shape);
        }
        float[] v = new float[Math.toIntExact(shape.numel())];
        SafeTensorsFile.toFloats(bytes, dtype, 0, v, 0, v.length);
        return upload(shape, v);
    }

    /** The tensor's values as host fp32. */
    float[] download(Tensor t);

    /** Gives the tensor's storage back; the tensor must not be used afterwards. */
    void release(Tensor t);

    // ---- planned memory (dev.latte.plan): one arena per plan, activations as views into it ---------

    /** Whether {@link #arena}, {@link #view} and {@link #write} work; planned execution needs all three. */
    default boolean supportsArena() {
        return false;
    }

    /** How this backend stores activations (and float weights): fp32, or fp16 on a half-precision backend. */
    default StorageType activationType() {
        return StorageType.F32;
    }

    /** Bytes per activation element this backend stores (fp32 4, fp16 2): plans for it are made at this size. */
    default int activationBytes() {
        return activationType().bytes();
    }

    // ---- storage per tensor: a graph value may fix its own type (token ids: fp32 under fp16 activations)

    /** Whether this backend holds float tensors stored as {@code storage} (null: the activation type). */
    default boolean stores(StorageType storage) {
        return storage == null || storage == activationType();
    }

    /** {@link #allocate(Shape)} stored as {@code storage} (null: the activation type). */
    default Tensor allocate(Shape shape, StorageType storage) {
        requireStorage("allocate", storage);
        return allocate(shape);
    }

    /** {@link #upload(Shape, float[])} stored as {@code storage} (null: the activation type). */
    default Tensor upload(Shape shape, float[] values, StorageType storage) {
        requireStorage("upload", storage);
        return upload(shape, values);
    }

    /** {@link #view(Tensor, long, Shape)} of elements stored as {@code storage} (null: the activation type). */
    default Tensor view(Tensor arena, long byteOffset, Shape shape, StorageType storage) {
        requireStorage("view", storage);
        return view(arena, byteOffset, shape);
    }

    private void requireStorage(String what, StorageType storage) {
        if (!stores(storage)) {
            throw new UnsupportedOperationException(name() + " backend: " + what + ": tensors stored as "
                    + storage.label() + " are not supported (it stores " + activationType().label() + ")");
        }
    }

    /**
     * One allocation of {@code bytes} (contents undefined) that a {@code MemoryPlan}'s activations
     * live in, made once per plan, before the first step; {@link #release} frees it. A device
     * backend makes one device allocation here and none during a step.
     */
    default Tensor arena(long bytes) {
        throw new UnsupportedOperationException(name() + " backend: arenas are not supported");
    }

    /**
     * Allocates now whatever a step of {@code graph} needs besides its activations (scratch,
     * constant tables), so the step itself allocates nothing and can be captured as a CUDA graph.
     * Called when a plan's arena is bound; what it allocates lives until the backend closes.
     */
    default void reserve(Graph graph) {
    }

    /**
     * A tensor of {@code shape} whose storage is {@code arena}'s bytes from {@code byteOffset} on
     * (the plan's offsets are 256-byte aligned). Making a view allocates no storage; a view is
     * valid while its arena is and must not be released itself. Ops must accept views wherever
     * they accept tensors, including an output view that is the very same bytes as an input view
     * for the in-place ops below.
     */
    default Tensor view(Tensor arena, long byteOffset, Shape shape) {
        throw new UnsupportedOperationException(name() + " backend: arena views are not supported");
    }

    /** Copies host fp32 values into an existing tensor (a graph input's view in the arena). */
    default void write(Tensor t, float[] values) {
        throw new UnsupportedOperationException(name() + " backend: write into a tensor is not supported");
    }

    /** out = conv(x, w) + bias; x [N,C,H,W], w [K,C,R,S], bias [K] or null, out [N,K,P,Q]. */
    void conv2d(Tensor x, Tensor w, Tensor bias, Conv2dParams p, Tensor out);

    /**
     * Fused convolution: out = conv(norm(x), w) + bias (+ residual). {@code norm} (nullable) is a
     * GroupNorm(+SiLU) applied on load; {@code residual} (nullable, out's shape) is added in the
     * epilogue, and <b>out may be residual</b> (the memory planner runs this op in place over a
     * residual that dies here): each output element reads its residual element before writing.
     * This default composes the unfused ops, exactly as the graph would have run them, through a
     * temporary so the in-place case is safe; it allocates, so a backend that runs from a plan's
     * arena with no allocation inside a step overrides it.
     */
    default void conv2dFused(Tensor x, NormAct norm, Tensor w, Tensor bias, Conv2dParams p, Tensor residual,
                             Tensor out) {
        Tensor in = x;
        if (norm != null) {
            in = allocate(x.shape());
        }
        try {
            if (norm != null) {
                groupNorm(x, norm.gamma(), norm.beta(), norm.groups(), norm.eps(), norm.silu(), in);
            }
            if (residual == null) {
                conv2d(in, w, bias, p, out);
            } else {
                // out may be residual: the conv must not overwrite it before the add reads it
                Tensor conv = allocate(out.shape());
                try {
                    conv2d(in, w, bias, p, conv);
                    add(residual, conv, out);
                } finally {
                    release(conv);
                }
            }
        } finally {
            if (in != x) {
                release(in);
            }
        }
    }

    /**
     * out = conv(upsampleNearest(x to height × width), w) + bias: diffusers' Upsample2D with the
     * resize folded into the conv's load. This default composes the two ops; a backend that
     * gathers the resized input on the fly overrides it.
     */
    default void conv2dUpsampled(Tensor x, int height, int width, Tensor w, Tensor bias, Conv2dParams p,
                                 Tensor out) {
        Shape s = x.shape();
        Tensor up = allocate(Shape.of(s.dim(0), s.dim(1), height, width));
        try {
            upsampleNearest(x, up);
            conv2d(up, w, bias, p, out);
        } finally {
            release(up);
        }
    }

    /** GroupNorm over [N,C,...] with per-channel affine; {@code silu} applies SiLU after it. */
    void groupNorm(Tensor x, Tensor gamma, Tensor beta, int groups, float eps, boolean silu, Tensor out);

    /** LayerNorm over the last dimension with affine. */
    void layerNorm(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor out);

    /** out = x·wᵀ + bias; x [..., in], w [outF, in], bias [outF] or null. */
    void linear(Tensor x, Tensor w, Tensor bias, Tensor out);

    /**
     * out = x·wᵀ + bias + residual, shapes as {@link #linear}, residual out's shape; <b>out may be
     * residual</b> (the planner runs it in place over a residual that dies here). This default
     * composes the unfused ops through a temporary, so it allocates; a backend that runs from a
     * plan's arena with no allocation inside a step overrides it.
     */
    default void linearResidual(Tensor x, Tensor w, Tensor bias, Tensor residual, Tensor out) {
        OpChecks.linearResidual(x, w, bias, residual, out);
        Tensor y = allocate(out.shape());
        try {
            linear(x, w, bias, y);
            add(residual, y, out);
        } finally {
            release(y);
        }
    }

    /**
     * out [..., F] = geglu(x·wᵀ + bias) with w [2F, in] (value rows, then gate rows), bias [2F] or
     * null: diffusers' GEGLU without its [..., 2F] projection stored. This default composes the
     * unfused ops through a temporary.
     */
    default void linearGeglu(Tensor x, Tensor w, Tensor bias, Tensor out) {
        OpChecks.linearGeglu(x, w, bias, out);
        int[] pd = x.shape().dims();
        pd[pd.length - 1] = w.shape().dim(0);
        Tensor y = allocate(Shape.of(pd));
        try {
            linear(x, w, bias, y);
            geglu(y, out);
        } finally {
            release(y);
        }
    }

    /**
     * Sub-tensor {@code index} of {@code t} along its first dimension ({@code t [n, ...]} →
     * {@code [...]}), sharing t's storage: valid while t is, never released itself.
     */
    default Tensor part(Tensor t, int index) {
        throw new UnsupportedOperationException(name() + " backend: sub-tensors (part) are not supported");
    }

    /**
     * A self-attention's q, k and v projections in one op: out [3, ..., C] = the three linears
     * one after the other, each weight [C, in], biases all or none. This default runs the three
     * linears into out's parts; a backend with one GEMM over the three weights overrides it.
     */
    default void linearQkv(Tensor x, Tensor wq, Tensor wk, Tensor wv, Tensor bq, Tensor bk, Tensor bv, Tensor out) {
        OpChecks.linearQkv(x, wq, wk, wv, bq, bk, bv, out);
        linear(x, wq, bq, part(out, 0));
        linear(x, wk, bk, part(out, 1));
        linear(x, wv, bv, part(out, 2));
    }

    /** {@link #attention} over the q, k and v parts of qkv [3, B, S, C] ({@link #linearQkv}'s output). */
    default void attentionQkv(Tensor qkv, int heads, float scale, boolean causal, Tensor out) {
        OpChecks.attentionQkv(qkv, heads, out);
        attention(part(qkv, 0), part(qkv, 1), part(qkv, 2), heads, scale, causal, out);
    }

    /**
     * Multi-head scaled dot-product attention: q [B,Sq,H·D], k and v [B,Sk,H·D], out [B,Sq,H·D];
     * head h uses channels [h·D, (h+1)·D).
     */
    void attention(Tensor q, Tensor k, Tensor v, int heads, float scale, Tensor out);

    /**
     * {@link #attention} with a causal mask when {@code causal}: query i attends to keys
     * j ≤ i + (Sk − Sq) only, by bounding the key loop, never through a materialised mask.
     */
    default void attention(Tensor q, Tensor k, Tensor v, int heads, float scale, boolean causal, Tensor out) {
        if (causal) {
            throw new UnsupportedOperationException(name() + " backend: op attention (causal) is not supported");
        }
        attention(q, k, v, heads, scale, out);
    }

    /**
     * Embedding lookup: ids [B, L] (integral values held as floats, exact below 2²⁴), table [V, D],
     * positions [P ≥ L, D] or null, out [B, L, D] = table[ids] (+ positions[0..L)). An id outside
     * [0, V) is an error naming it.
     */
    default void embedding(Tensor ids, Tensor table, Tensor positions, Tensor out) {
        throw new UnsupportedOperationException(name() + " backend: op embedding is not supported");
    }

    /** x·sigmoid(1.702·x) (CLIP's quick_gelu); out may be x. */
    default void quickGelu(Tensor x, Tensor out) {
        throw new UnsupportedOperationException(name() + " backend: op quickGelu is not supported");
    }

    /** out may be x. */
    void silu(Tensor x, Tensor out);

    /** Exact (erf) GELU; out may be x. */
    void gelu(Tensor x, Tensor out);

    /** x [..., 2F] split into a, gate along the last dim; out [..., F] = a · gelu(gate). */
    void geglu(Tensor x, Tensor out);

    /**
     * diffusers' {@code get_timestep_embedding}: t [B] → out [B, dim], computed in fp32 as
     * diffusers does, max period 10000, scale 1.
     */
    void timestepEmbedding(Tensor t, boolean flipSinToCos, float downscaleFreqShift, Tensor out);

    /** Nearest-neighbour resize of [N,C,H,W] to out's spatial size (src = floor(dst·in/out)). */
    void upsampleNearest(Tensor x, Tensor out);

    /** out = cat([a, b], dim=1) for NCHW tensors. */
    void concatChannels(Tensor a, Tensor b, Tensor out);

    /** out = a + b, same shapes; out may be a or b. */
    void add(Tensor a, Tensor b, Tensor out);

    /** out[n,c,...] = x[n,c,...] + v[n,c]; out may be x. */
    void addChannelBias(Tensor x, Tensor v, Tensor out);

    /** out = x · s; out may be x. */
    void scale(Tensor x, float s, Tensor out);

    /** [N,C,H,W] → [N,H·W,C]. */
    void nchwToTokens(Tensor x, Tensor out);

    /** [N,H·W,C] → [N,C,H,W] (out's shape gives H and W). */
    void tokensToNchw(Tensor x, Tensor out);

    // ---- int8 weights (DESIGN.md "Precision"); defaults refuse, so a backend opts in -------------

    /** Whether this backend runs {@code op}: {@code "linearInt8"}, {@code "conv2dInt8"}; float ops always. */
    default boolean supports(String op) {
        return !op.endsWith("Int8") && !op.equals("attentionCausal") && !op.equals("attentionQkvCausal")
                && !op.equals("embedding")
                && !op.equals("quick_gelu");
    }

    /** A tensor holding a copy of host int8 values (quantised weights). */
    default Tensor uploadInt8(Shape shape, byte[] values) {
        throw new UnsupportedOperationException(name() + " backend: int8 tensors (uploadInt8) are not supported");
    }

    /**
     * out = x·(w_q·w_scale)ᵀ + bias; x [..., in], w_q int8 [outF, in] from {@link #uploadInt8},
     * w_scale [outF] (per output channel), bias [outF] or null. {@link Int8Mode} says whether
     * activations are quantised too (W8A8: per row of x, i.e. per token).
     */
    default void linearInt8(Tensor x, Tensor wq, Tensor wScale, Tensor bias, Int8Mode mode, Tensor out) {
        throw new UnsupportedOperationException(name() + " backend: op linearInt8 (" + mode + ") is not supported");
    }

    /**
     * out = conv(x, w_q·w_scale) + bias; shapes as {@link #conv2d}, w_q int8 [K,C,R,S], w_scale [K].
     * W8A8 quantises activations per row of the implicit-GEMM patch matrix: one scale per
     * (image, output pixel) over its C·R·S input patch, zero padding included.
     */
    default void conv2dInt8(Tensor x, Tensor wq, Tensor wScale, Tensor bias, Conv2dParams p, Int8Mode mode,
                            Tensor out) {
        throw new UnsupportedOperationException(name() + " backend: op conv2dInt8 (" + mode + ") is not supported");
    }

    @Override
    void close();
}
