package dev.latte.cpu;

/**
 * The multiply-add loop conv, linear and attention spend their time in, shaped for HotSpot's
 * superword pass. C2 (JDK 25) vectorises a loop only when it can prove that its stores do not
 * feed its loads; two float[] views at unknown offsets may be one array, so a float axpy
 * {@code y[a+j] += w·x[b+j]} stays scalar. Accumulating into a double[] sidesteps that (a double[]
 * store cannot alias a float[] load) and makes every product exact. Four terms per pass is the
 * most C2 still vectorised (eight were not), with a quarter of the accumulator traffic of an axpy.
 */
final class Kernels {
    private Kernels() {
    }

    /**
     * acc[a+j] += Σ w[wo+t]·x[off[t]+xo+j] for j in [0, n), over taps t in [t0, t1), four taps per
     * pass. The remainder loops are written out: at this size (over C2's 325-bytecode inlining
     * limit) the method is never inlined, so its loops compile once, vectorised, whatever the
     * caller looks like; inlined into callers they came out up to three times slower.
     */
    static void maddTaps(double[] acc, int a, float[] x, int[] off, int t0, int t1, int xo, float[] w, int wo, int n) {
        int t = t0;
        for (; t + 4 <= t1; t += 4) {
            double w0 = w[wo + t], w1 = w[wo + t + 1], w2 = w[wo + t + 2], w3 = w[wo + t + 3];
            int o0 = off[t] + xo, o1 = off[t + 1] + xo, o2 = off[t + 2] + xo, o3 = off[t + 3] + xo;
            for (int j = 0; j < n; j++) {
                acc[a + j] += (w0 * x[o0 + j] + w1 * x[o1 + j]) + (w2 * x[o2 + j] + w3 * x[o3 + j]);
            }
        }
        if (t1 - t == 3) {
            double w0 = w[wo + t], w1 = w[wo + t + 1], w2 = w[wo + t + 2];
            int o0 = off[t] + xo, o1 = off[t + 1] + xo, o2 = off[t + 2] + xo;
            for (int j = 0; j < n; j++) {
                acc[a + j] += (w0 * x[o0 + j] + w1 * x[o1 + j]) + w2 * x[o2 + j];
            }
        } else if (t1 - t == 2) {
            double w0 = w[wo + t], w1 = w[wo + t + 1];
            int o0 = off[t] + xo, o1 = off[t + 1] + xo;
            for (int j = 0; j < n; j++) {
                acc[a + j] += w0 * x[o0 + j] + w1 * x[o1 + j];
            }
        } else if (t1 - t == 1) {
            double w0 = w[wo + t];
            int o0 = off[t] + xo;
            for (int j = 0; j < n; j++) {
                acc[a + j] += w0 * x[o0 + j];
            }
        }
    }

    /** out[o+j] = (float) acc[a+j] for j in [0, n). */
    static void store(float[] out, int o, double[] acc, int a, int n) {
        for (int j = 0; j < n; j++) {
            out[o + j] = (float) acc[a + j];
        }
    }

    /**
     * out[o+j] = res[r+j] + (float) acc[a+j] for j in [0, n): a conv epilogue's skip-add, the same
     * float sum as storing then adding. Each element's residual is read before it is written, so
     * out may be res (o == r).
     */
    static void storeAdd(float[] out, int o, float[] res, int r, double[] acc, int a, int n) {
        for (int j = 0; j < n; j++) {
            out[o + j] = res[r + j] + (float) acc[a + j];
        }
    }
}
