package dev.latte.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;

/**
 * cuBLASLt's matmul, bound through FFM ({@code libcublasLt.so.13}, then {@code .12}; found as
 * {@link NativeLibraries} says, never required). Latte's linear
 * {@code out[M, N] = x[M, K]·w[N, K]ᵀ + bias[N] (+ residual[M, N])}, row-major, is the column-major
 * {@code D[N, M] = op(A)·B + β·C} with A = w (K × N, ld K, transposed), B = x (K × M, ld K), the bias
 * in the {@code CUBLASLT_EPILOGUE_BIAS} epilogue (one value per row of D) and the residual as C with
 * β = 1 (C may be D itself). fp16 storage computes in fp32 ({@code CUBLAS_COMPUTE_32F}); fp32 storage
 * too, without TF32. Constants and struct layouts are those of {@code cublasLt.h},
 * {@code cublas_api.h} and {@code library_types.h} (CUDA 12 and 13 agree on every one used here).
 */
@SuppressWarnings("restricted")   // binding native code is this class's job
public final class CublasLt implements AutoCloseable {
    // library_types.h: cudaDataType_t
    static final int CUDA_R_32F = 0, CUDA_R_16F = 2;
    // cublas_api.h: cublasComputeType_t, cublasOperation_t
    static final int CUBLAS_COMPUTE_32F = 68;
    static final int CUBLAS_OP_N = 0, CUBLAS_OP_T = 1;
    // cublasLt.h: cublasLtMatmulDescAttributes_t
    static final int DESC_COMPUTE_TYPE = 0, DESC_SCALE_TYPE = 1, DESC_TRANSA = 3, DESC_TRANSB = 4, DESC_EPILOGUE = 7,
            DESC_BIAS_POINTER = 8, DESC_BIAS_DATA_TYPE = 26;
    // cublasLtEpilogue_t
    static final int EPILOGUE_DEFAULT = 1, EPILOGUE_BIAS = 4;
    // cublasLtMatrixLayoutAttribute_t
    static final int LAYOUT_TYPE = 0, LAYOUT_ORDER = 1, LAYOUT_ROWS = 2, LAYOUT_COLS = 3, LAYOUT_LD = 4;
    static final int ORDER_COL = 0;
    // cublasLtMatmulPreferenceAttributes_t
    static final int PREF_SEARCH_MODE = 0, PREF_MAX_WORKSPACE_BYTES = 1, PREF_MIN_ALIGNMENT_A_BYTES = 5,
            PREF_MIN_ALIGNMENT_B_BYTES = 6, PREF_MIN_ALIGNMENT_C_BYTES = 7, PREF_MIN_ALIGNMENT_D_BYTES = 8;
    /**
     * cublasLtMatmulHeuristicResult_t: {@code cublasLtMatmulAlgo_t algo} (uint64_t[8]),
     * {@code size_t workspaceSize}, {@code cublasStatus_t state}, {@code float wavesCount},
     * {@code int reserved[4]}.
     */
    static final MemoryLayout HEURISTIC_RESULT = MemoryLayout.structLayout(
            MemoryLayout.sequenceLayout(8, JAVA_LONG).withName("algo"), JAVA_LONG.withName("workspaceSize"),
            JAVA_INT.withName("state"), JAVA_FLOAT.withName("wavesCount"),
            MemoryLayout.sequenceLayout(4, JAVA_INT).withName("reserved"));
    static final long ALGO_BYTES = 64;

    /** The bound functions of one loaded library. */
    static final class Api {
        private static final Linker LINKER = Linker.nativeLinker();
        final String location;
        final MethodHandle getVersion, getCudartVersion, getStatusName, create, destroy;
        final MethodHandle descCreate, descDestroy, descSet, descGet;
        final MethodHandle layoutCreate, layoutDestroy, layoutGet;
        final MethodHandle prefCreate, prefDestroy, prefSet;
        final MethodHandle heuristic, matmul;

