package dev.latte.cpu;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latte.core.Conv2dParams;
import dev.latte.core.NormAct;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The Vector API paths of {@link CpuBackend} against naive double loops, on shapes that are not
 * whole register tiles, cache blocks or key blocks, with every fused form of the conv; each
 * element bounded ({@code |d| ≤ atol + rtol·|ref|}), so one wrong row fails.
 */
class FastPathsTest {
    private static final CpuBackend CPU = new CpuBackend(2);

    @AfterAll
    static void close() {
        CPU.close();
    }

    private static float[] random(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }

    private static void assertBounded(String what, double[] ref, float[] got, double atol, double rtol) {
        assertTrue(ref.length == got.length, what + ": " + got.length + " values, want " + ref.length);
        double worst = 0, se = 0, peak = 0;
        int at = -1;
        for (int i = 0; i < ref.length; i++) {
            double d = Math.abs(got[i] - ref[i]), excess = d / (atol + rtol * Math.abs(ref[i]));
            if (!(excess <= worst) || Double.isNaN(d)) {
                worst = Double.isNaN(d) ? Double.POSITIVE_INFINITY : excess;
                at = i;
            }
            se += d * d;
            peak = Math.max(peak, Math.abs(ref[i]));
        }
        double psnr = 10 * Math.log10(peak * peak / (se / ref.length));
        assertTrue(worst <= 1, what + ": element " + at + " is " + (at < 0 ? "?" : got[at]) + ", want "
                + (at < 0 ? "?" : ref[at]) + " (" + worst + "× the bound)");
        assertTrue(psnr >= 100, what + ": PSNR " + psnr + " dB");
    }

    @Test
    void runsVectorised() {
        assertTrue(CPU.vectorised(), "surefire must start the JVM with --add-modules jdk.incubator.vector");
    }

    /** conv of x (n, c, h, w; nearest-resized to uh × uw) with optional GroupNorm+SiLU on load, bias, residual. */
    private static double[] naiveConv(float[] x, int n, int c, int h, int w, int uh, int uw, float[] wt, int k, int r,
                                      int s, float[] bias, Conv2dParams p, float[] gamma, float[] beta, int groups,
                                      float[] res) {
        double[] xin = new double[n * c * uh * uw];
        for (int ni = 0; ni < n; ni++) {
            for (int ci = 0; ci < c; ci++) {
                for (int i = 0; i < uh; i++) {
                    for (int j = 0; j < uw; j++) {
                        xin[((ni * c + ci) * uh + i) * uw + j] = x[((ni * c + ci) * h + i * h / uh) * w + j * w / uw];
                    }
                }
            }
        }
        if (gamma != null) {
            int cpg = c / groups, len = cpg * uh * uw;
            for (int ni = 0; ni < n; ni++) {
                for (int g = 0; g < groups; g++) {
                    int base = (ni * c + g * cpg) * uh * uw;
                    double mean = 0, var = 0;
                    for (int i = 0; i < len; i++) {
                        mean += xin[base + i] / len;
                    }
                    for (int i = 0; i < len; i++) {
                        var += (xin[base + i] - mean) * (xin[base + i] - mean) / len;
                    }
                    for (int i = 0; i < len; i++) {
                        int ch = g * cpg + i / (uh * uw);
                        double v = (xin[base + i] - mean) / Math.sqrt(var + 1e-5) * gamma[ch] + beta[ch];
                        xin[base + i] = v / (1 + Math.exp(-v));
                    }
                }
            }
        }
        int po = p.outHeight(uh, r), qo = p.outWidth(uw, s);
        double[] out = new double[n * k * po * qo];
        for (int ni = 0; ni < n; ni++) {
            for (int ki = 0; ki < k; ki++) {
                for (int i = 0; i < po; i++) {
                    for (int j = 0; j < qo; j++) {
                        double acc = bias == null ? 0 : bias[ki];
                        for (int ci = 0; ci < c; ci++) {
                            for (int ri = 0; ri < r; ri++) {
                                for (int si = 0; si < s; si++) {
                                    int ih = i * p.strideH() - p.padTop() + ri, iw = j * p.strideW() - p.padLeft() + si;
                                    if (ih >= 0 && ih < uh && iw >= 0 && iw < uw) {
                                        acc += xin[((ni * c + ci) * uh + ih) * uw + iw] * (double) wt[((ki * c + ci) * r + ri) * s + si];
                                    }
                                }
                            }
                        }
                        int o = ((ni * k + ki) * po + i) * qo + j;
                        out[o] = acc + (res == null ? 0 : res[o]);
                    }
                }
            }
        }
        return out;
    }

