package dev.latte.sampling;

/**
 * diffusers' {@code DDIMScheduler} (no clipping or thresholding, as Stable Diffusion configures
 * it). The arithmetic runs in double on diffusers' float32 ᾱ table; results are rounded to
 * float32 once per step.
 */
public final class DdimScheduler implements Scheduler {
    private final SchedulerConfig config;
    private final int steps;
    private final double eta;
    private final int[] timesteps;
    private final float[] alphasCumprod;
    private final double finalAlphaCumprod;

    /**
     * @param eta 0 for deterministic DDIM; above 0 each step adds η·σ_t·noise (1 is DDPM-like)
     */
    public DdimScheduler(SchedulerConfig config, int steps, double eta) {
        if (!(eta >= 0) || Double.isInfinite(eta)) {
            throw new IllegalArgumentException("ddim: eta must be >= 0, got " + eta);
        }
        this.config = config;
        this.steps = steps;
        this.eta = eta;
        this.timesteps = timesteps(config, steps);
        this.alphasCumprod = config.alphasCumprod();
        this.finalAlphaCumprod = config.setAlphaToOne() ? 1.0 : alphasCumprod[0];
    }

    /**
     * {@code DDIMScheduler.set_timesteps}, replaying numpy's float steps exactly (numpy rounds half
     * to even, hence {@link Math#rint}).
     */
    public static int[] timesteps(SchedulerConfig c, int steps) {
        int train = c.numTrainTimesteps();
        if (steps < 1 || steps > train) {
            throw new IllegalArgumentException("ddim: steps must be in 1.." + train + ", got " + steps);
        }
        int[] t = switch (c.timestepSpacing()) {
            case LINSPACE -> {
                // np.linspace(0, train - 1, steps).round()[::-1]
                int[] r = new int[steps];
                double step = steps == 1 ? 0 : (double) (train - 1) / (steps - 1);
                for (int i = 0; i < steps; i++) {
                    double v = i == steps - 1 && steps > 1 ? train - 1 : i * step;
                    r[steps - 1 - i] = (int) Math.rint(v);
                }
                yield r;
            }
            case LEADING -> {
                // (np.arange(0, steps) * (train // steps)).round()[::-1] + steps_offset
                int ratio = train / steps;
                int[] r = new int[steps];
                for (int i = 0; i < steps; i++) {
                    r[steps - 1 - i] = i * ratio + c.stepsOffset();
                }
                yield r;
            }
            case TRAILING -> {
                // np.round(np.arange(train, 0, -train / steps)) - 1
                double[] a = NumpyArange.of(train, 0, -(double) train / steps);
                int[] r = new int[a.length];
                for (int i = 0; i < a.length; i++) {
                    r[i] = (int) Math.rint(a[i]) - 1;
                }
                yield r;
            }
        };
        for (int v : t) {
            if (v < 0 || v >= train) {
                throw new IllegalArgumentException("ddim: " + steps + " steps with " + c.timestepSpacing().name()
                        .toLowerCase() + " spacing and steps_offset " + c.stepsOffset() + " give timestep " + v
                        + ", outside 0.." + (train - 1));
            }
        }
        return t;
    }

    @Override
    public String name() {
        return "ddim";
    }

    @Override
    public int[] timesteps() {
        return timesteps.clone();
    }

    @Override
    public int noiseDraws() {
        return eta > 0 ? timesteps.length : 0;
    }

    @Override
    public Step step(int i, float[] modelOutput, float[] sample, NoiseSource noise) {
        Predictions.checkLengths("ddim", modelOutput, sample);
        int t = timesteps[i];
        // diffusers steps back by train // steps whatever the spacing, so trailing and linspace
        // schedules may land beside their next timestep; reproduced on purpose.
        int prev = t - config.numTrainTimesteps() / steps;
        double at = alphasCumprod[t];
        double ap = prev >= 0 ? alphasCumprod[prev] : finalAlphaCumprod;
        int n = sample.length;
        double[] x0 = new double[n], eps = new double[n];
        Predictions.split(config.predictionType(), at, modelOutput, sample, x0, eps);
        double variance = ((1 - ap) / (1 - at)) * (1 - at / ap);
        double std = eta * Math.sqrt(variance);
        double dir = Math.sqrt(1 - ap - std * std);
        double sap = Math.sqrt(ap);
        float[] z = eta > 0 ? noise.next(n) : null;
        float[] prevSample = new float[n], denoised = new float[n];
        for (int j = 0; j < n; j++) {
            double v = sap * x0[j] + dir * eps[j];
            if (z != null) {
                v += std * z[j];
            }
            prevSample[j] = (float) v;
            denoised[j] = (float) x0[j];
        }
        return new Step(prevSample, denoised);
    }
}
