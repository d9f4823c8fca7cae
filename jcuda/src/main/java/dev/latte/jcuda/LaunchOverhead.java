package dev.latte.jcuda;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.latte.bench.BenchReport;
import dev.latte.cuda.CudaContext;
import dev.latte.cuda.CudaKernel;
import dev.latte.cuda.CudaModule;
import dev.latte.cuda.KernelArgs;
import dev.latte.cuda.KernelCache;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;

/**
 * The host cost of launching a kernel: one near-empty kernel (one thread stores its argument)
 * launched through Latte's FFM binding ({@link CudaKernel#launch}) and through JCuda's JNI
 * {@code cuLaunchKernel}, from one image loaded twice into the same primary context. Per path:
 * host µs per launch over a back-to-back run (the queue drains at the end), and µs per
 * launch-plus-synchronize round trip. Both paths' last store is checked, so neither measures a
 * launch that did nothing. On an emulated device the numbers measure the emulator, not a GPU;
 * the JSON says which device it was.
 *
 * <p>{@code java ... dev.latte.jcuda.LaunchOverhead [launches] [--json FILE]}
 */
public final class LaunchOverhead {
    static final String SOURCE = """
            extern "C" __global__ void latte_touch(int* flag, int v) {
                if (threadIdx.x == 0 && blockIdx.x == 0) *flag = v;
            }
            """;

    /** One path's numbers. */
    public record Timing(double hostUsPerLaunch, double roundTripUs) {
    }

    /** Both paths on one device. */
    public record Result(String device, boolean emulated, int launches, Timing ffm, Timing jni) {
        public ObjectNode json() {
            ObjectNode root = BenchReport.JSON.createObjectNode();
            root.put("schema", "latte-bench-launch/1");
            root.put("device", device);
            root.put("emulated_device", emulated);
            root.put("launches", launches);
            root.put("ffm_host_us_per_launch", ffm.hostUsPerLaunch());
            root.put("ffm_launch_sync_round_trip_us", ffm.roundTripUs());
            root.put("jni_host_us_per_launch", jni.hostUsPerLaunch());
            root.put("jni_launch_sync_round_trip_us", jni.roundTripUs());
            root.put("jni_binding", "org.jcuda:jcuda 12.6.0 (JCudaDriver.cuLaunchKernel)");
            return root;
        }
    }

    private LaunchOverhead() {
    }

    /** Runs both paths, {@code launches} each (after as many warm-up launches), on an open context. */
    public static Result measure(CudaContext ctx, int launches) {
        if (launches < 1) {
            throw new IllegalArgumentException("launches must be at least 1, not " + launches);
        }
        byte[] image = KernelCache.defaultCache().cubin("latte_touch.cu", SOURCE, ctx.arch(), List.of());
        CudaModule module = ctx.loadModule(image);
        CudaKernel ffm = module.kernel("latte_touch");
        long flag = ctx.malloc(4);
        try {
            JCudaDriver.setExceptionsEnabled(true);
            JCudaDriver.cuInit(0);
            ctx.synchronize();   // makes the primary context current on this thread for JCuda's calls too
            CUmodule jm = new CUmodule();
            JCudaDriver.cuModuleLoadData(jm, image);
            CUfunction jf = new CUfunction();
            JCudaDriver.cuModuleGetFunction(jf, jm, "latte_touch");
            CUdeviceptr jflag = JCudaInterop.pointer(flag);
            try {
                Timing f = time(ctx, launches, v -> ffm.launch(1, 1, 1, 32, 1, 1, 0, new KernelArgs().ptr(flag).i32(v)),
                        flag);
                Timing j = time(ctx, launches, v -> JCudaDriver.cuLaunchKernel(jf, 1, 1, 1, 32, 1, 1, 0, (CUstream) null,
                        Pointer.to(Pointer.to(jflag), Pointer.to(new int[] {v})), null), flag);
                return new Result(ctx.deviceName(), ctx.emulated(), launches, f, j);
            } finally {
                JCudaDriver.cuModuleUnload(jm);
            }
        } finally {
            ctx.free(flag);
            module.close();
        }
    }

    private interface Launch {
        void launch(int value);
    }

    private static Timing time(CudaContext ctx, int n, Launch launch, long flag) {
        for (int i = 0; i < n; i++) {
            launch.launch(i);
        }
        JCudaDriver.cuCtxSynchronize();
        ctx.synchronize();
        long t0 = System.nanoTime();
        for (int i = 0; i < n; i++) {
            launch.launch(i + 1);
        }
        long t1 = System.nanoTime();
        JCudaDriver.cuCtxSynchronize();
        ctx.synchronize();
        check(ctx, flag, n);
        int trips = Math.max(1, n / 10);
        long t2 = System.nanoTime();
        for (int i = 0; i < trips; i++) {
            launch.launch(-i);
            JCudaDriver.cuCtxSynchronize();
            ctx.synchronize();
        }
        long t3 = System.nanoTime();
        check(ctx, flag, -(trips - 1));
        return new Timing((t1 - t0) / 1e3 / n, (t3 - t2) / 1e3 / trips);
    }

    private static void check(CudaContext ctx, long flag, int expected) {
        int[] got = new int[1];
        ctx.copyDtoH(MemorySegment.ofArray(got), flag, 4);
        if (got[0] != expected) {
            throw new IllegalStateException("the last launch stored " + got[0] + ", not " + expected);
        }
    }

    public static void main(String[] args) {
        int launches = 10_000;
        Path json = null;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--json") && i + 1 < args.length) {
                json = Path.of(args[++i]);
            } else {
                launches = Integer.parseInt(args[i]);
            }
        }
        try (CudaContext ctx = CudaContext.open(0)) {
            Result r = measure(ctx, launches);
            System.out.printf(Locale.ROOT, "%s%s: FFM %.2f us/launch (%.2f us launch+sync), JNI %.2f us/launch"
                            + " (%.2f us launch+sync), %d launches%n", r.device(), r.emulated() ? " (emulated)" : "",
                    r.ffm().hostUsPerLaunch(), r.ffm().roundTripUs(), r.jni().hostUsPerLaunch(), r.jni().roundTripUs(),
                    launches);
            if (json != null) {
                BenchReport.write(json, r.json());
            }
        }
    }
}
