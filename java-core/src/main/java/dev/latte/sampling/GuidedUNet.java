package dev.latte.sampling;

import dev.latte.model.UNetRunner;

import java.util.Set;

/**
 * The UNet as a {@link NoiseModel}, with classifier-free guidance: one forward on the batch
 * [uncond, cond], then {@code uncond + scale·(cond − uncond)} in float32 as diffusers does. With a
 * scale ≤ 1 (LCM's usual setting) guidance is off and the UNet sees only the cond half.
 */
public final class GuidedUNet implements NoiseModel {
    private final UNetRunner runner;
    private final SamplingInputs.Conditioning context;
    private final float scale;
    private final boolean guided;
    private final int height, width;
    private final float[] batchedContext;
    private long forwards, evaluations;

    public GuidedUNet(UNetRunner runner, SamplingInputs.Conditioning context, double scale, int height, int width) {
        this.runner = runner;
        this.context = context;
        this.scale = (float) scale;
        this.guided = scale > 1;
        this.height = height;
        this.width = width;
        if (guided && !context.hasUncond()) {
            throw new IllegalArgumentException("guidance " + scale + " needs an unconditional context ('uncond')");
        }
        this.batchedContext = guided ? concat(context.uncond(), context.cond()) : context.cond();
    }

    public boolean guided() {
        return guided;
    }

    /** UNet forward calls so far. */
    public long forwards() {
        return forwards;
    }

    /** Latents the UNet has evaluated so far (a guided forward counts its whole doubled batch). */
    public long evaluations() {
        return evaluations;
    }

    @Override
    public float[] predict(float[] x, int t) {
        int b = context.batch();
        int unetBatch = guided ? 2 * b : b;
        var dims = new UNetRunner.Dims(unetBatch, height, width, context.tokens());
        float[] in = guided ? concat(x, x) : x;
        float[] out = runner.forward(dims, in, new float[] {t}, batchedContext, Set.of(UNetRunner.OUT))
                .get(UNetRunner.OUT);
        forwards++;
        evaluations += unetBatch;
        if (!guided) {
            return out;
        }
        int n = out.length / 2;
        float[] eps = new float[n];
        for (int i = 0; i < n; i++) {
            float u = out[i];
            eps[i] = u + scale * (out[n + i] - u);
        }
        return eps;
    }

    private static float[] concat(float[] a, float[] b) {
        float[] r = new float[a.length + b.length];
        System.arraycopy(a, 0, r, 0, a.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
