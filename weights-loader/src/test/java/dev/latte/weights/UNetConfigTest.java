package dev.latte.weights;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class UNetConfigTest {
    @Test
    void goldenTinyUnetConfig() throws Exception {
        UNetConfig c = UNetConfig.load(GoldenLinearTest.resource("unet-tiny-config.json"));
        assertAll(
                () -> assertEquals(16, c.sampleSize()),
                () -> assertEquals(3, c.levels()),
                () -> assertEquals(List.of("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"), c.downBlockTypes()),
                () -> assertEquals(List.of("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), c.upBlockTypes()),
                () -> assertEquals("UNetMidBlock2DCrossAttn", c.midBlockType()),
                () -> assertEquals(List.of(32, 64, 64), c.blockOutChannels()),
                () -> assertEquals(List.of(2, 2, 2), c.layersPerBlock()),
                () -> assertEquals(List.of(8, 8, 8), c.attentionHeadDim()),
                () -> assertNull(c.numAttentionHeads()),
                () -> assertEquals(List.of(32, 32, 32), c.crossAttentionDim()),
                () -> assertEquals(List.of(1, 1, 1), c.transformerLayersPerBlock()),
                () -> assertFalse(c.reverseTransformerLayersPerBlockSet()),
                () -> assertEquals(List.of(false, false, false), c.onlyCrossAttention()),
                () -> assertEquals(8, c.normNumGroups()),
                () -> assertEquals(1e-5, c.normEps()),
                () -> assertEquals(1.0, c.midBlockScaleFactor()),
                () -> assertEquals(4, c.inChannels()),
                () -> assertEquals(4, c.outChannels()),
                () -> assertTrue(c.flipSinToCos()),
                () -> assertEquals(0, c.freqShift()),
                () -> assertEquals("silu", c.actFn()),
                () -> assertFalse(c.useLinearProjection()),
                () -> assertNull(c.midBlockOnlyCrossAttention()),
                () -> assertNull(c.timeEmbeddingDim()),
                () -> assertEquals(128, c.timeEmbedDim()));
    }

    @Test
    void emptyObjectGivesDiffusersDefaults() {
        UNetConfig c = UNetConfig.parse("{}", "defaults");
        UNetConfig expected = new UNetConfig(null, 4, 4, false, true, 0,
                List.of("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                "UNetMidBlock2DCrossAttn",
                List.of("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                List.of(false, false, false, false), List.of(320, 640, 1280, 1280), List.of(2, 2, 2, 2),
                1, 1.0, 0.0, "silu", 32, 1e-5, List.of(1280, 1280, 1280, 1280), List.of(1, 1, 1, 1), false,
                List.of(8, 8, 8, 8), null, false, false, null, null, null, false, "default", false, 1.0,
                "positional", null, null, null, null, 3, 3, "default", null, null, null, null, false, null, null,
                null, false);
        assertEquals(expected, c);
        assertEquals(4, c.levels());
        assertEquals(1280, c.timeEmbedDim());
    }

    @Test
    void perLevelListsAndNullablesAreKept() {
        UNetConfig c = UNetConfig.parse("""
                {"down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                 "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                 "block_out_channels": [320, 640, 1280],
                 "layers_per_block": [1, 2, 3],
                 "transformer_layers_per_block": [1, 2, 10],
                 "attention_head_dim": [5, 10, 20],
                 "num_attention_heads": 4,
                 "cross_attention_dim": 2048,
                 "only_cross_attention": [true, false, false],
                 "reverse_transformer_layers_per_block": [[1], [2, 2], [10]],
                 "sample_size": null, "mid_block_type": null, "norm_num_groups": null,
                 "time_embedding_type": "fourier", "addition_embed_type": "text_time",
                 "addition_time_embed_dim": 256, "mid_block_only_cross_attention": true,
                 "some_future_key": {"ignored": true}}
                """, "sdxl-ish");
        assertEquals(List.of(1, 2, 3), c.layersPerBlock());
        assertEquals(List.of(1, 2, 10), c.transformerLayersPerBlock());
        assertEquals(List.of(5, 10, 20), c.attentionHeadDim());
        assertEquals(List.of(4, 4, 4), c.numAttentionHeads());
        assertEquals(List.of(2048, 2048, 2048), c.crossAttentionDim());
        assertEquals(List.of(true, false, false), c.onlyCrossAttention());
        assertTrue(c.reverseTransformerLayersPerBlockSet());
        assertNull(c.sampleSize());
        assertNull(c.midBlockType());
        assertNull(c.normNumGroups());
        assertEquals("text_time", c.additionEmbedType());
        assertEquals(256, c.additionTimeEmbedDim());
        assertEquals(true, c.midBlockOnlyCrossAttention());
        assertEquals(640, c.timeEmbedDim(), "fourier: 2 x block_out_channels[0]");
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "{\"in_channels\": \"4\"}                | in_channels                  | must be an integer",
            "{\"in_channels\": null}                 | in_channels                  | must be an integer",
            "{\"in_channels\": 4.5}                  | in_channels                  | must be an integer",
            "{\"sample_size\": [64, 64]}             | sample_size                  | must be an integer or null",
            "{\"flip_sin_to_cos\": 1}                | flip_sin_to_cos              | must be a boolean",
            "{\"norm_eps\": \"1e-5\"}                | norm_eps                     | must be a number",
            "{\"act_fn\": 3}                         | act_fn                       | must be a string",
            "{\"down_block_types\": \"DownBlock2D\"} | down_block_types             | must be a list of strings",
            "{\"block_out_channels\": [320, \"x\"]}  | block_out_channels           | must be a list of integers",
            "{\"layers_per_block\": true}            | layers_per_block             | must be an integer or a list",
            "{\"only_cross_attention\": [1, 0, 0, 0]}| only_cross_attention         | must be a boolean or a list",
            "{\"transformer_layers_per_block\": [[1], [2], [3], [4]]} | transformer_layers_per_block | unsupported",
            "{\"down_block_types\": []}              | down_block_types             | must not be empty",
    })
    void badTypesNameSourceAndKey(String json, String key, String problem) {
        assertBad(json, key, problem);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "{\"layers_per_block\": [2, 2]}                 | layers_per_block     | has 2 entries but down_block_types has 4",
            "{\"attention_head_dim\": [8, 8, 8, 8, 8]}      | attention_head_dim   | has 5 entries",
            "{\"cross_attention_dim\": [768]}               | cross_attention_dim  | has 1 entries",
            "{\"num_attention_heads\": [1, 2, 3]}           | num_attention_heads  | has 3 entries",
            "{\"only_cross_attention\": [true]}             | only_cross_attention | has 1 entries",
            "{\"up_block_types\": [\"UpBlock2D\"]}          | up_block_types       | has 1 entries but down_block_types has 4",
            "{\"block_out_channels\": [320, 640, 1280]}     | block_out_channels   | has 3 entries but down_block_types has 4",
    })
    void listLengthsMustMatchLevels(String json, String key, String problem) {
        assertBad(json, key, problem);
    }

    @Test
    void invalidJson() {
        WeightsException e = assertThrows(WeightsException.class, () -> UNetConfig.parse("{\"a\": ", "cfg.json"));
        assertTrue(e.getMessage().startsWith("cfg.json: config is not valid JSON"), e.getMessage());
        assertFalse(e.getMessage().contains("\n"));
        e = assertThrows(WeightsException.class, () -> UNetConfig.parse("[]", "cfg.json"));
        assertEquals("cfg.json: config is not a JSON object but []", e.getMessage());
    }

    @Test
    void loadErrorsNameThePath(@TempDir Path dir) throws IOException {
        WeightsException e = assertThrows(WeightsException.class, () -> UNetConfig.load(dir.resolve("config.json")));
        assertEquals(dir.toAbsolutePath() + ": no config.json", e.getMessage());

        Path bad = dir.resolve("config.json");
        Files.writeString(bad, "{ nope");
        e = assertThrows(WeightsException.class, () -> UNetConfig.load(bad));
        assertTrue(e.getMessage().startsWith(bad + ": config is not valid JSON"), e.getMessage());

        Files.writeString(bad, "{\"in_channels\": 9}");
        assertEquals(9, UNetConfig.load(dir).inChannels(), "a directory means its config.json");
    }

    private static void assertBad(String json, String key, String problem) {
        WeightsException e = assertThrows(WeightsException.class, () -> UNetConfig.parse(json, "unet/config.json"));
        String msg = e.getMessage();
        assertTrue(msg.startsWith("unet/config.json: '" + key + "' "), msg);
        assertTrue(msg.contains(problem), msg);
        assertFalse(msg.contains("\n"), msg);
    }
}
