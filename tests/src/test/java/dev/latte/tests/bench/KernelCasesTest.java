package dev.latte.tests.bench;

import dev.latte.bench.DevicePeaks;
import dev.latte.bench.KernelCase;
import dev.latte.bench.KernelCases;
import dev.latte.bench.Stats;
import dev.latte.graph.Graph;
import dev.latte.plan.BuiltinConfigs;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The kernel-benchmark table derived from SD1.5's fused graph, its FLOP/byte formulas and the peak table. */
class KernelCasesTest {
    static final List<KernelCase> CASES = KernelCases.sd15(2, 2);

    static KernelCase find(String config, String op, String shape) {
        List<KernelCase> hits = CASES.stream().filter(c -> c.config().equals(config) && c.op().equals(op)
                && c.shape().equals(shape)).toList();
        assertEquals(1, hits.size(), () -> "no single " + op + " " + shape + " in " + config + ":\n"
                + CASES.stream().filter(c -> c.op().equals(op)).map(c -> c.config() + " | " + c.shape())
                .collect(Collectors.joining("\n")));
        return hits.getFirst();
    }

    static final String C512 = "sd15 512x512 batch 2", C768 = "sd15 768x768 batch 2";

    @Test
    void convolutionsAt64x64() {
        // ResnetBlock2D conv1 (GroupNorm+SiLU on load) and conv2 (+ the skip in the epilogue), 320 channels
        KernelCase conv1 = find(C512, "conv2dFused",
                "x [2, 320, 64, 64] w [320, 320, 3, 3] stride 1 pad 1 groupnorm 32+silu bias -> [2, 320, 64, 64]");
        assertEquals(2, conv1.count()); // down_blocks.0.resnets.0/1.conv1
        assertEquals(2L * 2 * 320 * 64 * 64 * 320 * 3 * 3, conv1.flops());
        // x, gamma, beta, w, bias, out at 2 bytes: each read or written once
        assertEquals(2L * (2 * 320 * 64 * 64 + 320 + 320 + 320 * 320 * 9 + 320 + 2 * 320 * 64 * 64), conv1.bytes());
        assertEquals("compute", conv1.bound());
        KernelCase conv2 = find(C512, "conv2dFused",
                "x [2, 320, 64, 64] w [320, 320, 3, 3] stride 1 pad 1 groupnorm 32+silu bias +residual -> [2, 320, 64, 64]");
        assertEquals(5, conv2.count()); // down_blocks.0 ×2, up_blocks.3 ×3
        // 1280 channels at 8x8 (the lowest level of a 512 image) and 96x96 at 768
        assertTrue(CASES.stream().anyMatch(c -> c.config().equals(C512) && c.shape().startsWith("x [2, 1280, 8, 8] w [1280, 1280, 3, 3]")));
        assertTrue(CASES.stream().anyMatch(c -> c.config().equals(C768) && c.shape().startsWith("x [2, 320, 96, 96] w [320, 320, 3, 3]")));
    }

    @Test
    void attentionHeadDims() {
        // self-attention reads q, k, v from one [3, B, S, C] projection (Fusion's linearQkv)
        KernelCase self = find(C512, "attentionQkv",
                "batch 2 heads 8 head_dim 40 queries 4096 keys 4096 packed qkv -> [2, 4096, 320]");
        KernelCase cross = find(C512, "attention", "batch 2 heads 8 head_dim 40 queries 4096 keys 77 -> [2, 4096, 320]");
        assertEquals(5, self.count()); // down_blocks.0 ×2, up_blocks.3 ×3
        assertEquals(5, cross.count());
        assertEquals(4L * 2 * 8 * 4096 * 4096 * 40, self.flops());
        assertEquals(2L * 4 * 2 * 4096 * 320, self.bytes()); // q, k, v, out
        assertEquals(2L * (2 * 2 * 4096 * 320 + 2 * 2 * 77 * 320), cross.bytes());
        find(C512, "attention", "batch 2 heads 8 head_dim 80 queries 1024 keys 77 -> [2, 1024, 640]");
        KernelCase mid = find(C512, "attentionQkv", "batch 2 heads 8 head_dim 160 queries 64 keys 64 packed qkv -> [2, 64, 1280]");
        assertEquals(1, mid.count()); // mid_block only: down_blocks.3 and up_blocks.0 have no attention
        find(C768, "attention", "batch 2 heads 8 head_dim 40 queries 9216 keys 77 -> [2, 9216, 320]");
        // 16 transformers, each with one self- and one cross-attention
        assertEquals(16, CASES.stream().filter(c -> c.config().equals(C512) && c.op().equals("attention"))
                .mapToInt(KernelCase::count).sum());
        assertEquals(16, CASES.stream().filter(c -> c.config().equals(C512) && c.op().equals("attentionQkv"))
                .mapToInt(KernelCase::count).sum());
        KernelCase qkv = find(C512, "linearQkv", "x [2, 4096, 320] w 3x[320, 320] -> [3, 2, 4096, 320]");
        assertEquals(5, qkv.count());
        assertEquals(3 * 2L * 2 * 4096 * 320 * 320, qkv.flops());
        assertEquals(2L * (2 * 4096 * 320 + 3 * 320 * 320 + 3 * 2 * 4096 * 320), qkv.bytes());
    }

