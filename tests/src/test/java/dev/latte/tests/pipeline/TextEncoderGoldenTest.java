package dev.latte.tests.pipeline;

import dev.latte.clip.ClipTextModel;
import dev.latte.cpu.CpuBackend;
import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.model.ComponentGolden;
import dev.latte.model.GoldenCase;
import dev.latte.model.GraphRunner;
import dev.latte.model.TextEncoderModel;
import dev.latte.tests.Resources;
import dev.latte.weights.ClipTextConfig;
import dev.latte.weights.SafeTensorsFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** CLIPTextModel on the CPU against the text-encoder-tiny goldens (OpenAI's model.py, cross-checked with HF's). */
class TextEncoderGoldenTest {
    static final double GATE = 110;

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2})
    void everyStoredTensorPasses(int c) {
        var dir = Resources.golden("pipeline/text_encoder");
        try (TextEncoderModel model = TextEncoderModel.load(dir); CpuBackend cpu = new CpuBackend();
             GraphRunner runner = new GraphRunner(cpu, model.weights());
             SafeTensorsFile f = SafeTensorsFile.open(dir.resolve("case-" + c + ".safetensors"))) {
            int[] s = f.info("input_ids").intShape();
            Graph graph = Fusion.fuse(model.graph(s[0], s[1]));
            float[] ids = ComponentGolden.ids(f, "input_ids");
            int d = model.config().hiddenSize();
            List<GoldenCase.Row> rows = ComponentGolden.validate(runner, graph, f, Map.of(ClipTextModel.INPUT, ids),
                    Set.of(), Map.of("pooler_output", r -> TextEncoderModel.pool(r.get(ClipTextModel.OUT), ids, s[0],
                            s[1], d)));
            assertEquals(5, rows.size(), rows.toString());
            for (GoldenCase.Row r : rows) {
                System.out.printf("text-encoder case-%d %-20s %s %.1f dB%n", c, r.name(), r.shape(), r.compare().psnr());
                assertTrue(r.compare().psnr() >= GATE, r.name() + ": " + r.compare().psnr() + " dB");
            }
        }
    }

    @Test
    void sd15ConfigHasItsParameterCount() {
        ClipTextConfig sd15 = ClipTextConfig.parse("""
                {"architectures": ["CLIPTextModel"], "hidden_act": "quick_gelu", "hidden_size": 768,
                 "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
                 "model_type": "clip_text_model", "num_attention_heads": 12, "num_hidden_layers": 12,
                 "projection_dim": 768, "vocab_size": 49408}""", "sd15 text_encoder/config.json");
        assertEquals(123_060_480L, dev.latte.model.ModelWeights.parameterCount(
                TextEncoderModel.parameters(new ClipTextModel(sd15))));
    }
}
