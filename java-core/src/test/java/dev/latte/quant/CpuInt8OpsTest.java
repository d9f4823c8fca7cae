package dev.latte.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latte.core.Backend;
import dev.latte.core.Compare;
import dev.latte.core.Conv2dParams;
import dev.latte.core.Int8Mode;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cpu.CpuBackend;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The CPU int8 ops against references written here from the definitions: W8A16 is the fp32 op on
 * dequantised weights, W8A8 the exact int32 sum of per-row quantised activations and weights,
 * rescaled. (The goldens from PyTorch are checked in tests/…/compression/Int8GoldenTest.)
 */
class CpuInt8OpsTest {
    private static final CpuBackend CPU = new CpuBackend(2);

    @AfterAll
    static void close() {
        CPU.close();
    }

    private static float[] random(Random rnd, int n, double std) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (std * rnd.nextGaussian());
        }
        return v;
    }

    private static float[] run(int[] outDims, java.util.function.Consumer<Tensor> op) {
        Tensor out = CPU.allocate(Shape.of(outDims));
        op.accept(out);
        return CPU.download(out);
    }

    @Test
    void linearW8A16IsTheFloatLinearOfTheDequantisedWeights() {
        Random rnd = new Random(2);
        int m = 33, in = 70, outF = 45;
        float[] x = random(rnd, m * in, 1), w = random(rnd, outF * in, 0.1), b = random(rnd, outF, 0.1);
        Int8.Rows q = Int8.quantizeRows(w, outF);
        Tensor xt = CPU.upload(Shape.of(1, m, in), x), bt = CPU.upload(Shape.of(outF), b);
        Tensor wq = CPU.uploadInt8(Shape.of(outF, in), q.q()), ws = CPU.upload(Shape.of(outF), q.scale());
        float[] got = run(new int[] {1, m, outF}, o -> CPU.linearInt8(xt, wq, ws, bt, Int8Mode.W8A16, o));
        Tensor wd = CPU.upload(Shape.of(outF, in), Int8.dequantize(q.q(), q.scale()));
        float[] expected = run(new int[] {1, m, outF}, o -> CPU.linear(xt, wd, bt, o));
        assertArrayEquals(expected, got);
    }

    @Test
    void linearW8A8IsTheExactInt32SumRescaled() {
        Random rnd = new Random(3);
        int m = 40, in = 96, outF = 24;
        float[] x = random(rnd, m * in, 2), w = random(rnd, outF * in, 0.1), b = random(rnd, outF, 0.1);
        x[5 * in + 3] = 0; // any zeros
        for (int i = 0; i < in; i++) {
            x[7 * in + i] = 0; // and an all-zero token
        }
        Int8.Rows q = Int8.quantizeRows(w, outF);
        Tensor xt = CPU.upload(Shape.of(m, in), x), bt = CPU.upload(Shape.of(outF), b);
        Tensor wq = CPU.uploadInt8(Shape.of(outF, in), q.q()), ws = CPU.upload(Shape.of(outF), q.scale());
        float[] got = run(new int[] {m, outF}, o -> CPU.linearInt8(xt, wq, ws, bt, Int8Mode.W8A8, o));
        float[] expected = linearW8A8(x, m, in, q.q(), q.scale(), b, outF);
        assertArrayEquals(expected, got);
        for (int j = 0; j < outF; j++) {
            assertEquals(b[j], got[7 * outF + j], "an all-zero token gives the bias");
        }
        // and it is close to the float linear: two 8-bit roundings, well above 30 dB
        Tensor wf = CPU.upload(Shape.of(outF, in), w);
        float[] exact = run(new int[] {m, outF}, o -> CPU.linear(xt, wf, bt, o));
        double psnr = Compare.of(exact, got).psnr();
        assertTrue(psnr > 30, "W8A8 vs fp32 linear: " + psnr + " dB");
    }

    @ParameterizedTest(name = "{0}: k{1} stride {2} pad {3}")
    @CsvSource({"W8A16, 3, 1, 1", "W8A8, 3, 1, 1", "W8A8, 3, 2, 1", "W8A8, 1, 1, 0", "W8A16, 3, 2, 1"})
    void conv2dInt8MatchesItsDefinition(Int8Mode mode, int k, int stride, int pad) {
        Random rnd = new Random(4);
        int n = 2, c = 5, h = 9, w = 7, kOut = 6;
        float[] x = random(rnd, n * c * h * w, 1), wt = random(rnd, kOut * c * k * k, 0.2), b = random(rnd, kOut, 0.1);
        Int8.Rows q = Int8.quantizeRows(wt, kOut);
        Conv2dParams p = Conv2dParams.of(stride, pad);
        int oh = p.outHeight(h, k), ow = p.outWidth(w, k);
        Tensor xt = CPU.upload(Shape.of(n, c, h, w), x), bt = CPU.upload(Shape.of(kOut), b);
        Tensor wq = CPU.uploadInt8(Shape.of(kOut, c, k, k), q.q()), ws = CPU.upload(Shape.of(kOut), q.scale());
        float[] got = run(new int[] {n, kOut, oh, ow}, o -> CPU.conv2dInt8(xt, wq, ws, bt, p, mode, o));
        float[] expected;
        if (mode == Int8Mode.W8A16) {
            Tensor wd = CPU.upload(Shape.of(kOut, c, k, k), Int8.dequantize(q.q(), q.scale()));
            expected = run(new int[] {n, kOut, oh, ow}, o -> CPU.conv2d(xt, wd, bt, p, o));
        } else {
            expected = convW8A8(x, n, c, h, w, q.q(), q.scale(), b, kOut, k, stride, pad);
        }
        assertArrayEquals(expected, got);
        Tensor wf = CPU.upload(Shape.of(kOut, c, k, k), wt);
        float[] exact = run(new int[] {n, kOut, oh, ow}, o -> CPU.conv2d(xt, wf, bt, p, o));
        double psnr = Compare.of(exact, got).psnr();
        assertTrue(psnr > 30, mode + " conv vs fp32 conv: " + psnr + " dB");
    }

    /** W8A8 linear from its definition: per-token scales, exact int64 sums, the epilogue in double. */
    private static float[] linearW8A8(float[] x, int m, int in, byte[] q, float[] ws, float[] b, int outF) {
        float[] expected = new float[m * outF];
        for (int r = 0; r < m; r++) {
            float max = 0;
            for (int i = 0; i < in; i++) {
                max = Math.max(max, Math.abs(x[r * in + i]));
            }
            float as = max == 0 ? 1f : max / 127;
            for (int j = 0; j < outF; j++) {
                long acc = 0;
                for (int i = 0; i < in; i++) {
                    long xq = Math.max(-127, Math.min(127, (long) Math.rint(x[r * in + i] / as)));
                    acc += xq * q[j * in + i];
                }
                expected[r * outF + j] = (float) (acc * (double) as * ws[j] + (b == null ? 0.0 : b[j]));
            }
        }
        return expected;
    }

    /** W8A8 conv from its definition: each output pixel's C·R·S patch (zero padding included) quantised on its own. */
    private static float[] convW8A8(float[] x, int n, int c, int h, int w, byte[] q, float[] ws, float[] b, int kOut,
                                    int k, int stride, int pad) {
        Conv2dParams p = Conv2dParams.of(stride, pad);
        int oh = p.outHeight(h, k), ow = p.outWidth(w, k), crs = c * k * k;
        float[] expected = new float[n * kOut * oh * ow];
        for (int ni = 0; ni < n; ni++) {
            for (int y = 0; y < oh; y++) {
                for (int z = 0; z < ow; z++) {
                    float[] patch = new float[crs];
                    float max = 0;
                    for (int ci = 0; ci < c; ci++) {
                        for (int r = 0; r < k; r++) {
                            for (int s = 0; s < k; s++) {
                                int iy = y * stride - pad + r, iz = z * stride - pad + s;
                                float v = iy >= 0 && iy < h && iz >= 0 && iz < w ? x[((ni * c + ci) * h + iy) * w + iz] : 0;
                                patch[(ci * k + r) * k + s] = v;
                                max = Math.max(max, Math.abs(v));
                            }
                        }
                    }
                    float as = max == 0 ? 1f : max / 127;
                    for (int ko = 0; ko < kOut; ko++) {
                        long acc = 0;
                        for (int i = 0; i < crs; i++) {
                            acc += Math.max(-127, Math.min(127, (long) Math.rint(patch[i] / as))) * q[ko * crs + i];
                        }
                        expected[((ni * kOut + ko) * oh + y) * ow + z] = (float) (acc * (double) as * ws[ko] + b[ko]);
                    }
                }
            }
        }
        return expected;
    }

    /** int8 rows at the extremes: mostly ±127, signs biased so that sums run far past 2²⁴. */
    private static byte[] extremeInt8(Random rnd, int n) {
        byte[] q = new byte[n];
        for (int i = 0; i < n; i++) {
            q[i] = (byte) (rnd.nextInt(8) == 0 ? rnd.nextInt(255) - 127 : rnd.nextInt(6) == 0 ? -127 : 127);
        }
        return q;
    }

    private static float[] positive(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (0.9 + 0.1 * rnd.nextDouble()) * (rnd.nextInt(10) == 0 ? -1 : 1);
        }
        return v;
    }

    private static float[] scales(Random rnd, int n) {
        float[] s = new float[n];
        for (int i = 0; i < n; i++) {
            s[i] = (float) (0.001 + 0.01 * rnd.nextDouble());
        }
        return s;
    }

    @ParameterizedTest(name = "m {0}, in {1}, out {2}")
    @CsvSource({"9, 2100, 35", "1, 1041, 1", "70, 257, 64", "7, 12000, 3"})
    void linearW8A8SumsExactlyPastWhatFloatsHold(int m, int in, int outF) {
        Random rnd = new Random(in);
        float[] x = positive(rnd, m * in), b = random(rnd, outF, 0.1), ws = scales(rnd, outF);
        byte[] q = extremeInt8(rnd, outF * in);
        Tensor xt = CPU.upload(Shape.of(m, in), x), bt = CPU.upload(Shape.of(outF), b);
        Tensor wq = CPU.uploadInt8(Shape.of(outF, in), q), st = CPU.upload(Shape.of(outF), ws);
        float[] got = run(new int[] {m, outF}, o -> CPU.linearInt8(xt, wq, st, bt, Int8Mode.W8A8, o));
        assertArrayEquals(linearW8A8(x, m, in, q, ws, b, outF), got);
        // and again, from the packed copy the first call kept
        assertArrayEquals(got, run(new int[] {m, outF}, o -> CPU.linearInt8(xt, wq, st, bt, Int8Mode.W8A8, o)));
        assertArrayEquals(q, ((dev.latte.cpu.CpuInt8Tensor) wq).data(), "the row-major weight rebuilt from its pack");
    }

    @ParameterizedTest(name = "c {0} k{1} stride {2} pad {3}")
    @CsvSource({"130, 3, 1, 1", "130, 3, 2, 1", "1200, 1, 1, 0", "40, 3, 2, 0"})
    void conv2dW8A8SumsExactlyPastWhatFloatsHold(int c, int k, int stride, int pad) {
        Random rnd = new Random(c * 31 + stride);
        int n = 2, h = 7, w = 6, kOut = 9;
        float[] x = positive(rnd, n * c * h * w), b = random(rnd, kOut, 0.1), ws = scales(rnd, kOut);
        x[3] = 0; // a zero; the padded patches have many more
        byte[] q = extremeInt8(rnd, kOut * c * k * k);
        Conv2dParams p = Conv2dParams.of(stride, pad);
        int oh = p.outHeight(h, k), ow = p.outWidth(w, k);
        Tensor xt = CPU.upload(Shape.of(n, c, h, w), x), bt = CPU.upload(Shape.of(kOut), b);
        Tensor wq = CPU.uploadInt8(Shape.of(kOut, c, k, k), q), st = CPU.upload(Shape.of(kOut), ws);
        float[] got = run(new int[] {n, kOut, oh, ow}, o -> CPU.conv2dInt8(xt, wq, st, bt, p, Int8Mode.W8A8, o));
        assertArrayEquals(convW8A8(x, n, c, h, w, q, ws, b, kOut, k, stride, pad), got);
    }

    @Test
    void w8a16OfALargeWeightIsTheFloatOpOnTheDequantisedWeight() {
        Random rnd = new Random(8);
        int m = 50, in = 700, outF = 70;
        float[] x = random(rnd, m * in, 1), b = random(rnd, outF, 0.1), ws = scales(rnd, outF);
        byte[] q = extremeInt8(rnd, outF * in);
        Tensor xt = CPU.upload(Shape.of(m, in), x), bt = CPU.upload(Shape.of(outF), b);
        Tensor wq = CPU.uploadInt8(Shape.of(outF, in), q), st = CPU.upload(Shape.of(outF), ws);
        Tensor wd = CPU.upload(Shape.of(outF, in), Int8.dequantize(q, ws));
        assertArrayEquals(run(new int[] {m, outF}, o -> CPU.linear(xt, wd, bt, o)),
                run(new int[] {m, outF}, o -> CPU.linearInt8(xt, wq, st, bt, Int8Mode.W8A16, o)));
        Tensor cx = CPU.upload(Shape.of(1, 70, 10, 10), random(rnd, 7000, 1));
        Tensor cq = CPU.uploadInt8(Shape.of(7, 70, 10, 10), q);
        Tensor cs = CPU.upload(Shape.of(7), java.util.Arrays.copyOf(ws, 7));
        Tensor cd = CPU.upload(Shape.of(7, 70, 10, 10), Int8.dequantize(q, java.util.Arrays.copyOf(ws, 7)));
        Conv2dParams p = Conv2dParams.of(2, 3);
        int o1 = p.outHeight(10, 10);
        assertArrayEquals(run(new int[] {1, 7, o1, o1}, o -> CPU.conv2d(cx, cd, null, p, o)),
                run(new int[] {1, 7, o1, o1}, o -> CPU.conv2dInt8(cx, cq, cs, null, p, Int8Mode.W8A16, o)));
    }

    @Test
    void w8a8RefusesActivationsItCannotQuantiseNamingTheOp() {
        Random rnd = new Random(9);
        float[] x = random(rnd, 4 * 40 * 5 * 5, 1);
        x[2 * 40 * 25 + 7] = Float.NaN;
        Tensor xt = CPU.upload(Shape.of(4, 40 * 25), x), x4 = CPU.upload(Shape.of(4, 40, 5, 5), x);
        Tensor wq = CPU.uploadInt8(Shape.of(3, 40 * 25), extremeInt8(rnd, 3 * 1000));
        Tensor w4 = CPU.uploadInt8(Shape.of(3, 40, 5, 5), extremeInt8(rnd, 3 * 1000));
        Tensor st = CPU.upload(Shape.of(3), scales(rnd, 3));
        var e = assertThrows(IllegalArgumentException.class,
                () -> run(new int[] {4, 3}, o -> CPU.linearInt8(xt, wq, st, null, Int8Mode.W8A8, o)));
        assertTrue(e.getMessage().contains("linearInt8") && e.getMessage().contains("NaN"), e.getMessage());
        var e2 = assertThrows(IllegalArgumentException.class,
                () -> run(new int[] {4, 3, 1, 1}, o -> CPU.conv2dInt8(x4, w4, st, null, Conv2dParams.of(1, 0),
                        Int8Mode.W8A8, o)));
        assertTrue(e2.getMessage().contains("conv2dInt8") && e2.getMessage().contains("NaN"), e2.getMessage());
    }

    @Test
    void aBackendWithoutInt8SaysSoByName() {
        Backend plain = new Backend() {
            public String name() { return "plain"; }
            public Tensor allocate(Shape s) { return CPU.allocate(s); }
            public Tensor upload(Shape s, float[] v) { return CPU.upload(s, v); }
            public float[] download(Tensor t) { return CPU.download(t); }
            public void release(Tensor t) { }
            public void conv2d(Tensor x, Tensor w, Tensor b, Conv2dParams p, Tensor o) { }
            public void groupNorm(Tensor x, Tensor g, Tensor b, int gr, float e, boolean s, Tensor o) { }
            public void layerNorm(Tensor x, Tensor g, Tensor b, float e, Tensor o) { }
            public void linear(Tensor x, Tensor w, Tensor b, Tensor o) { }
            public void attention(Tensor q, Tensor k, Tensor v, int h, float s, Tensor o) { }
            public void silu(Tensor x, Tensor o) { }
            public void gelu(Tensor x, Tensor o) { }
            public void geglu(Tensor x, Tensor o) { }
            public void timestepEmbedding(Tensor t, boolean f, float d, Tensor o) { }
            public void upsampleNearest(Tensor x, Tensor o) { }
            public void concatChannels(Tensor a, Tensor b, Tensor o) { }
            public void add(Tensor a, Tensor b, Tensor o) { }
            public void addChannelBias(Tensor x, Tensor v, Tensor o) { }
            public void scale(Tensor x, float s, Tensor o) { }
            public void nchwToTokens(Tensor x, Tensor o) { }
            public void tokensToNchw(Tensor x, Tensor o) { }
            public void close() { }
        };
        assertTrue(plain.supports("linear"));
        assertTrue(!plain.supports("linearInt8") && !plain.supports("conv2dInt8"));
        var e = assertThrows(UnsupportedOperationException.class,
                () -> plain.linearInt8(null, null, null, null, Int8Mode.W8A8, null));
        assertEquals("plain backend: op linearInt8 (W8A8) is not supported", e.getMessage());
        assertTrue(CPU.supports("conv2dInt8"));
    }
}
