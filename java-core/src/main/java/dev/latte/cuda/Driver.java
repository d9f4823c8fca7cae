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
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.Optional;

/**
 * The CUDA driver API, one typed method per C function used. Every method checks its
 * {@code CUresult} and throws {@link CudaException} naming the call, the error's name and string.
 * Handles ({@code CUcontext}, {@code CUstream}, ...) are zero-length {@link MemorySegment}s;
 * {@code CUdeviceptr} is a {@code long}. Symbols are the ones cuda.h's {@code #define}s select
 * ({@code cuMemAlloc} → {@code cuMemAlloc_v2}, ...), without per-thread-default-stream variants.
 * <p>
 * Touch this class only after {@link NativeLibraries#cuda()} succeeded: its initialisation loads
 * the library. A symbol the installed driver lacks turns into a handle that throws
 * {@link CudaUnavailableException} when called.
 */
@SuppressWarnings("restricted")   // binding native code is this class's job
final class Driver {
    private Driver() {
    }

    static final int CUDA_SUCCESS = 0;
    static final int CUDA_ERROR_NO_DEVICE = 100;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIB = NativeLibraries.cuda();
    private static final MemoryLayout PTR = ADDRESS;

    private static MethodHandle fn(String symbol, MemoryLayout... args) {
        return fn(new String[] {symbol}, args);
    }

    /** The first of {@code symbols} the library exports ({@code _v2} first, then the original). */
    private static MethodHandle fn(String[] symbols, MemoryLayout... args) {
        FunctionDescriptor fd = FunctionDescriptor.of(JAVA_INT, args);
        for (String s : symbols) {
            Optional<MemorySegment> addr = LIB.find(s);
            if (addr.isPresent()) {
                return LINKER.downcallHandle(addr.get(), fd);
            }
        }
        MethodType type = fd.toMethodType();
        MethodHandle thrower = MethodHandles.throwException(int.class, CudaUnavailableException.class)
                .bindTo(new CudaUnavailableException("driver too old: " + NativeLibraries.cudaLocation()
                        + " has no " + String.join(" or ", symbols)));
        return MethodHandles.dropArguments(thrower, 0, type.parameterList());
    }

