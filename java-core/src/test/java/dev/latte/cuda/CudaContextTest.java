package dev.latte.cuda;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The driver API on a real device. Skipped, with the reason, where there is no libcuda.so.1 or no
 * device; kernel tests also need NVRTC.
 */
class CudaContextTest {
    static final String KERNELS = """
            #include <cuda_fp16.h>
            extern "C" __global__ void saxpy(int n, float a, const float* x, float* y) {
                int i = blockIdx.x * blockDim.x + threadIdx.x;
                if (i < n) y[i] = a * x[i] + y[i];
            }
            extern "C" __global__ void add_one(float* x, long long n) {
                long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
                if (i < n) x[i] += 1.0f;
            }
            extern "C" __global__ void half_scale(int n, float a, __half* x) {
                int i = blockIdx.x * blockDim.x + threadIdx.x;
                if (i < n) x[i] = __float2half(a * __half2float(x[i]));
            }
            // Reverses 'n' ints through dynamic shared memory.
            extern "C" __global__ void reverse_smem(const int* in, int* out, int n) {
                extern __shared__ int tile[];
                for (int i = threadIdx.x; i < n; i += blockDim.x) tile[i] = in[i];
                __syncthreads();
                for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = tile[n - 1 - i];
            }
            """;

    @TempDir
    static Path cacheDir;
    static CudaContext ctx;
    static CudaModule module;

    @BeforeAll
    static void open() {
        assumeTrue(CudaContext.unavailableReason() == null, CudaContext.unavailableReason());
        ctx = CudaContext.open(0);
    }

    @AfterAll
    static void close() {
        if (ctx != null) {
            ctx.close();
        }
    }

    /** The test kernels, compiled once by NVRTC for this device (needs NVRTC: assumption inside). */
    static synchronized CudaModule kernels() {
        NvrtcAvailable.assume();
        if (module == null) {
            byte[] cubin = new KernelCache(cacheDir).cubin("context_test.cu", KERNELS, ctx.arch(), List.of());
            module = ctx.loadModule(cubin);
        }
        return module;
    }

    @Test
    void device() {
        assertTrue(!ctx.deviceName().isBlank());
        assertTrue(ctx.computeCapability() >= 50, "cc " + ctx.computeCapability());
        assertEquals("sm_" + ctx.computeCapability(), ctx.arch());
        assertTrue(ctx.attribute(CudaContext.DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT) > 0);
        assertEquals(32, ctx.attribute(CudaContext.DEVICE_ATTRIBUTE_WARP_SIZE));
        long[] mem = ctx.memInfo();
        assertTrue(mem[0] > 0 && mem[0] <= mem[1], mem[0] + " / " + mem[1]);
        assertEquals(ctx.totalMemory(), mem[1]);
        assertTrue(ctx.driverVersion() >= CudaContext.MIN_DRIVER_VERSION);
        assertNotEquals(0, ctx.stream());
        System.out.println(ctx + ", driver " + CudaContext.versionString(ctx.driverVersion())
                + ", " + mem[1] / (1 << 20) + " MiB, libcuda " + NativeLibraries.cudaLocation());
    }

    @Test
    void badOrdinal() {
        assertThrows(IllegalArgumentException.class, () -> CudaContext.open(-1));
        assertThrows(IllegalArgumentException.class, () -> CudaContext.open(1 << 20));
    }

    @Test
    void copyRoundTripNativeAndHeap() {
        int n = 1 << 20;
        long before = ctx.allocationCount();
        long d = ctx.malloc(n);
        assertEquals(before + 1, ctx.allocationCount());
        try (Arena a = Arena.ofConfined()) {
            byte[] data = new byte[n];
            new Random(1).nextBytes(data);
            MemorySegment src = a.allocate(n);
            MemorySegment.copy(data, 0, src, JAVA_BYTE, 0, n);
            ctx.copyHtoD(d, src, n);
            MemorySegment back = a.allocate(n);
            ctx.copyDtoH(back, d, n);
            assertArrayEquals(data, back.toArray(JAVA_BYTE));

            float[] f = {1.5f, -2f, 3.25f, 1e-3f};
            ctx.copyHtoD(d, MemorySegment.ofArray(f), 16);
            float[] g = new float[4];
            ctx.copyDtoH(MemorySegment.ofArray(g), d, 16);
            assertArrayEquals(f, g);

            long d2 = ctx.malloc(16);
            ctx.copyDtoD(d2, d, 16);
            float[] h = new float[4];
            ctx.copyDtoH(MemorySegment.ofArray(h), d2, 16);
            assertArrayEquals(f, h);
            ctx.free(d2);
        } finally {
            ctx.free(d);
        }
        assertThrows(IllegalArgumentException.class, () -> ctx.free(d), "double free");
        assertThrows(IndexOutOfBoundsException.class, () -> ctx.copyHtoD(0, MemorySegment.ofArray(new byte[4]), 8));
    }

