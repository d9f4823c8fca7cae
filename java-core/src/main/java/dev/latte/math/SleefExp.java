package dev.latte.math;

/**
 * Single-precision exp as PyTorch's CPU kernels compute it: SLEEF's {@code expf_u10} (the
 * AVX2/AVX-512 builds, with fused multiply-adds), which is within one ulp but not always
 * correctly rounded. {@code get_timestep_embedding} multiplies timesteps up to ~1000 by these
 * frequencies in fp32, where one ulp of a frequency moves sin/cos by up to 6e-5, so matching
 * PyTorch's rounding of each frequency matters.
 */
public final class SleefExp {
    private SleefExp() {
    }

    private static final float R_LN2 = 1.442695040888963407359924681001892137426645954152985934135449406931f;
    private static final float L2U = 0.693145751953125f;
    private static final float L2L = 1.428606765330187045e-06f;

    public static float expf(float d) {
        if (Float.isNaN(d)) {
            return d;
        }
        if (d < -104f) {
            return 0f;
        }
        if (d > 100f) { // overflows anyway; the guard keeps q from overflowing an int
            return Float.POSITIVE_INFINITY;
        }
        int q = (int) Math.rint(d * R_LN2); // round half to even, as cvtps2dq does
        float s = Math.fma((float) q, -L2U, d);
        s = Math.fma((float) q, -L2L, s);
        float u = 0.000198527617612853646278381f;
        u = Math.fma(u, s, 0.00139304355252534151077271f);
        u = Math.fma(u, s, 0.00833336077630519866943359f);
        u = Math.fma(u, s, 0.0416664853692054748535156f);
        u = Math.fma(u, s, 0.166666671633720397949219f);
        u = Math.fma(u, s, 0.5f);
        u = 1.0f + Math.fma(s * s, u, s);
        // ldexp in two halves, as SLEEF's vldexp2 does, so that q near ±128 neither overflows nor flushes
        int h = q >> 1;
        return u * Math.scalb(1.0f, h) * Math.scalb(1.0f, q - h);
    }
}
