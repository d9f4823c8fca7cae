package dev.latte.sampling;

/**
 * diffusers' {@code LCMScheduler}: a few steps picked from the distillation schedule
 * (original_inference_steps), each step a consistency-model estimate under the c_skip/c_out
 * boundary condition, re-noised to the next timestep with fresh noise (all but the last step).
 */
public final class LcmScheduler implements Scheduler {
    /** diffusers hard-codes σ_data = 0.5 in get_scalings_for_boundary_condition_discrete. */
    private static final double SIGMA_DATA = 0.5;

    private final SchedulerConfig config;
    private final int[] timesteps;
    private final float[] alphasCumprod;
    private final double finalAlphaCumprod;

    public LcmScheduler(SchedulerConfig config, int steps) {
        this.config = config;
        this.timesteps = timesteps(config, steps);
        this.alphasCumprod = config.alphasCumprod();
        this.finalAlphaCumprod = config.setAlphaToOne() ? 1.0 : alphasCumprod[0];
    }

    /**
     * {@code LCMScheduler.set_timesteps} (strength 1): the distillation schedule
     * k−1, 2k−1, …, (k = train // original_inference_steps), reversed, sampled at
     * floor(linspace(0, len, steps, endpoint=False)).
     */
    public static int[] timesteps(SchedulerConfig c, int steps) {
        int original = c.originalInferenceSteps();
        if (steps < 1 || steps > original) {
            throw new IllegalArgumentException("lcm: steps must be in 1.." + original
                    + " (original_inference_steps), got " + steps);
        }
        int k = c.numTrainTimesteps() / original;
        double step = (double) original / steps;
        int[] t = new int[steps];
        for (int i = 0; i < steps; i++) {
            int index = (int) Math.floor(i * step); // into the reversed schedule
            t[i] = (original - index) * k - 1;
        }
        return t;
    }

    @Override
    public String name() {
        return "lcm";
    }

    @Override
    public int[] timesteps() {
        return timesteps.clone();
    }

    @Override
    public int noiseDraws() {
        return timesteps.length - 1;
    }

    @Override
    public Step step(int i, float[] modelOutput, float[] sample, NoiseSource noise) {
        Predictions.checkLengths("lcm", modelOutput, sample);
        int t = timesteps[i];
        boolean last = i == timesteps.length - 1;
        int prev = last ? t : timesteps[i + 1];
        double at = alphasCumprod[t];
        double ap = prev >= 0 ? alphasCumprod[prev] : finalAlphaCumprod;
        double scaled = t * config.timestepScaling();
        double cSkip = SIGMA_DATA * SIGMA_DATA / (scaled * scaled + SIGMA_DATA * SIGMA_DATA);
        double cOut = scaled / Math.sqrt(scaled * scaled + SIGMA_DATA * SIGMA_DATA);
        int n = sample.length;
        double[] x0 = new double[n], eps = new double[n];
        Predictions.split(config.predictionType(), at, modelOutput, sample, x0, eps);
        float[] z = last ? null : noise.next(n);
        double sap = Math.sqrt(ap), sbp = Math.sqrt(1 - ap);
        float[] prevSample = new float[n], denoised = new float[n];
        for (int j = 0; j < n; j++) {
            double d = cOut * x0[j] + cSkip * sample[j];
            denoised[j] = (float) d;
            prevSample[j] = last ? (float) d : (float) (sap * d + sbp * z[j]);
        }
        return new Step(prevSample, denoised);
    }
}