    @Test
    void memsetLeavesNeighboursAlone() {
        long d = ctx.malloc(4096);
        try {
            ctx.memsetD8(d, (byte) 0, 4096);
            ctx.memsetD8(d + 100, (byte) 0x5a, 1000);
            byte[] out = new byte[4096];
            ctx.copyDtoH(MemorySegment.ofArray(out), d, 4096);
            for (int i = 0; i < out.length; i++) {
                assertEquals(i >= 100 && i < 1100 ? (byte) 0x5a : 0, out[i], "byte " + i);
            }
        } finally {
            ctx.free(d);
        }
    }

    @Test
    void launchSaxpy() {
        CudaKernel saxpy = kernels().kernel("saxpy");
        assertEquals("saxpy", saxpy.name());
        assertTrue(saxpy.maxThreadsPerBlock() >= 256);
        assertTrue(saxpy.numRegs() > 0);
        int n = 10_000;
        float[] x = new float[n];
        float[] y = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = i % 97;
            y[i] = -(i % 13);
        }
        long dx = ctx.malloc(4L * n);
        long dy = ctx.malloc(4L * n);
        try {
            ctx.copyHtoD(dx, MemorySegment.ofArray(x), 4L * n);
            ctx.copyHtoD(dy, MemorySegment.ofArray(y), 4L * n);
            saxpy.launch((n + 255) / 256, 1, 1, 256, 1, 1, 0, new KernelArgs().i32(n).f32(3f).ptr(dx).ptr(dy));
            float[] out = new float[n];
            ctx.copyDtoH(MemorySegment.ofArray(out), dy, 4L * n);
            for (int i = 0; i < n; i++) {
                assertEquals(3f * x[i] + y[i], out[i], "element " + i);   // small integers: exact
            }
        } finally {
            ctx.free(dx);
            ctx.free(dy);
        }
    }

    @Test
    void launchFp16() {
        CudaKernel k = kernels().kernel("half_scale");
        int n = 1000;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment h = a.allocate(JAVA_SHORT, n);
            for (int i = 0; i < n; i++) {
                h.setAtIndex(JAVA_SHORT, i, Float.floatToFloat16(i % 50));
            }
            long d = ctx.malloc(2L * n);
            try {
                ctx.copyHtoD(d, h, 2L * n);
                k.launch((n + 127) / 128, 1, 1, 128, 1, 1, 0, new KernelArgs().i32(n).f32(0.5f).ptr(d));
                ctx.copyDtoH(h, d, 2L * n);
                for (int i = 0; i < n; i++) {
                    assertEquals((i % 50) * 0.5f, Float.float16ToFloat(h.getAtIndex(JAVA_SHORT, i)), "element " + i);
                }
            } finally {
                ctx.free(d);
            }
        }
    }

    @Test
    void dynamicSharedMemoryAbove48KiB() {
        int optin = ctx.attribute(CudaContext.DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
        int bytes = 64 * 1024;
        assumeTrue(optin >= bytes, "device allows " + optin + " B of shared memory per block");
        CudaKernel k = kernels().kernel("reverse_smem");
        k.setMaxDynamicSharedMemory(bytes);
        int n = bytes / 4;
        int[] in = new int[n];
        for (int i = 0; i < n; i++) {
            in[i] = i * 7;
        }
        long din = ctx.malloc(bytes);
        long dout = ctx.malloc(bytes);
        try {
            ctx.copyHtoD(din, MemorySegment.ofArray(in), bytes);
            k.launch(1, 1, 1, 512, 1, 1, bytes, new KernelArgs().ptr(din).ptr(dout).i32(n));
            int[] out = new int[n];
            ctx.copyDtoH(MemorySegment.ofArray(out), dout, bytes);
            for (int i = 0; i < n; i++) {
                assertEquals(in[n - 1 - i], out[i], "element " + i);
            }
        } finally {
            ctx.free(din);
            ctx.free(dout);
        }
    }

    @Test
    void launchErrorsNameTheKernel() {
        CudaKernel saxpy = kernels().kernel("saxpy");
        int[] sizes = saxpy.parameterSizes();
        if (sizes != null) {
            assertArrayEquals(new int[] {4, 4, 8, 8}, sizes);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> saxpy.launch(1, 1, 1, 32, 1, 1, 0, new KernelArgs().i32(1).ptr(0).ptr(0)));
            assertTrue(e.getMessage().contains("saxpy takes 4 parameters"), e.getMessage());
        }
        CudaException e = assertThrows(CudaException.class,
                () -> saxpy.launch(1, 1, 1, 4096, 1, 1, 0, new KernelArgs().i32(0).f32(0).ptr(0).ptr(0)));
        assertTrue(e.getMessage().startsWith("cuLaunchKernel(saxpy, grid 1x1x1, block 4096x1x1"), e.getMessage());
        assertTrue(e.getMessage().contains("CUDA_ERROR_INVALID_VALUE"), e.getMessage());
        CudaException missing = assertThrows(CudaException.class, () -> kernels().kernel("no_such_kernel"));
        assertEquals("CUDA_ERROR_NOT_FOUND", missing.errorName());
        assertTrue(missing.getMessage().startsWith("cuModuleGetFunction(no_such_kernel): CUDA_ERROR_NOT_FOUND ("),
                missing.getMessage());
        ctx.synchronize();   // nothing was queued by the failed launches
    }

    @Test
    void eventsTimeWork() {
        CudaKernel add = kernels().kernel("add_one");
        long n = 1 << 22;
        long d = ctx.malloc(4 * n);
        try (CudaEvent start = ctx.event(); CudaEvent end = ctx.event()) {
            ctx.memsetD8(d, (byte) 0, 4 * n);
            start.record();
            for (int i = 0; i < 10; i++) {
                add.launch((int) (n / 256), 1, 1, 256, 1, 1, 0, new KernelArgs().ptr(d).i64(n));
            }
            end.record();
            float ms = ctx.elapsedMs(start, end);
            assertTrue(ms > 0, ms + " ms"); // no upper bound: how long work takes is no property of the binding
            float[] out = new float[16];
            ctx.copyDtoH(MemorySegment.ofArray(out), d + 4 * (n - 16), 64);
            for (float v : out) {
                assertEquals(10f, v);
            }
            System.out.printf("10 x add_one over %d floats: %.3f ms%n", n, ms);
        } finally {
            ctx.free(d);
        }
    }

    @Test
    void graphCaptureAndReplay() {
        CudaKernel add = kernels().kernel("add_one");
        int n = 1 << 16;
        long d = ctx.malloc(4L * n);
        try {
            ctx.memsetD8(d, (byte) 0, 4L * n);
            ctx.synchronize();
            long allocations = ctx.allocationCount();
            ctx.beginCapture();
            KernelArgs args = new KernelArgs().ptr(d).i64(n);
            add.launch(n / 256, 1, 1, 256, 1, 1, 0, args);
            add.launch(n / 256, 1, 1, 256, 1, 1, 0, args.clear().ptr(d).i64(n));
            try (CudaGraph graph = ctx.endCapture()) {
                float[] out = new float[n];
                ctx.copyDtoH(MemorySegment.ofArray(out), d, 4L * n);
                assertEquals(0f, out[0], "capture does not run the work");
                for (int i = 0; i < 3; i++) {
                    graph.launch();
                }
                ctx.copyDtoH(MemorySegment.ofArray(out), d, 4L * n);
                for (int i = 0; i < n; i++) {
                    assertEquals(6f, out[i], "element " + i);
                }
            }
            assertEquals(allocations, ctx.allocationCount());
        } finally {
            ctx.free(d);
        }
    }

    @Test
    void failedCaptureLeavesTheStreamUsable() {
        ctx.beginCapture();
        assertThrows(IllegalStateException.class, ctx::beginCapture);
        // a synchronous copy is not capturable: the capture is invalidated
        assertThrows(CudaException.class, () -> ctx.copyDtoH(MemorySegment.ofArray(new byte[4]), 0, 4));
        assertThrows(CudaException.class, ctx::endCapture);
        long d = ctx.malloc(4);
        ctx.memsetD8(d, (byte) 1, 4);
        byte[] b = new byte[4];
        ctx.copyDtoH(MemorySegment.ofArray(b), d, 4);
        assertArrayEquals(new byte[] {1, 1, 1, 1}, b);
        ctx.free(d);
    }

    @Test
    void closeReleasesWhatTheContextOwns() {
        CudaContext other = CudaContext.open(0);
        long d = other.malloc(1 << 20);
        assertEquals(1 << 20, other.allocatedBytes());
        CudaEvent e = other.event();
        CudaModule m = null;
        if (Nvrtc.unavailableReason() == null) {
            m = other.loadModule(new KernelCache(cacheDir).cubin("context_test.cu", KERNELS, other.arch(), List.of()));
            m.kernel("saxpy");
        }
        other.close();
        other.close();   // idempotent
        assertThrows(IllegalStateException.class, () -> other.malloc(16));
        assertThrows(IllegalStateException.class, e::record);
        if (m != null) {
            CudaModule closed = m;
            assertThrows(IllegalStateException.class, () -> closed.kernel("saxpy"));
        }
        assertNotEquals(0, d);
        // the shared primary context is still alive for ctx
        long x = ctx.malloc(16);
        ctx.free(x);
        assertTrue(ctx.toString().contains(ctx.arch()));
    }
}
