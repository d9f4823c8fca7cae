package dev.latte.tests.compression;

import dev.latte.core.Int8Mode;
import dev.latte.core.Shape;
import dev.latte.graph.Graph;
import dev.latte.graph.Value;
import dev.latte.graph.WeightFormat;
import dev.latte.prune.Pruner;
import dev.latte.unet.UNet2DConditionModel;
import dev.latte.weights.UNetConfig;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Pruning's rules at Stable Diffusion 1.5's shapes, without weights: the widths {@link Pruner}
 * would keep (GroupNorm groups of 10/20/40 channels, 8 heads of 40/80/160, feed-forward 4·dim)
 * fed to the UNet builder as stored shapes. The graph must build (whole groups, equal heads) and
 * keep every block interface; the parameter counts are what `latte prune` would leave.
 */
class PrunedStructureTest {
    static final String SD15 = """
            {"attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280], "cross_attention_dim": 768,
             "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
             "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
             "layers_per_block": 2, "norm_num_groups": 32, "sample_size": 64}
            """;

    static long count(Graph g) {
        return g.params().values().stream().mapToLong(v -> v.shape().numel()).sum();
    }

    @ParameterizedTest(name = "ratio {0}")
    @CsvSource({"0, 859520964", "0.25, 711664596", "0.5, 503803812", "0.75, 311686788"})
    void sd15PrunedWidthsBuildAndCount(double ratio, long expected) {
        UNetConfig cfg = UNetConfig.parse(SD15, "config.json");
        var unet = new UNet2DConditionModel(cfg, "config.json");
        Graph full = unet.graph(1, 64, 64, 77);
        Map<String, Shape> shapes = full.params().values().stream().collect(Collectors.toMap(Value::name, Value::shape));
        WeightFormat pruned = new WeightFormat() {
            @Override
            public int[] shape(String name) {
                Shape s = shapes.get(name);
                if (s == null) {
                    return null;
                }
                int[] d = s.dims();
                if (name.endsWith(".conv1.weight")) {
                    d[0] = Pruner.keptResnetWidth(d[0], cfg.normNumGroups(), ratio);
                } else if (name.endsWith(".to_q.weight")) {
                    d[0] = 8 * Pruner.keptHeadDim(d[0] / 8, 8, ratio);
                } else if (name.endsWith(".ff.net.2.weight")) {
                    d[1] = Pruner.keptFeedForward(d[1], ratio);
                }
                return d;
            }

            @Override
            public boolean isInt8(String name) {
                return false;
            }

            @Override
            public Int8Mode int8Mode() {
                return Int8Mode.W8A16;
            }
        };
        Graph g = unet.graph(1, 64, 64, 77, pruned);
        long n = count(g);
        System.out.printf("SD1.5 pruned at %.2f: %,d parameters (%.1f%% fewer than %,d)%n", ratio, n,
                100.0 * (count(full) - n) / count(full), count(full));
        assertEquals(expected, n);
        assertEquals(full.outputs().get("out").shape(), g.outputs().get("out").shape());
        for (String block : List.of("down_blocks.0.out", "down_blocks.1.out", "mid_block.out", "up_blocks.3.out")) {
            assertEquals(full.outputs().get(block).shape(), g.outputs().get(block).shape(), block + ": interface kept");
        }
        assertTrue(ratio == 0 ? n == count(full) : n < count(full));
    }
}
