package dev.latte.bench;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import dev.latte.weights.AtomicFiles;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * The JSON of {@code latte bench kernels} ({@value #KERNELS_SCHEMA}) and of the UNet step bench
 * ({@value #UNET_SCHEMA}, shared with {@code bench/torch_unet.py}). Unknown numbers (NaN) are
 * written as null. Unit suffixes name every number: {@code _ms}, {@code _us}, {@code _bytes},
 * {@code _flops} (per second where it says so).
 */
public final class BenchReport {
    public static final String KERNELS_SCHEMA = "latte-bench-kernels/1";
    public static final String UNET_SCHEMA = "latte-bench-unet/1";
    public static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** Every baseline and what the JSON says of it unless it ran (cuBLAS's GemmEx is bound: {@link CublasGemm}). */
    public static final Map<String, String> BASELINES = Map.of(
            "cublas_gemm_ex_fp16", "not run",
            "cublas_gemm_ex_int8", "not run",
            "cublaslt_matmul", "not run: timed as \"version linear=cublaslt\" (bench kernels --version linear)",
            "cudnn_convolution", "not run: timed as \"version conv=cudnn\" (bench kernels --version conv)",
            "jcublas", "unavailable: no JCuda dependency (JCublas 12.6 needs libcublas.so.12)",
            "jcudnn", "unavailable: no JCuda dependency (JCudnn 11.7 needs libcudnn.so.8)");

    private BenchReport() {
    }

    /**
     * A library baseline: run ({@code results} for the cases it ran, by case index) or not
     * ({@code results} null, {@code status} says why).
     */
    public record Baseline(String status, String library, List<KernelBench.Result> results) {
    }

    public static ObjectNode kernels(List<KernelBench.Result> results, KernelBench.Device device,
                                     KernelBench.LaunchOverhead overhead, String dtype, int warmup, int runs,
                                     ObjectNode provenance) {
        return kernels(results, device, overhead, Map.of(), dtype, warmup, runs, provenance);
    }

    /**
     * The kernel table as JSON; {@code overhead} may be null (not measured); {@code baselines}
     * replaces the entries of {@link #BASELINES} it names.
     */
    public static ObjectNode kernels(List<KernelBench.Result> results, KernelBench.Device device,
                                     KernelBench.LaunchOverhead overhead, Map<String, Baseline> baselines,
                                     String dtype, int warmup, int runs, ObjectNode provenance) {
        ObjectNode root = JSON.createObjectNode();
        root.put("schema", KERNELS_SCHEMA);
        root.put("benchmark", "kernels");
        root.setAll(provenance);
        root.put("dtype", dtype);
        root.put("warmup_runs", warmup);
        root.put("runs", runs);
        root.put("timing", "CUDA events between back-to-back runs; each case's operands in enough copies, run in"
                + " turn, to cover twice the L2 (KernelBench.inputSets)");
        root.set("device", device(device));
        ObjectNode lo = root.putObject("launch_overhead");
        if (overhead != null) {
            lo.put("launches", overhead.launches());
            num(lo, "ffm_host_us_per_launch", overhead.hostUsPerLaunch());
            num(lo, "ffm_device_us_per_launch", overhead.deviceUsPerLaunch());
            num(lo, "ffm_launch_sync_us_median", overhead.launchSyncUsMedian());
        }
        lo.put("jcuda_jni", "unavailable: no JCuda dependency (JCuda's driver binding needs only libcuda.so.1;"
                + " not added untested)");
        ObjectNode base = root.putObject("baselines");
        BASELINES.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> {
            Baseline b = baselines.get(e.getKey());
            if (b == null) {
                base.put(e.getKey(), e.getValue());
            } else if (b.results() == null) {
                base.put(e.getKey(), b.status());
            } else {
                ObjectNode n = base.putObject(e.getKey());
                n.put("status", b.status());
                n.put("library", b.library());
                ArrayNode list = n.putArray("cases");
                for (int i = 0; i < b.results().size(); i++) {
                    KernelBench.Result r = b.results().get(i);
                    if (r.stats() == null) {
                        continue;
                    }
                    ObjectNode c = list.addObject();
                    c.put("case_index", results.indexOf(results.stream().filter(x -> x.kernel() == r.kernel())
                            .findFirst().orElse(null)));
                    c.put("shape", r.kernel().shape());
                    c.put("median_ms", r.stats().median());
                    c.put("p10_ms", r.stats().p10());
                    c.put("p90_ms", r.stats().p90());
                    num(c, "tflops_per_s", r.tflops());
                    num(c, "fraction_of_peak", r.fractionOfPeak());
                    ArrayNode raw = c.putArray("raw_ms");
                    for (double v : r.ms()) {
                        raw.add(v);
                    }
                }
            }
        });
        ArrayNode cases = root.putArray("cases");
        for (KernelBench.Result r : results) {
            KernelCase c = r.kernel();
            ObjectNode n = cases.addObject();
            n.put("config", c.config());
            n.put("op", c.op());
            n.put("shape", c.shape());
            n.put("count_per_step", c.count());
            n.put("example", c.example());
            n.put("flops", c.flops());
            n.put("bytes", c.bytes());
            n.put("bound", c.bound());
            n.put("status", r.status());
            Stats s = r.stats();
            num(n, "median_ms", s == null ? Double.NaN : s.median());
            num(n, "p10_ms", s == null ? Double.NaN : s.p10());
            num(n, "p90_ms", s == null ? Double.NaN : s.p90());
            num(n, "min_ms", s == null ? Double.NaN : s.min());
            num(n, "max_ms", s == null ? Double.NaN : s.max());
            num(n, "tflops_per_s", r.tflops());
            num(n, "gb_per_s", r.gbps());
            num(n, "fraction_of_peak", r.fractionOfPeak());
            num(n, "step_ms", s == null ? Double.NaN : s.median() * c.count());
            ArrayNode raw = n.putArray("raw_ms");
            for (double v : r.ms()) {
                raw.add(v);
            }
        }
        ObjectNode step = root.putObject("kernel_ms_per_step");
        KernelBench.stepMs(results).forEach(step::put);
        return root;
    }

    public static ObjectNode device(KernelBench.Device d) {
        ObjectNode n = JSON.createObjectNode();
        n.put("name", d.name());
        n.put("arch", d.arch());
        n.put("compute_capability", d.computeCapability());
        n.put("multiprocessors", d.multiprocessors());
        n.put("clock_khz", d.clockKHz());
        n.put("memory_clock_khz", d.memoryClockKHz());
        n.put("memory_bus_width_bits", d.busWidthBits());
        n.put("l2_bytes", d.l2Bytes());
        n.put("total_memory_bytes", d.totalMemoryBytes());
        n.put("driver", d.driver());
        n.put("nvrtc", d.nvrtc());
        num(n, "peak_fp16_tensor_flops_per_s", d.peakFp16TensorFlops());
        num(n, "peak_int8_tensor_ops_per_s", d.peakInt8TensorOps());
        num(n, "peak_fp32_flops_per_s", d.peakFp32Flops());
        num(n, "bandwidth_theoretical_bytes_per_s", d.theoreticalBandwidth());
        num(n, "bandwidth_measured_d2d_bytes_per_s", d.measuredBandwidth());
        return n;
    }

    /** The latency block shared by Latte's and PyTorch's UNet JSON. */
    public static ObjectNode latency(double[] ms) {
        Stats s = Stats.of(ms);
        ObjectNode n = JSON.createObjectNode();
        n.put("median", s.median());
        n.put("p10", s.p10());
        n.put("p90", s.p90());
        n.put("min", s.min());
        n.put("max", s.max());
        ArrayNode raw = n.putArray("raw");
        for (double v : ms) {
            raw.add(v);
        }
        return n;
    }

    /** Puts {@code v}, or null where it is NaN or infinite. */
    public static void num(ObjectNode n, String key, double v) {
        if (Double.isFinite(v)) {
            n.put(key, v);
        } else {
            n.putNull(key);
        }
    }

    public static void write(Path path, ObjectNode root) {
        try {
            write(path, JSON.writeValueAsString(root));
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Writes a JSON text (and a final newline), making the parent folders; the one writer of bench files. */
    public static void write(Path path, String json) {
        AtomicFiles.writeString(path, json.endsWith("\n") ? json : json + "\n");
    }
}
