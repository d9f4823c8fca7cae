package dev.latte.cpu.gemm;

/**
 * out[M, N] = x[M, K]·wᵀ + bias (+ residual) on {@link Gemm}: x is the A operand (packed per call, MR tokens
 * at a time), the weight [N, K] the B operand, packed once by {@link #packWeight}.
 */
public final class LinearGemm {
    private LinearGemm() {
    }

    /** A linear weight [outF, in] (at {@code off} in {@code w}) packed as the B operand. */
    public static Packed packWeight(float[] w, int off, int outF, int in) {
        return Packed.ofRows(w, off, outF, in, Gemm.NR);
    }

    public static void run(Gemm.Parallel par, float[] x, int xo, int m, int in, Packed w, float[] bias, int bo,
                           float[] out, int oo) {
        run(par, x, xo, m, in, w, bias, bo, null, 0, out, oo);
    }

    /**
     * As above, plus res[M, N] (null: none) added as each row is stored: out = res + (x·wᵀ + bias).
     * Each residual element is read just before its output element is written, so out may be res.
     */
    public static void run(Gemm.Parallel par, float[] x, int xo, int m, int in, Packed w, float[] bias, int bo,
                           float[] res, int ro, float[] out, int oo) {
        int outF = w.rows();
        if (w.k() != in || w.width() != Gemm.NR) {
            throw new IllegalArgumentException("linear: weight packed for K=" + w.k() + ", x has K=" + in);
        }
        Gemm.Panels a = (image, p0, np, k0, kc, buf, offs) -> {
            for (int p = 0; p < np; p++) {
                int base = p * kc * Gemm.MR;
                offs[p] = base;
                for (int i = 0; i < Gemm.MR; i++) {
                    int r = (p0 + p) * Gemm.MR + i;
                    if (r < m) {
                        int s = xo + r * in + k0;
                        for (int kk = 0; kk < kc; kk++) {
                            buf[base + kk * Gemm.MR + i] = x[s + kk];
                        }
                    } else {
                        for (int kk = 0; kk < kc; kk++) {
                            buf[base + kk * Gemm.MR + i] = 0f;
                        }
                    }
                }
            }
            return buf;
        };
        Gemm.run(par, 1, m, outF, in, a, w, (image, m0, mc, n0, nc, c, ldc) -> {
            for (int i = 0; i < mc; i++) {
                int o = (m0 + i) * outF + n0;
                if (res == null) {
                    Rows.storePlusVector(out, oo + o, c, i * ldc, bias, bo + n0, nc);
                } else {
                    Rows.storePlusVectorResidual(out, oo + o, c, i * ldc, bias, bo + n0, res, ro + o, nc);
                }
            }
        });
    }
}
