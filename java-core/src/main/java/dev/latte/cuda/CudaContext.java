package dev.latte.cuda;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * One device: its primary context (retained while this is open) and one stream, on which every
 * copy, memset, launch, event and graph of this context runs in order. It owns what it hands out:
 * closing it closes its modules, events and graphs and frees the device memory still allocated.
 * <p>
 * Any thread may call it (each call makes the context current on the calling thread first, once
 * per thread), but it is not meant for concurrent use: calls from several threads need outside
 * ordering, as they share one stream.
 */
public final class CudaContext implements AutoCloseable {
    public static final int DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 1;
    public static final int DEVICE_ATTRIBUTE_WARP_SIZE = 10;
    public static final int DEVICE_ATTRIBUTE_CLOCK_RATE = 13;
    public static final int DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
    public static final int DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE = 36;
    public static final int DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH = 37;
    public static final int DEVICE_ATTRIBUTE_L2_CACHE_SIZE = 38;
    public static final int DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
    public static final int DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
    public static final int DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR = 81;
    public static final int DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;

    /** The oldest driver accepted (cuDriverGetVersion's 1000·major + 10·minor). */
    public static final int MIN_DRIVER_VERSION = 12000;

    private static final int CU_STREAM_NON_BLOCKING = 1;
    private static final int CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;
    private static final ThreadLocal<CudaContext> CURRENT = new ThreadLocal<>();
    private static boolean probed;
    private static String unavailableReason;

    private final int ordinal;
    private final int device;
    private final MemorySegment ctx;
    private final String name;
    private final int computeCapability;
    private MemorySegment stream;
    private final Map<Long, Long> allocations = new HashMap<>();   // dptr → bytes
    private long allocationCount;
    private long allocatedBytes;
    private final Set<AutoCloseable> owned = new LinkedHashSet<>();
    private boolean capturing;
    private boolean closed;

