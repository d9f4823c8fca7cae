package dev.latte.pipeline;

import dev.latte.weights.ClipTextConfig;
import dev.latte.weights.VaeConfig;

/**
 * Stable Diffusion 1.5's {@code text_encoder/config.json} (openai/clip-vit-large-patch14's text
 * tower) and {@code vae/config.json}, built in so plans need no checkpoint.
 */
public final class Sd15Configs {
    public static final String TEXT_ENCODER_JSON = """
            {"architectures": ["CLIPTextModel"], "hidden_act": "quick_gelu", "hidden_size": 768,
             "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
             "model_type": "clip_text_model", "num_attention_heads": 12, "num_hidden_layers": 12,
             "projection_dim": 768, "vocab_size": 49408}""";
    public static final String VAE_JSON = """
            {"_class_name": "AutoencoderKL", "_diffusers_version": "0.6.0", "act_fn": "silu",
             "block_out_channels": [128, 256, 512, 512],
             "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
             "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3,
             "sample_size": 512,
             "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]}""";

    private Sd15Configs() {
    }

    public static ClipTextConfig textEncoder() {
        return ClipTextConfig.parse(TEXT_ENCODER_JSON, "built-in sd15 text_encoder config");
    }

    public static VaeConfig vae() {
        return VaeConfig.parse(VAE_JSON, "built-in sd15 vae config");
    }
}
