package dev.latte.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.latte.bench.BenchReport;
import dev.latte.bench.RandomWeights;
import dev.latte.core.Backend;
import dev.latte.core.Int8Mode;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cpu.CpuBackend;
import dev.latte.cuda.CudaContext;
import dev.latte.cuda.CudaEvent;
import dev.latte.cuda.CudaKernel;
import dev.latte.cuda.backend.CudaBackend;
import dev.latte.exec.ArenaStep;
import dev.latte.exec.Executor;
import dev.latte.exec.Steps;
import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.graph.Op;
import dev.latte.graph.Value;
import dev.latte.graph.WeightFormat;
import dev.latte.plan.BuiltinConfigs;
import dev.latte.plan.MemoryPlan;
import dev.latte.plan.MemoryPlanner;
import dev.latte.quant.Int8;
import dev.latte.unet.UNet2DConditionModel;
import dev.latte.model.UNetModel;
import dev.latte.weights.DType;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.UNetConfig;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.Set;

/**
 * {@code latte bench unet --config sd15|DIR}: one UNet step of a config with seeded random weights
 * made in memory (no checkpoint), run from one planned arena on the CPU or the GPU: latency
 * (median, p10, p90 and raw), memory (arena, weights, workspace, cuMemGetInfo), ops and kernel
 * launches per step, and with {@code --graph} the whole step captured as one CUDA graph.
 * {@code --height/--width} are image pixels here (latent = /8), as for {@code latte plan}.
 */
final class UnetBench {
    static final Set<String> OPTIONS = Set.of("config", "batch", "height", "width", "context", "dtype", "int8-mode",
            "backend", "threads", "warmup", "iters", "seed", "json", "weights", "load");
    static final Set<String> FLAGS = Set.of("graph", "interleave");

    /** A UNet config and where it came from. */
    record Config(String name, String source, UNetConfig config, String json) {
    }

    private UnetBench() {
    }

    /** A built-in config by name, or a model folder / config.json path. */
    static Config config(String name, String command) {
        UNetConfig cfg = BuiltinConfigs.byName(name);
        if (cfg != null) {
            return new Config(name, "built-in " + name, cfg, name.equals("sd15") ? BuiltinConfigs.SD15_JSON : null);
        }
        Path p = Path.of(name);
        Path file = Files.isDirectory(p) ? p.resolve("config.json") : p;
        if (!Files.isRegularFile(file)) {
            throw new Args.UsageException(command + ": --config '" + name + "' is neither a built-in config ("
                    + String.join(", ", BuiltinConfigs.names()) + ") nor a folder with config.json nor a config.json");
        }
        try {
            return new Config(name, file.toString(), UNetConfig.load(file), Files.readString(file));
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read: " + e.getMessage(), e);
        }
    }

    static int run(Args a, PrintStream out, PrintStream err) {
        a.outputFile("json");
        String weightsDir = a.get("weights", null);
        if (weightsDir == null) {
            if (a.flag("load")) {
                throw new Args.UsageException("bench unet: --load says how --weights are loaded; give --weights DIR");
            }
            return run(a, out, err, null, System.nanoTime());
        }
        if (a.flag("config")) {
            throw new Args.UsageException("bench unet: give --config (random weights) or --weights DIR (a diffusers"
                    + " UNet folder, its config.json), not both");
        }
        long loadStart = System.nanoTime(); // header, NaN/Inf scan, upload (the packing is in the first step)
        try (UNetModel model = UNetModel.load(Path.of(weightsDir))) {
            if (model.isQuantized()) {
                throw new Args.UsageException("bench unet: --weights " + weightsDir + " holds int8 weights; time"
                        + " int8 with --config DIR --dtype int8");
            }
            return run(a, out, err, model, loadStart);
        }
    }