    private static final MethodHandle cuGetErrorName = fn("cuGetErrorName", JAVA_INT, PTR);
    private static final MethodHandle cuGetErrorString = fn("cuGetErrorString", JAVA_INT, PTR);
    private static final MethodHandle cuInit = fn("cuInit", JAVA_INT);
    private static final MethodHandle cuDriverGetVersion = fn("cuDriverGetVersion", PTR);
    private static final MethodHandle cuDeviceGetCount = fn("cuDeviceGetCount", PTR);
    private static final MethodHandle cuDeviceGet = fn("cuDeviceGet", PTR, JAVA_INT);
    private static final MethodHandle cuDeviceGetName = fn("cuDeviceGetName", PTR, JAVA_INT, JAVA_INT);
    private static final MethodHandle cuDeviceGetAttribute = fn("cuDeviceGetAttribute", PTR, JAVA_INT, JAVA_INT);
    private static final MethodHandle cuDeviceTotalMem = fn("cuDeviceTotalMem_v2", PTR, JAVA_INT);
    private static final MethodHandle cuDevicePrimaryCtxRetain = fn("cuDevicePrimaryCtxRetain", PTR, JAVA_INT);
    private static final MethodHandle cuDevicePrimaryCtxRelease = fn("cuDevicePrimaryCtxRelease_v2", JAVA_INT);
    private static final MethodHandle cuCtxSetCurrent = fn("cuCtxSetCurrent", PTR);
    private static final MethodHandle cuMemGetInfo = fn("cuMemGetInfo_v2", PTR, PTR);
    private static final MethodHandle cuMemAlloc = fn("cuMemAlloc_v2", PTR, JAVA_LONG);
    private static final MethodHandle cuMemFree = fn("cuMemFree_v2", JAVA_LONG);
    private static final MethodHandle cuMemcpyHtoDAsync = fn("cuMemcpyHtoDAsync_v2", JAVA_LONG, PTR, JAVA_LONG, PTR);
    private static final MethodHandle cuMemcpyDtoHAsync = fn("cuMemcpyDtoHAsync_v2", PTR, JAVA_LONG, JAVA_LONG, PTR);
    private static final MethodHandle cuMemcpyDtoDAsync = fn("cuMemcpyDtoDAsync_v2", JAVA_LONG, JAVA_LONG, JAVA_LONG, PTR);
    private static final MethodHandle cuMemsetD8Async = fn("cuMemsetD8Async", JAVA_LONG, JAVA_BYTE, JAVA_LONG, PTR);
    private static final MethodHandle cuStreamCreate = fn("cuStreamCreate", PTR, JAVA_INT);
    private static final MethodHandle cuStreamDestroy = fn("cuStreamDestroy_v2", PTR);
    private static final MethodHandle cuStreamSynchronize = fn("cuStreamSynchronize", PTR);
    private static final MethodHandle cuEventCreate = fn("cuEventCreate", PTR, JAVA_INT);
    private static final MethodHandle cuEventDestroy = fn("cuEventDestroy_v2", PTR);
    private static final MethodHandle cuEventRecord = fn("cuEventRecord", PTR, PTR);
    private static final MethodHandle cuEventSynchronize = fn("cuEventSynchronize", PTR);
    private static final MethodHandle cuEventElapsedTime =
            fn(new String[] {"cuEventElapsedTime_v2", "cuEventElapsedTime"}, PTR, PTR, PTR);
    private static final MethodHandle cuModuleLoadData = fn("cuModuleLoadData", PTR, PTR);
    private static final MethodHandle cuModuleUnload = fn("cuModuleUnload", PTR);
    private static final MethodHandle cuModuleGetFunction = fn("cuModuleGetFunction", PTR, PTR, PTR);
    private static final MethodHandle cuFuncGetAttribute = fn("cuFuncGetAttribute", PTR, JAVA_INT, PTR);
    private static final MethodHandle cuFuncSetAttribute = fn("cuFuncSetAttribute", PTR, JAVA_INT, JAVA_INT);
    /** Since CUDA 12.4; null on older drivers (launches are then not checked against it). */
    private static final MethodHandle cuFuncGetParamInfo = LIB.find("cuFuncGetParamInfo")
            .map(a -> LINKER.downcallHandle(a, FunctionDescriptor.of(JAVA_INT, PTR, JAVA_LONG, PTR, PTR)))
            .orElse(null);
    private static final MethodHandle cuLaunchKernel = fn("cuLaunchKernel", PTR,
            JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, PTR, PTR, PTR);
    private static final MethodHandle cuStreamBeginCapture = fn("cuStreamBeginCapture_v2", PTR, JAVA_INT);
    private static final MethodHandle cuStreamEndCapture = fn("cuStreamEndCapture", PTR, PTR);
    private static final MethodHandle cuGraphInstantiateWithFlags =
            fn("cuGraphInstantiateWithFlags", PTR, PTR, JAVA_LONG);
    private static final MethodHandle cuGraphLaunch = fn("cuGraphLaunch", PTR, PTR);
    private static final MethodHandle cuGraphExecDestroy = fn("cuGraphExecDestroy", PTR);
    private static final MethodHandle cuGraphDestroy = fn("cuGraphDestroy", PTR);

    // ---- errors

