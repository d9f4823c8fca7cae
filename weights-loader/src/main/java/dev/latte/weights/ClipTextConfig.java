package dev.latte.weights;

import java.nio.file.Path;

/**
 * transformers' {@code CLIPTextConfig} ({@code text_encoder/config.json} of a diffusers folder),
 * with transformers' defaults for absent keys. {@code bos/eos/pad_token_id} are not read: the
 * pipeline takes its special tokens from the tokenizer.
 */
public record ClipTextConfig(int vocabSize, int hiddenSize, int intermediateSize, int numHiddenLayers,
                             int numAttentionHeads, int maxPositionEmbeddings, String hiddenAct, double layerNormEps,
                             String modelType) {

    public int headDim() {
        return hiddenSize / numAttentionHeads;
    }

    public static ClipTextConfig load(Path configJson) {
        return ConfigReader.load(configJson, ClipTextConfig::parse);
    }

    public static ClipTextConfig parse(String json, String source) {
        ConfigReader r = new ConfigReader(Json.readObject(json, source, "config"), source);
        ClipTextConfig c = new ClipTextConfig(
                r.integer("vocab_size", 49408),
                r.integer("hidden_size", 512),
                r.integer("intermediate_size", 2048),
                r.integer("num_hidden_layers", 12),
                r.integer("num_attention_heads", 8),
                r.integer("max_position_embeddings", 77),
                r.string("hidden_act", "quick_gelu"),
                r.number("layer_norm_eps", 1e-5),
                r.string("model_type", "clip_text_model"));
        if (c.vocabSize <= 0 || c.hiddenSize <= 0 || c.intermediateSize <= 0 || c.numHiddenLayers <= 0
                || c.numAttentionHeads <= 0 || c.maxPositionEmbeddings <= 0) {
            throw r.fail("hidden_size", "and the other sizes must be positive");
        }
        if (c.hiddenSize % c.numAttentionHeads != 0) {
            throw r.fail("num_attention_heads", c.numAttentionHeads + " does not divide hidden_size " + c.hiddenSize);
        }
        if (!c.hiddenAct.equals("quick_gelu") && !c.hiddenAct.equals("gelu")) {
            throw r.fail("hidden_act", "'" + c.hiddenAct + "' is not supported (quick_gelu, gelu)");
        }
        if (!c.modelType.equals("clip_text_model")) {
            throw r.fail("model_type", "is '" + c.modelType + "'; expected a CLIPTextModel (clip_text_model)");
        }
        return c;
    }
}
