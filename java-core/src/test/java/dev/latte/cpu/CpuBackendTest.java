package dev.latte.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latte.core.Conv2dParams;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class CpuBackendTest {
    private static final CpuBackend CPU = new CpuBackend(2);
    private static final CpuBackend SERIAL = new CpuBackend(1);

    @AfterAll
    static void close() {
        CPU.close();
        SERIAL.close();
    }

    private static Tensor t(float[] v, int... dims) {
        return CPU.upload(Shape.of(dims), v);
    }

    private static Tensor zeros(int... dims) {
        return CPU.allocate(Shape.of(dims));
    }

    private static float[] get(Tensor t) {
        return CPU.download(t);
    }

    private static float[] random(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }

    private static void assertClose(float[] expected, float[] actual, double tol) {
        assertEquals(expected.length, actual.length, "length");
        for (int i = 0; i < expected.length; i++) {
            double e = expected[i], a = actual[i];
            assertTrue(Math.abs(e - a) <= tol * Math.max(1, Math.abs(e)), "element " + i + ": expected " + e + " got " + a);
        }
    }

    private static void assertClose(double[] expected, float[] actual, double tol) {
        float[] f = new float[expected.length];
        for (int i = 0; i < f.length; i++) {
            f[i] = (float) expected[i];
        }
        assertClose(f, actual, tol);
    }

    // ---------------------------------------------------------------- conv2d

    @Test
    void conv2dHandComputed() {
        // x = 1..9 as 3×3, w = [[1,0],[0,-1]] so y[p,q] = x[p,q] - x[p+1,q+1] = -4 everywhere, + bias 0.5
        float[] x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        Tensor out = zeros(1, 1, 2, 2);
        CPU.conv2d(t(x, 1, 1, 3, 3), t(new float[] {1, 0, 0, -1}, 1, 1, 2, 2), t(new float[] {0.5f}, 1),
                Conv2dParams.of(1, 0), out);
        assertArrayEquals(new float[] {-3.5f, -3.5f, -3.5f, -3.5f}, get(out));
    }

    @Test
    void conv2dStride2AsymmetricPaddingHandComputed() {
        // Downsample2D with padding=0: pad right and bottom by one, 3×3 all-ones kernel, stride 2
        float[] x = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
        float[] w = {1, 1, 1, 1, 1, 1, 1, 1, 1};
        Conv2dParams p = new Conv2dParams(2, 2, 0, 0, 1, 1);
        Tensor out = zeros(1, 1, 2, 2);
        CPU.conv2d(t(x, 1, 1, 4, 4), t(w, 1, 1, 3, 3), null, p, out);
        // windows: rows 0-2 × cols 0-2, rows 0-2 × cols 2-4(pad), rows 2-4(pad) × cols 0-2, rows 2-4 × cols 2-4
        float a = 1 + 2 + 3 + 5 + 6 + 7 + 9 + 10 + 11, b = 3 + 4 + 7 + 8 + 11 + 12;
        float c = 9 + 10 + 11 + 13 + 14 + 15, d = 11 + 12 + 15 + 16;
        assertArrayEquals(new float[] {a, b, c, d}, get(out));
    }

    @Test
    void conv2dMatchesNaiveReference() {
        Random rnd = new Random(1);
        int[][] cases = { // n, c, h, w, k, r, s, strideH, strideW, top, left, bottom, right
            {2, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1},
            {2, 3, 7, 9, 5, 3, 3, 2, 2, 1, 1, 1, 1},
            {1, 4, 8, 8, 3, 3, 3, 2, 2, 0, 0, 1, 1},
            {1, 2, 6, 5, 11, 1, 1, 1, 1, 0, 0, 0, 0},
            {1, 2, 5, 6, 3, 2, 3, 1, 2, 2, 0, 1, 3},
            {1, 1, 3, 3, 2, 5, 5, 1, 1, 2, 2, 2, 2},
        };
        for (int[] cs : cases) {
            int n = cs[0], c = cs[1], h = cs[2], w = cs[3], k = cs[4], r = cs[5], s = cs[6];
            Conv2dParams p = new Conv2dParams(cs[7], cs[8], cs[9], cs[10], cs[11], cs[12]);
            int po = p.outHeight(h, r), qo = p.outWidth(w, s);
            float[] x = random(rnd, n * c * h * w), wt = random(rnd, k * c * r * s), bias = random(rnd, k);
            double[] ref = new double[n * k * po * qo];
            for (int ni = 0; ni < n; ni++) {
                for (int ki = 0; ki < k; ki++) {
                    for (int pi = 0; pi < po; pi++) {
                        for (int qi = 0; qi < qo; qi++) {
                            double acc = bias[ki];
                            for (int ci = 0; ci < c; ci++) {
                                for (int ri = 0; ri < r; ri++) {
                                    for (int si = 0; si < s; si++) {
                                        int ih = pi * p.strideH() - p.padTop() + ri, iw = qi * p.strideW() - p.padLeft() + si;
                                        if (ih >= 0 && ih < h && iw >= 0 && iw < w) {
                                            acc += (double) x[((ni * c + ci) * h + ih) * w + iw] * wt[((ki * c + ci) * r + ri) * s + si];
                                        }
                                    }
                                }
                            }
                            ref[((ni * k + ki) * po + pi) * qo + qi] = acc;
                        }
                    }
                }
            }
            for (CpuBackend be : new CpuBackend[] {CPU, SERIAL}) {
                Tensor out = be.allocate(Shape.of(n, k, po, qo));
                be.conv2d(be.upload(Shape.of(n, c, h, w), x), be.upload(Shape.of(k, c, r, s), wt),
                        be.upload(Shape.of(k), bias), p, out);
                assertClose(ref, be.download(out), 1e-5);
            }
        }
    }

    @Test
    void conv2dPaddingIsZeroEvenInReusedScratch() {
        // a linear leaves a large scratch buffer full of non-zeros behind; the padded conv reuses it
        float[] big = new float[512 * 512];
        Arrays.fill(big, 1000f);
        CpuBackend be = new CpuBackend(2);
        be.linear(be.upload(Shape.of(1, 512), new float[512]), be.upload(Shape.of(512, 512), big), null, be.allocate(Shape.of(1, 512)));
        Tensor out = be.allocate(Shape.of(1, 1, 2, 2));
        be.conv2d(be.upload(Shape.of(1, 1, 2, 2), new float[] {1, 2, 3, 4}), be.upload(Shape.of(1, 1, 3, 3), new float[] {1, 1, 1, 1, 1, 1, 1, 1, 1}),
                null, Conv2dParams.of(1, 1), out);
        assertArrayEquals(new float[] {10, 10, 10, 10}, be.download(out));
        be.close();
    }

    @Test
    void conv2dUpsampledEqualsUpsampleThenConv() {
        // ×2 as Upsample2D does, and to an odd skip size (src = floor(dst·in/out)), with stride 2 too
        int[][] cases = {{3, 5, 4, 6, 8, 1}, {2, 5, 4, 9, 7, 1}, {2, 4, 3, 9, 8, 2}};
        Random rnd = new Random(7);
        CpuBackend be = new CpuBackend(2);
        for (int[] cs : cases) {
            int c = cs[0], h = cs[1], w = cs[2], uh = cs[3], uw = cs[4];
            Conv2dParams p = Conv2dParams.of(cs[5], 1);
            Tensor x = be.upload(Shape.of(2, c, h, w), random(rnd, 2 * c * h * w));
            Tensor wt = be.upload(Shape.of(4, c, 3, 3), random(rnd, 4 * c * 9));
            Tensor b = be.upload(Shape.of(4), random(rnd, 4));
            Shape os = Shape.of(2, 4, p.outHeight(uh, 3), p.outWidth(uw, 3));
            Tensor up = be.allocate(Shape.of(2, c, uh, uw)), expected = be.allocate(os), actual = be.allocate(os);
            be.upsampleNearest(x, up);
            be.conv2d(up, wt, b, p, expected);
            be.conv2dUpsampled(x, uh, uw, wt, b, p, actual);
            assertArrayEquals(be.download(expected), be.download(actual), Arrays.toString(cs));
        }
        be.close();
    }

    @Test
    void conv2dRejectsBadShapes() {
        var e = assertThrows(IllegalArgumentException.class, () -> CPU.conv2d(zeros(1, 3, 4, 4), zeros(2, 4, 3, 3),
                null, Conv2dParams.of(1, 1), zeros(1, 2, 4, 4)));
        assertTrue(e.getMessage().startsWith("conv2d") && e.getMessage().contains("[2, 4, 3, 3]"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> CPU.conv2d(zeros(1, 3, 4, 4), zeros(2, 3, 3, 3),
                null, Conv2dParams.of(1, 1), zeros(1, 2, 2, 2)));
        assertThrows(IllegalArgumentException.class, () -> CPU.conv2d(zeros(1, 3, 4, 4), zeros(2, 3, 3, 3),
                zeros(3), Conv2dParams.of(1, 1), zeros(1, 2, 4, 4)));
    }

    // ---------------------------------------------------------------- norms

    @Test
    void groupNormHandComputed() {
        // one sample, 4 channels of 2 values, 2 groups: group 0 = {1,2,3,4}, group 1 = {10,10,10,14}
        float[] x = {1, 2, 3, 4, 10, 10, 10, 14};
        float[] gamma = {1, 2, 1, 1}, beta = {0, 0, 0.5f, 0};
        Tensor out = zeros(1, 4, 2);
        CPU.groupNorm(t(x, 1, 4, 2), t(gamma, 4), t(beta, 4), 2, 1e-5f, false, out);
        double r0 = 1 / Math.sqrt(1.25 + 1e-5), r1 = 1 / Math.sqrt(3 + 1e-5);
        double[] ref = {-1.5 * r0, -0.5 * r0, 2 * 0.5 * r0, 2 * 1.5 * r0, -r1 + 0.5, -r1 + 0.5, -r1, 3 * r1};
        assertClose(ref, get(out), 1e-6);

        CPU.groupNorm(t(x, 1, 4, 2), t(gamma, 4), t(beta, 4), 2, 1e-5f, true, out);
        for (int i = 0; i < ref.length; i++) {
            ref[i] = ref[i] / (1 + Math.exp(-ref[i]));
        }
        assertClose(ref, get(out), 1e-6);
    }

    @Test
    void groupNormInPlaceAndEps() {
        float[] x = {3, 3, 3, 3};
        Tensor xt = t(x, 1, 2, 2);
        CPU.groupNorm(xt, t(new float[] {1, 1}, 2), t(new float[] {0.25f, -1}, 2), 1, 1e-5f, false, xt);
        assertArrayEquals(new float[] {0.25f, 0.25f, -1, -1}, get(xt)); // zero variance: eps keeps it finite
    }

    @Test
    void layerNormHandComputed() {
        float[] x = {1, 2, 3, 4, -2, -2, 2, 2};
        Tensor out = zeros(2, 1, 4);
        CPU.layerNorm(t(x, 2, 1, 4), t(new float[] {1, 1, 2, 1}, 4), t(new float[] {0, 0, 0, 1}, 4), 1e-5f, out);
        double r0 = 1 / Math.sqrt(1.25 + 1e-5), r1 = 1 / Math.sqrt(4 + 1e-5);
        assertClose(new double[] {-1.5 * r0, -0.5 * r0, r0, 1.5 * r0 + 1, -2 * r1, -2 * r1, 4 * r1, 2 * r1 + 1}, get(out), 1e-6);
    }

    // ---------------------------------------------------------------- linear

    @Test
    void linearHandComputed() {
        Tensor out = zeros(1, 3);
        CPU.linear(t(new float[] {1, 2}, 1, 2), t(new float[] {1, 2, 3, 4, 5, 6}, 3, 2), t(new float[] {0.5f, 0, -1}, 3), out);
        assertArrayEquals(new float[] {5.5f, 11, 16}, get(out));
        CPU.linear(t(new float[] {1, 2}, 1, 2), t(new float[] {1, 2, 3, 4, 5, 6}, 3, 2), null, out);
        assertArrayEquals(new float[] {5, 11, 17}, get(out));
    }

    @Test
    void linearMatchesNaiveReferenceAcrossBlocks() {
        Random rnd = new Random(2);
        int b = 3, m = 13, in = 37, outF = 1100; // rows and columns not multiples of the tile sizes
        float[] x = random(rnd, b * m * in), w = random(rnd, outF * in), bias = random(rnd, outF);
        double[] ref = new double[b * m * outF];
        for (int row = 0; row < b * m; row++) {
            for (int o = 0; o < outF; o++) {
                double acc = bias[o];
                for (int i = 0; i < in; i++) {
                    acc += (double) x[row * in + i] * w[o * in + i];
                }
                ref[row * outF + o] = acc;
            }
        }
        Tensor out = zeros(b, m, outF);
        CPU.linear(t(x, b, m, in), t(w, outF, in), t(bias, outF), out);
        assertClose(ref, get(out), 1e-5);
        assertThrows(IllegalArgumentException.class, () -> CPU.linear(t(x, b, m, in), t(w, outF, in), null, zeros(b, m, outF - 1)));
    }

    // ---------------------------------------------------------------- attention

    private static double[] naiveAttention(float[] q, float[] k, float[] v, int b, int sq, int sk, int heads, int d, float scale) {
        int ch = heads * d;
        double[] out = new double[b * sq * ch];
        for (int bi = 0; bi < b; bi++) {
            for (int h = 0; h < heads; h++) {
                double[][] s = new double[sq][sk];
                for (int i = 0; i < sq; i++) {
                    double max = Double.NEGATIVE_INFINITY, sum = 0;
                    for (int j = 0; j < sk; j++) {
                        double dot = 0;
                        for (int di = 0; di < d; di++) {
                            dot += (double) q[(bi * sq + i) * ch + h * d + di] * k[(bi * sk + j) * ch + h * d + di];
                        }
                        s[i][j] = dot * scale;
                        max = Math.max(max, s[i][j]);
                    }
                    for (int j = 0; j < sk; j++) {
                        s[i][j] = Math.exp(s[i][j] - max);
                        sum += s[i][j];
                    }
                    for (int di = 0; di < d; di++) {
                        double acc = 0;
                        for (int j = 0; j < sk; j++) {
                            acc += s[i][j] / sum * v[(bi * sk + j) * ch + h * d + di];
                        }
                        out[(bi * sq + i) * ch + h * d + di] = acc;
                    }
                }
            }
        }
        return out;
    }

    @Test
    void selfAttentionMatchesNaive() {
        Random rnd = new Random(3);
        int b = 2, s = 150, heads = 3, d = 8, ch = heads * d;
        float[] q = random(rnd, b * s * ch), k = random(rnd, b * s * ch), v = random(rnd, b * s * ch);
        for (int i = 0; i < q.length; i++) {
            q[i] *= 3; // peaked softmax rows, so the max subtraction matters
        }
        float scale = (float) (1 / Math.sqrt(d));
        Tensor out = zeros(b, s, ch);
        CPU.attention(t(q, b, s, ch), t(k, b, s, ch), t(v, b, s, ch), heads, scale, out);
        assertClose(naiveAttention(q, k, v, b, s, s, heads, d, scale), get(out), 2e-5);
    }

    @Test
    void crossAttentionMatchesNaive() {
        Random rnd = new Random(4);
        int b = 2, sq = 130, sk = 77, heads = 2, d = 5, ch = heads * d;
        float[] q = random(rnd, b * sq * ch), k = random(rnd, b * sk * ch), v = random(rnd, b * sk * ch);
        float scale = (float) (1 / Math.sqrt(d));
        Tensor out = zeros(b, sq, ch);
        CPU.attention(t(q, b, sq, ch), t(k, b, sk, ch), t(v, b, sk, ch), heads, scale, out);
        assertClose(naiveAttention(q, k, v, b, sq, sk, heads, d, scale), get(out), 2e-5);
    }

    @Test
    void attentionSurvivesHugeScores() {
        // scores of ±1e4 overflow exp without the max subtraction
        float[] q = {100, 0}, k = {100, 0, -100, 0}, v = {1, 2, 3, 4};
        Tensor out = zeros(1, 1, 2);
        CPU.attention(t(q, 1, 1, 2), t(k, 1, 2, 2), t(v, 1, 2, 2), 1, 1f, out);
        assertArrayEquals(new float[] {1, 2}, get(out));
        assertThrows(IllegalArgumentException.class, () -> CPU.attention(t(q, 1, 1, 2), t(k, 1, 2, 2), t(v, 1, 2, 2), 3, 1f, out));
    }

    // ---------------------------------------------------------------- activations

    @Test
    void activations() {
        float[] x = {-3, -1, 0, 1, 2.5f};
        Tensor out = zeros(5);
        CPU.silu(t(x, 5), out);
        double[] ref = new double[5];
        for (int i = 0; i < 5; i++) {
            ref[i] = x[i] / (1 + Math.exp(-x[i]));
        }
        assertClose(ref, get(out), 1e-7);
        CPU.gelu(t(x, 5), out);
        // 0.5·x·(1 + erf(x/√2)) in double (CPython's math.erf)
        assertClose(new double[] {-0.00404969409489031, -0.15865525393145707, 0, 0.8413447460685429, 2.4844758366855597},
                get(out), 1e-7);
    }

    @Test
    void gegluUsesSecondHalfAsGate() {
        // x = [a0, a1, g0, g1]: out = a · gelu(g)
        Tensor out = zeros(1, 2);
        CPU.geglu(t(new float[] {2, 3, 1, -1}, 1, 4), out);
        assertClose(new double[] {2 * 0.8413447460685429, 3 * -0.15865525393145707}, get(out), 1e-7);
        assertThrows(IllegalArgumentException.class, () -> CPU.geglu(t(new float[] {1, 2, 3}, 1, 3), zeros(1, 1)));
    }

    // ---------------------------------------------------------------- embeddings, resampling

    @Test
    void timestepEmbeddingOddDim() {
        // dim 5: half 2, freqs exp(-ln(1e4)·i/2) = 1 and 0.01, last column zero
        Tensor out = zeros(2, 5);
        CPU.timestepEmbedding(t(new float[] {0, 2}, 2), false, 0f, out);
        assertClose(new double[] {0, 0, 1, 1, 0, Math.sin(2), Math.sin(0.02), Math.cos(2), Math.cos(0.02), 0}, get(out), 1e-7);
        CPU.timestepEmbedding(t(new float[] {0, 2}, 2), true, 0f, out);
        assertClose(new double[] {1, 1, 0, 0, 0, Math.cos(2), Math.cos(0.02), Math.sin(2), Math.sin(0.02), 0}, get(out), 1e-7);
    }

    @Test
    void timestepEmbeddingShift() {
        // shift 1 with half 2: exponent = -ln(1e4)·i/1, freq1 = 1e-4
        Tensor out = zeros(1, 4);
        CPU.timestepEmbedding(t(new float[] {500}, 1), false, 1f, out);
        assertClose(new double[] {Math.sin(500), Math.sin(0.05), Math.cos(500), Math.cos(0.05)}, get(out), 2e-5);
    }

    @Test
    void upsampleNearest() {
        Tensor out = zeros(1, 1, 4, 4);
        CPU.upsampleNearest(t(new float[] {1, 2, 3, 4}, 1, 1, 2, 2), out);
        assertArrayEquals(new float[] {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, get(out));
        // non-integer ratio 3 → 5: src = floor(dst·3/5) = 0,0,1,1,2
        Tensor out2 = zeros(1, 1, 1, 5);
        CPU.upsampleNearest(t(new float[] {7, 8, 9}, 1, 1, 1, 3), out2);
        assertArrayEquals(new float[] {7, 7, 8, 8, 9}, get(out2));
    }

    // ---------------------------------------------------------------- plumbing

    @Test
    void concatChannels() {
        Tensor out = zeros(2, 3, 1, 1);
        CPU.concatChannels(t(new float[] {1, 2, 3, 4}, 2, 2, 1, 1), t(new float[] {5, 6}, 2, 1, 1, 1), out);
        assertArrayEquals(new float[] {1, 2, 5, 3, 4, 6}, get(out));
        assertThrows(IllegalArgumentException.class,
                () -> CPU.concatChannels(t(new float[] {1, 2}, 1, 2, 1, 1), t(new float[] {5, 6}, 1, 1, 1, 2), zeros(1, 3, 1, 1)));
    }

    @Test
    void addInPlace() {
        Tensor a = t(new float[] {1, 2, 3}, 3), b = t(new float[] {10, 20, 30}, 3);
        CPU.add(a, b, a);
        assertArrayEquals(new float[] {11, 22, 33}, get(a));
        CPU.add(a, b, b);
        assertArrayEquals(new float[] {21, 42, 63}, get(b));
        assertThrows(IllegalArgumentException.class, () -> CPU.add(a, zeros(4), zeros(3)));
    }

    @Test
    void addChannelBiasInPlace() {
        Tensor x = t(new float[] {1, 1, 2, 2, 3, 3, 4, 4}, 2, 2, 2);
        CPU.addChannelBias(x, t(new float[] {10, 20, 30, 40}, 2, 2), x);
        assertArrayEquals(new float[] {11, 11, 22, 22, 33, 33, 44, 44}, get(x));
        assertThrows(IllegalArgumentException.class, () -> CPU.addChannelBias(x, zeros(2), x));
    }

    @Test
    void scaleInPlace() {
        Tensor x = t(new float[] {1, -2, 3}, 3);
        CPU.scale(x, -0.5f, x);
        assertArrayEquals(new float[] {-0.5f, 1, -1.5f}, get(x));
    }

    @Test
    void tokenLayoutRoundTrip() {
        // [1, C=2, H=2, W=3] → [1, 6, 2]
        float[] x = {0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15};
        Tensor tokens = zeros(1, 6, 2);
        CPU.nchwToTokens(t(x, 1, 2, 2, 3), tokens);
        assertArrayEquals(new float[] {0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15}, get(tokens));
        Tensor back = zeros(1, 2, 2, 3);
        CPU.tokensToNchw(tokens, back);
        assertArrayEquals(x, get(back));

        Random rnd = new Random(5);
        float[] big = random(rnd, 2 * 70 * 9 * 11);
        Tensor tk = zeros(2, 99, 70), nchw = zeros(2, 70, 9, 11);
        CPU.nchwToTokens(t(big, 2, 70, 9, 11), tk);
        CPU.tokensToNchw(tk, nchw);
        assertArrayEquals(big, get(nchw));
        assertThrows(IllegalArgumentException.class, () -> CPU.tokensToNchw(tk, zeros(2, 70, 9, 10)));
    }

    // ---------------------------------------------------------------- tensors

    @Test
    void tensorLifecycle() {
        float[] v = {1, 2};
        Tensor x = CPU.upload(Shape.of(2), v);
        v[0] = 9; // upload copied
        assertArrayEquals(new float[] {1, 2}, get(x));
        get(x)[0] = 9; // download copies
        assertArrayEquals(new float[] {1, 2}, get(x));
        CPU.release(x);
        assertThrows(IllegalStateException.class, () -> get(x));
        assertThrows(IllegalArgumentException.class, () -> CPU.upload(Shape.of(3), v));
        assertThrows(IllegalArgumentException.class, () -> CPU.scale(() -> Shape.of(2), 1f, zeros(2)));
    }
}
