package dev.latte.sampling;

/**
 * A diffusers-style discrete scheduler, stepped by index: {@link #timesteps()} is the schedule
 * (descending), and step {@code i} turns the model's output at {@code timesteps()[i]} into the
 * next sample.
 */
public interface Scheduler {
    String name();

    int[] timesteps();

    /** How many times the whole schedule draws noise (each draw is one latent-sized tensor). */
    int noiseDraws();

    /**
     * One step.
     *
     * @param i           the step index into {@link #timesteps()}
     * @param modelOutput what the model predicted at {@code timesteps()[i]} (ε, v or x₀ as configured)
     * @param sample      the current sample x_t; not modified
     * @param noise       where this step's noise comes from, if it draws any
     */
    Step step(int i, float[] modelOutput, float[] sample, NoiseSource noise);

    /** The next sample, and the scheduler's estimate of the clean sample (x₀ for DDIM, LCM's denoised). */
    record Step(float[] prevSample, float[] denoised) {
    }
}
