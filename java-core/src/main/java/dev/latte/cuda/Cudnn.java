package dev.latte.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
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
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * cuDNN 9's fused convolution, bound through FFM ({@code libcudnn.so.9}, found as
 * {@link NativeLibraries} says, never required): {@code cudnnConvolutionBiasActivationForward},
 * {@code y = act(α₁·conv(x, w) + α₂·z + bias)} with the identity activation, so the bias and the
 * residual (z, which may be y itself) are the epilogue of one call. It is the legacy (imperative)
 * API, which cuDNN 9 keeps but marks deprecated; with the identity activation it runs
 * {@code CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM} only. Tensors are described NCHW, the
 * layout Latte's activations have; cuDNN's NHWC kernels are one format value away
 * ({@link #TENSOR_NHWC}). fp16 storage computes in fp32 with tensor cores
 * ({@code CUDNN_TENSOR_OP_MATH}); fp32 storage with FMA only (no TF32). Constants and signatures are
 * those of {@code cudnn_graph.h}, {@code cudnn_ops.h} and {@code cudnn_cnn.h} of cuDNN 9.
 */
@SuppressWarnings("restricted")   // binding native code is this class's job
public final class Cudnn implements AutoCloseable {
    // cudnn_graph.h: cudnnDataType_t, cudnnTensorFormat_t, cudnnMathType_t, cudnnNanPropagation_t,
    // cudnnActivationMode_t, cudnnConvolutionMode_t
    static final int DATA_FLOAT = 0, DATA_HALF = 2;
    static final int TENSOR_NCHW = 0, TENSOR_NHWC = 1;
    static final int TENSOR_OP_MATH = 1, FMA_MATH = 3;
    static final int NOT_PROPAGATE_NAN = 0;
    static final int ACTIVATION_IDENTITY = 5;
    static final int CROSS_CORRELATION = 1;
    // cudnn_ops.h: cudnnConvolutionFwdAlgo_t
    static final int FWD_ALGO_IMPLICIT_PRECOMP_GEMM = 1;
    static final int STATUS_SUCCESS = 0;

    /** The bound functions of one loaded library. */
    static final class Api {
        private static final Linker LINKER = Linker.nativeLinker();
        final String location;
        final MethodHandle getVersion, getCudartVersion, getErrorString, create, destroy, setStream;
        final MethodHandle createTensor, setTensor4d, getTensor4d, destroyTensor;
        final MethodHandle createFilter, setFilter4d, getFilter4d, destroyFilter;
        final MethodHandle createConv, setConv2d, setConvMath, outputDim, destroyConv;
        final MethodHandle createActivation, setActivation, destroyActivation;
        final MethodHandle workspaceSize, convBiasActivation;

        Api(SymbolLookup lib, String location) {
            this.location = location;
            getVersion = fn(lib, "cudnnGetVersion", FunctionDescriptor.of(JAVA_LONG));
            getCudartVersion = fn(lib, "cudnnGetCudartVersion", FunctionDescriptor.of(JAVA_LONG));
            getErrorString = fn(lib, "cudnnGetErrorString", FunctionDescriptor.of(ADDRESS, JAVA_INT));
            create = status(lib, "cudnnCreate", ADDRESS);
            destroy = status(lib, "cudnnDestroy", ADDRESS);
            setStream = status(lib, "cudnnSetStream", ADDRESS, ADDRESS);
            createTensor = status(lib, "cudnnCreateTensorDescriptor", ADDRESS);
            setTensor4d = status(lib, "cudnnSetTensor4dDescriptor", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                    JAVA_INT, JAVA_INT);
            getTensor4d = status(lib, "cudnnGetTensor4dDescriptor", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                    ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS);
            destroyTensor = status(lib, "cudnnDestroyTensorDescriptor", ADDRESS);
            createFilter = status(lib, "cudnnCreateFilterDescriptor", ADDRESS);
            setFilter4d = status(lib, "cudnnSetFilter4dDescriptor", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                    JAVA_INT, JAVA_INT);
            getFilter4d = status(lib, "cudnnGetFilter4dDescriptor", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                    ADDRESS, ADDRESS);
            destroyFilter = status(lib, "cudnnDestroyFilterDescriptor", ADDRESS);
            createConv = status(lib, "cudnnCreateConvolutionDescriptor", ADDRESS);
            setConv2d = status(lib, "cudnnSetConvolution2dDescriptor", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                    JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT);
            setConvMath = status(lib, "cudnnSetConvolutionMathType", ADDRESS, JAVA_INT);
            outputDim = status(lib, "cudnnGetConvolution2dForwardOutputDim", ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                    ADDRESS, ADDRESS, ADDRESS);
            destroyConv = status(lib, "cudnnDestroyConvolutionDescriptor", ADDRESS);
            createActivation = status(lib, "cudnnCreateActivationDescriptor", ADDRESS);
            setActivation = status(lib, "cudnnSetActivationDescriptor", ADDRESS, JAVA_INT, JAVA_INT, JAVA_DOUBLE);
            destroyActivation = status(lib, "cudnnDestroyActivationDescriptor", ADDRESS);
            workspaceSize = status(lib, "cudnnGetConvolutionForwardWorkspaceSize", ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                    ADDRESS, JAVA_INT, ADDRESS);
            convBiasActivation = status(lib, "cudnnConvolutionBiasActivationForward", ADDRESS, ADDRESS, ADDRESS,
                    ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS,
                    ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS);
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
                throw CublasLt.rethrow(t);
            }
        }

        long cudartVersion() {
            try {
                return (long) getCudartVersion.invokeExact();
            } catch (Throwable t) {
                throw CublasLt.rethrow(t);
            }
        }

        String errorString(int status) {
            try {
                MemorySegment s = (MemorySegment) getErrorString.invokeExact(status);
                return s.equals(MemorySegment.NULL) ? "cudnnStatus " + status : s.reinterpret(256).getString(0);
            } catch (Throwable t) {
                return "cudnnStatus " + status;
            }
        }

        void check(String call, int status) {
            if (status != STATUS_SUCCESS) {
                throw new CudaException(call, status, errorString(status), location);
            }
        }

        private MemorySegment created(Arena a, MethodHandle create, String call) throws Throwable {
            MemorySegment p = a.allocate(ADDRESS);
            check(call, (int) create.invokeExact(p));
            return p.get(ADDRESS, 0);
        }

        /** An n × c × h × w tensor descriptor. */
        MemorySegment tensor(Arena a, int format, int type, int n, int c, int h, int w) {
            try {
                MemorySegment d = created(a, createTensor, "cudnnCreateTensorDescriptor");
                check("cudnnSetTensor4dDescriptor(" + n + "x" + c + "x" + h + "x" + w + ")",
                        (int) setTensor4d.invokeExact(d, format, type, n, c, h, w));
                return d;
            } catch (Throwable t) {
                throw CublasLt.rethrow(t);
            }
        }

        /** {dataType, n, c, h, w, nStride, cStride, hStride, wStride} as the library holds them. */
        int[] tensorInfo(Arena a, MemorySegment d) {
            try {
                MemorySegment v = a.allocate(JAVA_INT, 9);
                check("cudnnGetTensor4dDescriptor", (int) getTensor4d.invokeExact(d, v, v.asSlice(4), v.asSlice(8),
                        v.asSlice(12), v.asSlice(16), v.asSlice(20), v.asSlice(24), v.asSlice(28), v.asSlice(32)));
                return v.toArray(JAVA_INT);
            } catch (Throwable t) {
                throw CublasLt.rethrow(t);
            }
        }

        /** A k × c × r × s filter descriptor (note the C order: data type, then format). */
        MemorySegment filter(Arena a, int type, int format, int k, int c, int r, int s) {
            try {
                MemorySegment d = created(a, createFilter, "cudnnCreateFilterDescriptor");
                check("cudnnSetFilter4dDescriptor(" + k + "x" + c + "x" + r + "x" + s + ")",
                        (int) setFilter4d.invokeExact(d, type, format, k, c, r, s));
                return d;
            } catch (Throwable t) {
                throw CublasLt.rethrow(t);
            }
        }

        /** {dataType, format, k, c, r, s}. */
        int[] filterInfo(Arena a, MemorySegment d) {
            try {
                MemorySegment v = a.allocate(JAVA_INT, 6);
                check("cudnnGetFilter4dDescriptor", (int) getFilter4d.invokeExact(d, v, v.asSlice(4), v.asSlice(8),
                        v.asSlice(12), v.asSlice(16), v.asSlice(20)));
                return v.toArray(JAVA_INT);
            } catch (Throwable t) {
                throw CublasLt.rethrow(t);
            }
        }

        /** Cross-correlation (what PyTorch calls convolution), no dilation, fp32 compute. */
        MemorySegment convolution(Arena a, int padH, int padW, int strideH, int strideW, int math) {
            try {
                MemorySegment d = created(a, createConv, "cudnnCreateConvolutionDescriptor");
                check("cudnnSetConvolution2dDescriptor(pad " + padH + "," + padW + ", stride " + strideH + ","
                        + strideW + ")", (int) setConv2d.invokeExact(d, padH, padW, strideH, strideW, 1, 1,
                        CROSS_CORRELATION, DATA_FLOAT));
                check("cudnnSetConvolutionMathType", (int) setConvMath.invokeExact(d, math));
                return d;
            } catch (Throwable t) {
                throw CublasLt.rethrow(t);
            }
        }

        /** {n, c, h, w} of the convolution's output as the library computes it. */
        int[] outputDims(Arena a, MemorySegment conv, MemorySegment x, MemorySegment w) {
            try {
                MemorySegment v = a.allocate(JAVA_INT, 4);
                check("cudnnGetConvolution2dForwardOutputDim", (int) outputDim.invokeExact(conv, x, w, v,
                        v.asSlice(4), v.asSlice(8), v.asSlice(12)));
                return v.toArray(JAVA_INT);
            } catch (Throwable t) {
                throw CublasLt.rethrow(t);
            }
        }

        MemorySegment identity(Arena a) {
            try {
                MemorySegment d = created(a, createActivation, "cudnnCreateActivationDescriptor");
                check("cudnnSetActivationDescriptor(IDENTITY)",
                        (int) setActivation.invokeExact(d, ACTIVATION_IDENTITY, NOT_PROPAGATE_NAN, 0.0));
                return d;
            } catch (Throwable t) {
                throw CublasLt.rethrow(t);
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
            api = new Api(NativeLibraries.optional(NativeLibraries.OptionalLibrary.CUDNN),
                    NativeLibraries.optionalLocation(NativeLibraries.OptionalLibrary.CUDNN));
        }
        return api;
    }

    /** Null if cuDNN loads (and has the legacy convolution this tactic calls); else one line saying why not. */
    public static String unavailableReason() {
        return NativeLibraries.unavailableReason(NativeLibraries.OptionalLibrary.CUDNN, Cudnn::api);
    }

    /** "cuDNN 92500 (cudart 13030) at PATH"; the library must load. */
    public static String describe() {
        Api a = api();
        return "cuDNN " + a.version() + " (cudart " + a.cudartVersion() + ") at " + a.location;
    }

    /** One convolution shape's descriptors and workspace size. */
    private record Plan(MemorySegment x, MemorySegment y, MemorySegment bias, MemorySegment w, MemorySegment conv,
                        long workspace) {
    }

    private final CudaContext ctx;
    private final Api lib;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment handle, activation, one, zero;
    private final Map<List<Integer>, Plan> plans = new HashMap<>();
    private final Map<Integer, Long> zeroBias = new HashMap<>();
    private long workspace, workspaceBytes;
    private boolean closed;

    /** A handle on {@code ctx}'s device, bound to its stream. */
    public Cudnn(CudaContext ctx) {
        this.ctx = ctx;
        this.lib = api();
        ctx.synchronize();   // the context current on this thread, as the library's runtime expects
        try {
            handle = lib.created(arena, lib.create, "cudnnCreate");
            lib.check("cudnnSetStream", (int) lib.setStream.invokeExact(handle, MemorySegment.ofAddress(ctx.stream())));
            activation = lib.identity(arena);
        } catch (Throwable t) {
            arena.close();
            throw CublasLt.rethrow(t);
        }
        one = arena.allocateFrom(JAVA_FLOAT, 1f);
        zero = arena.allocateFrom(JAVA_FLOAT, 0f);
    }

    /**
     * {@code out[N, K, P, Q] = conv(x[N, C, H, W], w[K, C, R, S]) + bias[K] + residual} on the context's
     * stream: symmetric zero padding, device pointers, {@code bias}/{@code residual} 0 for none,
     * {@code residual} may be {@code out}.
     */
    public void conv(boolean fp16, long x, long w, long bias, long residual, long out, int n, int c, int h, int wd,
                     int k, int r, int s, int padH, int padW, int strideH, int strideW, int p, int q) {
        if (closed) {
            throw new IllegalStateException("Cudnn is closed");
        }
        Plan plan = prepared(fp16, n, c, h, wd, k, r, s, padH, padW, strideH, strideW, p, q, bias != 0);
        long b = bias != 0 ? bias : zeroBias.get(k * (fp16 ? 2 : 4));
        try {
            int rc = (int) lib.convBiasActivation.invokeExact(handle, one, plan.x, MemorySegment.ofAddress(x), plan.w,
                    MemorySegment.ofAddress(w), plan.conv, FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                    MemorySegment.ofAddress(workspace), workspaceBytes, residual == 0 ? zero : one, plan.y,
                    MemorySegment.ofAddress(residual == 0 ? out : residual), plan.bias, MemorySegment.ofAddress(b),
                    activation, plan.y, MemorySegment.ofAddress(out));
            lib.check("cudnnConvolutionBiasActivationForward(" + n + "x" + c + "x" + h + "x" + wd + " * " + k + "x" + c
                    + "x" + r + "x" + s + ")", rc);
        } catch (Throwable t) {
            throw CublasLt.rethrow(t);
        }
    }

    /**
     * This shape's descriptors, a workspace large enough for it and, for a convolution without a
     * bias, a zeroed one (the fused call takes a bias): what a call allocates, done ahead of a CUDA
     * graph capture, during which allocating is an error saying so.
     */
    public void reserve(boolean fp16, int n, int c, int h, int wd, int k, int r, int s, int padH, int padW, int strideH,
                        int strideW, int p, int q, boolean bias) {
        prepared(fp16, n, c, h, wd, k, r, s, padH, padW, strideH, strideW, p, q, bias);
    }

    private Plan prepared(boolean fp16, int n, int c, int h, int wd, int k, int r, int s, int padH, int padW,
                          int strideH, int strideW, int p, int q, boolean bias) {
        List<Integer> key = List.of(fp16 ? 1 : 0, n, c, h, wd, k, r, s, padH, padW, strideH, strideW);
        Plan plan = plans.get(key);
        int zeroBytes = k * (fp16 ? 2 : 4);
        if (plan != null && plan.workspace <= workspaceBytes && (bias || zeroBias.containsKey(zeroBytes))) {
            return plan;
        }
        if (ctx.capturing()) {
            throw new IllegalStateException("CUDA graph capture: conv=cudnn for " + n + "x" + c + "x" + h + "x" + wd
                    + " * " + k + "x" + c + "x" + r + "x" + s + " was not reserved (run it from a planned arena:"
                    + " Backend.reserve)");
        }
        if (plan == null) {
            plan = plan(fp16, n, c, h, wd, k, r, s, padH, padW, strideH, strideW, p, q);
            plans.put(key, plan);
        }
        if (plan.workspace > workspaceBytes) {
            if (workspace != 0) {
                ctx.free(workspace);
                workspace = 0;
                workspaceBytes = 0;
            }
            workspace = ctx.malloc(plan.workspace);
            workspaceBytes = plan.workspace;
        }
        if (!bias && !zeroBias.containsKey(zeroBytes)) {
            long z = ctx.malloc(zeroBytes);
            ctx.memsetD8(z, (byte) 0, zeroBytes);
            zeroBias.put(zeroBytes, z);
        }
        return plan;
    }

    private Plan plan(boolean fp16, int n, int c, int h, int wd, int k, int r, int s, int padH, int padW, int strideH,
                      int strideW, int p, int q) {
        int type = fp16 ? DATA_HALF : DATA_FLOAT;
        MemorySegment xd = lib.tensor(arena, TENSOR_NCHW, type, n, c, h, wd);
        MemorySegment yd = lib.tensor(arena, TENSOR_NCHW, type, n, k, p, q);
        MemorySegment bd = lib.tensor(arena, TENSOR_NCHW, type, 1, k, 1, 1);
        MemorySegment fd = lib.filter(arena, type, TENSOR_NCHW, k, c, r, s);
        MemorySegment cd = lib.convolution(arena, padH, padW, strideH, strideW, fp16 ? TENSOR_OP_MATH : FMA_MATH);
        try (Arena tmp = Arena.ofConfined()) {
            int[] dims = lib.outputDims(tmp, cd, xd, fd);
            if (dims[0] != n || dims[1] != k || dims[2] != p || dims[3] != q) {
                throw new IllegalArgumentException("cuDNN computes a " + dims[0] + "x" + dims[1] + "x" + dims[2] + "x"
                        + dims[3] + " output, Latte " + n + "x" + k + "x" + p + "x" + q);
            }
            MemorySegment size = tmp.allocate(JAVA_LONG);
            lib.check("cudnnGetConvolutionForwardWorkspaceSize", (int) lib.workspaceSize.invokeExact(handle, xd, fd, cd,
                    yd, FWD_ALGO_IMPLICIT_PRECOMP_GEMM, size));
            return new Plan(xd, yd, bd, fd, cd, size.get(JAVA_LONG, 0));
        } catch (Throwable t) {
            throw CublasLt.rethrow(t);
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            for (Plan pl : plans.values()) {
                lib.destroy(lib.destroyTensor, pl.x);
                lib.destroy(lib.destroyTensor, pl.y);
                lib.destroy(lib.destroyTensor, pl.bias);
                lib.destroy(lib.destroyFilter, pl.w);
                lib.destroy(lib.destroyConv, pl.conv);
            }
            plans.clear();
            zeroBias.values().forEach(ctx::free);
            if (workspace != 0) {
                ctx.free(workspace);
            }
            lib.destroy(lib.destroyActivation, activation);
            lib.destroy(lib.destroy, handle);
        } finally {
            arena.close();
        }
    }
}
