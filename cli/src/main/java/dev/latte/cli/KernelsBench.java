package dev.latte.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.latte.bench.BenchReport;
import dev.latte.bench.CublasGemm;
import dev.latte.bench.KernelBench;
import dev.latte.bench.KernelCase;
import dev.latte.bench.KernelCases;
import dev.latte.bench.OpCases;
import dev.latte.bench.Stats;
import dev.latte.core.Int8Mode;
import dev.latte.cpu.CpuBackend;
import dev.latte.cuda.CublasLt;
import dev.latte.cuda.CudaContext;
import dev.latte.cuda.Cudnn;
import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.Tactics;
import dev.latte.graph.WeightFormat;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * {@code latte bench kernels}: every distinct op of an SD1.5 step at 512² and 768² (derived from
 * the fused graph, {@link KernelCases}; the same rows the op-case test runs under
 * {@code -Dlatte.cases=sd15}), or with {@code --config ci} the op-case table's small CI rows
 * ({@link OpCases#ci}), timed on the GPU with CUDA events; {@code --list} prints the table without
 * a GPU. Without a GPU (and without --list) it exits 2 saying why.
 */
final class KernelsBench {
    static final Set<String> OPTIONS = Set.of("json", "dtype", "runs", "warmup", "batch", "sizes", "config", "version",
            "kernels", "backend", "threads", "ops", "int8-mode");
    static final Set<String> FLAGS = Set.of("list");

    private KernelsBench() {
    }

    static int run(Args a, PrintStream out, PrintStream err) {
        a.outputFile("json");
        String backendName = a.get("backend", "cuda");
        if (backendName.equals("cpu")) {
            return runCpu(a, out, err);
        } else if (!backendName.equals("cuda")) {
            throw new Args.UsageException("bench kernels: --backend must be cuda or cpu, not '" + backendName + "'");
        }
        String dtype = a.get("dtype", "fp16");
        int elementBytes = switch (dtype) {
            case "fp16" -> 2;
            case "fp32" -> 4;
            default -> throw new Args.UsageException("bench kernels: --dtype must be fp16 or fp32, not '" + dtype
                    + "'");
        };
        int runs = a.getInt("runs", 20), warmup = a.getInt("warmup", 5), batch = a.batch();
        if (runs < 20 || warmup < 1 || batch < 1) {
            throw new Args.UsageException("bench kernels: --runs must be >= 20, --warmup >= 1, --batch >= 1");
        }
        if (a.get("int8-mode", null) != null) {
            throw new Args.UsageException("bench kernels: --int8-mode runs on --backend cpu (CUDA has no int8 ops yet)");
        }
        List<KernelCase> cases = cases(a, batch, elementBytes);
        List<Tactics.Family> families = versionFamilies(a.get("version", null));
        String kernels = a.get("kernels", "");
        String missing;
        try {
            missing = Backends.missingLibrary(Tactics.parse(kernels));
        } catch (IllegalArgumentException e) {
            throw new Args.UsageException("bench kernels: --kernels: " + e.getMessage());
        }
        if (missing != null) {
            throw new Args.UsageException("bench kernels: --kernels: " + missing);
        }
        if (a.flag("list")) {
            printLibraries(out);
            printTable(cases, null, out);
            printVersions(families, out);
            return 0;
        }
        CudaBackend backend;
        try {
            backend = (CudaBackend) Backends.open("cuda", dtype, 1, kernels);
        } catch (Backends.Unavailable e) {
            throw new Args.UsageException("bench kernels: no GPU: " + e.reason() + " (--list prints the case table)");
        }
        try (backend) {
            CudaContext ctx = backend.context();
            err.println("latte: measuring copy bandwidth and launch overhead on " + ctx.deviceName() + "...");
            double bw = KernelBench.copyBandwidth(ctx, 256L << 20, 20);
            KernelBench.Device device = KernelBench.device(ctx, bw);
            KernelBench.LaunchOverhead lo = KernelBench.launchOverhead(ctx, 10_000);
            err.printf(Locale.ROOT, "latte: %d cases, %d warm-up + %d timed runs each...%n", cases.size(), warmup,
                    runs);
            List<KernelBench.Result> results = KernelBench.run(cases, KernelBench.cudaTimer(backend, ctx,
                    device.l2Bytes()), warmup, runs, device, dtype);
            Map<String, BenchReport.Baseline> baselines = new HashMap<>();
            String blasReason = CublasGemm.unavailableReason();
            if (blasReason != null) {
                var unavailable = new BenchReport.Baseline("unavailable: " + blasReason, null, null);
                baselines.put("cublas_gemm_ex_fp16", unavailable);
                baselines.put("cublas_gemm_ex_int8", unavailable);
            } else {
                List<KernelCase> linears = cases.stream().filter(c -> c.op().equals("linear")).toList();
                err.printf(Locale.ROOT, "latte: cuBLAS (%s) on %d linear cases...%n", CublasGemm.location(),
                        linears.size());
                try (CublasGemm blas = new CublasGemm(ctx)) {
                    for (boolean int8 : new boolean[] {false, true}) {
                        String key = int8 ? "cublas_gemm_ex_int8" : "cublas_gemm_ex_fp16";
                        try {
                            List<KernelBench.Result> r = KernelBench.run(linears, KernelBench.cublasTimer(blas, ctx,
                                    int8, device.l2Bytes()), warmup, runs, device, int8 ? "int8" : "fp16");
                            baselines.put(key, new BenchReport.Baseline("ok", CublasGemm.location(), r));
                            out.printf(Locale.ROOT, "cuBLAS GemmEx %s, the same linear shapes: %.2f ms per step"
                                    + " (Latte %s: %.2f ms)%n", int8 ? "int8" : "fp16", stepMs(r), dtype,
                                    stepMs(results.stream().filter(x -> x.kernel().op().equals("linear")).toList()));
                        } catch (RuntimeException e) {
                            err.println("latte: cuBLAS " + key + " failed: " + e.getMessage());
                            baselines.put(key, new BenchReport.Baseline("failed: " + e.getMessage(), null, null));
                        }
                    }
                } catch (RuntimeException e) {
                    err.println("latte: cuBLAS failed: " + e.getMessage());
                    var failed = new BenchReport.Baseline("failed: " + e.getMessage(), null, null);
                    baselines.put("cublas_gemm_ex_fp16", failed);
                    baselines.put("cublas_gemm_ex_int8", failed);
                }
            }
            printTable(cases, results, out);
            for (Tactics.Family f : families) {
                compareVersions(f, cases, backend, device, warmup, runs, dtype, baselines, out, err);
            }
            out.printf(Locale.ROOT, "%s (%s, %d SMs): peak %s %.1f TFLOP/s, copy %.0f GB/s (theoretical %.0f);"
                            + " empty kernel %.2f us host, %.2f us device per launch, %.1f us launch+sync%n",
                    device.name(), device.arch(), device.multiprocessors(), dtype, device.peakFlops(dtype) / 1e12,
                    bw / 1e9, device.theoreticalBandwidth() / 1e9, lo.hostUsPerLaunch(), lo.deviceUsPerLaunch(),
                    lo.launchSyncUsMedian());
            KernelBench.stepMs(results).forEach((cfg, ms) -> out.printf(Locale.ROOT,
                    "%s: %.2f ms of kernel time per step (sum of median x count)%n", cfg, ms));
            String json = a.get("json", null);
            if (json != null) {
                BenchReport.write(Path.of(json), BenchReport.kernels(results, device, lo, baselines, dtype, warmup,
                        runs, Bench.provenance()));
                out.println("wrote " + json);
            }
            return 0;
        }
    }

    /** {@code --version FAMILY|all}: the families whose versions are timed against each other. */
    static List<Tactics.Family> versionFamilies(String version) {
        if (version == null) {
            return List.of();
        }
        List<Tactics.Family> multi = new ArrayList<>();
        for (Tactics.Family f : Tactics.Family.values()) {
            if (Tactics.versions(f).size() > 1) {
                multi.add(f);
            }
        }
        if (version.equals("all")) {
            return multi;
        }
        for (Tactics.Family f : Tactics.Family.values()) {
            if (f.id().equals(version)) {
                return List.of(f);
            }
        }
        throw new Args.UsageException("bench kernels: --version takes a kernel family (" + String.join(", ",
                List.of(Tactics.Family.values()).stream().map(Tactics.Family::id).toList()) + ") or all, not '"
                + version + "'");
    }

    /**
     * The library tactics' libraries: version and path where found, else why not (every place tried).
     * Loading one needs no GPU.
     */
    static void printLibraries(PrintStream out) {
        String lt = CublasLt.unavailableReason();
        out.println("library linear=cublaslt: " + (lt == null ? CublasLt.describe() : "unavailable: " + lt));
        String dnn = Cudnn.unavailableReason();
        out.println("library conv=cudnn: " + (dnn == null ? Cudnn.describe() : "unavailable: " + dnn));
    }

    /** What the JSON names as the version's implementation: the library found, or the kernels' description. */
    private static String libraryOr(Tactics.Version v) {
        if (v.library() == null) {
            return v.description();
        }
        return v == Tactics.LINEAR_CUBLASLT ? CublasLt.describe() : Cudnn.describe();
    }

    private static void printVersions(List<Tactics.Family> families, PrintStream out) {
        for (Tactics.Family f : families) {
            for (Tactics.Version v : Tactics.versions(f)) {
                out.printf(Locale.ROOT, "%-14s sm_%-3s %-9s %s%n", v.id(), v.minCc() == 0 ? "any" : v.minCc(),
                        (v.fp32() ? "fp32" : "") + (v.fp32() && v.fp16() ? "," : "") + (v.fp16() ? "fp16" : ""),
                        v.description());
            }
        }
    }

    /**
     * Every version of {@code f} that runs at this dtype and architecture, on the family's cases, one
     * backend per version (forced by name) on the same context; a table side by side, and each
     * version's results in the JSON's baselines as {@code version FAMILY=NAME}.
     */
    private static void compareVersions(Tactics.Family f, List<KernelCase> cases, CudaBackend backend,
                                        KernelBench.Device device, int warmup, int runs, String dtype,
                                        Map<String, BenchReport.Baseline> baselines, PrintStream out, PrintStream err) {
        List<KernelCase> mine = cases.stream().filter(c -> f.runs(c.op())).toList();
        List<Tactics.Version> versions = new ArrayList<>();
        List<List<KernelBench.Result>> results = new ArrayList<>();
        for (Tactics.Version v : Tactics.versions(f)) {
            String reason = v.unsupported(backend.precision(), backend.library().computeCapability());
            if (reason == null) {
                reason = v.unavailable(backend.context().emulated());
            }
            if (reason != null) {
                baselines.put("version " + v.id(), new BenchReport.Baseline("unsupported: " + reason, null, null));
                continue;
            }
            err.printf(Locale.ROOT, "latte: %s on %d cases...%n", v.id(), mine.size());
            try (CudaBackend vb = new CudaBackend(backend.context(), backend.precision(), Tactics.parse(v.id()))) {
                List<KernelBench.Result> r = KernelBench.run(mine, KernelBench.cudaTimer(vb, backend.context(),
                        device.l2Bytes()), warmup, runs, device, dtype);
                versions.add(v);
                results.add(r);
                baselines.put("version " + v.id(), new BenchReport.Baseline("ok", libraryOr(v), r));
            }
        }
        out.printf(Locale.ROOT, "%s versions, median ms per run (x = speed-up over %s):%n", f.id(),
                versions.isEmpty() ? "-" : versions.getFirst().id());
        for (int i = 0; i < mine.size(); i++) {
            StringBuilder row = new StringBuilder();
            double first = Double.NaN;
            for (int j = 0; j < versions.size(); j++) {
                KernelBench.Result r = results.get(j).get(i);
                if (r.stats() == null) {
                    row.append(String.format(Locale.ROOT, "  %s %s", versions.get(j).name(), r.status()));
                    continue;
                }
                double ms = r.stats().median();
                first = j == 0 ? ms : first;
                row.append(String.format(Locale.ROOT, "  %s %.4f", versions.get(j).name(), ms));
                if (j > 0 && !Double.isNaN(first)) {
                    row.append(String.format(Locale.ROOT, " (%.2fx)", first / ms));
                }
            }
            out.printf(Locale.ROOT, "%-24s %s | %s%n", mine.get(i).config(), row, mine.get(i).shape());
        }
    }

    /**
     * {@code bench kernels --backend cpu}: the same cases on the CPU backend, fp32, timed by the
     * host clock; GFLOP/s per case. {@code --ops linear,attention} keeps only those op kinds (the
     * whole SD1.5 table takes long on two cores). The machine's load average before and after is
     * recorded: on a shared machine it says how far to trust the numbers.
     */
    private static int runCpu(Args a, PrintStream out, PrintStream err) {
        if (!a.get("dtype", "fp32").equals("fp32")) {
            throw new Args.UsageException("bench kernels: the cpu backend computes fp32; --dtype must be fp32");
        }
        int runs = a.getInt("runs", 5), warmup = a.getInt("warmup", 1), batch = a.getInt("batch", 2);
        int threads = a.getInt("threads", Runtime.getRuntime().availableProcessors());
        if (runs < 1 || warmup < 1 || batch < 1 || threads < 1) {
            throw new Args.UsageException("bench kernels: --runs, --warmup, --batch and --threads must be >= 1");
        }
        String int8 = a.get("int8-mode", null);
        WeightFormat format = WeightFormat.CONFIG;
        if (int8 != null) {
            format = OpCases.int8(switch (int8) {
                case "w8a16" -> Int8Mode.W8A16;
                case "w8a8" -> Int8Mode.W8A8;
                default -> throw new Args.UsageException("bench kernels: --int8-mode must be w8a16 or w8a8, not '"
                        + int8 + "'");
            });
        }
        List<KernelCase> cases = cases(a, batch, Float.BYTES, format, int8 == null ? "" : " " + int8);
        String ops = a.get("ops", null);
        if (ops != null) {
            Set<String> keep = Set.of(ops.split(","));
            cases = cases.stream().filter(c -> keep.contains(c.op())).toList();
            if (cases.isEmpty()) {
                throw new Args.UsageException("bench kernels: no case has an op in --ops " + ops);
            }
        }
        try (CpuBackend backend = new CpuBackend(threads)) {
            double[] loadBefore = loadAverage();
            err.printf(Locale.ROOT, "latte: %d cases on the cpu backend (%d threads, %s), %d warm-up + %d timed"
                    + " runs each...%n", cases.size(), threads, backend.vectorised() ? "Vector API kernels"
                    : "scalar loops: the JVM lacks --add-modules jdk.incubator.vector", warmup, runs);
            Map<KernelCase, double[]> cpuMs = new HashMap<>();
            List<KernelBench.Result> results = KernelBench.run(cases, KernelBench.hostTimer(backend, cpuMs), warmup,
                    runs, CPU_DEVICE, "fp32");
            double[] loadAfter = loadAverage();
            out.printf(Locale.ROOT, "%-24s %-16s %5s %10s %24s %8s %10s %s%n", "config", "op", "count", "GFLOP",
                    "median ms [p10, p90]", "GFLOP/s", "per CPU-s", "shape");
            ObjectNode root = BenchReport.JSON.createObjectNode();
            root.put("schema", "latte-bench-kernels-cpu/1");
            root.put("benchmark", "kernels");
            root.setAll(Bench.provenance());
            root.put("backend", "cpu");
            root.put("dtype", "fp32");
            root.put("threads", threads);
            root.put("int8_mode", int8 == null ? "none: fp32 weights" : int8);
            root.put("vector_api", backend.vectorised());
            root.put("warmup_runs", warmup);
            root.put("runs", runs);
            root.put("timing", "host clock around each run (and the process's CPU time: gflops_per_cpu_s is FLOP per"
                    + " CPU-second, what the kernels do on the cores they got); inputs made once, weights packed in"
                    + " the warm-up");
            root.put("load_average_before", loadBefore[0]);
            root.put("load_average_after", loadAfter[0]);
            var list = root.putArray("cases");
            for (KernelBench.Result r : results) {
                KernelCase c = r.kernel();
                var n = list.addObject();
                n.put("config", c.config());
                n.put("op", c.op());
                n.put("shape", c.shape());
                n.put("count_per_step", c.count());
                n.put("flops", c.flops());
                n.put("status", r.status());
                if (r.stats() == null) {
                    out.printf(Locale.ROOT, "%-24s %-16s %5d %10.3f %s | %s%n", c.config(), c.op(), c.count(),
                            c.flops() / 1e9, r.status(), c.shape());
                    continue;
                }
                double gflops = c.flops() / (r.stats().median() * 1e6);
                double[] cpu = cpuMs.get(c);
                double cpuMedian = Stats.of(cpu).median(), perCpu = c.flops() / (cpuMedian * 1e6);
                n.put("median_ms", r.stats().median());
                n.put("median_cpu_ms", cpuMedian);
                n.put("gflops_per_cpu_s", perCpu);
                n.put("p10_ms", r.stats().p10());
                n.put("p90_ms", r.stats().p90());
                n.put("gflops_per_s", gflops);
                var raw = n.putArray("raw_ms");
                for (double v : r.ms()) {
                    raw.add(v);
                }
                var rawCpu = n.putArray("raw_cpu_ms");
                for (double v : cpu) {
                    rawCpu.add(v);
                }
                out.printf(Locale.ROOT, "%-24s %-16s %5d %10.3f %10.2f [%.2f, %.2f] %8.1f %10.1f %s%n", c.config(),
                        c.op(), c.count(), c.flops() / 1e9, r.stats().median(), r.stats().p10(), r.stats().p90(), gflops,
                        perCpu, c.shape());
            }
            out.printf(Locale.ROOT, "load average %.2f before, %.2f after (%d processors)%n", loadBefore[0],
                    loadAfter[0], Runtime.getRuntime().availableProcessors());
            String json = a.get("json", null);
            if (json != null) {
                BenchReport.write(Path.of(json), root);
                out.println("wrote " + json);
            }
        }
        return 0;
    }

    /** No device ceilings on the host: rates are reported, fractions of peak are not. */
    private static final KernelBench.Device CPU_DEVICE = new KernelBench.Device("host cpu", "host", 0, 0, 0,
            0, 0, 0, 0, "", "", Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN);

    /** The 1-, 5- and 15-minute load averages (/proc/loadavg), NaN where unreadable. */
    static double[] loadAverage() {
        try {
            String[] f = java.nio.file.Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return new double[] {Double.parseDouble(f[0]), Double.parseDouble(f[1]), Double.parseDouble(f[2])};
        } catch (java.io.IOException | RuntimeException e) {
            return new double[] {Double.NaN, Double.NaN, Double.NaN};
        }
    }

    static List<KernelCase> cases(Args a, int batch, int elementBytes) {
        return cases(a, batch, elementBytes, WeightFormat.CONFIG, "");
    }

    /** The cases with weights in {@code format} (int8 ops where it says so); {@code tag} ends each config label. */
    static List<KernelCase> cases(Args a, int batch, int elementBytes, WeightFormat format, String tag) {
        String config = a.get("config", "sd15");
        String sizes = a.get("sizes", null);
        if (config.equals("ci")) {
            return KernelCases.fromOpCases(OpCases.ci(), elementBytes, "ci");
        }
        if (config.equals("sd15") && sizes == null) {
            return KernelCases.sd15(batch, elementBytes, format, tag);
        }
        UnetBench.Config cfg = UnetBench.config(config, "bench kernels");
        List<KernelCase> all = new ArrayList<>();
        for (String s : (sizes == null ? "512,768" : sizes).split(",")) {
            int side;
            try {
                side = Integer.parseInt(s.trim());
            } catch (NumberFormatException e) {
                throw new Args.UsageException("bench kernels: --sizes takes image sides like 512,768; got '" + s + "'");
            }
            if (side <= 0 || side % 8 != 0) {
                throw new Args.UsageException("bench kernels: image side " + side + " is not a positive multiple of 8");
            }
            all.addAll(KernelCases.fromGraph(KernelCases.graph(cfg.config(), cfg.source(), batch, side, side, 77,
                    format), elementBytes, cfg.name() + " " + side + "x" + side + " batch " + batch + tag));
        }
        return all;
    }

    private static double stepMs(List<KernelBench.Result> results) {
        return KernelBench.stepMs(results).values().stream().mapToDouble(Double::doubleValue).sum();
    }

    private static void printTable(List<KernelCase> cases, List<KernelBench.Result> results, PrintStream out) {
        out.printf(Locale.ROOT, "%-24s %-16s %5s %12s %12s %s%n", "config", "op", "count", "GFLOP", "MB",
                results == null ? "shape" : "median ms [p10, p90]  TFLOP/s  GB/s  of peak | shape");
        for (int i = 0; i < cases.size(); i++) {
            KernelCase c = cases.get(i);
            String timing = "";
            if (results != null) {
                KernelBench.Result r = results.get(i);
                timing = r.stats() == null ? r.status() + " | " : String.format(Locale.ROOT,
                        "%.4f [%.4f, %.4f] %7.1f %7.0f %5.1f%% | ", r.stats().median(), r.stats().p10(),
                        r.stats().p90(), r.tflops(), r.gbps(), 100 * r.fractionOfPeak());
            }
            out.printf(Locale.ROOT, "%-24s %-16s %5d %12.3f %12.3f %s%s%n", c.config(), c.op(), c.count(),
                    c.flops() / 1e9, c.bytes() / 1e6, timing, c.shape());
        }
        out.printf(Locale.ROOT, "%d cases%n", cases.size());
    }
}