        Api(SymbolLookup lib, String location) {
            this.location = location;
            getVersion = fn(lib, "cublasLtGetVersion", FunctionDescriptor.of(JAVA_LONG));
            getCudartVersion = fn(lib, "cublasLtGetCudartVersion", FunctionDescriptor.of(JAVA_LONG));
            getStatusName = fn(lib, "cublasLtGetStatusName", FunctionDescriptor.of(ADDRESS, JAVA_INT));
            create = status(lib, "cublasLtCreate", ADDRESS);
            destroy = status(lib, "cublasLtDestroy", ADDRESS);
            descCreate = status(lib, "cublasLtMatmulDescCreate", ADDRESS, JAVA_INT, JAVA_INT);
            descDestroy = status(lib, "cublasLtMatmulDescDestroy", ADDRESS);
            descSet = status(lib, "cublasLtMatmulDescSetAttribute", ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG);
            descGet = status(lib, "cublasLtMatmulDescGetAttribute", ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS);
            layoutCreate = status(lib, "cublasLtMatrixLayoutCreate", ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG);
            layoutDestroy = status(lib, "cublasLtMatrixLayoutDestroy", ADDRESS);
            layoutGet = status(lib, "cublasLtMatrixLayoutGetAttribute", ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG,
                    ADDRESS);
            prefCreate = status(lib, "cublasLtMatmulPreferenceCreate", ADDRESS);
            prefDestroy = status(lib, "cublasLtMatmulPreferenceDestroy", ADDRESS);
            prefSet = status(lib, "cublasLtMatmulPreferenceSetAttribute", ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG);
            heuristic = status(lib, "cublasLtMatmulAlgoGetHeuristic", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                    ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS);
            matmul = status(lib, "cublasLtMatmul", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                    ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS);
        }

        private MethodHandle status(SymbolLookup lib, String name, MemoryLayout... args) {
            return fn(lib, name, FunctionDescriptor.of(JAVA_INT, args));
        }

        private MethodHandle fn(SymbolLookup lib, String name, FunctionDescriptor fd) {
            return LINKER.downcallHandle(lib.find(name).orElseThrow(() -> new CudaUnavailableException(
                    location + " has no " + name)), fd);
        }

        long version() {
            try {
                return (long) getVersion.invokeExact();
            } catch (Throwable t) {
                throw rethrow(t);
            }
        }

        long cudartVersion() {
            try {
                return (long) getCudartVersion.invokeExact();
            } catch (Throwable t) {
                throw rethrow(t);
            }
        }

        String statusName(int status) {
            try {
                MemorySegment s = (MemorySegment) getStatusName.invokeExact(status);
                return s.equals(MemorySegment.NULL) ? "cublasStatus " + status : s.reinterpret(256).getString(0);
            } catch (Throwable t) {
                return "cublasStatus " + status;
            }
        }

        void check(String call, int status) {
            if (status != 0) {
                throw new CudaException(call, status, statusName(status), location);
            }
        }

        /** A matmul descriptor: compute type, scale type, transposes, epilogue. */
        MemorySegment matmulDesc(Arena a, int compute, int scale, int transa, int transb, int epilogue) {
            try {
                MemorySegment p = a.allocate(ADDRESS);
                check("cublasLtMatmulDescCreate", (int) descCreate.invokeExact(p, compute, scale));
                MemorySegment desc = p.get(ADDRESS, 0);
                setInt(a, desc, DESC_TRANSA, transa);
                setInt(a, desc, DESC_TRANSB, transb);
                setInt(a, desc, DESC_EPILOGUE, epilogue);
                return desc;
            } catch (Throwable t) {
                throw rethrow(t);
            }
        }

        void setInt(Arena a, MemorySegment desc, int attr, int value) {
            try {
                check("cublasLtMatmulDescSetAttribute(" + attr + ")",
                        (int) descSet.invokeExact(desc, attr, a.allocateFrom(JAVA_INT, value), 4L));
            } catch (Throwable t) {
                throw rethrow(t);
            }
        }

        void setPointer(Arena a, MemorySegment desc, int attr, long ptr) {
            try {
                check("cublasLtMatmulDescSetAttribute(" + attr + ")",
                        (int) descSet.invokeExact(desc, attr, a.allocateFrom(JAVA_LONG, ptr), 8L));
            } catch (Throwable t) {
                throw rethrow(t);
            }
        }

        /** The attribute's bytes and how many the library wrote: its size is part of the binding. */
        byte[] descAttribute(Arena a, MemorySegment desc, int attr, int bytes) {
            try {
                MemorySegment buf = a.allocate(bytes);
                MemorySegment written = a.allocate(JAVA_LONG);
                check("cublasLtMatmulDescGetAttribute(" + attr + ", " + bytes + " bytes)",
                        (int) descGet.invokeExact(desc, attr, buf, (long) bytes, written));
                return buf.asSlice(0, written.get(JAVA_LONG, 0)).toArray(JAVA_BYTE);
            } catch (Throwable t) {
                throw rethrow(t);
            }
        }

        /** Status of cublasLtMatmulDescSetAttribute with a value of {@code bytes} bytes (0 when accepted). */
        int trySet(Arena a, MemorySegment desc, int attr, int bytes) {
            try {
                return (int) descSet.invokeExact(desc, attr, a.allocate(Math.max(bytes, 1)), (long) bytes);
            } catch (Throwable t) {
                throw rethrow(t);
            }
        }

