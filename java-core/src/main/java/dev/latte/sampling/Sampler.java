package dev.latte.sampling;

/**
 * The denoising loop: for each timestep, the model's prediction, then the scheduler's step.
 * Both DDIM and LCM start from unscaled N(0, 1) latents (diffusers' init_noise_sigma is 1) and
 * need no scale_model_input, so nothing else happens between them.
 */
public final class Sampler {
    private Sampler() {
    }

    /** Told after every step; {@code sample} is the new sample, {@code denoised} the step's x₀ estimate. */
    @FunctionalInterface
    public interface Listener {
        void onStep(int index, int steps, int timestep, float[] sample, float[] denoised);

        Listener NONE = (index, steps, timestep, sample, denoised) -> {
        };
    }

    /**
     * Runs the whole schedule from {@code initLatents} (not modified) and returns the final sample.
     * Noise is drawn from {@code noise} only by steps that need it, in order.
     */
    public static float[] run(Scheduler scheduler, NoiseModel model, float[] initLatents, NoiseSource noise,
                              Listener listener) {
        int[] ts = scheduler.timesteps();
        float[] x = initLatents.clone();
        for (int i = 0; i < ts.length; i++) {
            float[] out = model.predict(x, ts[i]);
            if (out.length != x.length) {
                throw new IllegalStateException("the model returned " + out.length + " values for a "
                        + x.length + "-value sample");
            }
            Scheduler.Step s = scheduler.step(i, out, x, noise);
            x = s.prevSample();
            listener.onStep(i, ts.length, ts[i], x, s.denoised());
        }
        return x;
    }
}