    /** With {@code model} null, the seeded random weights of --config; else the model's own, mapped from its file. */
    private static int run(Args a, PrintStream out, PrintStream err, UNetModel model, long loadStart) {
        Config c = model == null ? config(a.required("config"), "bench unet")
                : new Config(model.dir().toString(), model.dir().resolve(UNetModel.CONFIG).toString(), model.config(),
                null);
        String load = a.get("load", "map");
        if (!List.of("map", "heap").contains(load)) {
            throw new Args.UsageException("bench unet: --load must be map (weights read from the mapped file) or"
                    + " heap (each widened to a heap copy first, as before mapping), not '" + load + "'");
        }
        String backendName = a.get("backend", "cpu");
        String dtype = a.get("dtype", backendName.equals("cuda") ? "fp16" : "fp32");
        if (!List.of("fp32", "fp16", "int8").contains(dtype)) {
            throw new Args.UsageException("bench unet: --dtype must be fp32, fp16 or int8, not '" + dtype + "'");
        }
        int batch = a.batch(), height = a.imageSide("height", 512), width = a.imageSide("width", 512);
        int context = a.context(), warmup = a.getInt("warmup", 3), iters = a.getInt("iters", 20);
        long seed = a.getInt("seed", 0);
        boolean useGraph = a.flag("graph");
        // another process's runs take turns with ours (bench/cpu_vs_torch.py): each timed step waits
        // for a line on stdin and answers "step MS" on stdout, so both sides see the same machine
        boolean interleave = a.flag("interleave");
        if (height <= 0 || width <= 0 || height % 8 != 0 || width % 8 != 0) {
            throw new Args.UsageException("bench unet: with --config, --height and --width are image pixels,"
                    + " positive multiples of 8; got " + height + "x" + width);
        }
        if (batch < 1 || context < 1 || warmup < 1 || iters < 1) {
            throw new Args.UsageException("bench unet: --batch, --context, --warmup and --iters must be >= 1");
        }
        if (model != null && dtype.equals("int8")) {
            throw new Args.UsageException("bench unet: --dtype int8 quantises random weights; --weights are run as"
                    + " stored");
        }
        if (useGraph && !backendName.equals("cuda")) {
            throw new Args.UsageException("bench unet: --graph captures a CUDA graph; it needs --backend cuda");
        }
        Int8Mode int8Mode = Int8Mode.parse(a.get("int8-mode", "w8a16"));
        UNet2DConditionModel unet = model != null ? model.unet() : new UNet2DConditionModel(c.config(), c.source());
        List<Value> floatParams = RandomWeights.parameters(unet);
        Set<String> int8Weights = dtype.equals("int8") ? quantizable(unet) : Set.of();
        WeightFormat format = new WeightFormat() {
            public int[] shape(String name) {
                return null;
            }

            public boolean isInt8(String name) {
                return int8Weights.contains(name);
            }

            public Int8Mode int8Mode() {
                return int8Mode;
            }
        };
        int lh = height / 8, lw = width / 8;
        Graph graph = Fusion.fuse(model != null ? model.graph(batch, lh, lw, context) : unet.graph(batch, lh, lw, context,
                format));

        try (Backend backend = Backends.open(a, dtype)) {
            if (dtype.equals("int8") && !(backend.supports("linearInt8") && backend.supports("conv2dInt8"))) {
                throw new Args.UsageException("bench unet: the " + backend.name()
                        + " backend has no int8 ops (linearInt8, conv2dInt8) yet");
            }
            CudaContext ctx = backend instanceof CudaBackend cb ? cb.context() : null;
            Map<String, Tensor> params = new HashMap<>();
            long[] weightBytes = {0};
            int floatBytes = backend.activationBytes();
            if (model != null) {
                err.println("latte: " + model.weights().tensors().size() + " weights of " + model.dir() + " onto "
                        + backend.name() + (load.equals("map") ? " (mapped)" : " (heap copies)") + "...");
                SafeTensorsFile f = model.weights();
                for (TensorInfo t : f.tensors()) {
                    Shape shape = Shape.of(t.intShape());
                    params.put(t.name(), load.equals("map") ? backend.uploadMapped(shape, f.data(t.name()), t.dtype())
                            : backend.upload(shape, f.toFloatArray(t.name())));
                    weightBytes[0] += t.numel() * floatBytes;
                }
            } else {
                err.println("latte: " + floatParams.size() + " random weights (seed " + seed + ") onto "
                        + backend.name() + "...");
            }
            RandomWeights.generate(model != null ? List.of() : floatParams, seed, 32, (p, v) -> {
                if (int8Weights.contains(p.name())) {
                    Int8.Rows q = Int8.quantizeRows(v, p.shape().dim(0));
                    params.put(p.name(), backend.uploadInt8(p.shape(), q.q()));
                    params.put(p.name() + WeightFormat.SCALE_SUFFIX, backend.upload(Shape.of(q.rows()), q.scale()));
                    weightBytes[0] += q.q().length + 4L * q.rows();
                } else {
                    params.put(p.name(), backend.upload(p.shape(), v));
                    weightBytes[0] += p.shape().numel() * floatBytes;
                }
            });
            double loadMs = (System.nanoTime() - loadStart) / 1e6;
            err.println("latte: planning " + graph.ops().size() + " ops...");
            MemoryPlan plan = MemoryPlanner.plan(graph, backend.activationBytes(), Set.of("out"));
            // --graph: the CUDA backend's step (eager first run, then one captured graph replayed); else op by op
            try (ArenaStep step = Steps.prepare(backend, graph, plan, params, new Steps.Options(!useGraph))) {
                SplittableRandom rnd = new SplittableRandom(seed + 1);
                Map<String, float[]> inputs = new HashMap<>();
                for (var e : graph.inputs().entrySet()) {
                    float[] v = new float[e.getValue().shape().size()];
                    for (int i = 0; i < v.length; i++) {
                        v[i] = e.getKey().equals("timestep") ? 500f : (float) rnd.nextGaussian();
                    }
                    inputs.put(e.getKey(), v);
                }
                Runnable writeInputs = () -> inputs.forEach(step::write);
                long launchesPerStep = -1;
                double firstStepMs = 0;
                float[] result = null;
                // a graph step's first run is eager (counted and kept to check the replay against), its second captures
                int warm = useGraph ? Math.max(warmup, 2) : warmup;
                for (int i = 0; i < warm; i++) {
                    writeInputs.run();
                    long before = CudaKernel.launchCount(), s0 = System.nanoTime();
                    step.run();
                    if (i == 0) {
                        firstStepMs = (System.nanoTime() - s0) / 1e6;
                        launchesPerStep = CudaKernel.launchCount() - before;
                        result = step.read("out");
                    }
                    if (ctx != null) {
                        ctx.synchronize();
                    }
                    err.printf(Locale.ROOT, "latte: warm-up %d/%d%n", i + 1, warm);
                }
                long bad = Executor.nonFinite(result);
                if (bad > 0) {
                    throw new IllegalStateException("the step produced " + bad + " non-finite values");
                }
                double[] ms = new double[iters];
                double[] wall = new double[iters];
                double[] loadBefore = KernelsBench.loadAverage();
                var stdin = new java.io.BufferedReader(new java.io.InputStreamReader(System.in,
                        java.nio.charset.StandardCharsets.UTF_8));
                if (interleave) {
                    out.println("ready");
                    out.flush();
                }
                for (int i = 0; i < iters; i++) {
                    writeInputs.run();
                    if (interleave && readLine(stdin) == null) {
                        throw new Args.UsageException("bench unet --interleave: stdin closed after " + i + " of "
                                + iters + " steps");
                    }
                    if (ctx == null) {
                        long t0 = System.nanoTime();
                        step.run();
                        ms[i] = wall[i] = (System.nanoTime() - t0) / 1e6;
                    } else {
                        ctx.synchronize();
                        try (CudaEvent s = ctx.event(); CudaEvent e = ctx.event()) {
                            long t0 = System.nanoTime();
                            s.record();
                            step.run();
                            e.record();
                            ms[i] = ctx.elapsedMs(s, e);
                            wall[i] = (System.nanoTime() - t0) / 1e6;
                        }
                    }
                    if (interleave) {
                        out.printf(Locale.ROOT, "step %.3f%n", ms[i]);
                        out.flush();
                    }
                }
                double[] loadAfter = KernelsBench.loadAverage();
                ObjectNode root = report(c, backend, dtype, int8Mode, graph, plan, weightBytes[0], launchesPerStep,
                        useGraph, batch, height, width, context, warmup, ms, wall, ctx);
                if (model != null) {
                    root.put("weights", model.weights().path() + " (" + model.mode() + ", " + (load.equals("map")
                            ? "memory-mapped" : "widened to heap copies") + ")");
                }
                root.put("load_ms", loadMs);
                root.put("first_step_ms", firstStepMs);
                // the kernel version of each distinct op shape, chosen once when the step was prepared
                var tactics = root.putArray("tactics");
                step.tactics().forEach(tactics::add);
                step.tactics().forEach(t -> err.println("latte: tactic " + t));
                if (backend instanceof CpuBackend cpu) {
                    host(root.putObject("host"), cpu, model, plan, loadBefore[0], loadAfter[0], interleave, err);
                }
                if (useGraph) {
                    // the replayed graph must compute what the eager step computed from the same inputs
                    float[] replayed = step.read("out");
                    double diff = 0;
                    for (int i = 0; i < result.length; i++) {
                        diff = Math.max(diff, Math.abs(replayed[i] - result[i]));
                    }
                    root.put("graph_out_max_abs_diff_vs_eager", diff);
                    if (!(diff <= 1e-3 * (1 + maxAbs(result)))) {
                        throw new IllegalStateException("the CUDA graph's output differs from the eager step's by "
                                + diff);
                    }
                }
                var lat = root.get("latency_ms");
                out.printf(Locale.ROOT, "unet step, %s on %s%s, batch %d, %dx%d image, context %d: median %.2f ms"
                                + " (p10 %.2f, p90 %.2f) over %d runs; arena %.1f MiB, weights %.1f MiB, %d ops%s%n",
                        c.name(), backend.name(), useGraph ? " (CUDA graph)" : "", batch, height, width, context,
                        lat.get("median").asDouble(), lat.get("p10").asDouble(), lat.get("p90").asDouble(), iters,
                        plan.arenaBytes() / 1048576.0, weightBytes[0] / 1048576.0, graph.ops().size(),
                        launchesPerStep >= 0 && ctx != null ? ", " + launchesPerStep + " kernel launches" : "");
                String json = a.get("json", null);
                if (json != null) {
                    BenchReport.write(Path.of(json), root);
                    out.println("wrote " + json);
                }
            } finally {
                params.values().forEach(backend::release);
            }
        }
        return 0;
    }

