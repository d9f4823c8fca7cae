package dev.latte.tests.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.latte.core.Backend;
import dev.latte.core.Compare;
import dev.latte.core.Conv2dParams;
import dev.latte.core.NormAct;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cpu.CpuBackend;
import dev.latte.cuda.CudaContext;
import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.CudaBackend.Precision;
import dev.latte.cuda.backend.Int8Gemm;
import dev.latte.cuda.backend.KernelLibrary;
import dev.latte.cuda.backend.Tactics;
import java.lang.foreign.MemorySegment;
import java.util.Locale;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The kernels built for a Turing device (sm_75: no m16n8k16 mma, no cp.async) run on whatever device
 * is here, emulated or newer, exactly as they would there: the tensor-core-only files are not
 * compiled, fp16 GEMMs and convolutions fall back to CUDA cores, attention takes v1 and int8 takes
 * dp4a; all against the CPU reference.
 */
class ArchGuardTest {
    static CudaContext ctx;
    static CudaBackend turing;
    static CpuBackend cpu;

    @BeforeAll
    static void open() {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        ctx = CudaContext.open(0);
        turing = new CudaBackend(ctx, Precision.FP16, Tactics.defaults(), 75);
        cpu = new CpuBackend();
    }

    @AfterAll
    static void close() {
        if (turing != null) {
            turing.close();
        }
        if (cpu != null) {
            cpu.close();
        }
        if (ctx != null) {
            ctx.close();
        }
    }

    @Test
    void tensorCoreFilesAreLeftOut() {
        assertEquals(75, turing.library().computeCapability());
        assertTrue(KernelLibrary.filesFor(75).stream().noneMatch(f -> f.name().equals("attention_v2.cu")));
        var e = assertThrows(IllegalArgumentException.class,
                () -> turing.library().kernel("attention_v2.cu", "attention_v2_dp64_f16"));
        assertEquals("kernel file attention_v2.cu needs sm_80+, kernels are built for sm_75", e.getMessage());
        // a version forced where it cannot run fails when it runs, naming itself
        try (CudaBackend forced = new CudaBackend(ctx, Precision.FP16, Tactics.parse("attention=v2"), 75)) {
            Tensor x = forced.allocate(Shape.of(1, 4, 64)), o = forced.allocate(Shape.of(1, 4, 64));
            e = assertThrows(IllegalArgumentException.class, () -> forced.attention(x, x, x, 1, 1f, o));
            assertTrue(e.getMessage().endsWith("attention=v2 needs sm_80+, kernels are built for sm_75"), e.getMessage());
        }
    }

    interface Op {
        Tensor run(Backend b, Tensor[] in);
    }

    private static void againstCpu(String name, Op op, Shape... shapes) {
        Random rnd = new Random(name.hashCode());
        float[][] host = new float[shapes.length][];
        for (int i = 0; i < shapes.length; i++) {
            host[i] = new float[shapes[i].size()];
            // a weight (input 1 of linear and conv) as N(0, 1/fan_in), so outputs stay O(1)
            double sd = i == 1 && !name.startsWith("attention") ? 1 / Math.sqrt(shapes[i].numel() / shapes[i].dim(0)) : 1;
            for (int j = 0; j < host[i].length; j++) {
                host[i][j] = Float.float16ToFloat(Float.floatToFloat16((float) (rnd.nextGaussian() * sd)));
            }
        }
        float[] ref = runOn(cpu, op, shapes, host), got = runOn(turing, op, shapes, host);
        Compare cmp = Compare.of(ref, got);
        System.out.printf(Locale.ROOT, "sm_75 fp16 %-36s PSNR %7.2f dB%n", name, cmp.psnr());
        assertTrue(cmp.psnr() >= 55, name + ": " + cmp);
    }

    private static float[] runOn(Backend b, Op op, Shape[] shapes, float[][] host) {
        Tensor[] in = new Tensor[shapes.length];
        for (int i = 0; i < in.length; i++) {
            in[i] = b.upload(shapes[i], host[i]);
        }
        Tensor out = op.run(b, in);
        float[] r = b.download(out);
        b.release(out);
        for (Tensor t : in) {
            b.release(t);
        }
        return r;
    }

    @Test
    void fp16OnCudaCores() {
        againstCpu("linear 96→72 50 tokens +bias", (b, i) -> {
            Tensor o = b.allocate(Shape.of(50, 72));
            b.linear(i[0], i[1], i[2], o);
            return o;
        }, Shape.of(50, 96), Shape.of(72, 96), Shape.of(72));
        againstCpu("conv GN8+SiLU 32→24 3x3 9x7", (b, i) -> {
            Tensor o = b.allocate(Shape.of(2, 24, 9, 7));
            b.conv2dFused(i[0], new NormAct(i[2], i[3], 8, 1e-5f, true), i[1], i[4], Conv2dParams.of(1, 1), null, o);
            return o;
        }, Shape.of(2, 32, 9, 7), Shape.of(24, 32, 3, 3), Shape.of(32), Shape.of(32), Shape.of(24));
        againstCpu("attention h2 d40 s50 k77 (v1)", (b, i) -> {
            Tensor o = b.allocate(i[0].shape());
            b.attention(i[0], i[1], i[2], 2, (float) (1 / Math.sqrt(40)), o);
            return o;
        }, Shape.of(1, 50, 80), Shape.of(1, 77, 80), Shape.of(1, 77, 80));
    }

    @Test
    void int8TakesDp4a() {
        int m = 19, n = 23, k = 70;
        Random rnd = new Random(3);
        byte[] a = new byte[m * k], b = new byte[n * k];
        rnd.nextBytes(a);
        rnd.nextBytes(b);
        int[] expected = new int[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                for (int t = 0; t < k; t++) {
                    expected[i * n + j] += a[i * k + t] * b[j * k + t];
                }
            }
        }
        long da = ctx.malloc(a.length), db = ctx.malloc(b.length), dc = ctx.malloc(4L * m * n);
        try {
            ctx.copyHtoD(da, MemorySegment.ofArray(a), a.length);
            ctx.copyHtoD(db, MemorySegment.ofArray(b), b.length);
            Int8Gemm gemm = new Int8Gemm(turing.library());
            gemm.gemm(da, db, dc, m, n, k, Int8Gemm.BLayout.NK, Int8Gemm.Algo.AUTO);
            int[] got = new int[m * n];
            ctx.copyDtoH(MemorySegment.ofArray(got), dc, 4L * m * n);
            assertArrayEquals(expected, got);
            var e = assertThrows(IllegalArgumentException.class,
                    () -> gemm.gemm(da, db, dc, m, n, k, Int8Gemm.BLayout.NK, Int8Gemm.Algo.MMA));
            assertEquals("int8 mma needs sm_80+, device is sm_75", e.getMessage());
        } finally {
            ctx.free(da);
            ctx.free(db);
            ctx.free(dc);
        }
    }
}
