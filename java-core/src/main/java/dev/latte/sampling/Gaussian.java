package dev.latte.sampling;

import java.util.Random;

/**
 * Seeded N(0, 1) draws. {@link Random#nextGaussian()} is specified by its javadoc (a 48-bit LCG and
 * the polar method), so a seed gives the same numbers on every JDK, machine and backend; the
 * initial latents and every later noise draw come from one stream, in order, as diffusers draws
 * them from one generator.
 */
public final class Gaussian implements NoiseSource {
    private final Random random;

    public Gaussian(long seed) {
        this.random = new Random(seed);
    }

    @Override
    public float[] next(int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) random.nextGaussian();
        }
        return v;
    }
}