    @Test
    void gegluAndLinears() {
        // GEGLU in the projection's epilogue: the [2, 4096, 2560] projection is never stored
        KernelCase proj = find(C512, "linearGeglu", "x [2, 4096, 320] w [2560, 320] bias +geglu -> [2, 4096, 1280]");
        assertEquals(5, proj.count());
        assertEquals(2L * 2 * 4096 * 320 * 2560, proj.flops());
        assertEquals(2L * (2 * 4096 * 320 + 2560 * 320 + 2560 + 2 * 4096 * 1280), proj.bytes());
        assertTrue(CASES.stream().noneMatch(c -> c.op().equals("geglu") || c.op().equals("add")
                && c.shape().contains("4096, 320]")), "GEGLU and the transformer's residual adds are fused");
        // the feed-forward's second linear with the residual add in its epilogue
        KernelCase ff = find(C512, "linearResidual", "x [2, 4096, 1280] w [320, 1280] bias +residual -> [2, 4096, 320]");
        assertEquals(5, ff.count());
        assertEquals(2L * (2 * 4096 * 1280 + 320 * 1280 + 320 + 2 * 4096 * 320 + 2 * 4096 * 320), ff.bytes());
        KernelCase toK = find(C512, "linear", "x [2, 77, 768] w [320, 768] -> [2, 77, 320]");
        assertEquals(10, toK.count()); // to_k and to_v of 5 cross-attentions
        assertEquals(2L * 2 * 77 * 768 * 320, toK.flops());
        assertEquals(2L * (2 * 77 * 768 + 320 * 768 + 2 * 77 * 320), toK.bytes());
    }

    @Test
    void countsCoverEveryOpOfTheStep() {
        for (int side : KernelCases.SD15_SIZES) {
            Graph g = KernelCases.graph(BuiltinConfigs.sd15(), "sd15", 2, side, side, 77);
            String config = "sd15 " + side + "x" + side + " batch 2";
            List<KernelCase> cases = CASES.stream().filter(c -> c.config().equals(config)).toList();
            assertEquals(g.ops().size(), cases.stream().mapToInt(KernelCase::count).sum(), config);
            assertEquals(cases.size(), cases.stream().map(c -> c.op() + " " + c.shape()).distinct().count(), config);
        }
        Map<String, Long> flops = CASES.stream().collect(Collectors.groupingBy(KernelCase::config,
                Collectors.summingLong(c -> c.flops() * c.count())));
        // SD1.5 at 512x512 is about 0.4 TMAC per image: 1.6 TFLOP for the batch of 2 (a sanity band)
        assertTrue(flops.get(C512) > 1.3e12 && flops.get(C512) < 1.9e12, flops.toString());
        assertTrue(flops.get(C768) > 2.2 * flops.get(C512), flops.toString());
    }

    @Test
    void peakTable() {
        // H100 SXM: 132 SMs at 1.83 GHz: 989 TFLOP/s fp16 dense, 1979 TOP/s int8; A100: 312 TFLOP/s
        assertEquals(989.4e12, DevicePeaks.peakOpsPerSecond(90, 132, 1_830_000, "fp16"), 0.1e12);
        assertEquals(1978.9e12, DevicePeaks.peakOpsPerSecond(90, 132, 1_830_000, "int8"), 0.1e12);
        assertEquals(311.9e12, DevicePeaks.peakOpsPerSecond(80, 108, 1_410_000, "fp16"), 0.1e12);
        assertEquals(19.5e12, DevicePeaks.peakOpsPerSecond(80, 108, 1_410_000, "fp32"), 0.1e12);
        assertEquals(165.2e12, DevicePeaks.peakOpsPerSecond(89, 128, 2_520_000, "fp16"), 0.1e12);
        assertTrue(Double.isNaN(DevicePeaks.peakOpsPerSecond(120, 100, 2_000_000, "fp16"))); // not in the table
        assertTrue(Double.isNaN(DevicePeaks.peakOpsPerSecond(90, 132, 0, "fp16")));          // clock unknown
        // H100 SXM HBM3: 2 x 2.619 GHz x 5120 bits / 8 = 3.35 TB/s
        assertEquals(3.352e12, DevicePeaks.theoreticalBandwidth(2_619_000, 5120), 0.001e12);
    }

    @Test
    void operandCopiesCoverTwiceTheL2() {
        long l2 = 50L << 20; // H100
        assertEquals(10, dev.latte.bench.KernelBench.inputSets(10L << 20, l2));
        assertEquals(1, dev.latte.bench.KernelBench.inputSets(1L << 30, l2));
        assertEquals(16, dev.latte.bench.KernelBench.inputSets(1024, l2));
        assertEquals(1, dev.latte.bench.KernelBench.inputSets(1024, 0));
    }

    @Test
    void percentilesAreNumpys() {
        Stats s = Stats.of(new double[] {10, 1, 9, 2, 8, 3, 7, 4, 6, 5});
        assertEquals(5.5, s.median(), 1e-12);
        assertEquals(1.9, s.p10(), 1e-12);  // np.percentile(range(1, 11), 10)
        assertEquals(9.1, s.p90(), 1e-12);
        assertEquals(1, s.min());
        assertEquals(10, s.max());
        assertEquals(7, Stats.of(new double[] {7}).p90());
    }
}
