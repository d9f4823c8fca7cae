package dev.latte.cuda.backend;

import dev.latte.cuda.CudaKernel;
import dev.latte.cuda.KernelArgs;
import java.util.HashSet;
import java.util.Set;

/**
 * Launcher for {@code gemm_v2.cu} (the pipelined tensor-core GEMM, fp16, sm_80+) on raw device
 * pointers: out [M, N] = x [M, K]·w [N, K]ᵀ with a fused epilogue. Owns the kernel's launch
 * constants: 128×128 tiles (64 outputs per block for GEGLU), 256 threads, 60 KiB of dynamic shared
 * memory (three stages of 128×40 halves for each operand), raised above the 48 KiB default once per
 * kernel.
 */
final class LinearV2 {
    /** What the epilogue does with the accumulator (and which kernel runs). */
    enum Epilogue {
        BIAS("linear_v2_f16"), RESIDUAL("linear_v2_residual_f16"), SILU("linear_v2_silu_f16"),
        GEGLU("linear_v2_geglu_f16");

        final String kernel;

        Epilogue(String kernel) {
            this.kernel = kernel;
        }
    }

    static final int TILE = 128, THREADS = 256, STAGES = 3, BK = 32;
    static final int SHARED = STAGES * 2 * TILE * (BK + 8) * 2;

    private final KernelLibrary lib;
    private final Set<String> raised = new HashSet<>();

    LinearV2(KernelLibrary lib) {
        this.lib = lib;
    }

    /** Why v2 cannot run this GEMM, or null if it can. */
    static String unsupported(int k, boolean aligned) {
        if (k % 8 != 0) {
            return "linear=v2 needs in_features a multiple of 8, not " + k;
        }
        if (!aligned) {
            return "linear=v2 needs x, w, bias, residual and out 16-byte aligned";
        }
        return null;
    }

    /** q, k and v projections in one GEMM ({@code linear_v2_qkv_f16}): out [3, m, c]; biases all 0 or none. */
    void launchQkv(long x, long wq, long wk, long wv, long bq, long bk, long bv, long out, int m, int c, int k) {
        CudaKernel kernel = lib.kernel("gemm_v2.cu", "linear_v2_qkv_f16");
        if (raised.add(kernel.name())) {
            kernel.setMaxDynamicSharedMemory(SHARED);
        }
        kernel.launch((m + TILE - 1) / TILE, (3 * c + TILE - 1) / TILE, 1, THREADS, 1, 1, SHARED, new KernelArgs()
                .ptr(x).ptr(wq).ptr(wk).ptr(wv).ptr(bq).ptr(bk).ptr(bv).ptr(out).i32(m).i32(c).i32(k));
    }

    /**
     * @param n   outputs per row (GEGLU: F, with w [2F, K] and bias [2F] or 0)
     * @param res the residual (may be out) for {@link Epilogue#RESIDUAL}, else 0
     */
    void launch(Epilogue epi, long x, long w, long bias, long res, long out, int m, int n, int k) {
        CudaKernel kernel = lib.kernel("gemm_v2.cu", epi.kernel);
        if (raised.add(kernel.name())) {
            kernel.setMaxDynamicSharedMemory(SHARED);
        }
        int perBlock = epi == Epilogue.GEGLU ? TILE / 2 : TILE;
        kernel.launch((m + TILE - 1) / TILE, (n + perBlock - 1) / perBlock, 1, THREADS, 1, 1, SHARED,
                new KernelArgs().ptr(x).ptr(w).ptr(bias).ptr(res).ptr(out).i32(m).i32(n).i32(k));
    }
}
