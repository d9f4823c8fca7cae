package dev.latte.bench;

import dev.latte.cuda.CudaContext;
import dev.latte.cuda.CudaUnavailableException;
import dev.latte.cuda.NativeLibraries;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * The library baseline for Latte's linear GEMMs: {@code cublasGemmEx} bound through FFM
 * ({@code libcublas.so.13}, then {@code .12}), on the context's stream. Latte's
 * {@code out[M, N] = x[M, K] · w[N, K]ᵀ} (row-major) is column-major
 * {@code out = op(w)ᵀ·x} with {@code transa = T, transb = N, m = N, n = M, k = K}: the "TN" layout
 * the int8 tensor-core path requires. fp16: fp16 in and out, fp32 compute
 * ({@code CUBLAS_COMPUTE_32F}); int8: s8 in, s32 out, {@code CUBLAS_COMPUTE_32I} (K a multiple of 4).
 */
public final class CublasGemm implements AutoCloseable {
    private static final int OP_N = 0, OP_T = 1;
    private static final int R_16F = 2, R_32F = 0, R_8I = 3, R_32I = 10;
    private static final int COMPUTE_32F = 68, COMPUTE_32I = 72;
    private static final int GEMM_DEFAULT = -1;

    private final MethodHandle gemmEx;
    private final MethodHandle destroy;
    private final MemorySegment handle;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment oneF, zeroF, oneI, zeroI;
    private boolean closed;

    /** Null if cuBLAS loads; else one line saying why not (every path tried). */
    public static String unavailableReason() {
        try {
            NativeLibraries.cublas();
            return null;
        } catch (CudaUnavailableException e) {
            return e.getMessage();
        }
    }

    public static String location() {
        return NativeLibraries.cublasLocation();
    }

    /** cublasCreate_v2 and cublasSetStream_v2 on {@code ctx}'s stream (the context current on this thread). */
    public CublasGemm(CudaContext ctx) {
        SymbolLookup lib = NativeLibraries.cublas();
        MethodHandle create = handle(lib, "cublasCreate_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        MethodHandle setStream = handle(lib, "cublasSetStream_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        destroy = handle(lib, "cublasDestroy_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        gemmEx = handle(lib, "cublasGemmEx", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS,
                JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
        ctx.synchronize(); // makes the context current on this thread
        try {
            MemorySegment p = arena.allocate(ADDRESS);
            check("cublasCreate_v2", (int) create.invokeExact(p));
            handle = p.get(ADDRESS, 0);
            check("cublasSetStream_v2", (int) setStream.invokeExact(handle, MemorySegment.ofAddress(ctx.stream())));
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        } catch (Throwable t) {
            arena.close();
            throw new IllegalStateException(t);
        }
        oneF = arena.allocateFrom(JAVA_FLOAT, 1f);
        zeroF = arena.allocateFrom(JAVA_FLOAT, 0f);
        oneI = arena.allocateFrom(JAVA_INT, 1);
        zeroI = arena.allocateFrom(JAVA_INT, 0);
    }

    /** out[M, N] (fp16) = x[M, K] (fp16) · w[N, K]ᵀ (fp16), fp32 accumulation; device pointers. */
    public void fp16(long x, long w, long out, int m, int n, int k) {
        gemm(x, w, out, m, n, k, R_16F, R_16F, COMPUTE_32F, oneF, zeroF);
    }

    /** out[M, N] (int32) = x[M, K] (int8) · w[N, K]ᵀ (int8), int32 accumulation; device pointers. */
    public void int8(long x, long w, long out, int m, int n, int k) {
        gemm(x, w, out, m, n, k, R_8I, R_32I, COMPUTE_32I, oneI, zeroI);
    }

    private void gemm(long x, long w, long out, int m, int n, int k, int in, int outType, int compute,
                      MemorySegment alpha, MemorySegment beta) {
        if (closed) {
            throw new IllegalStateException("CublasGemm is closed");
        }
        int rc;
        try {
            rc = (int) gemmEx.invokeExact(handle, OP_T, OP_N, n, m, k, alpha, MemorySegment.ofAddress(w), in, k,
                    MemorySegment.ofAddress(x), in, k, beta, MemorySegment.ofAddress(out), outType, n, compute,
                    GEMM_DEFAULT);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        check("cublasGemmEx(m " + m + ", n " + n + ", k " + k + ")", rc);
    }

    private static MethodHandle handle(SymbolLookup lib, String name, FunctionDescriptor fd) {
        return Linker.nativeLinker().downcallHandle(lib.find(name).orElseThrow(
                () -> new CudaUnavailableException("cuBLAS has no symbol " + name)), fd);
    }

    /** cublasStatus_t names (cublas_api.h). */
    static String statusName(int rc) {
        return switch (rc) {
            case 0 -> "CUBLAS_STATUS_SUCCESS";
            case 1 -> "CUBLAS_STATUS_NOT_INITIALIZED";
            case 3 -> "CUBLAS_STATUS_ALLOC_FAILED";
            case 7 -> "CUBLAS_STATUS_INVALID_VALUE";
            case 8 -> "CUBLAS_STATUS_ARCH_MISMATCH";
            case 11 -> "CUBLAS_STATUS_MAPPING_ERROR";
            case 13 -> "CUBLAS_STATUS_EXECUTION_FAILED";
            case 14 -> "CUBLAS_STATUS_INTERNAL_ERROR";
            case 15 -> "CUBLAS_STATUS_NOT_SUPPORTED";
            case 16 -> "CUBLAS_STATUS_LICENSE_ERROR";
            default -> "cublasStatus " + rc;
        };
    }

    private static void check(String call, int rc) {
        if (rc != 0) {
            throw new IllegalStateException(call + ": " + statusName(rc));
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            check("cublasDestroy_v2", (int) destroy.invokeExact(handle));
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        } finally {
            arena.close();
        }
    }
}
