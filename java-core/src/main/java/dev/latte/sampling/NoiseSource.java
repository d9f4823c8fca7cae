package dev.latte.sampling;

/** Standard-normal noise, drawn one latent-sized tensor at a time, in the scheduler's order. */
public interface NoiseSource {
    /** The next draw of {@code n} values. */
    float[] next(int n);

    /** For schedulers that draw nothing (DDIM with eta 0): asking is a bug, not bad input. */
    NoiseSource NONE = n -> {
        throw new IllegalStateException("this sampling run was set up to draw no noise");
    };
}