    private void conv(String what, int n, int c, int h, int w, int up, int k, int r, int s, Conv2dParams p,
                      boolean bias, boolean norm, boolean residual) {
        Random rnd = new Random(what.hashCode());
        float[] x = random(rnd, n * c * h * w), wt = random(rnd, k * c * r * s), b = bias ? random(rnd, k) : null;
        float[] gamma = norm ? random(rnd, c) : null, beta = norm ? random(rnd, c) : null;
        int uh = h * up, uw = w * up, po = p.outHeight(uh, r), qo = p.outWidth(uw, s);
        float[] res = residual ? random(rnd, n * k * po * qo) : null;
        double[] want = naiveConv(x, n, c, h, w, uh, uw, wt, k, r, s, b, p, gamma, beta, 2, res);
        Tensor xt = CPU.upload(Shape.of(n, c, h, w), x), wtt = CPU.upload(Shape.of(k, c, r, s), wt);
        Tensor bt = bias ? CPU.upload(Shape.of(k), b) : null;
        // the residual is the output, as the planner runs the skip-add in place
        Tensor out = residual ? CPU.upload(Shape.of(n, k, po, qo), res) : CPU.allocate(Shape.of(n, k, po, qo));
        for (int run = 0; run < 2; run++) { // the second run uses the kept pack of the weight
            if (residual) {
                CPU.write(out, res);
            }
            if (up > 1) {
                CPU.conv2dUpsampled(xt, uh, uw, wtt, bt, p, out);
            } else {
                CPU.conv2dFused(xt, norm ? new NormAct(CPU.upload(Shape.of(c), gamma), CPU.upload(Shape.of(c), beta), 2,
                        1e-5f, true) : null, wtt, bt, p, residual ? out : null, out);
            }
            assertBounded(what + " run " + run, want, CPU.download(out), 1e-4 * Math.sqrt(c * r * s), 1e-5);
        }
    }

    @Test
    void conv3x3() {
        conv("3x3 s1 p1", 2, 7, 9, 11, 1, 13, 3, 3, Conv2dParams.of(1, 1), true, false, false);
    }

    @Test
    void convManyChannelsCrossesKBlocks() {
        conv("3x3 c=40 (360 taps)", 1, 40, 6, 5, 1, 9, 3, 3, Conv2dParams.of(1, 1), true, false, false);
    }

    @Test
    void convStride2AsymmetricPadding() {
        conv("3x3 s2 pad (0,0,1,1)", 2, 5, 10, 9, 1, 8, 3, 3, new Conv2dParams(2, 2, 0, 0, 1, 1), false, false, false);
    }

    @Test
    void conv1x1ReadsInputInPlace() {
        conv("1x1", 2, 19, 5, 7, 1, 33, 1, 1, Conv2dParams.of(1, 0), true, false, false);
    }

    @Test
    void convGroupNormSiluOnLoadWithSkipAddInPlace() {
        conv("GN+SiLU 3x3 + skip", 2, 8, 7, 6, 1, 10, 3, 3, Conv2dParams.of(1, 1), true, true, true);
        conv("GN+SiLU 1x1 + skip", 1, 6, 5, 5, 1, 7, 1, 1, Conv2dParams.of(1, 0), true, true, true);
    }

    @Test
    void convUpsampledOnLoad() {
        conv("upsample 2x then 3x3", 1, 6, 4, 5, 2, 7, 3, 3, Conv2dParams.of(1, 1), true, false, false);
    }

