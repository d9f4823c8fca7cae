package dev.latte.cpu.gemm;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * conv2d as an implicit GEMM on {@link Gemm}: per image, out[K, P·Q] = W[K, C·R·S] · X̂[C·R·S, P·Q].
 * The weight is the A operand, packed once ({@link #packWeight}); X̂ is never built whole. The
 * input is first gathered, zero-padded and split into stride phases, into {@code xp}
 * (xp[c][a][b][i][j] = padded x[i·sh + a][j·sw + b]); there the row of X̂ for tap (c, r, s) is
 * one contiguous run at a fixed shift, if output pixels are counted at the phase width
 * ({@code wph ≥ Q}; the columns q ≥ Q are computed and dropped). B micro-panels are then plain
 * vector copies out of xp. What the fused ops fold in happens in that gather or in the epilogue:
 * GroupNorm(+SiLU) is applied to each input element as it is gathered (it is never written
 * out as a tensor), a nearest upsample reads each source element where it lands, and bias and
 * the residual are added as each output row is stored. A 1×1, stride-1, unpadded conv with
 * nothing to fold reads x itself.
 */
public final class ConvGemm {
    private static final VectorSpecies<Float> S = Gemm.S;

    private final int n, c, hs, ws, h, w, k, r, s, sh, sw, pt, pl;
    private final int pOut, qOut, hph, wph, phPlane, perChannel, perImage, terms, cols;
    private final boolean direct;
    private final int[] off;

    /**
     * @param hs ws the source size of x; h w the size the conv sees (larger: a nearest upsample)
     * @param norm whether x is transformed as it is gathered (GroupNorm, or W8A8's quantisation):
     *             then a 1×1 conv gathers too rather than reading x in place
     */
    public ConvGemm(int n, int c, int hs, int ws, int h, int w, int k, int r, int s, int sh, int sw, int pt, int pl,
                    int pb, int pr, boolean norm) {
        this.n = n;
        this.c = c;
        this.hs = hs;
        this.ws = ws;
        this.h = h;
        this.w = w;
        this.k = k;
        this.r = r;
        this.s = s;
        this.sh = sh;
        this.sw = sw;
        this.pt = pt;
        this.pl = pl;
        this.pOut = (h + pt + pb - r) / sh + 1;
        this.qOut = (w + pl + pr - s) / sw + 1;
        this.direct = !norm && r == 1 && s == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && pb == 0 && pr == 0
                && hs == h && ws == w;
        this.hph = direct ? h : Math.ceilDiv(h + pt + pb, sh);
        this.wph = direct ? w : Math.ceilDiv(w + pl + pr, sw);
        this.phPlane = hph * wph;
        this.perChannel = sh * sw * phPlane;
        this.perImage = c * perChannel;
        this.terms = c * r * s;
        this.cols = pOut * wph;
        this.off = new int[terms];
        for (int ci = 0; ci < c; ci++) {
            for (int ri = 0; ri < r; ri++) {
                for (int si = 0; si < s; si++) {
                    off[(ci * r + ri) * s + si] = ((ci * sh + ri % sh) * sw + si % sw) * phPlane + (ri / sh) * wph
                            + si / sw;
                }
            }
        }
    }

    /** A conv weight [K, C, R, S] (at {@code off} in {@code w}) packed as the A operand. */
    public static Packed packWeight(float[] w, int off, int k, int crs) {
        return Packed.ofRows(w, off, k, crs, Gemm.MR);
    }

    /** Floats of gathered input this conv needs ({@link #run}'s xp); 0 when it reads x itself. */
    public int gatherFloats() {
        // the dropped columns past q = Q of the last row read up to (s-1)/sw beyond the last plane
        return direct ? 0 : Math.addExact(Math.multiplyExact(n, perImage), s);
    }

    /** Multiply-adds ×2 of the useful output (dropped columns not counted). */
    public double flops() {
        return 2.0 * n * k * pOut * qOut * terms;
    }

    /**
     * GroupNorm statistics for the fold: per (image, channel) the mean and the factor a = γ·rstd,
     * with b = β, so the gathered value is (x − mean)·a + b (then SiLU). Statistics in double,
     * two passes over each group.
     */
    public static float[][] groupNormFold(Gemm.Parallel par, float[] x, int xo, int n, int c, int hw, float[] gamma,
                                          int go, float[] beta, int bo, int groups, float eps) {
        float[] mean = new float[n * c], a = new float[n * c], b = new float[n * c];
        int cpg = c / groups, len = cpg * hw;
        par.forEach(n * groups, task -> {
            int base = xo + task * len;
            double sum = 0;
            for (int i = 0; i < len; i++) {
                sum += x[base + i];
            }
            double mu = sum / len, sq = 0;
            for (int i = 0; i < len; i++) {
                double dv = x[base + i] - mu;
                sq += dv * dv;
            }
            double rstd = 1.0 / Math.sqrt(sq / len + eps);
            int ni = task / groups, g = task % groups;
            for (int ci = 0; ci < cpg; ci++) {
                int ch = g * cpg + ci;
                mean[ni * c + ch] = (float) mu;
                a[ni * c + ch] = (float) (gamma[go + ch] * rstd);
                b[ni * c + ch] = beta[bo + ch];
            }
        });
        return new float[][] {mean, a, b};
    }

    /**
     * out = conv(fold(x)) + bias (+ res). {@code norm} is null or {mean, a, b} from
     * {@link #groupNormFold}; {@code xp} holds {@link #gatherFloats()} floats (null when 0).
     */
    public void run(Gemm.Parallel par, float[] x, int xo, float[][] norm, boolean silu, Packed wA, float[] bias,
                    int bo, float[] res, int ro, float[] out, int oo, float[] xp) {
        check(wA.rows(), wA.k(), wA.width());
        run(par, x, xo, norm, silu, (Gemm.Panels) wA, bias, bo, res, ro, out, oo, xp);
    }

    /** W8A16: the fp32 conv on the int8 weight dequantised as it is widened ({@code scale} per output channel). */
    public void runW8A16(Gemm.Parallel par, float[] x, int xo, Int8Packed wA, float[] scale, float[] bias, int bo,
                         float[] out, int oo, float[] xp) {
        check(wA.rows(), wA.k(), wA.width());
        run(par, x, xo, null, false, wA.panels(scale), bias, bo, null, 0, out, oo, xp);
    }

    private void check(int rows, int kk, int width) {
        if (kk != terms || rows != k || width != Gemm.MR) {
            throw new IllegalArgumentException("conv2d: weight packed for " + rows + "×" + kk
                    + ", the conv needs " + k + "×" + terms);
        }
    }

    private void run(Gemm.Parallel par, float[] x, int xo, float[][] norm, boolean silu, Gemm.Panels wA,
                     float[] bias, int bo, float[] res, int ro, float[] out, int oo, float[] xp) {
        float[] src;
        int srcOff;
        if (direct) {
            src = x;
            srcOff = xo;
        } else {
            gather(par, x, xo, norm, silu, xp);
            src = xp;
            srcOff = 0;
        }
        int limit = direct ? xo + n * perImage : gatherFloats();
        Gemm.Panels b = (image, p0, np, k0, kc, buf, offs) -> {
            int base = srcOff + image * perImage;
            for (int p = 0; p < np; p++) {
                int j0 = (p0 + p) * Gemm.NR, len = Math.min(Gemm.NR, cols - j0), d = p * kc * Gemm.NR;
                offs[p] = d;
                for (int kk = 0; kk < kc; kk++, d += Gemm.NR) {
                    int from = base + off[k0 + kk] + j0;
                    Rows.copyPadded(src, from, Math.min(len, limit - from), buf, d, Gemm.NR);
                }
            }
            return buf;
        };
        int pq = pOut * qOut;
        Gemm.run(par, n, k, cols, terms, wA, b, (image, m0, mc, n0, nc, cb, ldc) -> {
            for (int i = 0; i < mc; i++) {
                int ki = m0 + i, plane = (image * k + ki) * pq;
                float bv = bias == null ? 0f : bias[bo + ki];
                // the block's columns are output rows at the phase width: store the q < Q part of each
                for (int j = n0; j < n0 + nc; ) {
                    int p = j / wph, q = j % wph, run = Math.min(wph - q, n0 + nc - j);
                    if (q < qOut) {
                        int len = Math.min(run, qOut - q), o = plane + p * qOut + q;
                        Rows.storePlusScalar(out, oo + o, cb, i * ldc + j - n0, bv, res, ro + o, len);
                    }
                    j += run;
                }
            }
        });
    }

    /** Rows of W8A8's A blocks: every B panel (quantised as it is packed, a division per value) is packed once per block. */
    private static final int W8A8_MC = 128 * Gemm.MR;

    /**
     * W8A8: the implicit-GEMM row of each output pixel (its C·R·S input patch, zero padding
     * included) quantised with its own scale max|patch|/127, the int8 products summed exactly in
     * int32 ({@link Gemm#runExact}), then {@code acc · a_scale · w_scale + bias} in double, rounded
     * once to fp32: bit for bit the reference. The patches are never built: each output pixel's
     * scale comes from a running max over the taps' shifted runs of the gathered input, and B
     * panels are quantised as they are packed. Needs a conv made with {@code norm} true (it gathers).
     *
     * @throws IllegalArgumentException if a patch holds NaN or ±Inf
     */
    public void runW8A8(Gemm.Parallel par, float[] x, int xo, Int8Packed wA, float[] scale, float[] bias, int bo,
                        float[] out, int oo, float[] xp) {
        check(wA.rows(), wA.k(), wA.width());
        if (direct) {
            throw new IllegalStateException("conv2dInt8 W8A8 needs the gathered input (make the conv with norm true)");
        }
        gather(par, x, xo, null, false, xp);
        int limit = gatherFloats();
        // per (image, column): the patch scale, padded to whole B panels (value 1 there: finite, unused)
        int colsPadded = Math.ceilDiv(cols, Gemm.NR) * Gemm.NR;
        float[] as = new float[n * colsPadded];
        double[] asD = new double[n * colsPadded];
        int chunk = 1024, chunks = Math.ceilDiv(cols, chunk);
        par.forEach(n * chunks, t -> {
            int image = t / chunks, j0 = t % chunks * chunk, len = Math.min(chunk, cols - j0);
            int base = image * perImage, d = image * colsPadded + j0;
            for (int tap = 0; tap < terms; tap++) {
                int from = base + off[tap] + j0;
                Rows.maxAbsInto(xp, from, Math.min(len, limit - from), as, d);
            }
            for (int j = 0; j < len; j++) {
                float max = as[d + j];
                if (!Float.isFinite(max) && (j0 + j) % wph < qOut) {
                    throw new IllegalArgumentException("conv2dInt8 W8A8: the input patch of output pixel ("
                            + (j0 + j) / wph + ", " + (j0 + j) % wph + ") of image " + image
                            + " holds NaN/Inf and cannot be quantised");
                }
                float a = max == 0f || !Float.isFinite(max) ? 1f : max / 127;
                as[d + j] = a;
                asD[d + j] = a;
            }
        });
        for (int image = 0; image < n; image++) {
            java.util.Arrays.fill(as, image * colsPadded + cols, (image + 1) * colsPadded, 1f);
        }
        Gemm.Panels b = (image, p0, np, k0, kc, buf, offs) -> {
            int base = image * perImage;
            for (int p = 0; p < np; p++) {
                int j0 = (p0 + p) * Gemm.NR, len = Math.min(Gemm.NR, cols - j0), d = p * kc * Gemm.NR;
                offs[p] = d;
                for (int kk = 0; kk < kc; kk++, d += Gemm.NR) {
                    int from = base + off[k0 + kk] + j0;
                    Rows.quantizePadded(xp, from, Math.min(len, limit - from), as, image * colsPadded + j0, buf, d,
                            Gemm.NR);
                }
            }
            return buf;
        };
        double[] ws = new double[k], bs = new double[k];
        for (int ki = 0; ki < k; ki++) {
            ws[ki] = scale[ki];
            bs[ki] = bias == null ? 0.0 : bias[bo + ki];
        }
        int pq = pOut * qOut;
        Gemm.runExact(par, n, k, cols, terms, wA.panels(null), b, (image, m0, mc, n0, nc, cb, ldc) -> {
            for (int i = 0; i < mc; i++) {
                int ki = m0 + i, plane = (image * k + ki) * pq;
                for (int j = n0; j < n0 + nc; ) {
                    int p = j / wph, q = j % wph, run = Math.min(wph - q, n0 + nc - j);
                    if (q < qOut) {
                        int len = Math.min(run, qOut - q), o = plane + p * qOut + q;
                        Rows.storeRescaledColumns(out, oo + o, cb, i * ldc + j - n0, asD, image * colsPadded + j,
                                ws[ki], bs[ki], len);
                    }
                    j += run;
                }
            }
        }, W8A8_MC);
    }

    /** xp = the padded, phase-split, upsampled, normalised input. */
    private void gather(Gemm.Parallel par, float[] x, int xo, float[][] norm, boolean silu, float[] xp) {
        // xp may be a larger recycled buffer: only the tail the last row's dropped columns read is zeroed
        java.util.Arrays.fill(xp, n * perImage, gatherFloats(), 0f);
        int hsrc = hs, wsrc = ws;
        par.forEach(n * c, nc -> {
            float[] row = new float[wsrc];
            float mean = norm == null ? 0f : norm[0][nc], a = norm == null ? 1f : norm[1][nc];
            float bb = norm == null ? 0f : norm[2][nc];
            int lastSrc = -1;
            for (int ip = 0; ip < hph * sh; ip++) {
                int ai = ip % sh, i = ip / sh, ih = ip - pt;
                int rowBase = nc * perChannel + ai * sw * phPlane + i * wph;
                if (ih < 0 || ih >= h) {
                    for (int bi = 0; bi < sw; bi++) {
                        java.util.Arrays.fill(xp, rowBase + bi * phPlane, rowBase + bi * phPlane + wph, 0f);
                    }
                    continue;
                }
                int sr = (int) ((long) ih * hsrc / h);
                if (sr != lastSrc) {
                    loadRow(x, xo + (nc * hsrc + sr) * wsrc, wsrc, norm != null, mean, a, bb, silu, row);
                    lastSrc = sr;
                }
                if (sw == 1 && wsrc == w) {
                    java.util.Arrays.fill(xp, rowBase, rowBase + pl, 0f);
                    System.arraycopy(row, 0, xp, rowBase + pl, w);
                    java.util.Arrays.fill(xp, rowBase + pl + w, rowBase + wph, 0f);
                    continue;
                }
                for (int jp = 0; jp < wph * sw; jp++) {
                    int iw = jp - pl;
                    xp[rowBase + (jp % sw) * phPlane + jp / sw] = iw >= 0 && iw < w ? row[(int) ((long) iw * wsrc / w)] : 0f;
                }
            }
        });
    }

    /** row = x[from .. from+len), normalised ((x − mean)·a + b) and SiLU'd if asked. */
    private static void loadRow(float[] x, int from, int len, boolean norm, float mean, float a, float b,
                                boolean silu, float[] row) {
        if (!norm) {
            System.arraycopy(x, from, row, 0, len);
        } else {
            FloatVector mv = FloatVector.broadcast(S, mean), av = FloatVector.broadcast(S, a);
            FloatVector bv = FloatVector.broadcast(S, b);
            int j = 0;
            for (; j <= len - Gemm.L; j += Gemm.L) {
                FloatVector.fromArray(S, x, from + j).sub(mv).fma(av, bv).intoArray(row, j);
            }
            for (; j < len; j++) {
                row[j] = Math.fma(x[from + j] - mean, a, b);
            }
        }
        if (silu) {
            VExp.siluInPlace(row, 0, len);
        }
    }
}
