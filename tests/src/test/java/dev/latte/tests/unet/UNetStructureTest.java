package dev.latte.tests.unet;

import dev.latte.core.Shape;
import dev.latte.graph.Graph;
import dev.latte.graph.Value;
import dev.latte.unet.UNet2DConditionModel;
import dev.latte.weights.UNetConfig;
import dev.latte.weights.WeightsException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The graph's parameters must be exactly diffusers': the published parameter counts of the real
 * Stable Diffusion UNets follow from names and shapes alone, so a missing bias or a wrong width
 * shows up here without any weights.
 */
class UNetStructureTest {
    static final String SD15 = """
            {"_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
             "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": false,
             "cross_attention_dim": 768,
             "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
             "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4,
             "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32,
             "out_channels": 4, "sample_size": 64,
             "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}
            """;
    // Stable Diffusion 2.x: per-level heads, linear projections, 1024-wide context
    static final String SD21 = SD15.replace("\"attention_head_dim\": 8", "\"attention_head_dim\": [5, 10, 20, 20]")
            .replace("\"cross_attention_dim\": 768", "\"cross_attention_dim\": 1024, \"use_linear_projection\": true")
            .replace("\"sample_size\": 64", "\"sample_size\": 96");

    static UNet2DConditionModel unet(String json) {
        return new UNet2DConditionModel(UNetConfig.parse(json, "config.json"), "config.json");
    }

    static long count(Graph g) {
        return g.params().values().stream().mapToLong(v -> v.shape().numel()).sum();
    }

    @Test
    void sd15HasDiffusersParameterCount() {
        Graph g = unet(SD15).graph(2, 64, 64, 77);
        assertEquals(859_520_964L, count(g));
        assertEquals(Shape.of(320, 320, 3, 3), g.params().get("down_blocks.0.resnets.0.conv1.weight").shape());
        assertEquals(Shape.of(320, 768), g.params().get("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight").shape());
        assertEquals(Shape.of(2560, 320), g.params().get("down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight").shape());
        assertEquals(Shape.of(320, 320, 1, 1), g.params().get("down_blocks.0.attentions.0.proj_in.weight").shape());
        assertEquals(Shape.of(1280, 2560, 1, 1), g.params().get("up_blocks.0.resnets.0.conv_shortcut.weight").shape());
        assertEquals(Shape.of(320, 960, 1, 1), g.params().get("up_blocks.3.resnets.0.conv_shortcut.weight").shape());
        assertEquals(Shape.of(1280, 1280, 3, 3), g.params().get("up_blocks.1.upsamplers.0.conv.weight").shape());
        assertEquals(Shape.of(640, 640, 3, 3), g.params().get("up_blocks.2.upsamplers.0.conv.weight").shape());
        assertEquals(Shape.of(2, 4, 64, 64), g.outputs().get("out").shape());
    }

    @Test
    void sd21HasDiffusersParameterCount() {
        Graph g = unet(SD21).graph(1, 96, 96, 77);
        assertEquals(865_910_724L, count(g));
        assertEquals(Shape.of(320, 320), g.params().get("down_blocks.0.attentions.0.proj_in.weight").shape());
    }

    @ParameterizedTest(name = "{0}x{1}")
    @CsvSource({"64, 64", "64, 96", "96, 40", "60, 44", "33, 17", "8, 8"})
    void anyLatentSizeKeepsItsShape(int h, int w) {
        Graph g = unet(SD15).graph(1, h, w, 77);
        assertEquals(Shape.of(1, 4, h, w), g.outputs().get("out").shape());
        // the skip concatenation only type-checks if every upsample lands on its skip's size
        for (Value v : g.outputs().values()) {
            assertTrue(v.shape().numel() > 0);
        }
    }

    @Test
    void unsupportedConfigIsNamed() {
        var e = assertThrows(WeightsException.class,
                () -> unet(SD15.replace("\"act_fn\": \"silu\"", "\"act_fn\": \"gelu\"")));
        assertEquals("config.json: act_fn = gelu is not supported by Latte", e.getMessage());
        e = assertThrows(WeightsException.class, () -> unet(SD15.replace("\"DownBlock2D\"]", "\"AttnDownBlock2D\"]")));
        assertTrue(e.getMessage().contains("down_block_types = AttnDownBlock2D"), e.getMessage());
    }
}