    /** The exception for a failed call: name and string from cuGetErrorName/cuGetErrorString. */
    static CudaException error(String call, int result) {
        String name = "CUresult " + result;
        String text = "";
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(PTR);
            if ((int) cuGetErrorName.invokeExact(result, p) == CUDA_SUCCESS) {
                name = cString(p.get(ADDRESS, 0));
            }
            if ((int) cuGetErrorString.invokeExact(result, p) == CUDA_SUCCESS) {
                text = cString(p.get(ADDRESS, 0));
            }
        } catch (Throwable t) {
            // keep the numeric name: the original error matters more than this one
        }
        return new CudaException(call, result, name, text);
    }

    static void check(String call, int result) {
        if (result != CUDA_SUCCESS) {
            throw error(call, result);
        }
    }

    private static String cString(MemorySegment p) {
        return p.equals(MemorySegment.NULL) ? "" : p.reinterpret(4096).getString(0);
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }

    // ---- initialisation and devices

    /** cuInit's raw result: callers tell "no device" apart from other failures. */
    static int init() {
        try {
            return (int) cuInit.invokeExact(0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static int driverVersion() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            check("cuDriverGetVersion", (int) cuDriverGetVersion.invokeExact(v));
            return v.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static int deviceCount() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            check("cuDeviceGetCount", (int) cuDeviceGetCount.invokeExact(v));
            return v.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static int device(int ordinal) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            check("cuDeviceGet(" + ordinal + ")", (int) cuDeviceGet.invokeExact(v, ordinal));
            return v.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static String deviceName(int device) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(256);
            check("cuDeviceGetName", (int) cuDeviceGetName.invokeExact(buf, 256, device));
            return buf.getString(0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static int deviceAttribute(int device, int attribute) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            check("cuDeviceGetAttribute(" + attribute + ")", (int) cuDeviceGetAttribute.invokeExact(v, attribute, device));
            return v.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static long deviceTotalMem(int device) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check("cuDeviceTotalMem", (int) cuDeviceTotalMem.invokeExact(v, device));
            return v.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- contexts

    static MemorySegment primaryCtxRetain(int device) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(PTR);
            check("cuDevicePrimaryCtxRetain", (int) cuDevicePrimaryCtxRetain.invokeExact(v, device));
            return v.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void primaryCtxRelease(int device) {
        try {
            check("cuDevicePrimaryCtxRelease", (int) cuDevicePrimaryCtxRelease.invokeExact(device));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void ctxSetCurrent(MemorySegment ctx) {
        try {
            check("cuCtxSetCurrent", (int) cuCtxSetCurrent.invokeExact(ctx));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- memory

    /** {free, total} bytes of the current context's device. */
    static long[] memGetInfo() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment free = a.allocate(JAVA_LONG);
            MemorySegment total = a.allocate(JAVA_LONG);
            check("cuMemGetInfo", (int) cuMemGetInfo.invokeExact(free, total));
            return new long[] {free.get(JAVA_LONG, 0), total.get(JAVA_LONG, 0)};
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static long memAlloc(long bytes) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check("cuMemAlloc(" + bytes + " bytes)", (int) cuMemAlloc.invokeExact(v, bytes));
            return v.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void memFree(long dptr) {
        try {
            check("cuMemFree", (int) cuMemFree.invokeExact(dptr));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void memcpyHtoDAsync(long dst, MemorySegment src, long bytes, MemorySegment stream) {
        try {
            check("cuMemcpyHtoDAsync", (int) cuMemcpyHtoDAsync.invokeExact(dst, src, bytes, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void memcpyDtoHAsync(MemorySegment dst, long src, long bytes, MemorySegment stream) {
        try {
            check("cuMemcpyDtoHAsync", (int) cuMemcpyDtoHAsync.invokeExact(dst, src, bytes, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void memcpyDtoDAsync(long dst, long src, long bytes, MemorySegment stream) {
        try {
            check("cuMemcpyDtoDAsync", (int) cuMemcpyDtoDAsync.invokeExact(dst, src, bytes, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void memsetD8Async(long dptr, byte value, long bytes, MemorySegment stream) {
        try {
            check("cuMemsetD8Async", (int) cuMemsetD8Async.invokeExact(dptr, value, bytes, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- streams and events

    static MemorySegment streamCreate(int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(PTR);
            check("cuStreamCreate", (int) cuStreamCreate.invokeExact(v, flags));
            return v.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void streamDestroy(MemorySegment stream) {
        try {
            check("cuStreamDestroy", (int) cuStreamDestroy.invokeExact(stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void streamSynchronize(MemorySegment stream) {
        try {
            check("cuStreamSynchronize", (int) cuStreamSynchronize.invokeExact(stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static MemorySegment eventCreate(int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(PTR);
            check("cuEventCreate", (int) cuEventCreate.invokeExact(v, flags));
            return v.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void eventDestroy(MemorySegment event) {
        try {
            check("cuEventDestroy", (int) cuEventDestroy.invokeExact(event));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void eventRecord(MemorySegment event, MemorySegment stream) {
        try {
            check("cuEventRecord", (int) cuEventRecord.invokeExact(event, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void eventSynchronize(MemorySegment event) {
        try {
            check("cuEventSynchronize", (int) cuEventSynchronize.invokeExact(event));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static float eventElapsedTime(MemorySegment start, MemorySegment end) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_FLOAT);
            check("cuEventElapsedTime", (int) cuEventElapsedTime.invokeExact(v, start, end));
            return v.get(JAVA_FLOAT, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- modules and kernels

    static MemorySegment moduleLoadData(MemorySegment image) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(PTR);
            check("cuModuleLoadData", (int) cuModuleLoadData.invokeExact(v, image));
            return v.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void moduleUnload(MemorySegment module) {
        try {
            check("cuModuleUnload", (int) cuModuleUnload.invokeExact(module));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static MemorySegment moduleGetFunction(MemorySegment module, String name) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(PTR);
            check("cuModuleGetFunction(" + name + ")",
                    (int) cuModuleGetFunction.invokeExact(v, module, a.allocateFrom(name)));
            return v.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static int funcGetAttribute(MemorySegment function, int attribute) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            check("cuFuncGetAttribute(" + attribute + ")", (int) cuFuncGetAttribute.invokeExact(v, attribute, function));
            return v.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void funcSetAttribute(MemorySegment function, int attribute, int value) {
        try {
            check("cuFuncSetAttribute(" + attribute + ", " + value + ")",
                    (int) cuFuncSetAttribute.invokeExact(function, attribute, value));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * The byte size of each of the kernel's parameters, or null where the driver cannot say
     * (no cuFuncGetParamInfo, or an unexpected answer).
     */
    static int[] paramSizes(MemorySegment function) {
        if (cuFuncGetParamInfo == null) {
            return null;
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment offset = a.allocate(JAVA_LONG);
            MemorySegment size = a.allocate(JAVA_LONG);
            int[] sizes = new int[16];
            for (int i = 0; i < 4096; i++) {
                int rc = (int) cuFuncGetParamInfo.invokeExact(function, (long) i, offset, size);
                if (rc == 1) {   // CUDA_ERROR_INVALID_VALUE: index past the last parameter
                    return java.util.Arrays.copyOf(sizes, i);
                }
                if (rc != CUDA_SUCCESS) {
                    return null;
                }
                if (i == sizes.length) {
                    sizes = java.util.Arrays.copyOf(sizes, 2 * i);
                }
                sizes[i] = (int) size.get(JAVA_LONG, 0);
            }
            return null;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** cuLaunchKernel's raw result; the caller names the kernel in the error. */
    static int launchKernel(MemorySegment f, int gx, int gy, int gz, int bx, int by, int bz, int sharedBytes,
                            MemorySegment stream, MemorySegment params) {
        try {
            return (int) cuLaunchKernel.invokeExact(f, gx, gy, gz, bx, by, bz, sharedBytes, stream, params,
                    MemorySegment.NULL);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- graphs

    static void streamBeginCapture(MemorySegment stream, int mode) {
        try {
            check("cuStreamBeginCapture", (int) cuStreamBeginCapture.invokeExact(stream, mode));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** The captured graph; throws (after the stream has left capture mode) if capture failed. */
    static MemorySegment streamEndCapture(MemorySegment stream) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(PTR);
            int rc = (int) cuStreamEndCapture.invokeExact(stream, v);
            MemorySegment graph = v.get(ADDRESS, 0);
            if (rc != CUDA_SUCCESS) {
                if (!graph.equals(MemorySegment.NULL)) {
                    int ignored = (int) cuGraphDestroy.invokeExact(graph);
                }
                throw error("cuStreamEndCapture", rc);
            }
            return graph;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static MemorySegment graphInstantiate(MemorySegment graph) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(PTR);
            check("cuGraphInstantiateWithFlags", (int) cuGraphInstantiateWithFlags.invokeExact(v, graph, 0L));
            return v.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void graphLaunch(MemorySegment exec, MemorySegment stream) {
        try {
            check("cuGraphLaunch", (int) cuGraphLaunch.invokeExact(exec, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void graphExecDestroy(MemorySegment exec) {
        try {
            check("cuGraphExecDestroy", (int) cuGraphExecDestroy.invokeExact(exec));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void graphDestroy(MemorySegment graph) {
        try {
            check("cuGraphDestroy", (int) cuGraphDestroy.invokeExact(graph));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }
}