        MemorySegment layout(Arena a, int type, long rows, long cols, long ld) {
            try {
                MemorySegment p = a.allocate(ADDRESS);
                check("cublasLtMatrixLayoutCreate(" + rows + " x " + cols + ", ld " + ld + ")",
                        (int) layoutCreate.invokeExact(p, type, rows, cols, ld));
                return p.get(ADDRESS, 0);
            } catch (Throwable t) {
                throw rethrow(t);
            }
        }

        long layoutAttribute(Arena a, MemorySegment layout, int attr, int bytes) {
            try {
                MemorySegment buf = a.allocate(8);
                MemorySegment written = a.allocate(JAVA_LONG);
                check("cublasLtMatrixLayoutGetAttribute(" + attr + ", " + bytes + " bytes)",
                        (int) layoutGet.invokeExact(layout, attr, buf, (long) bytes, written));
                if (written.get(JAVA_LONG, 0) != bytes) {
                    throw new IllegalStateException("layout attribute " + attr + ": " + written.get(JAVA_LONG, 0)
                            + " bytes written, " + bytes + " expected");
                }
                return bytes == 4 ? buf.get(JAVA_INT, 0) : buf.get(JAVA_LONG, 0);
            } catch (Throwable t) {
                throw rethrow(t);
            }
        }

        MemorySegment preference(Arena a, long workspace, int[] alignments) {
            try {
                MemorySegment p = a.allocate(ADDRESS);
                check("cublasLtMatmulPreferenceCreate", (int) prefCreate.invokeExact(p));
                MemorySegment pref = p.get(ADDRESS, 0);
                check("cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)", (int) prefSet.invokeExact(pref,
                        PREF_MAX_WORKSPACE_BYTES, a.allocateFrom(JAVA_LONG, workspace), 8L));
                int[] attrs = {PREF_MIN_ALIGNMENT_A_BYTES, PREF_MIN_ALIGNMENT_B_BYTES, PREF_MIN_ALIGNMENT_C_BYTES,
                    PREF_MIN_ALIGNMENT_D_BYTES};
                for (int i = 0; i < attrs.length; i++) {
                    check("cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)", (int) prefSet.invokeExact(pref,
                            attrs[i], a.allocateFrom(JAVA_INT, alignments[i]), 4L));
                }
                return pref;
            } catch (Throwable t) {
                throw rethrow(t);
            }
        }

        void destroy(MethodHandle h, MemorySegment obj) {
            NativeLibraries.destroy(h, obj);
        }
    }

    private static Api api;

    /** The bindings of the library {@link NativeLibraries} finds; {@link CudaUnavailableException} if none. */
    static synchronized Api api() {
        if (api == null) {
            api = new Api(NativeLibraries.optional(NativeLibraries.OptionalLibrary.CUBLASLT),
                    NativeLibraries.optionalLocation(NativeLibraries.OptionalLibrary.CUBLASLT));
        }
        return api;
    }

    /** Null if cuBLASLt loads and has every function bound here; else one line saying why not. */
    public static String unavailableReason() {
        return NativeLibraries.unavailableReason(NativeLibraries.OptionalLibrary.CUBLASLT, CublasLt::api);
    }

    /** "cuBLASLt 130300 (cudart 13030) at PATH"; the library must load. */
    public static String describe() {
        Api a = api();
        return "cuBLASLt " + a.version() + " (cudart " + a.cudartVersion() + ") at " + a.location;
    }

    /** One GEMM shape's descriptors and the algorithm the heuristic chose for it. */
    private record Plan(MemorySegment desc, MemorySegment a, MemorySegment b, MemorySegment cd, MemorySegment algo,
                        long workspace) {
    }

