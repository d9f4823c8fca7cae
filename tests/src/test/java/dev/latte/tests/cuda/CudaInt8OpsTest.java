package dev.latte.tests.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latte.core.Backend;
import dev.latte.core.Compare;
import dev.latte.core.Conv2dParams;
import dev.latte.core.Int8Mode;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.CudaBackend.Precision;
import java.util.Locale;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * linearInt8 and conv2dInt8 on CUDA against the CPU reference (CpuInt8Ops), W8A16 and W8A8, fp32
 * and fp16 storage, on odd shapes (K not a multiple of 32, rows and filters not of 64, padding,
 * stride 2), gated by PSNR and a per-element bound. In fp16 the CPU gets the same fp16-rounded
 * activations, weight scales and bias. (The op-case table, BackendOpsTest, runs two int8 cases
 * per mode against the reference backend as well.)
 */
class CudaInt8OpsTest extends CudaVsCpuFixture {
    /** The op table's gates (OpCheck.Tolerance); the element bounds tighter, as measured here: worst 0.05 and 0.2 of them. */
    static final double MIN_PSNR_FP32 = 100, MIN_PSNR_FP16 = 50;
    static final double ATOL_FP32 = 5e-5, RTOL_FP32 = 1e-5, ATOL_FP16 = 5e-3, RTOL_FP16 = 5e-3;

    /** An int8 op: its shapes and how to run it on a backend. */
    interface Run {
        void run(Backend b, Tensor x, Tensor q, Tensor scale, Tensor bias, Tensor out);
    }

    record Case(String name, Shape x, Shape w, Shape out, boolean bias, Run run) {
    }

    static Stream<Case> cases(Int8Mode mode) {
        Conv2dParams s1p1 = Conv2dParams.of(1, 1);
        return Stream.of(
                new Case("linear 200→136 37 tokens +bias", Shape.of(2, 37, 200), Shape.of(136, 200), Shape.of(2, 37, 136),
                        true, (b, x, q, s, bias, o) -> b.linearInt8(x, q, s, bias, mode, o)),
                new Case("linear 64→65 64 tokens", Shape.of(1, 64, 64), Shape.of(65, 64), Shape.of(1, 64, 65),
                        false, (b, x, q, s, bias, o) -> b.linearInt8(x, q, s, bias, mode, o)),
                new Case("conv 40→72 3x3 11x13 +bias", Shape.of(2, 40, 11, 13), Shape.of(72, 40, 3, 3),
                        Shape.of(2, 72, 11, 13), true, (b, x, q, s, bias, o) -> b.conv2dInt8(x, q, s, bias, s1p1, mode, o)),
                new Case("conv 1x1 96→40 7x5", Shape.of(1, 96, 7, 5), Shape.of(40, 96, 1, 1), Shape.of(1, 40, 7, 5),
                        false, (b, x, q, s, bias, o) -> b.conv2dInt8(x, q, s, bias, Conv2dParams.of(1, 0), mode, o)),
                new Case("conv s2 asymmetric pad 24→24 3x3 17x15", Shape.of(1, 24, 17, 15), Shape.of(24, 24, 3, 3),
                        Shape.of(1, 24, 8, 7), true, (b, x, q, s, bias, o) -> b.conv2dInt8(x, q, s, bias,
                        new Conv2dParams(2, 2, 0, 0, 1, 1), mode, o)));
    }

    @TestFactory
    Stream<DynamicTest> againstTheCpuReference() {
        return Stream.of(Int8Mode.values()).flatMap(mode -> Stream.of(Precision.values()).flatMap(prec ->
                cases(mode).map(c -> DynamicTest.dynamicTest(c.name() + " " + mode + " " + prec, () -> check(c, mode, prec)))));
    }

    private static void check(Case c, Int8Mode mode, Precision prec) {
        boolean fp16 = prec == Precision.FP16;
        Random rnd = new Random(c.name().hashCode() + 31L * mode.ordinal());
        int outF = c.w().dim(0), fanIn = c.w().numel() == 0 ? 1 : c.w().size() / outF;
        float[] x = new float[c.x().size()], scale = new float[outF], bias = new float[outF];
        byte[] q = new byte[c.w().size()];
        for (int i = 0; i < x.length; i++) {
            x[i] = round(fp16, (float) rnd.nextGaussian());
        }
        for (int i = 0; i < q.length; i++) {
            q[i] = (byte) (rnd.nextInt(255) - 127);
        }
        for (int i = 0; i < outF; i++) {
            scale[i] = round(fp16, (float) ((0.5 + rnd.nextDouble()) / (73 * Math.sqrt(fanIn))));
            bias[i] = round(fp16, (float) (0.1 * rnd.nextGaussian()));
        }
        float[] reference = run(cpu, c, x, q, scale, bias);
        float[] result;
        try (CudaBackend gpu = new CudaBackend(ctx, prec)) {
            result = run(gpu, c, x, q, scale, bias);
        }
        Compare cmp = Compare.of(reference, result);
        Compare.Bound bound = fp16 ? Compare.bound(reference, result, ATOL_FP16, RTOL_FP16)
                : Compare.bound(reference, result, ATOL_FP32, RTOL_FP32);
        double gate = fp16 ? MIN_PSNR_FP16 : MIN_PSNR_FP32;
        System.out.printf(Locale.ROOT, "cuda int8 %s %s %-40s PSNR %7.2f dB, max |err| %.3e, worst element %.2f x bound%n",
                mode, prec, c.name(), cmp.psnr(), cmp.maxAbsError(), bound.ratio());
        assertEquals(0, cmp.nonFinite(), "non-finite values");
        assertTrue(cmp.psnr() >= gate, c.name() + " " + mode + " " + prec + ": PSNR " + cmp.psnr() + " dB < " + gate);
        assertTrue(bound.ok(), c.name() + " " + mode + " " + prec + ": " + bound);
    }

    private static float round(boolean fp16, float v) {
        return fp16 ? Float.float16ToFloat(Float.floatToFloat16(v)) : v;
    }

    private static float[] run(Backend b, Case c, float[] x, byte[] q, float[] scale, float[] bias) {
        Tensor xt = b.upload(c.x(), x), qt = b.uploadInt8(c.w(), q), st = b.upload(Shape.of(scale.length), scale);
        Tensor bt = c.bias() ? b.upload(Shape.of(bias.length), bias) : null, out = b.allocate(c.out());
        try {
            c.run().run(b, xt, qt, st, bt, out);
            return b.download(out);
        } finally {
            for (Tensor t : new Tensor[] {xt, qt, st, bt, out}) {
                if (t != null) {
                    b.release(t);
                }
            }
        }
    }

    @Test
    void aFloatWeightIsNamedNotMisread() {
        try (CudaBackend gpu = new CudaBackend(ctx, Precision.FP32)) {
            Tensor x = gpu.upload(Shape.of(2, 8), new float[16]), w = gpu.upload(Shape.of(4, 8), new float[32]);
            Tensor s = gpu.upload(Shape.of(4), new float[4]), out = gpu.allocate(Shape.of(2, 4));
            String m = assertThrows(IllegalArgumentException.class,
                    () -> gpu.linearInt8(x, w, s, null, Int8Mode.W8A8, out)).getMessage();
            assertTrue(m.startsWith("linearInt8 W8A8: x [2, 8], w [4, 8]") && m.contains("not an int8 tensor"), m);
        }
    }
}
