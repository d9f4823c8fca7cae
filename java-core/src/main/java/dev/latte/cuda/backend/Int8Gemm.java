package dev.latte.cuda.backend;

import dev.latte.cuda.CudaKernel;
import dev.latte.cuda.KernelArgs;

/**
 * Launcher for {@code int8_gemm.cu}: C = A·B with s8 inputs and exact s32 accumulation, on raw
 * device pointers until the Backend gains int8 tensors. A is [M, K] row-major; B is [K, N]
 * ({@link BLayout#KN}) or [N, K] ({@link BLayout#NK}, nn.Linear weights) row-major.
 */
public final class Int8Gemm {
    /** B's layout. */
    public enum BLayout { KN, NK }

    /** Tensor cores (mma.sync m16n8k32, sm_80+) or the dp4a fallback; AUTO picks by device. */
    public enum Algo { AUTO, MMA, DP4A }

    private static final int TILE = 64, THREADS = 128, DP4A_TILE = 16;

    private final KernelLibrary lib;
    private final boolean hasMma;

    public Int8Gemm(KernelLibrary lib) {
        this.lib = lib;
        this.hasMma = lib.computeCapability() >= 80;
    }

    /** c [M, N] s32 = a·b. */
    public void gemm(long a, long b, long c, int m, int n, int k, BLayout layout, Algo algo) {
        checkDims(m, n, k);
        if ((long) m * n == 0) {
            return;
        }
        boolean mma = useMma(algo);
        String name = "int8_gemm_" + (mma ? "mma" : "dp4a") + "_" + (layout == BLayout.KN ? "kn" : "nk");
        launch(lib.kernel("int8_gemm.cu", name), mma, m, n,
                new KernelArgs().ptr(a).ptr(b).ptr(c).i32(m).i32(n).i32(k));
    }

    /**
     * out [M, N] = (a·bᵀ)[m][n]·sa[m]·sb[n] + bias[n] with b [N, K]: per-row (per-token) activation
     * scales, per-output-channel weight scales, fp32 bias; out fp32 or fp16. A pointer of 0 for
     * sa, sb or bias means 1, 1, 0.
     */
    public void gemmScaled(long a, long b, long out, boolean fp16Out, long sa, long sb, long bias, int m, int n, int k,
                           Algo algo) {
        checkDims(m, n, k);
        if ((long) m * n == 0) {
            return;
        }
        boolean mma = useMma(algo);
        String name = "int8_gemm_" + (mma ? "mma" : "dp4a") + "_nk_scaled_" + (fp16Out ? "f16" : "f32");
        launch(lib.kernel("int8_gemm.cu", name), mma, m, n,
                new KernelArgs().ptr(a).ptr(b).ptr(out).ptr(sa).ptr(sb).ptr(bias).i32(m).i32(n).i32(k));
    }

    private boolean useMma(Algo algo) {
        if (algo == Algo.MMA && !hasMma) {
            throw new IllegalArgumentException("int8 mma needs sm_80+, device is sm_"
                    + lib.computeCapability());
        }
        return algo == Algo.MMA || (algo == Algo.AUTO && hasMma);
    }

    private static void launch(CudaKernel kernel, boolean mma, int m, int n, KernelArgs args) {
        if (mma) {
            kernel.launch(ceilDiv(m, TILE), ceilDiv(n, TILE), 1, THREADS, 1, 1, 0, args);
        } else {
            kernel.launch(ceilDiv(n, DP4A_TILE), ceilDiv(m, DP4A_TILE), 1, DP4A_TILE, DP4A_TILE, 1, 0, args);
        }
    }

    private static void checkDims(int m, int n, int k) {
        if (m < 0 || n < 0 || k < 0 || ceilDiv(n, TILE) > 65535 || ceilDiv(m, DP4A_TILE) > 65535) {
            throw new IllegalArgumentException("int8 gemm: M " + m + ", N " + n + ", K " + k);
        }
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }
}