    private record Key(boolean fp16, int m, int n, int k, boolean bias, int[] align) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Key q && q.fp16 == fp16 && q.m == m && q.n == n && q.k == k && q.bias == bias
                    && Arrays.equals(q.align, align);
        }

        @Override
        public int hashCode() {
            return Objects.hash(fp16, m, n, k, bias, Arrays.hashCode(align));
        }
    }

    /** Workspace the heuristic may use: 32 MiB, what NVIDIA recommends for Hopper. */
    public static final long WORKSPACE_BYTES = 32L << 20;

    private final CudaContext ctx;
    private final Api lib;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment handle;
    private final long workspace;
    private final MemorySegment one, zero;
    private final Map<Key, Plan> plans = new HashMap<>();
    private boolean closed;

    /** A handle on {@code ctx}'s device and a workspace; matmuls go on {@code ctx}'s stream. */
    public CublasLt(CudaContext ctx) {
        this.ctx = ctx;
        this.lib = api();
        ctx.synchronize();   // the context current on this thread, as the library's runtime expects
        try {
            MemorySegment p = arena.allocate(ADDRESS);
            lib.check("cublasLtCreate", (int) lib.create.invokeExact(p));
            handle = p.get(ADDRESS, 0);
        } catch (Throwable t) {
            arena.close();
            throw rethrow(t);
        }
        long ws;
        try {
            ws = ctx.malloc(WORKSPACE_BYTES);
        } catch (RuntimeException e) {
            lib.destroy(lib.destroy, handle);
            arena.close();
            throw e;
        }
        workspace = ws;
        one = arena.allocateFrom(JAVA_FLOAT, 1f);
        zero = arena.allocateFrom(JAVA_FLOAT, 0f);
    }

    /**
     * {@code out[M, N] = x[M, K]·w[N, K]ᵀ + bias[N] + residual[M, N]} on the context's stream; device
     * pointers, {@code bias} and {@code residual} 0 for none, {@code residual} may be {@code out}.
     */
    public void linear(boolean fp16, long x, long w, long bias, long residual, long out, int m, int n, int k) {
        if (closed) {
            throw new IllegalStateException("CublasLt is closed");
        }
        int[] align = {alignment(w), alignment(x), alignment(residual == 0 ? out : residual), alignment(out)};
        Key key = new Key(fp16, m, n, k, bias != 0, align);
        Plan plan = plans.computeIfAbsent(key, this::plan);
        if (bias != 0) {
            lib.setPointer(arena, plan.desc, DESC_BIAS_POINTER, bias);
        }
        try {
            int rc = (int) lib.matmul.invokeExact(handle, plan.desc, one, MemorySegment.ofAddress(w), plan.a,
                    MemorySegment.ofAddress(x), plan.b, residual == 0 ? zero : one,
                    MemorySegment.ofAddress(residual == 0 ? out : residual), plan.cd, MemorySegment.ofAddress(out),
                    plan.cd, plan.algo, MemorySegment.ofAddress(workspace), WORKSPACE_BYTES,
                    MemorySegment.ofAddress(ctx.stream()));
            lib.check("cublasLtMatmul(m " + m + ", n " + n + ", k " + k + ")", rc);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private Plan plan(Key key) {
        int type = key.fp16 ? CUDA_R_16F : CUDA_R_32F;
        MemorySegment desc = lib.matmulDesc(arena, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLAS_OP_T, CUBLAS_OP_N,
                key.bias ? EPILOGUE_BIAS : EPILOGUE_DEFAULT);
        MemorySegment a = lib.layout(arena, type, key.k, key.n, key.k);
        MemorySegment b = lib.layout(arena, type, key.k, key.m, key.k);
        MemorySegment cd = lib.layout(arena, type, key.n, key.m, key.n);
        MemorySegment pref = lib.preference(arena, WORKSPACE_BYTES, key.align);
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment results = tmp.allocate(HEURISTIC_RESULT);
            MemorySegment count = tmp.allocate(JAVA_INT);
            lib.check("cublasLtMatmulAlgoGetHeuristic(m " + key.m + ", n " + key.n + ", k " + key.k + ")",
                    (int) lib.heuristic.invokeExact(handle, desc, a, b, cd, cd, pref, 1, results, count));
            if (count.get(JAVA_INT, 0) < 1) {
                throw new IllegalArgumentException("cuBLASLt has no algorithm for m " + key.m + ", n " + key.n + ", k "
                        + key.k + (key.fp16 ? " fp16" : " fp32"));
            }
            MemorySegment algo = arena.allocate(ALGO_BYTES, 8);
            algo.copyFrom(results.asSlice(0, ALGO_BYTES));
            long ws = results.get(JAVA_LONG, HEURISTIC_RESULT.byteOffset(MemoryLayout.PathElement.groupElement(
                    "workspaceSize")));
            return new Plan(desc, a, b, cd, algo, ws);
        } catch (Throwable t) {
            throw rethrow(t);
        } finally {
            lib.destroy(lib.prefDestroy, pref);
        }
    }

    /** The largest power of two up to 256 that divides {@code ptr}: what the heuristic may assume. */
    static int alignment(long ptr) {
        return ptr == 0 ? 256 : (int) Math.min(256, Long.lowestOneBit(ptr));
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            for (Plan p : plans.values()) {
                lib.destroy(lib.descDestroy, p.desc);
                lib.destroy(lib.layoutDestroy, p.a);
                lib.destroy(lib.layoutDestroy, p.b);
                lib.destroy(lib.layoutDestroy, p.cd);
            }
            plans.clear();
            ctx.free(workspace);
            lib.destroy(lib.destroy, handle);
        } finally {
            arena.close();
        }
    }

    static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }
}
