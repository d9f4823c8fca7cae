package dev.latte.sampling;

import dev.latte.model.DeepCacheRunner;
import dev.latte.model.UNetRunner;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * The UNet as a {@link NoiseModel}, with classifier-free guidance: one forward on the batch
 * [uncond, cond], then {@code uncond + scale·(cond − uncond)} in float32 as diffusers does. With a
 * scale ≤ 1 (LCM's usual setting) guidance is off and the UNet sees only the cond half.
 *
 * <p>With {@link #withDeepCache} the calls are DeepCache steps: call i (the i-th step of the run,
 * counted from this object's first call, as DeepCache's helper counts from its first) runs the
 * whole UNet when i is a multiple of the interval and a partial step otherwise, with both halves
 * of the guided batch in the one cached feature. Every call's kind and executed MACs are recorded.
 */
public final class GuidedUNet implements NoiseModel {
    private final UNetRunner runner;
    private final SamplingInputs.Conditioning context;
    private final float scale;
    private final boolean guided;
    private final int height, width;
    private final float[] batchedContext;
    private long forwards, evaluations;
    private DeepCacheRunner deepCache;
    private int interval = 1;
    private final List<Boolean> fullSteps = new ArrayList<>();
    private final List<Long> stepMacs = new ArrayList<>();

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

    /**
     * Runs later calls as DeepCache steps on {@code cache} (owned by the caller) with full steps
     * every {@code interval} calls; interval 1 makes every step full, the plain loop.
     */
    public GuidedUNet withDeepCache(DeepCacheRunner cache, int interval) {
        if (interval < 1) {
            throw new IllegalArgumentException("DeepCache interval must be at least 1, got " + interval);
        }
        this.deepCache = cache;
        this.interval = interval;
        return this;
    }

    /** Per call so far: whether the whole UNet ran (always, without DeepCache). */
    public List<Boolean> fullSteps() {
        return List.copyOf(fullSteps);
    }

    /** Per call so far: the multiply-adds (convs, linears, attention matmuls) the UNet executed. */
    public List<Long> stepMacs() {
        return List.copyOf(stepMacs);
    }

    /** Context tokens per prompt (the UNet's context length). */
    public int contextTokens() {
        return context.tokens();
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
        float[] out;
        if (deepCache != null) {
            DeepCacheRunner.Step s = deepCache.forward(runner, dims, in, new float[] {t}, batchedContext,
                    fullSteps.size() % interval == 0);
            out = s.out();
            fullSteps.add(s.full());
            stepMacs.add(s.macs());
        } else {
            out = runner.forward(dims, in, new float[] {t}, batchedContext, Set.of(UNetRunner.OUT))
                    .get(UNetRunner.OUT);
            fullSteps.add(true);
            stepMacs.add(DeepCacheRunner.macs(runner.graph(dims)));
        }
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
