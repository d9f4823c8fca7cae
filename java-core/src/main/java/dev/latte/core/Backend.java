package dev.latte.core;

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

    /** The tensor's values as host fp32. */
    float[] download(Tensor t);

    /** Gives the tensor's storage back; the tensor must not be used afterwards. */
    void release(Tensor t);

    /** out = conv(x, w) + bias; x [N,C,H,W], w [K,C,R,S], bias [K] or null, out [N,K,P,Q]. */
    void conv2d(Tensor x, Tensor w, Tensor bias, Conv2dParams p, Tensor out);

    /**
     * Fused convolution: out = conv(norm(x), w) + bias (+ residual). {@code norm} (nullable) is a
     * GroupNorm(+SiLU) applied on load; {@code residual} (nullable, out's shape) is added in the
     * epilogue. This default composes the unfused ops, exactly as the graph would have run them;
     * a backend with a fused kernel overrides it.
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
            conv2d(in, w, bias, p, out);
            if (residual != null) {
                add(residual, out, out);
            }
        } finally {
            if (in != x) {
                release(in);
            }
        }
    }

    /** GroupNorm over [N,C,...] with per-channel affine; {@code silu} applies SiLU after it. */
    void groupNorm(Tensor x, Tensor gamma, Tensor beta, int groups, float eps, boolean silu, Tensor out);

    /** LayerNorm over the last dimension with affine. */
    void layerNorm(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor out);

    /** out = x·wᵀ + bias; x [..., in], w [outF, in], bias [outF] or null. */
    void linear(Tensor x, Tensor w, Tensor bias, Tensor out);

    /**
     * Multi-head scaled dot-product attention: q [B,Sq,H·D], k and v [B,Sk,H·D], out [B,Sq,H·D];
     * head h uses channels [h·D, (h+1)·D).
     */
    void attention(Tensor q, Tensor k, Tensor v, int heads, float scale, Tensor out);

    void silu(Tensor x, Tensor out);

    /** Exact (erf) GELU. */
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

    @Override
    void close();
}