    /**
     * Where the CPU backend's memory is: RSS ≈ heap weights + packed weights + in-place weights
     * (as far as their pages are resident) + arena + the JVM itself.
     */
    private static void host(ObjectNode host, CpuBackend cpu, UNetModel model, MemoryPlan plan, double loadBefore,
                             double loadAfter, boolean interleave, PrintStream err) {
        host.put("threads", cpu.threads());
        host.put("vector_api", cpu.vectorised());
        host.put("weight_file_bytes", model == null ? 0
                : model.weights().tensors().stream().mapToLong(TensorInfo::byteSize).sum());
        host.put("packed_weight_bytes", cpu.packedBytes());
        host.put("mapped_weight_bytes", cpu.mappedBytes());
        host.put("in_place_weight_bytes", cpu.inPlaceBytes());
        host.put("heap_weight_bytes", cpu.heapWeightBytes());
        host.put("arena_bytes", plan.arenaBytes());
        host.put("load_average_before", loadBefore);
        host.put("load_average_after", loadAfter);
        long[] rss = residentBytes();
        host.put("resident_bytes", rss[0]);
        host.put("peak_resident_bytes", rss[1]);
        host.put("resident_anon_bytes", rss[2]);
        host.put("resident_file_bytes", rss[3]);
        Runtime rt = Runtime.getRuntime();
        host.put("jvm_heap_committed_bytes", rt.totalMemory());
        host.put("jvm_heap_used_bytes", rt.totalMemory() - rt.freeMemory());
        host.put("interleaved", interleave);
        double gib = 1L << 30;
        err.printf(Locale.ROOT, "latte: resident %.2f GiB (peak %.2f GiB; anon %.2f, file %.2f) = packed weights %.2f"
                        + " + heap weights %.2f + in-place weights %.3f + arena %.3f GiB + JVM; load average %.1f -> %.1f%n",
                rss[0] / gib, rss[1] / gib, rss[2] / gib, rss[3] / gib, cpu.packedBytes() / gib,
                cpu.heapWeightBytes() / gib, cpu.inPlaceBytes() / gib, plan.arenaBytes() / gib, loadBefore, loadAfter);
    }

