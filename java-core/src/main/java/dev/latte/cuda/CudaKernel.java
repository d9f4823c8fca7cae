package dev.latte.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * One kernel of a {@link CudaModule}. Where the driver can tell (cuFuncGetParamInfo, CUDA 12.4+),
 * each launch's {@link KernelArgs} are checked against the kernel's parameter count and sizes
 * before anything runs, so a forgotten or mistyped argument is an exception, not garbage.
 */
public final class CudaKernel {
    public static final int FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0;
    public static final int FUNC_ATTRIBUTE_SHARED_SIZE_BYTES = 1;
    public static final int FUNC_ATTRIBUTE_CONST_SIZE_BYTES = 2;
    public static final int FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES = 3;
    public static final int FUNC_ATTRIBUTE_NUM_REGS = 4;
    public static final int FUNC_ATTRIBUTE_PTX_VERSION = 5;
    public static final int FUNC_ATTRIBUTE_BINARY_VERSION = 6;
    public static final int FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;

    private static final java.util.concurrent.atomic.AtomicLong LAUNCHES = new java.util.concurrent.atomic.AtomicLong();

    private final CudaModule module;
    private final String name;
    private final MemorySegment function;
    private final int[] paramSizes;   // null: unknown

    CudaKernel(CudaModule module, String name, MemorySegment function) {
        this.module = module;
        this.name = name;
        this.function = function;
        this.paramSizes = Driver.paramSizes(function);
    }

    public String name() {
        return name;
    }

    /** cuFuncGetAttribute; see the {@code FUNC_ATTRIBUTE_*} constants ({@code CUfunction_attribute}). */
    public int attribute(int cuFuncAttribute) {
        module.checkOpen();
        module.context().enter();
        return Driver.funcGetAttribute(function, cuFuncAttribute);
    }

    public int maxThreadsPerBlock() {
        return attribute(FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
    }

    public int numRegs() {
        return attribute(FUNC_ATTRIBUTE_NUM_REGS);
    }

    /** Allows launches with up to {@code bytes} of dynamic shared memory (needed above 48 KiB). */
    public void setMaxDynamicSharedMemory(int bytes) {
        module.checkOpen();
        module.context().enter();
        Driver.funcSetAttribute(function, FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
    }

    /** The byte size of each parameter as the driver reports it, or null where it cannot. */
    public int[] parameterSizes() {
        return paramSizes == null ? null : paramSizes.clone();
    }

    /**
     * Queues the kernel on the context's stream (cuLaunchKernel). The argument values are copied
     * at the call, so {@code args} may be changed or reused afterwards.
     */
    public void launch(int gx, int gy, int gz, int bx, int by, int bz, int sharedBytes, KernelArgs args) {
        module.checkOpen();
        CudaContext ctx = module.context();
        ctx.enter();
        if (paramSizes != null && !Arrays.equals(paramSizes, args.sizes())) {
            throw new IllegalArgumentException("kernel " + name + " takes " + paramSizes.length + " parameters of "
                    + Arrays.toString(paramSizes) + " bytes; the launch passed " + args);
        }
        try (Arena a = Arena.ofConfined()) {
            int rc = Driver.launchKernel(function, gx, gy, gz, bx, by, bz, sharedBytes, ctx.streamHandle(), args.build(a));
            if (rc != Driver.CUDA_SUCCESS) {
                throw Driver.error("cuLaunchKernel(" + name + ", grid " + gx + "x" + gy + "x" + gz + ", block " + bx + "x"
                        + by + "x" + bz + ", " + sharedBytes + " B shared)", rc);
            }
            LAUNCHES.incrementAndGet();
        }
    }

    /** cuLaunchKernel calls made by every kernel of this process that succeeded (captured ones included). */
    public static long launchCount() {
        return LAUNCHES.get();
    }

    @Override
    public String toString() {
        return "CudaKernel[" + name + "]";
    }
}
