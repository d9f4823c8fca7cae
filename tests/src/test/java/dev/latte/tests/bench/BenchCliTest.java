package dev.latte.tests.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.latte.bench.BenchReport;
import dev.latte.bench.KernelBench;
import dev.latte.bench.KernelCase;
import dev.latte.bench.KernelCases;
import dev.latte.bench.RandomWeights;
import dev.latte.cuda.CudaContext;
import dev.latte.graph.Value;
import dev.latte.model.UNetModel;
import dev.latte.plan.BuiltinConfigs;
import dev.latte.tests.Resources;
import dev.latte.tests.cli.Cli.Result;
import dev.latte.unet.UNet2DConditionModel;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.UNetConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import static dev.latte.tests.cli.Cli.assertBadInput;
import static dev.latte.tests.cli.Cli.latte;
import static dev.latte.tests.cli.Cli.latteWithoutDevice;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** {@code latte bench kernels}, {@code bench unet --config}, {@code export-random} and the bench JSON, on the CPU. */
class BenchCliTest {
    static final String TINY = """
            {"block_out_channels": [32, 64, 64],
             "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
             "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
             "layers_per_block": 1, "attention_head_dim": 8, "cross_attention_dim": 32,
             "norm_num_groups": 8, "sample_size": 16}
            """;
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    Path tinyConfig() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("tiny"));
        Files.writeString(dir.resolve("config.json"), TINY);
        return dir;
    }

    /** In a child JVM that sees no device, so it runs on the emulated device too. */
    @Test
    void kernelsWithoutAGpuExit2SayingWhy() {
        String reason = CudaContext.unavailableReason();
        Result r = latteWithoutDevice("bench", "kernels", "--json", tmp.resolve("k.json").toString());
        assertBadInput(r, "bench kernels: no GPU: " + (reason != null ? reason : "no device ("));
        assertTrue(!Files.exists(tmp.resolve("k.json")));
    }

    @Test
    void kernelsListNeedsNoGpu() {
        Result r = latte("bench", "kernels", "--list");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("batch 2 heads 8 head_dim 160 queries 144 keys 77"), r.out()); // 768: 12x12
        assertTrue(r.out().strip().endsWith(KernelCases.sd15(2, 2).size() + " cases"), r.out());
        assertBadInput(latte("bench", "kernels", "--runs", "5"), "--runs must be >= 20");
        assertBadInput(latte("bench", "kernels", "--dtype", "bf16"), "--dtype must be fp16 or fp32");
    }

    /** The op-case table's CI rows are what bench kernels --config ci times (in-place variants time no new kernel). */
    @Test
    void kernelsListOfTheOpCaseTable() {
        Result r = latte("bench", "kernels", "--list", "--config", "ci");
        assertEquals(0, r.code(), r.err());
        long rows = dev.latte.bench.OpCases.ci().stream().filter(c -> c.inPlace() < 0).count();
        assertTrue(r.out().strip().endsWith(rows + " cases"), r.out());
        assertTrue(r.out().contains("batch 2 heads 1 head_dim 160 queries 20 keys 77"), r.out());
    }

    @Test
    void kernelVersionsByName() {
        Result r = latte("bench", "kernels", "--list", "--config", "ci", "--version", "attention");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("attention=v1   sm_any fp32,fp16"), r.out());
        assertTrue(r.out().contains("attention=v2   sm_80  fp16      FlashAttention-2 on tensor cores"), r.out());
        assertBadInput(latte("bench", "kernels", "--list", "--version", "softmax"),
                "--version takes a kernel family (attention, linear, conv) or all, not 'softmax'");
        assertBadInput(latte("bench", "kernels", "--list", "--kernels", "attention=v9"),
                "no kernel version attention=v9 (attention has v1, v2)");
    }

    /**
     * --list says which libraries the library tactics found (version and path) or why not; forcing
     * one whose library is absent is a one-line error, exit 2, never a silent fallback.
     */
    @Test
    void libraryTacticsReportTheirLibraries() {
        Result r = latte("bench", "kernels", "--list", "--config", "ci", "--version", "linear");
        assertEquals(0, r.code(), r.err());
        String lt = dev.latte.cuda.CublasLt.unavailableReason(), dnn = dev.latte.cuda.Cudnn.unavailableReason();
        assertTrue(r.out().contains("library linear=cublaslt: " + (lt == null ? "cuBLASLt " : "unavailable: " + lt)),
                r.out());
        assertTrue(r.out().contains("library conv=cudnn: " + (dnn == null ? "cuDNN " : "unavailable: " + dnn)), r.out());
        assertTrue(r.out().contains("linear=cublaslt sm_any fp32,fp16 cuBLASLt matmul (library)"), r.out());
        Result forced = latte("bench", "kernels", "--list", "--config", "ci", "--kernels", "linear=cublaslt");
        if (lt != null) {
            assertBadInput(forced, "bench kernels: --kernels: linear=cublaslt unavailable: no libcublasLt.so.13 or"
                    + " libcublasLt.so.12 (tried: ");
        } else {
            assertEquals(0, forced.code(), forced.err());
        }
        Result conv = latte("bench", "kernels", "--kernels", "conv=cudnn", "--config", "ci");
        if (dnn != null) {
            assertBadInput(conv, "bench kernels: --kernels: conv=cudnn unavailable: no libcudnn.so.9 (tried: ");
        }
    }

    @Test
    void kernelsListOfACustomConfig() throws IOException {
        Result r = latte("bench", "kernels", "--list", "--config", tinyConfig().toString(), "--sizes", "128",
                "--batch", "1");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("batch 1 heads 8 head_dim 4 queries 256 keys 77"), r.out());
    }

    /** The kernels JSON from a fake timing source: every field, and the rates computed from the median. */
    @Test
    void kernelsJsonSchema() throws IOException {
        List<KernelCase> cases = KernelCases.sd15(2, 2).subList(0, 12);
        KernelBench.Timer fake = (c, warmup, runs) -> {
            if (c.op().equals("silu")) {
                throw new KernelBench.Unsupported("pretend");
            }
            if (c.op().equals("conv2d")) {
                throw new IllegalStateException("broken");
            }
            double[] ms = new double[runs];
            for (int i = 0; i < runs; i++) {
                ms[i] = 0.1 + 0.001 * i;
            }
            return ms;
        };
        var device = new KernelBench.Device("Fake H100", "sm_90", 90, 132, 1_830_000, 2_619_000, 5120, 50 << 20,
                80L << 30, "13.0", "[13, 0]", 989.4e12, 1978.9e12, 66.9e12, 3.35e12, 2.8e12);
        List<KernelBench.Result> results = KernelBench.run(cases, fake, 5, 20, device, "fp16");
        ObjectNode provenance = JSON.createObjectNode().put("date", "now").put("commit", "abc");
        List<KernelCase> linears = cases.stream().filter(c -> c.op().equals("linear")).toList();
        List<KernelBench.Result> blas = KernelBench.run(linears, fake, 5, 20, device, "fp16");
        ObjectNode root = BenchReport.kernels(results, device, new KernelBench.LaunchOverhead(10000, 2.5, 1.9, 9.0),
                Map.of("cublas_gemm_ex_fp16", new BenchReport.Baseline("ok", "libcublas.so.13", blas),
                        "cudnn_convolution", new BenchReport.Baseline("unavailable: pretend", null, null)),
                "fp16", 5, 20, provenance);
        Path file = tmp.resolve("kernels.json");
        BenchReport.write(file, root);
        JsonNode j = JSON.readTree(file.toFile());
        assertEquals(BenchReport.KERNELS_SCHEMA, j.get("schema").asText());
        for (String k : List.of("benchmark", "date", "commit", "dtype", "warmup_runs", "runs", "timing", "device",
                "launch_overhead", "baselines", "cases", "kernel_ms_per_step")) {
            assertTrue(j.has(k), k);
        }
        assertEquals(Set.of("name", "arch", "compute_capability", "multiprocessors", "clock_khz", "memory_clock_khz",
                "memory_bus_width_bits", "l2_bytes", "total_memory_bytes", "driver", "nvrtc",
                "peak_fp16_tensor_flops_per_s", "peak_int8_tensor_ops_per_s", "peak_fp32_flops_per_s",
                "bandwidth_theoretical_bytes_per_s", "bandwidth_measured_d2d_bytes_per_s"), names(j.get("device")));
        assertEquals(2.5, j.at("/launch_overhead/ffm_host_us_per_launch").asDouble());
        assertTrue(j.at("/launch_overhead/jcuda_jni").asText().startsWith("unavailable: "));
        assertEquals("unavailable: pretend", j.at("/baselines/cudnn_convolution").asText());
        assertEquals("not run", j.at("/baselines/cublas_gemm_ex_int8").asText());
        assertTrue(j.at("/baselines/jcublas").asText().startsWith("unavailable: "));
        JsonNode blasCases = j.at("/baselines/cublas_gemm_ex_fp16/cases");
        assertEquals(linears.size(), blasCases.size());
        for (JsonNode b : blasCases) {
            JsonNode c = j.get("cases").get(b.get("case_index").asInt());
            assertEquals("linear", c.get("op").asText());
            assertEquals(c.get("shape").asText(), b.get("shape").asText());
            assertEquals(c.get("tflops_per_s").asDouble(), b.get("tflops_per_s").asDouble(), 1e-12);
        }
        assertEquals(12, j.get("cases").size());
        Set<String> caseFields = Set.of("config", "op", "shape", "count_per_step", "example", "flops", "bytes", "bound",
                "status", "median_ms", "p10_ms", "p90_ms", "min_ms", "max_ms", "tflops_per_s", "gb_per_s",
                "fraction_of_peak", "step_ms", "raw_ms");
        double stepMs = 0;
        for (JsonNode c : j.get("cases")) {
            assertEquals(caseFields, names(c));
            if (c.get("op").asText().equals("silu") || c.get("op").asText().equals("conv2d")) {
                assertEquals(c.get("op").asText().equals("silu") ? "not supported: pretend"
                        : "failed: IllegalStateException: broken", c.get("status").asText());
                assertTrue(c.get("median_ms").isNull() && c.get("raw_ms").isEmpty());
                continue;
            }
            assertEquals("ok", c.get("status").asText());
            assertEquals(20, c.get("raw_ms").size());
            double median = 0.1 + 0.001 * 9.5;
            assertEquals(median, c.get("median_ms").asDouble(), 1e-12);
            assertEquals(0.1 + 0.001 * 1.9, c.get("p10_ms").asDouble(), 1e-12);
            double flopsPerS = c.get("flops").asDouble() / (median * 1e-3);
            double bytesPerS = c.get("bytes").asDouble() / (median * 1e-3);
            assertEquals(flopsPerS / 1e12, c.get("tflops_per_s").asDouble(), 1e-9);
            assertEquals(bytesPerS / 1e9, c.get("gb_per_s").asDouble(), 1e-9);
            double expected = c.get("bound").asText().equals("compute") ? flopsPerS / 989.4e12 : bytesPerS / 2.8e12;
            assertEquals(expected, c.get("fraction_of_peak").asDouble(), 1e-12);
            stepMs += median * c.get("count_per_step").asInt();
        }
        assertEquals(stepMs, j.at("/kernel_ms_per_step/sd15 512x512 batch 2").asDouble(), 1e-9);
    }

    @Test
    void unetStepOfAConfigWithRandomWeights() throws IOException {
        Path json = tmp.resolve("unet.json");
        Result r = latte("bench", "unet", "--config", tinyConfig().toString(), "--height", "128", "--width", "128",
                "--warmup", "1", "--iters", "3", "--threads", "2", "--json", json.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("unet step") && r.out().contains("128x128 image"), r.out());
        JsonNode j = JSON.readTree(json.toFile());
        assertEquals(BenchReport.UNET_SCHEMA, j.get("schema").asText());
        assertEquals("latte", j.get("runtime").asText());
        assertEquals(16, j.at("/input/latent_height").asInt());
        assertEquals(3, j.at("/latency_ms/raw").size());
        for (String k : List.of("median", "p10", "p90", "min", "max")) {
            assertTrue(j.get("latency_ms").get(k).asDouble() > 0, k);
        }
        var unet = new UNet2DConditionModel(UNetConfig.parse(TINY, "tiny"), "tiny");
        long params = RandomWeights.parameters(unet).stream().mapToLong(p -> p.shape().numel()).sum();
        assertEquals(4 * params, j.at("/memory/weight_bytes").asLong()); // fp32 on the CPU
        assertTrue(j.at("/memory/arena_bytes").asLong() > 0);
        assertEquals(j.at("/memory/arena_bytes").asLong() + 4 * params, j.at("/memory/peak_bytes").asLong());
        assertTrue(j.get("ops_per_step").asInt() > 100);
        assertTrue(j.get("kernels_per_step").isNull()); // no GPU: no launches to count
        assertEquals(0, j.get("tactics").size()); // one kernel per op on the CPU: nothing chosen
    }

    @Test
    void unetStepBadInput() {
        assertBadInput(latte("bench", "unet", "--config", "sd15", "--graph"), "--graph", "--backend cuda");
        assertBadInput(latte("bench", "unet", "--config", "sd16"), "neither a built-in config");
        assertBadInput(latte("bench", "unet", "--config", "sd15", "--height", "500"), "multiple of 8");
        assertBadInput(latte("bench", "unet", "--config", "sd15", "--dtype", "fp16"), "needs --backend cuda");
        String reason = CudaContext.unavailableReason();
        if (reason != null) {
            assertBadInput(latte("bench", "unet", "--config", "sd15", "--backend", "cuda", "--graph"),
                    "cuda backend unavailable: " + reason);
        }
    }

    private Path unetTinyCopy() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("unet-tiny"));
        for (String f : List.of(UNetModel.CONFIG, UNetModel.WEIGHT_FILES.getFirst())) {
            Files.copy(Resources.unetTiny().resolve(f), dir.resolve(f));
        }
        return dir;
    }

    /**
     * bench unet --weights: a folder's weights read from the mapped file, never written; the host
     * block says where resident memory is (packs, in-place and heap weights, arena).
     */
    @Test
    void unetStepFromMappedWeights() throws IOException {
        Path dir = unetTinyCopy();
        Path file = dir.resolve(UNetModel.WEIGHT_FILES.getFirst());
        byte[] before = Files.readAllBytes(file);
        var modified = Files.getLastModifiedTime(file);
        long fileBytes;
        try (UNetModel m = UNetModel.load(dir)) {
            fileBytes = m.weights().tensors().stream().mapToLong(TensorInfo::byteSize).sum();
        }
        for (String load : List.of("map", "heap")) {
            Path json = tmp.resolve("unet-" + load + ".json");
            Result r = latte("bench", "unet", "--weights", dir.toString(), "--load", load, "--height", "128", "--width",
                    "128", "--warmup", "1", "--iters", "2", "--threads", "2", "--json", json.toString());
            assertEquals(0, r.code(), r.err());
            JsonNode h = JSON.readTree(json.toFile()).get("host");
            assertEquals(fileBytes, h.get("weight_file_bytes").asLong());
            assertTrue(h.get("packed_weight_bytes").asLong() > 0);
            assertEquals(JSON.readTree(json.toFile()).at("/memory/arena_bytes").asLong(), h.get("arena_bytes").asLong());
            assertTrue(JSON.readTree(json.toFile()).get("load_ms").asDouble() > 0);
            assertTrue(h.get("peak_resident_bytes").asLong() > 0 && h.get("resident_anon_bytes").asLong() > 0);
            if (load.equals("map")) {
                assertEquals(fileBytes, h.get("mapped_weight_bytes").asLong());
                assertEquals(0, h.get("heap_weight_bytes").asLong());
                long inPlace = h.get("in_place_weight_bytes").asLong();
                assertTrue(inPlace > 0 && inPlace < fileBytes / 10, "in place " + inPlace);
            } else {
                assertEquals(0, h.get("mapped_weight_bytes").asLong());
                assertTrue(h.get("heap_weight_bytes").asLong() > 0); // biases and norms stay heap copies
            }
        }
        assertArrayEquals(before, Files.readAllBytes(file), "the weights file was written");
        assertEquals(modified, Files.getLastModifiedTime(file));
    }

    @Test
    void unetStepFromMappedWeightsBadInput() throws IOException {
        Path dir = unetTinyCopy();
        Path w = dir.resolve(UNetModel.WEIGHT_FILES.getFirst());
        assertBadInput(latte("bench", "unet", "--weights", dir.toString(), "--config", "sd15"), "not both");
        assertBadInput(latte("bench", "unet", "--weights", dir.toString(), "--load", "disk"), "--load must be");
        assertBadInput(latte("bench", "unet", "--config", "sd15", "--load", "map"), "give --weights");
        assertBadInput(latte("bench", "unet", "--weights", dir.toString(), "--json", w.toString()),
                "would replace the input");
        String lastTensor;
        try (SafeTensorsFile f = SafeTensorsFile.open(w)) {
            lastTensor = f.tensors().stream().max((a, b) -> Long.compare(a.end(), b.end())).orElseThrow().name();
        }
        try (FileChannel ch = FileChannel.open(w, StandardOpenOption.WRITE)) {
            ch.truncate(ch.size() - 100);
        }
        assertBadInput(latte("bench", "unet", "--weights", dir.toString(), "--height", "128", "--width", "128"),
                UNetModel.WEIGHT_FILES.getFirst(), "'" + lastTensor + "'", "truncated");
    }

    /** export-random writes exactly the weights bench unet --config uploads, as a loadable diffusers folder. */
    @Test
    void exportRandomMatchesTheBenchWeights() throws IOException {
        Path out = tmp.resolve("exported");
        Result r = latte("export-random", "--config", tinyConfig().toString(), "--out", out.toString(), "--seed", "7",
                "--dtype", "fp32");
        assertEquals(0, r.code(), r.err());
        try (UNetModel m = UNetModel.load(out)) {
            var params = RandomWeights.parameters(m.unet());
            assertEquals(params.size(), m.weights().tensors().size());
            for (Value p : params.subList(0, 20)) {
                assertArrayEquals(RandomWeights.values(7, p.name(), p.shape()), m.weights().toFloatArray(p.name()),
                        p.name());
            }
            float[] w = m.weights().toFloatArray("down_blocks.1.resnets.0.conv1.weight"); // [64, 32, 3, 3]
            double var = 0;
            for (float v : w) {
                var += v * v;
            }
            assertEquals(1.0 / (32 * 9), var / w.length, 0.1 / (32 * 9)); // N(0, 1/fan_in)
        }
        assertBadInput(latte("export-random", "--config", "sd15"), "--out is required");
    }

    @Test
    void cublasWithoutItsLibrarySaysWhy() {
        String reason = dev.latte.bench.CublasGemm.unavailableReason();
        assumeTrue(reason != null, "cuBLAS is present");
        assertTrue(reason.startsWith("no libcublas.so.13 or libcublas.so.12 (tried: "), reason);
    }

    @Test
    void builtInSd15ConfigIsTheOneExported() {
        UNetConfig cfg = BuiltinConfigs.sd15();
        long params = RandomWeights.parameters(new UNet2DConditionModel(cfg, "sd15")).stream()
                .mapToLong(p -> p.shape().numel()).sum();
        assertEquals(859_520_964L, params); // SD1.5's UNet
    }

    private static Set<String> names(JsonNode n) {
        Set<String> s = new TreeSet<>();
        n.fieldNames().forEachRemaining(s::add);
        return s;
    }
}
