package dev.latte.sampling;

/** What DDIM and LCM share: turning the model's output into x₀ and ε. */
final class Predictions {
    private Predictions() {
    }

    /**
     * x₀ and ε from the model output at ᾱ_t, in double, per diffusers' three parameterisations:
     * ε (x₀ = (x − √(1−ᾱ)·ε)/√ᾱ), v (x₀ = √ᾱ·x − √(1−ᾱ)·v, ε = √ᾱ·v + √(1−ᾱ)·x) and x₀ itself.
     */
    static void split(SchedulerConfig.PredictionType type, double alphaProd, float[] out, float[] x, double[] x0,
                      double[] eps) {
        double sa = Math.sqrt(alphaProd), sb = Math.sqrt(1 - alphaProd);
        for (int j = 0; j < x.length; j++) {
            double m = out[j], s = x[j];
            switch (type) {
                case EPSILON -> {
                    x0[j] = (s - sb * m) / sa;
                    eps[j] = m;
                }
                case V_PREDICTION -> {
                    x0[j] = sa * s - sb * m;
                    eps[j] = sa * m + sb * s;
                }
                case SAMPLE -> {
                    x0[j] = m;
                    eps[j] = (s - sa * m) / sb;
                }
            }
        }
    }

    static void checkLengths(String who, float[] modelOutput, float[] sample) {
        if (modelOutput.length != sample.length) {
            throw new IllegalArgumentException(who + ": model output has " + modelOutput.length
                    + " values, the sample " + sample.length);
        }
    }
}
