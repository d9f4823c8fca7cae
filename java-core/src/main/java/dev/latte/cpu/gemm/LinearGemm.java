package dev.latte.cpu.gemm;

/**
 * out[M, N] = x[M, K]·wᵀ + bias (+ residual) on {@link Gemm}: x is the A operand (packed per call, MR tokens
 * at a time), the weight [N, K] the B operand, packed once by {@link #packWeight} (fp32) or
 * {@link Int8Packed#linearWeight} (int8).
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
        if (w.k() != in || w.width() != Gemm.NR) {
            throw new IllegalArgumentException("linear: weight packed for K=" + w.k() + ", x has K=" + in);
        }
        run(par, x, xo, m, in, w, w.rows(), bias, bo, res, ro, out, oo);
    }

    /** W8A16: the fp32 linear on the weight dequantised as it is widened, {@code scale} per output feature. */
    public static void runW8A16(Gemm.Parallel par, float[] x, int xo, int m, int in, Int8Packed w, float[] scale,
                                float[] bias, int bo, float[] out, int oo) {
        check(w, in);
        run(par, x, xo, m, in, w.panels(scale), w.rows(), bias, bo, null, 0, out, oo);
    }

    private static void run(Gemm.Parallel par, float[] x, int xo, int m, int in, Gemm.Panels w, int outF,
                            float[] bias, int bo, float[] res, int ro, float[] out, int oo) {
        Gemm.run(par, 1, m, outF, in, rows(x, xo, m, in), w, (image, m0, mc, n0, nc, c, ldc) -> {
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

    /**
     * W8A8: each token (row of x) quantised with its own scale max|row|/127, the int8 products
     * summed exactly in int32 ({@link Gemm#runExact}), then {@code acc · a_scale · w_scale + bias}
     * in double, rounded once to fp32: the reference's arithmetic, so the result is bit for bit
     * the reference's.
     *
     * @throws IllegalArgumentException if a row of x holds NaN or ±Inf
     */
    public static void runW8A8(Gemm.Parallel par, float[] x, int xo, int m, int in, Int8Packed w, float[] scale,
                               float[] bias, int bo, float[] out, int oo) {
        check(w, in);
        int outF = w.rows();
        float[] xq = new float[Math.multiplyExact(m, in)];
        double[] as = new double[m];
        int rowsPerTask = Math.max(1, (1 << 16) / Math.max(1, in));
        par.forEach(Math.ceilDiv(m, rowsPerTask), t -> {
            for (int r = t * rowsPerTask; r < Math.min(m, (t + 1) * rowsPerTask); r++) {
                float max = Rows.maxAbs(x, xo + r * in, in);
                if (!Float.isFinite(max)) {
                    throw new IllegalArgumentException("linearInt8 W8A8: token " + r
                            + " holds NaN/Inf and cannot be quantised");
                }
                float a = max == 0f ? 1f : max / 127;
                as[r] = a;
                Rows.quantize(x, xo + r * in, in, a, xq, r * in);
            }
        });
        double[] ws = new double[outF], bs = new double[outF];
        for (int j = 0; j < outF; j++) {
            ws[j] = scale[j];
            bs[j] = bias == null ? 0.0 : bias[bo + j];
        }
        Gemm.runExact(par, 1, m, outF, in, rows(xq, 0, m, in), w.panels(null), (image, m0, mc, n0, nc, c, ldc) -> {
            for (int i = 0; i < mc; i++) {
                Rows.storeRescaledRow(out, oo + (m0 + i) * outF + n0, c, i * ldc, as[m0 + i], ws, n0, bs, n0, nc);
            }
        }, Gemm.MC);
    }

    private static void check(Int8Packed w, int in) {
        if (w.k() != in || w.width() != Gemm.NR) {
            throw new IllegalArgumentException("linearInt8: weight packed for K=" + w.k() + ", x has K=" + in);
        }
    }

    /** x [m, in] from {@code xo} as the A operand, MR rows at a time, zero past row m. */
    private static Gemm.Panels rows(float[] x, int xo, int m, int in) {
        return (image, p0, np, k0, kc, buf, offs) -> {
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
    }
}