    private static double[] naiveLinear(float[] x, int m, int in, float[] w, int outF, float[] b) {
        double[] out = new double[m * outF];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < outF; j++) {
                double acc = b == null ? 0 : b[j];
                for (int t = 0; t < in; t++) {
                    acc += (double) x[i * in + t] * w[j * in + t];
                }
                out[i * outF + j] = acc;
            }
        }
        return out;
    }

    @Test
    void linearOddShapes() {
        Random rnd = new Random(5);
        int[][] shapes = {{13, 300, 70}, {1, 5, 1}, {2, 320, 1280}, {77, 768, 40}, {200, 33, 97}};
        for (int[] sh : shapes) {
            int m = sh[0], in = sh[1], outF = sh[2];
            for (boolean bias : new boolean[] {true, false}) {
                float[] x = random(rnd, m * in), w = random(rnd, outF * in), b = bias ? random(rnd, outF) : null;
                Tensor out = CPU.allocate(Shape.of(1, m, outF));
                CPU.linear(CPU.upload(Shape.of(1, m, in), x), CPU.upload(Shape.of(outF, in), w),
                        bias ? CPU.upload(Shape.of(outF), b) : null, out);
                assertBounded("linear " + m + "x" + in + "->" + outF, naiveLinear(x, m, in, w, outF, b),
                        CPU.download(out), 1e-4 * Math.sqrt(in), 1e-5);
            }
        }
    }

    @Test
    void aWeightWrittenAfterUseIsRepacked() {
        Random rnd = new Random(9);
        int m = 7, in = 20, outF = 9;
        float[] x = random(rnd, m * in), w1 = random(rnd, outF * in), w2 = random(rnd, outF * in);
        Tensor xt = CPU.upload(Shape.of(m, in), x), wt = CPU.upload(Shape.of(outF, in), w1);
        Tensor out = CPU.allocate(Shape.of(m, outF));
        CPU.linear(xt, wt, null, out);
        assertBounded("first weights", naiveLinear(x, m, in, w1, outF, null), CPU.download(out), 1e-4, 1e-5);
        CPU.write(wt, w2);
        CPU.linear(xt, wt, null, out);
        assertBounded("after write()", naiveLinear(x, m, in, w2, outF, null), CPU.download(out), 1e-4, 1e-5);
        CPU.scale(CPU.upload(Shape.of(outF, in), w1), 1f, wt); // an op's output is written too
        CPU.linear(xt, wt, null, out);
        assertBounded("after an op wrote it", naiveLinear(x, m, in, w1, outF, null), CPU.download(out), 1e-4, 1e-5);
    }

    @Test
    void aPackedWeightKeepsOneCopyAndStillDownloads() {
        Random rnd = new Random(13);
        float[] w = random(rnd, 13 * 3 * 3 * 3);
        CpuBackend cpu = new CpuBackend(1);
        try {
            Tensor wt = cpu.upload(Shape.of(13, 3, 3, 3), w);
            cpu.conv2d(cpu.upload(Shape.of(1, 3, 5, 5), random(rnd, 75)), wt, null, Conv2dParams.of(1, 1),
                    cpu.allocate(Shape.of(1, 13, 5, 5)));
            assertTrue(cpu.packedBytes() >= w.length * 4L, "packed " + cpu.packedBytes() + " bytes");
            assertTrue(((CpuTensor) wt).pack() != null, "the weight keeps its pack");
            org.junit.jupiter.api.Assertions.assertArrayEquals(w, cpu.download(wt));
        } finally {
            cpu.close();
        }
    }

    private static double[] naiveAttention(float[] q, float[] k, float[] v, int b, int sq, int sk, int heads, int d,
                                           float scale) {
        int ch = heads * d;
        double[] out = new double[b * sq * ch];
        for (int bi = 0; bi < b; bi++) {
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < sq; i++) {
                    double[] s = new double[sk];
                    double max = Double.NEGATIVE_INFINITY, sum = 0;
                    for (int j = 0; j < sk; j++) {
                        for (int t = 0; t < d; t++) {
                            s[j] += (double) q[(bi * sq + i) * ch + h * d + t] * k[(bi * sk + j) * ch + h * d + t];
                        }
                        s[j] *= scale;
                        max = Math.max(max, s[j]);
                    }
                    for (int j = 0; j < sk; j++) {
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                    for (int t = 0; t < d; t++) {
                        double acc = 0;
                        for (int j = 0; j < sk; j++) {
                            acc += s[j] * v[(bi * sk + j) * ch + h * d + t];
                        }
                        out[(bi * sq + i) * ch + h * d + t] = acc / sum;
                    }
                }
            }
        }
        return out;
    }

    @Test
    void attentionAcrossQueryAndKeyBlocks() {
        Random rnd = new Random(11);
        // d not a multiple of the tile, Sq and Sk not multiples of the blocks, Sk past one key block
        int[][] shapes = {{2, 70, 77, 3, 40}, {1, 130, 200, 2, 80}, {1, 5, 1, 1, 5}, {1, 64, 400, 1, 160}};
        for (int[] sh : shapes) {
            int b = sh[0], sq = sh[1], sk = sh[2], heads = sh[3], d = sh[4];
            float scale = (float) (1 / Math.sqrt(d));
            float[] q = random(rnd, b * sq * heads * d), k = random(rnd, b * sk * heads * d);
            float[] v = random(rnd, b * sk * heads * d);
            for (int i = 0; i < q.length; i++) {
                q[i] *= 3; // sharp softmaxes: the running max moves between key blocks
            }
            Tensor out = CPU.allocate(Shape.of(b, sq, heads * d));
            CPU.attention(CPU.upload(Shape.of(b, sq, heads * d), q), CPU.upload(Shape.of(b, sk, heads * d), k),
                    CPU.upload(Shape.of(b, sk, heads * d), v), heads, scale, out);
            assertBounded("attention b" + b + " sq" + sq + " sk" + sk + " h" + heads + " d" + d,
                    naiveAttention(q, k, v, b, sq, sk, heads, d, scale), CPU.download(out), 2e-5, 1e-4);
        }
    }
}
