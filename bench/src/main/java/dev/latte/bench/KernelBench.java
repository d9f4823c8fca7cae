package dev.latte.bench;

import dev.latte.core.Backend;
import dev.latte.core.Tensor;
import dev.latte.cuda.CudaContext;
import dev.latte.cuda.CudaEvent;
import dev.latte.cuda.CudaKernel;
import dev.latte.cuda.CudaModule;
import dev.latte.cuda.KernelArgs;
import dev.latte.cuda.Nvrtc;
import dev.latte.graph.Graph;
import dev.latte.graph.Op;
import dev.latte.graph.OpSupport;
import dev.latte.graph.Value;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Times kernel cases (ggml's test-backend-ops perf mode): each case's op runs on a backend over
 * random inputs, {@code warmup} times untimed, then {@code runs} times back to back with a CUDA
 * event recorded between runs, so each run's device time is the gap between two events. Also the
 * device's ceilings: peak FLOP/s from its attributes ({@link DevicePeaks}) and the bandwidth of a
 * device-to-device copy, and the cost of launching an empty kernel through Latte's FFM binding.
 */
public final class KernelBench {
    /** Where timings come from: the GPU ({@link #cudaTimer}) or, in tests, a fake. */
    public interface Timer {
        /** Per-run milliseconds of {@code runs} runs after {@code warmup}; throws {@link Unsupported} to skip. */
        double[] time(KernelCase c, int warmup, int runs);
    }

    /** A case the backend cannot run (an int8 op on a backend without int8): reported, not failed. */
    public static final class Unsupported extends RuntimeException {
        public Unsupported(String message) {
            super(message);
        }
    }

    /** What the device is and its ceilings; NaN where unknown. */
    public record Device(String name, String arch, int computeCapability, int multiprocessors, long clockKHz,
                         long memoryClockKHz, int busWidthBits, long l2Bytes, long totalMemoryBytes, String driver,
                         String nvrtc, double peakFp16TensorFlops, double peakInt8TensorOps, double peakFp32Flops,
                         double theoreticalBandwidth, double measuredBandwidth) {

        /** The arithmetic ceiling for activations of {@code dtype} ("fp16", "fp32", "int8"). */
        public double peakFlops(String dtype) {
            return switch (dtype) {
                case "fp16" -> peakFp16TensorFlops;
                case "int8" -> peakInt8TensorOps;
                default -> peakFp32Flops;
            };
        }

        /** The memory ceiling: the measured copy bandwidth, else the theoretical one. */
        public double peakBandwidth() {
            return Double.isNaN(measuredBandwidth) ? theoreticalBandwidth : measuredBandwidth;
        }
    }

    /**
     * One timed case. {@code status} is "ok", "not supported: ..." or "failed: ..." (the exception);
     * the rates are NaN unless ok.
     * {@code fractionOfPeak} is against peak FLOP/s for compute-bound cases, bandwidth for the rest.
     */
    public record Result(KernelCase kernel, String status, double[] ms, Stats stats, double tflops, double gbps,
                         double fractionOfPeak) {
    }

    /** Launch cost of an empty kernel, microseconds. */
    public record LaunchOverhead(int launches, double hostUsPerLaunch, double deviceUsPerLaunch,
                                 double launchSyncUsMedian) {
    }

    private KernelBench() {
    }

    /** Times every case with {@code timer}; rates from the median against {@code device}'s ceilings. */
    public static List<Result> run(List<KernelCase> cases, Timer timer, int warmup, int runs, Device device,
                                   String dtype) {
        List<Result> out = new ArrayList<>();
        for (KernelCase c : cases) {
            double[] ms;
            try {
                ms = timer.time(c, warmup, runs);
            } catch (Unsupported e) {
                out.add(new Result(c, "not supported: " + e.getMessage(), new double[0], null, Double.NaN,
                        Double.NaN, Double.NaN));
                continue;
            } catch (RuntimeException e) {
                // recorded, so one broken kernel does not cost the whole run's numbers
                out.add(new Result(c, "failed: " + e.getClass().getSimpleName() + ": " + e.getMessage(),
                        new double[0], null, Double.NaN, Double.NaN, Double.NaN));
                continue;
            }
            out.add(result(c, ms, device.peakFlops(dtype), device.peakBandwidth()));
        }
        return out;
    }

    /** Rates of one case from its timings (milliseconds per run). */
    public static Result result(KernelCase c, double[] ms, double peakFlops, double peakBandwidth) {
        Stats s = Stats.of(ms);
        double seconds = s.median() * 1e-3;
        double flopsPerS = c.flops() / seconds, bytesPerS = c.bytes() / seconds;
        double fraction = c.bound().equals("compute") ? flopsPerS / peakFlops : bytesPerS / peakBandwidth;
        return new Result(c, "ok", ms.clone(), s, flopsPerS / 1e12, bytesPerS / 1e9, fraction);
    }

    // ---------------------------------------------------------------- on a GPU

    /**
     * How many copies of a case's operands to rotate through so that consecutive runs do not find
     * them in L2: enough to cover twice the L2 size, 1 to 16.
     */
    public static int inputSets(long caseBytes, long l2Bytes) {
        if (caseBytes <= 0 || l2Bytes <= 0) {
            return 1;
        }
        return (int) Math.max(1, Math.min(16, (2 * l2Bytes + caseBytes - 1) / caseBytes));
    }

    /**
     * A timer that runs each case's op on {@code backend} (a CUDA backend on {@code ctx}): the op's
     * inputs and weights are random tensors, its output a fresh tensor, in {@link #inputSets} copies
     * run in turn (so a run does not read what the one before left in an L2 of {@code l2Bytes}),
     * all released after.
     */
    public static Timer cudaTimer(Backend backend, CudaContext ctx, long l2Bytes) {
        return (c, warmup, runs) -> {
            Op op = c.sample();
            String unsupported = OpSupport.reason(backend, op, c.graph());
            if (unsupported != null) {
                throw new Unsupported(unsupported);
            }
            Graph g = c.graph();
            int sets = inputSets(c.bytes(), l2Bytes);
            Tensor[][] envs = new Tensor[sets][g.values().size()];
            List<Tensor> owned = new ArrayList<>();
            try {
                for (int id : op.inputs()) {
                    if (id >= 0 && envs[0][id] == null) {
                        Value v = g.value(id);
                        float[] values = RandomWeights.values(id, String.valueOf(v.name()), v.shape());
                        for (Tensor[] env : envs) {
                            env[id] = backend.upload(v.shape(), values, v.storage());
                            owned.add(env[id]);
                        }
                    }
                }
                for (Tensor[] env : envs) {
                    env[op.out()] = backend.allocate(g.value(op.out()).shape());
                    owned.add(env[op.out()]);
                }
                int[] next = {0};
                return timeRuns(ctx, warmup, runs, () -> op.run(backend, envs[next[0]++ % sets]));
            } finally {
                ctx.synchronize();
                owned.forEach(backend::release);
            }
        };
    }

    /**
     * A timer for a host backend (the CPU): the op's inputs and weights are random tensors made
     * once, its output a fresh tensor; {@code warmup} untimed runs (the first packs the weights),
     * then each run timed by the host clock. Where {@code cpuMs} is given, each run's process CPU
     * time goes there too: on a shared machine wall time counts the waits for a core, CPU time
     * does not, so FLOP per CPU-second is what the kernels achieve on the cores they got.
     */
    public static Timer hostTimer(Backend backend, java.util.Map<KernelCase, double[]> cpuMs) {
        return (c, warmup, runs) -> {
            Op op = c.sample();
            if (!backend.supports(c.op())) {
                throw new Unsupported(backend.name() + " has no " + c.op());
            }
            Graph g = c.graph();
            Tensor[] env = new Tensor[g.values().size()];
            List<Tensor> owned = new ArrayList<>();
            try {
                for (int id : op.inputs()) {
                    if (id >= 0 && env[id] == null) {
                        Value v = g.value(id);
                        env[id] = backend.upload(v.shape(), RandomWeights.values(id, String.valueOf(v.name()),
                                v.shape()), v.storage());
                        owned.add(env[id]);
                    }
                }
                env[op.out()] = backend.allocate(g.value(op.out()).shape());
                owned.add(env[op.out()]);
                for (int i = 0; i < warmup; i++) {
                    op.run(backend, env);
                }
                double[] ms = new double[runs], cpu = new double[runs];
                var os = (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory
                        .getOperatingSystemMXBean();
                for (int i = 0; i < runs; i++) {
                    long c0 = os.getProcessCpuTime(), t0 = System.nanoTime();
                    op.run(backend, env);
                    ms[i] = (System.nanoTime() - t0) / 1e6;
                    cpu[i] = (os.getProcessCpuTime() - c0) / 1e6;
                }
                if (cpuMs != null) {
                    cpuMs.put(c, cpu);
                }
                return ms;
            } finally {
                owned.forEach(backend::release);
            }
        };
    }

    /**
     * Runs {@code work} {@code warmup} times, then {@code runs} times back to back with an event
     * recorded before the first and after each: per-run milliseconds between consecutive events.
     */
    public static double[] timeRuns(CudaContext ctx, int warmup, int runs, Runnable work) {
        List<CudaEvent> events = new ArrayList<>();
        try {
            for (int i = 0; i < warmup; i++) {
                work.run();
            }
            for (int i = 0; i <= runs; i++) {
                events.add(ctx.event());
            }
            events.getFirst().record();
            for (int i = 0; i < runs; i++) {
                work.run();
                events.get(i + 1).record();
            }
            double[] ms = new double[runs];
            for (int i = 0; i < runs; i++) {
                ms[i] = ctx.elapsedMs(events.get(i), events.get(i + 1));
            }
            return ms;
        } finally {
            events.forEach(CudaEvent::close);
        }
    }

    /**
     * A timer of the library doing a {@code linear} case's GEMM ({@link CublasGemm}, fp16 or int8,
     * no bias) on random operands; other ops are {@link Unsupported}.
     */
    public static Timer cublasTimer(CublasGemm blas, CudaContext ctx, boolean int8, long l2Bytes) {
        return (c, warmup, runs) -> {
            if (!(c.sample() instanceof Op.Linear l)) {
                throw new Unsupported("cuBLAS runs the linear GEMMs only");
            }
            Graph g = c.graph();
            var xs = g.value(l.x()).shape();
            int k = xs.dim(-1), n = g.value(l.w()).shape().dim(0);
            int m = Math.toIntExact(xs.numel() / k);
            int in = int8 ? 1 : 2, outBytes = int8 ? 4 : 2;
            int sets = inputSets((long) m * k * in + (long) n * k * in + (long) m * n * outBytes, l2Bytes);
            long[] x = new long[sets], w = new long[sets], out = new long[sets];
            try {
                for (int i = 0; i < sets; i++) {
                    x[i] = ctx.malloc((long) m * k * in);
                    w[i] = ctx.malloc((long) n * k * in);
                    out[i] = ctx.malloc((long) m * n * outBytes);
                    fillRandom(ctx, x[i], (long) m * k, int8);
                    fillRandom(ctx, w[i], (long) n * k, int8);
                }
                int[] next = {0};
                Runnable gemm = () -> {
                    int i = next[0]++ % sets;
                    if (int8) {
                        blas.int8(x[i], w[i], out[i], m, n, k);
                    } else {
                        blas.fp16(x[i], w[i], out[i], m, n, k);
                    }
                };
                try {
                    gemm.run();
                } catch (IllegalStateException e) {
                    throw new Unsupported(e.getMessage());
                }
                return timeRuns(ctx, warmup, runs, gemm);
            } finally {
                ctx.synchronize();
                for (long[] ptrs : new long[][] {x, w, out}) {
                    for (long p : ptrs) {
                        if (p != 0) {
                            ctx.free(p);
                        }
                    }
                }
            }
        };
    }

    private static void fillRandom(CudaContext ctx, long ptr, long n, boolean int8) {
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(n);
        if (int8) {
            byte[] b = new byte[Math.toIntExact(n)];
            for (int i = 0; i < b.length; i++) {
                b[i] = (byte) rnd.nextInt(-127, 128);
            }
            ctx.copyHtoD(ptr, java.lang.foreign.MemorySegment.ofArray(b), n);
        } else {
            short[] h = new short[Math.toIntExact(n)];
            for (int i = 0; i < h.length; i++) {
                h[i] = Float.floatToFloat16((float) rnd.nextGaussian());
            }
            ctx.copyHtoD(ptr, java.lang.foreign.MemorySegment.ofArray(h), 2 * n);
        }
    }

    /** The device's attributes and ceilings, with {@code measuredBandwidth} from {@link #copyBandwidth}. */
    public static Device device(CudaContext ctx, double measuredBandwidth) {
        int cc = ctx.computeCapability();
        int sms = attr(ctx, CudaContext.DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        long clock = attr(ctx, CudaContext.DEVICE_ATTRIBUTE_CLOCK_RATE);
        long memClock = attr(ctx, CudaContext.DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE);
        int bus = attr(ctx, CudaContext.DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH);
        int l2 = attr(ctx, CudaContext.DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
        int dv = ctx.driverVersion();
        String nvrtc;
        try {
            nvrtc = Arrays.toString(Nvrtc.version());
        } catch (RuntimeException e) {
            nvrtc = "unavailable: " + e.getMessage();
        }
        return new Device(ctx.deviceName(), ctx.arch(), cc, sms, clock, memClock, bus, l2, ctx.totalMemory(),
                dv / 1000 + "." + (dv % 1000) / 10, nvrtc, DevicePeaks.peakOpsPerSecond(cc, sms, clock, "fp16"),
                DevicePeaks.peakOpsPerSecond(cc, sms, clock, "int8"), DevicePeaks.peakOpsPerSecond(cc, sms, clock,
                "fp32"), DevicePeaks.theoreticalBandwidth(memClock, bus), measuredBandwidth);
    }

    private static int attr(CudaContext ctx, int attribute) {
        try {
            return ctx.attribute(attribute);
        } catch (RuntimeException e) {
            return 0; // e.g. an attribute a newer driver no longer reports
        }
    }

    /**
     * Device-to-device copy bandwidth in bytes/s: bytes read + bytes written over the median of
     * {@code runs} copies of {@code bytes} (far larger than L2).
     */
    public static double copyBandwidth(CudaContext ctx, long bytes, int runs) {
        long src = ctx.malloc(bytes), dst = ctx.malloc(bytes);
        List<CudaEvent> events = new ArrayList<>();
        try {
            ctx.memsetD8(src, (byte) 1, bytes);
            ctx.copyDtoD(dst, src, bytes); // warm-up
            for (int i = 0; i <= runs; i++) {
                events.add(ctx.event());
            }
            events.getFirst().record();
            for (int i = 0; i < runs; i++) {
                ctx.copyDtoD(dst, src, bytes);
                events.get(i + 1).record();
            }
            double[] ms = new double[runs];
            for (int i = 0; i < runs; i++) {
                ms[i] = ctx.elapsedMs(events.get(i), events.get(i + 1));
            }
            return 2.0 * bytes / (Stats.of(ms).median() * 1e-3);
        } finally {
            ctx.synchronize();
            events.forEach(CudaEvent::close);
            ctx.free(src);
            ctx.free(dst);
        }
    }

    /** The source of the empty kernel whose launches are timed. */
    public static final String EMPTY_KERNEL = "extern \"C\" __global__ void latte_empty() {}\n";

    /**
     * Launches an empty kernel (compiled by NVRTC) {@code launches} times back to back: host
     * microseconds per cuLaunchKernel through FFM, device microseconds per launch between two
     * events around the loop, and the median of 200 launch+synchronize round trips.
     */
    public static LaunchOverhead launchOverhead(CudaContext ctx, int launches) {
        byte[] cubin = Nvrtc.compile("empty.cu", EMPTY_KERNEL, ctx.arch(), List.of());
        try (CudaModule module = ctx.loadModule(cubin); CudaEvent start = ctx.event(); CudaEvent end = ctx.event()) {
            CudaKernel k = module.kernel("latte_empty");
            KernelArgs none = new KernelArgs();
            for (int i = 0; i < 1000; i++) {
                k.launch(1, 1, 1, 1, 1, 1, 0, none);
            }
            ctx.synchronize();
            start.record();
            long t0 = System.nanoTime();
            for (int i = 0; i < launches; i++) {
                k.launch(1, 1, 1, 1, 1, 1, 0, none);
            }
            long host = System.nanoTime() - t0;
            end.record();
            double device = ctx.elapsedMs(start, end) * 1e3 / launches;
            double[] rt = new double[200];
            for (int i = 0; i < rt.length; i++) {
                long s = System.nanoTime();
                k.launch(1, 1, 1, 1, 1, 1, 0, none);
                ctx.synchronize();
                rt[i] = (System.nanoTime() - s) / 1e3;
            }
            return new LaunchOverhead(launches, host / 1e3 / launches, device, Stats.of(rt).median());
        }
    }

    /** Sum over cases of median × count: the kernel time of one step, per config, milliseconds. */
    public static java.util.Map<String, Double> stepMs(List<Result> results) {
        java.util.Map<String, Double> sum = new java.util.LinkedHashMap<>();
        for (Result r : results) {
            if (r.stats() != null) {
                sum.merge(r.kernel().config(), r.stats().median() * r.kernel().count(), Double::sum);
            }
        }
        return sum;
    }
}