    private CudaContext(int ordinal, int device, MemorySegment ctx) {
        this.ordinal = ordinal;
        this.device = device;
        this.ctx = ctx;
        this.name = Driver.deviceName(device);
        this.computeCapability = 10 * Driver.deviceAttribute(device, DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
                + Driver.deviceAttribute(device, DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    }

    /**
     * Opens device {@code ordinal}: cuInit, cuDeviceGet, cuDevicePrimaryCtxRetain, cuCtxSetCurrent,
     * cuStreamCreate (non-blocking). Throws {@link CudaUnavailableException} with
     * {@link #unavailableReason()} where no device can be opened.
     */
    public static CudaContext open(int ordinal) {
        String reason = unavailableReason();
        if (reason != null) {
            throw new CudaUnavailableException(reason);
        }
        int count = Driver.deviceCount();
        if (ordinal < 0 || ordinal >= count) {
            throw new IllegalArgumentException("no CUDA device " + ordinal + " (" + count + " present)");
        }
        int device = Driver.device(ordinal);
        MemorySegment ctx = Driver.primaryCtxRetain(device);
        try {
            CudaContext c = new CudaContext(ordinal, device, ctx);
            Driver.ctxSetCurrent(ctx);
            CURRENT.set(c);
            c.stream = Driver.streamCreate(CU_STREAM_NON_BLOCKING);
            return c;
        } catch (RuntimeException e) {
            try {
                Driver.primaryCtxRelease(device);
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /**
     * Null if a device can be opened; else one line saying why not: {@code "no libcuda.so.1
     * (tried: ...)"}, {@code "no device (...)"}, {@code "driver too old: ..."} or the failing
     * call. Probed once (this runs cuInit) and remembered.
     */
    public static synchronized String unavailableReason() {
        if (!probed) {
            unavailableReason = probe();
            probed = true;
        }
        return unavailableReason;
    }

    private static String probe() {
        try {
            NativeLibraries.cuda();
            int rc = Driver.init();
            if (rc == Driver.CUDA_ERROR_NO_DEVICE) {
                return "no device (cuInit: CUDA_ERROR_NO_DEVICE with " + NativeLibraries.cudaLocation() + ")";
            }
            if (rc != Driver.CUDA_SUCCESS) {
                return Driver.error("cuInit", rc).getMessage();
            }
            int version = Driver.driverVersion();
            if (version < MIN_DRIVER_VERSION) {
                return "driver too old: " + NativeLibraries.cudaLocation() + " supports CUDA " + versionString(version)
                        + ", Latte needs " + versionString(MIN_DRIVER_VERSION) + " or newer";
            }
            if (Driver.deviceCount() == 0) {
                return "no device (cuDeviceGetCount: 0)";
            }
            return null;
        } catch (CudaUnavailableException | CudaException e) {
            return e.getMessage();
        }
    }

    static String versionString(int v) {
        return v / 1000 + "." + (v % 1000) / 10;
    }

    // ---- the device

    public int ordinal() {
        return ordinal;
    }

    public String deviceName() {
        return name;
    }

    /**
     * Whether this device is an emulator (its name says "emulator", as the test device cuemu's
     * does): its results prove function, never speed, and it has no real cubin loader.
     */
    public boolean emulated() {
        return name.toLowerCase(Locale.ROOT).contains("emulator");
    }

    /** 10·major + minor, e.g. 90 for Hopper. */
    public int computeCapability() {
        return computeCapability;
    }

    /** The NVRTC architecture for CUBIN on this device, e.g. {@code "sm_90"}. */
    public String arch() {
        return "sm_" + computeCapability;
    }

    /** cuDeviceGetAttribute; see the {@code DEVICE_ATTRIBUTE_*} constants ({@code CUdevice_attribute}). */
    public int attribute(int cuDeviceAttribute) {
        return Driver.deviceAttribute(device, cuDeviceAttribute);
    }

    public long totalMemory() {
        return Driver.deviceTotalMem(device);
    }

    /** {free, total} bytes on the device (cuMemGetInfo). */
    public long[] memInfo() {
        enter();
        return Driver.memGetInfo();
    }

    /** cuDriverGetVersion: 1000·major + 10·minor, e.g. 13000. */
    public int driverVersion() {
        return Driver.driverVersion();
    }

    // ---- memory

    /** cuMemAlloc; the memory is freed by {@link #free} or, at the latest, by {@link #close}. */
    public synchronized long malloc(long bytes) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("malloc of " + bytes + " bytes");
        }
        enter();
        long dptr = Driver.memAlloc(bytes);
        allocations.put(dptr, bytes);
        allocationCount++;
        allocatedBytes += bytes;
        return dptr;
    }

    /** Waits for the stream (the memory may still be in use by queued work), then cuMemFree. */
    public synchronized void free(long dptr) {
        enter();
        Long bytes = allocations.get(dptr);
        if (bytes == null) {
            throw new IllegalArgumentException("0x" + Long.toHexString(dptr) + " is not a live allocation of this context");
        }
        Driver.streamSynchronize(stream);
        Driver.memFree(dptr);
        allocations.remove(dptr);
        allocatedBytes -= bytes;
    }

    /** How many cuMemAlloc calls this context has made since it was opened (freed ones included). */
    public synchronized long allocationCount() {
        return allocationCount;
    }

    /** Bytes currently allocated through {@link #malloc} and not yet freed. */
    public synchronized long allocatedBytes() {
        return allocatedBytes;
    }

    /**
     * Host to device, queued on the stream (cuMemcpyHtoDAsync). A native {@code src} must stay
     * alive and unchanged until the stream is synchronized; a heap segment is staged through
     * native memory and the call waits for the copy.
     */
    public void copyHtoD(long dst, MemorySegment src, long bytes) {
        checkRange(src, bytes);
        enter();
        if (src.isNative()) {
            Driver.memcpyHtoDAsync(dst, src, bytes, stream);
            return;
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment staging = a.allocate(bytes, 16);
            MemorySegment.copy(src, 0, staging, 0, bytes);
            Driver.memcpyHtoDAsync(dst, staging, bytes, stream);
            Driver.streamSynchronize(stream);
        }
    }

    /** Device to host after all work queued before it: returns with {@code dst} filled. */
    public void copyDtoH(MemorySegment dst, long src, long bytes) {
        checkRange(dst, bytes);
        enter();
        if (dst.isNative()) {
            Driver.memcpyDtoHAsync(dst, src, bytes, stream);
            Driver.streamSynchronize(stream);
            return;
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment staging = a.allocate(bytes, 16);
            Driver.memcpyDtoHAsync(staging, src, bytes, stream);
            Driver.streamSynchronize(stream);
            MemorySegment.copy(staging, 0, dst, 0, bytes);
        }
    }

    /** Device to device, queued on the stream. */
    public void copyDtoD(long dst, long src, long bytes) {
        enter();
        Driver.memcpyDtoDAsync(dst, src, bytes, stream);
    }

    /** Sets {@code bytes} bytes to {@code value}, queued on the stream. */
    public void memsetD8(long dptr, byte value, long bytes) {
        enter();
        Driver.memsetD8Async(dptr, value, bytes, stream);
    }

    private static void checkRange(MemorySegment host, long bytes) {
        if (bytes < 0 || bytes > host.byteSize()) {
            throw new IndexOutOfBoundsException("copy of " + bytes + " bytes with a host segment of " + host.byteSize());
        }
    }

    // ---- stream, events, modules, graphs

    /** Waits until everything queued on the stream has run; reports asynchronous kernel errors. */
    public void synchronize() {
        enter();
        Driver.streamSynchronize(stream);
    }

    /** The CUstream handle, for interop (e.g. cuBLAS's cublasSetStream). */
    public long stream() {
        checkOpen();
        return stream.address();
    }

    MemorySegment streamHandle() {
        return stream;
    }

    /** A timing event (cuEventCreate, default flags); {@link CudaEvent#record()} queues it. */
    public CudaEvent event() {
        enter();
        return own(new CudaEvent(this, Driver.eventCreate(0)));
    }

    /** Milliseconds between two recorded events; waits for {@code end} to complete. */
    public float elapsedMs(CudaEvent start, CudaEvent end) {
        enter();
        Driver.eventSynchronize(end.handle());
        return Driver.eventElapsedTime(start.handle(), end.handle());
    }

    /** cuModuleLoadData on a CUBIN, or PTX (a terminating NUL is added if missing). */
    public CudaModule loadModule(byte[] image) {
        enter();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment seg = a.allocate(image.length + 1L, 16);   // zeroed: the extra byte is the NUL
            MemorySegment.copy(image, 0, seg, JAVA_BYTE, 0, image.length);
            return own(new CudaModule(this, Driver.moduleLoadData(seg)));
        }
    }

    /**
     * Starts capturing the stream's work into a graph (thread-local mode: on this thread, calls
     * that are unsafe during capture, e.g. cuMemAlloc or a synchronize, fail instead of running).
     */
    public void beginCapture() {
        enter();
        if (capturing) {
            throw new IllegalStateException("already capturing");
        }
        Driver.streamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
        capturing = true;
    }

    /** Whether this context's stream is capturing (between {@link #beginCapture} and {@link #endCapture}). */
    public boolean capturing() {
        return capturing;
    }

    /** Ends the capture and instantiates the graph; the stream leaves capture mode even on failure. */
    public CudaGraph endCapture() {
        enter();
        if (!capturing) {
            throw new IllegalStateException("not capturing");
        }
        capturing = false;
        MemorySegment graph = Driver.streamEndCapture(stream);
        MemorySegment exec;
        try {
            exec = Driver.graphInstantiate(graph);
        } catch (RuntimeException e) {
            Driver.graphDestroy(graph);
            throw e;
        }
        return own(new CudaGraph(this, graph, exec));
    }

    // ---- ownership

    private synchronized <T extends AutoCloseable> T own(T child) {
        owned.add(child);
        return child;
    }

    synchronized void disown(AutoCloseable child) {
        owned.remove(child);
    }

    /** Makes this context current on the calling thread if it is not already. */
    void enter() {
        checkOpen();
        if (CURRENT.get() != this) {
            Driver.ctxSetCurrent(ctx);
            CURRENT.set(this);
        }
    }

    void checkOpen() {
        if (closed) {
            throw new IllegalStateException("CudaContext for device " + ordinal + " is closed");
        }
    }

    boolean isOpen() {
        return !closed;
    }

    /**
     * Ends a capture in progress, closes the graphs, events and modules still open, frees the
     * remaining allocations, destroys the stream and releases the primary context. Every step is
     * attempted; the first failure is thrown at the end, the others suppressed by it.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        List<RuntimeException> errors = new ArrayList<>();
        step(errors, this::enter);
        if (capturing) {
            capturing = false;
            step(errors, () -> Driver.graphDestroy(Driver.streamEndCapture(stream)));
        }
        step(errors, () -> Driver.streamSynchronize(stream));
        List<AutoCloseable> children;
        synchronized (this) {
            children = new ArrayList<>(owned);
        }
        for (int i = children.size() - 1; i >= 0; i--) {
            AutoCloseable c = children.get(i);
            step(errors, () -> {
                try {
                    c.close();
                } catch (RuntimeException e) {
                    throw e;
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
        }
        synchronized (this) {
            for (long dptr : allocations.keySet()) {
                step(errors, () -> Driver.memFree(dptr));
            }
            allocations.clear();
            allocatedBytes = 0;
        }
        step(errors, () -> Driver.streamDestroy(stream));
        closed = true;
        step(errors, () -> Driver.primaryCtxRelease(device));
        if (CURRENT.get() == this) {
            CURRENT.remove();
        }
        if (!errors.isEmpty()) {
            RuntimeException first = errors.get(0);
            errors.subList(1, errors.size()).forEach(first::addSuppressed);
            throw first;
        }
    }

    private static void step(List<RuntimeException> errors, Runnable r) {
        try {
            r.run();
        } catch (RuntimeException e) {
            errors.add(e);
        }
    }

    @Override
    public String toString() {
        return "CudaContext[" + ordinal + ": " + name + ", " + arch() + (closed ? ", closed" : "") + "]";
    }
}