    private static String readLine(java.io.BufferedReader in) {
        try {
            return in.readLine();
        } catch (IOException e) {
            return null;
        }
    }

    /**
     * This process's resident, peak resident, anonymous and file-backed resident bytes (VmRSS,
     * VmHWM, RssAnon, RssFile of /proc/self/status); -1 where unknown.
     */
    static long[] residentBytes() {
        long[] r = {-1, -1, -1, -1};
        List<String> keys = List.of("VmRSS:", "VmHWM:", "RssAnon:", "RssFile:");
        try {
            for (String l : Files.readAllLines(Path.of("/proc/self/status"))) {
                for (int i = 0; i < keys.size(); i++) {
                    if (l.startsWith(keys.get(i))) {
                        r[i] = Long.parseLong(l.replaceAll("[^0-9]", "")) * 1024;
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux: unknown
        }
        return r;
    }

    private static double maxAbs(float[] v) {
        double m = 0;
        for (float x : v) {
            m = Math.max(m, Math.abs(x));
        }
        return m;
    }

    static ObjectNode report(Config c, Backend backend, String dtype, Int8Mode mode, Graph graph, MemoryPlan plan,
                             long weightBytes, long launches, boolean useGraph, int batch, int height, int width,
                             int context, int warmup, double[] ms, double[] wall, CudaContext ctx) {
        ObjectNode root = BenchReport.JSON.createObjectNode();
        root.put("schema", BenchReport.UNET_SCHEMA);
        root.put("benchmark", "unet_step");
        root.put("runtime", "latte");
        root.setAll(Bench.provenance());
        root.put("config", c.name());
        root.put("weights", "random, seeded (RandomWeights: N(0, 1/fan_in), norms 1 + 0.1 N, biases 0.1 N)");
        root.put("backend", backend.name());
        root.put("dtype", dtype);
        if (dtype.equals("int8")) {
            root.put("int8_mode", mode.name().toLowerCase(Locale.ROOT));
        }
        root.put("cuda_graph", useGraph);
        ObjectNode in = root.putObject("input");
        in.put("batch", batch);
        in.put("height", height);
        in.put("width", width);
        in.put("latent_height", height / 8);
        in.put("latent_width", width / 8);
        in.put("context_length", context);
        root.put("warmup_runs", warmup);
        root.put("runs", ms.length);
        root.put("timing", ctx == null ? "host clock around each step"
                : "CUDA events around each step (inputs written before the start event)");
        root.set("latency_ms", BenchReport.latency(ms));
        root.set("wall_ms", BenchReport.latency(wall));
        ObjectNode mem = root.putObject("memory");
        mem.put("arena_bytes", plan.arenaBytes());
        mem.put("arena_lower_bound_bytes", plan.lowerBoundBytes());
        mem.put("weight_bytes", weightBytes);
        if (ctx != null) {
            long allocated = ctx.allocatedBytes();
            long[] info = ctx.memInfo();
            mem.put("workspace_bytes", Math.max(0, allocated - plan.arenaBytes() - weightBytes));
            mem.put("peak_bytes", allocated);
            mem.put("device_used_bytes", info[1] - info[0]);
            mem.put("device_total_bytes", info[1]);
        } else {
            mem.putNull("workspace_bytes");
            mem.put("peak_bytes", plan.arenaBytes() + weightBytes);
            mem.putNull("device_used_bytes");
            mem.putNull("device_total_bytes");
        }
        root.put("ops_per_step", graph.ops().size());
        if (ctx != null && launches >= 0) {
            root.put("kernels_per_step", launches);
        } else {
            root.putNull("kernels_per_step");
        }
        if (useGraph) {
            root.put("graph_launches_per_step", 1);
        }
        if (ctx != null) {
            ObjectNode d = root.putObject("device");
            d.put("name", ctx.deviceName());
            d.put("arch", ctx.arch());
        }
        return root;
    }

    /** Conv and linear weights: what an int8 model stores as int8 (as {@code Quantizer} chooses them). */
    private static Set<String> quantizable(UNet2DConditionModel unet) {
        int side = 2 << unet.config().levels();
        Graph g = unet.graph(1, side, side, 1);
        Set<String> names = new HashSet<>();
        for (Op op : g.ops()) {
            if (op instanceof Op.Conv2d c) {
                names.add(g.value(c.w()).name());
            } else if (op instanceof Op.Linear l) {
                names.add(g.value(l.w()).name());
            }
        }
        return names;
    }

    /** {@code latte export-random}: the random weights of a config as a diffusers folder. */
    static int export(Args a, PrintStream out) {
        Config c = config(a.required("config"), "export-random");
        if (c.json() == null) {
            throw new Args.UsageException("export-random: no config.json text for " + c.name());
        }
        long seed = a.getInt("seed", 0);
        var dtype = switch (a.get("dtype", "fp16")) {
            case "fp16" -> DType.F16;
            case "fp32" -> DType.F32;
            default -> throw new Args.UsageException("export-random: --dtype must be fp16 or fp32");
        };
        Path dir = a.outputModelFolder("out");
        RandomWeights.export(dir, c.json(), seed, dtype);
        out.println("wrote " + dir.resolve("config.json") + " and " + dir.resolve("diffusion_pytorch_model.safetensors")
                + " (" + c.name() + ", seed " + seed + ", " + dtype + ")");
        return 0;
    }
}
