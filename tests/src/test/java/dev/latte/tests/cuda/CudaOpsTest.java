package dev.latte.tests.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latte.core.Compare;
import dev.latte.cuda.CudaContext;
import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.CudaBackend.Precision;
import dev.latte.cuda.backend.Int8Gemm;
import dev.latte.tests.Resources;
import dev.latte.weights.SafeTensorsFile;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The CUDA int8 GEMM kernels, bit-exact against the golden and a host reference. (Every float op
 * of the CUDA backend is checked against the reference backend by the op-case table,
 * {@code tests/ops/BackendOpsTest}.) Skips, naming the reason, where no CUDA device can be opened.
 */
class CudaOpsTest extends CudaContextFixture {
    // ---------------------------------------------------------------- INT8 GEMM, exact

    /** The golden s8 GEMM (a [64,256] · b [256,128] = c s32) through both kernels, bit-exact. */
    @Test
    void int8GemmGolden() {
        try (SafeTensorsFile f = SafeTensorsFile.open(Resources.golden("ops/int8_gemm.safetensors"));
             CudaBackend gpu = new CudaBackend(ctx, Precision.FP32)) {
            MemorySegment a = f.data("a"), b = f.data("b"), c = f.data("c");
            int m = 64, k = 256, n = 128;
            assertEquals((long) m * k, a.byteSize());
            assertEquals((long) k * n, b.byteSize());
            int[] expected = c.toArray(ValueLayout.JAVA_INT_UNALIGNED);
            long da = ctx.malloc(a.byteSize()), db = ctx.malloc(b.byteSize()), dc = ctx.malloc(4L * m * n);
            try {
                ctx.copyHtoD(da, copy(a), a.byteSize());
                ctx.copyHtoD(db, copy(b), b.byteSize());
                Int8Gemm gemm = new Int8Gemm(gpu.library());
                for (Int8Gemm.Algo algo : List.of(Int8Gemm.Algo.MMA, Int8Gemm.Algo.DP4A)) {
                    ctx.memsetD8(dc, (byte) 0x7f, 4L * m * n);
                    gemm.gemm(da, db, dc, m, n, k, Int8Gemm.BLayout.KN, algo);
                    int[] got = new int[m * n];
                    ctx.copyDtoH(MemorySegment.ofArray(got), dc, 4L * m * n);
                    assertArrayEquals(expected, got, "int8 gemm " + algo);
                }
            } finally {
                ctx.free(da);
                ctx.free(db);
                ctx.free(dc);
            }
        }
    }

    /** Odd sizes, both B layouts and the dequantising epilogue, against a host reference. */
    @Test
    void int8GemmOddShapesAndScaledEpilogue() {
        int m = 77, n = 190, k = 333;
        Random rnd = new Random(8);
        byte[] a = new byte[m * k], bNk = new byte[n * k], bKn = new byte[k * n];
        rnd.nextBytes(a);
        rnd.nextBytes(bNk);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < k; j++) {
                bKn[j * n + i] = bNk[i * k + j];
            }
        }
        float[] sa = new float[m], sb = new float[n], bias = new float[n];
        for (int i = 0; i < m; i++) {
            sa[i] = 0.01f + rnd.nextFloat() * 0.01f;
        }
        for (int i = 0; i < n; i++) {
            sb[i] = 0.001f + rnd.nextFloat() * 0.01f;
            bias[i] = (float) rnd.nextGaussian();
        }
        int[] expected = new int[m * n];
        float[] scaled = new float[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                int s = 0;
                for (int t = 0; t < k; t++) {
                    s += a[i * k + t] * bNk[j * k + t];
                }
                expected[i * n + j] = s;
                scaled[i * n + j] = (float) s * sa[i] * sb[j] + bias[j];
            }
        }
        try (CudaBackend gpu = new CudaBackend(ctx, Precision.FP32)) {
            Int8Gemm gemm = new Int8Gemm(gpu.library());
            long da = upload(a), dkn = upload(bKn), dnk = upload(bNk), dsa = upload(sa), dsb = upload(sb),
                    dbias = upload(bias), dc = ctx.malloc(4L * m * n);
            try {
                for (Int8Gemm.Algo algo : List.of(Int8Gemm.Algo.MMA, Int8Gemm.Algo.DP4A)) {
                    for (Int8Gemm.BLayout layout : Int8Gemm.BLayout.values()) {
                        ctx.memsetD8(dc, (byte) 0x7f, 4L * m * n);
                        gemm.gemm(da, layout == Int8Gemm.BLayout.KN ? dkn : dnk, dc, m, n, k, layout, algo);
                        int[] got = new int[m * n];
                        ctx.copyDtoH(MemorySegment.ofArray(got), dc, 4L * m * n);
                        assertArrayEquals(expected, got, "int8 gemm " + algo + " " + layout);
                    }
                    gemm.gemmScaled(da, dnk, dc, false, dsa, dsb, dbias, m, n, k, algo);
                    float[] got = new float[m * n];
                    ctx.copyDtoH(MemorySegment.ofArray(got), dc, 4L * m * n);
                    Compare cmp = Compare.of(scaled, got);
                    assertTrue(cmp.psnr() >= 120, "scaled int8 gemm " + algo + ": " + cmp);
                    Compare.Bound bound = Compare.bound(scaled, got, 1e-5, 1e-5);
                    assertTrue(bound.ok(), "scaled int8 gemm " + algo + ": " + bound);
                }
            } finally {
                for (long p : new long[] {da, dkn, dnk, dsa, dsb, dbias, dc}) {
                    ctx.free(p);
                }
            }
        }
    }

    private static MemorySegment copy(MemorySegment s) {
        return MemorySegment.ofArray(s.toArray(ValueLayout.JAVA_BYTE));
    }

    private static long upload(byte[] v) {
        long p = ctx.malloc(v.length);
        ctx.copyHtoD(p, MemorySegment.ofArray(v), v.length);
        return p;
    }

    private static long upload(float[] v) {
        long p = ctx.malloc(4L * v.length);
        ctx.copyHtoD(p, MemorySegment.ofArray(v), 4L * v.length);
        return p;
    }
}
