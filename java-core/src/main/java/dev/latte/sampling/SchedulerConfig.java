package dev.latte.sampling;

import java.util.Locale;

/**
 * The diffusers scheduler config keys DDIM and LCM read, with Stable Diffusion 1.5's values in
 * {@link #SD15}. {@link #alphasCumprod()} reproduces diffusers' float32 tables, so schedules match
 * a diffusers run to float32 rounding.
 *
 * @param originalInferenceSteps LCM only: the distillation schedule's length
 * @param timestepScaling        LCM only: scales t in the c_skip/c_out boundary condition
 */
public record SchedulerConfig(int numTrainTimesteps, double betaStart, double betaEnd, String betaSchedule,
                              boolean setAlphaToOne, int stepsOffset, PredictionType predictionType,
                              TimestepSpacing timestepSpacing, int originalInferenceSteps, double timestepScaling) {

    /** What the UNet predicts; diffusers' {@code prediction_type}. */
    public enum PredictionType {
        EPSILON, V_PREDICTION, SAMPLE;

        public static PredictionType parse(String s) {
            return switch (s) {
                case "epsilon" -> EPSILON;
                case "v_prediction", "v" -> V_PREDICTION;
                case "sample" -> SAMPLE;
                default -> throw new IllegalArgumentException("unknown prediction type '" + s
                        + "' (known: epsilon, v_prediction, sample)");
            };
        }
    }

    /** diffusers' {@code timestep_spacing} (Table 2 of arXiv:2305.08891). */
    public enum TimestepSpacing {
        LEADING, TRAILING, LINSPACE;

        public static TimestepSpacing parse(String s) {
            try {
                return valueOf(s.toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("unknown timestep spacing '" + s
                        + "' (known: leading, trailing, linspace)");
            }
        }
    }

    /** runwayml/stable-diffusion-v1-5's scheduler_config.json, with LCM's two extra keys at their defaults. */
    public static final SchedulerConfig SD15 = new SchedulerConfig(1000, 0.00085, 0.012, "scaled_linear", false, 1,
            PredictionType.EPSILON, TimestepSpacing.LEADING, 50, 10.0);

    public SchedulerConfig {
        if (numTrainTimesteps < 2) {
            throw new IllegalArgumentException("num_train_timesteps must be at least 2, got " + numTrainTimesteps);
        }
        if (!betaSchedule.equals("scaled_linear") && !betaSchedule.equals("linear")) {
            throw new IllegalArgumentException("unsupported beta_schedule '" + betaSchedule
                    + "' (supported: scaled_linear, linear)");
        }
        if (originalInferenceSteps < 1 || originalInferenceSteps > numTrainTimesteps) {
            throw new IllegalArgumentException("original_inference_steps must be in 1.." + numTrainTimesteps
                    + ", got " + originalInferenceSteps);
        }
    }

    public SchedulerConfig withPredictionType(PredictionType p) {
        return new SchedulerConfig(numTrainTimesteps, betaStart, betaEnd, betaSchedule, setAlphaToOne, stepsOffset, p,
                timestepSpacing, originalInferenceSteps, timestepScaling);
    }

    public SchedulerConfig withTimestepSpacing(TimestepSpacing s) {
        return new SchedulerConfig(numTrainTimesteps, betaStart, betaEnd, betaSchedule, setAlphaToOne, stepsOffset,
                predictionType, s, originalInferenceSteps, timestepScaling);
    }

    public SchedulerConfig withOriginalInferenceSteps(int n) {
        return new SchedulerConfig(numTrainTimesteps, betaStart, betaEnd, betaSchedule, setAlphaToOne, stepsOffset,
                predictionType, timestepSpacing, n, timestepScaling);
    }

    /**
     * ᾱ_t = ∏(1 − β_s), as diffusers computes it: betas by {@code torch.linspace(..., dtype=float32)}
     * (squared for scaled_linear), {@code 1 − β} in float32, and {@code torch.cumprod}, which on the
     * CPU accumulates float32 in double and rounds each prefix to float32.
     */
    public float[] alphasCumprod() {
        int n = numTrainTimesteps;
        boolean scaled = betaSchedule.equals("scaled_linear");
        float[] lin = linspaceF32(scaled ? Math.sqrt(betaStart) : betaStart, scaled ? Math.sqrt(betaEnd) : betaEnd, n);
        float[] out = new float[n];
        double acc = 1;
        for (int i = 0; i < n; i++) {
            float beta = scaled ? lin[i] * lin[i] : lin[i];
            acc *= 1f - beta;
            out[i] = (float) acc;
        }
        return out;
    }

    /**
     * torch.linspace for float32 on the CPU: step in float32, the first half counted up from start
     * and the second half down from end, so both ends are exact.
     */
    static float[] linspaceF32(double start, double end, int n) {
        float s = (float) start, e = (float) end;
        float step = (e - s) / (n - 1);
        float[] out = new float[n];
        int half = n / 2;
        for (int i = 0; i < n; i++) {
            out[i] = i < half ? s + step * i : e - step * (n - 1 - i);
        }
        return out;
    }
}
