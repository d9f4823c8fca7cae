package dev.latte.plan;

import dev.latte.weights.UNetConfig;

import java.util.List;

/**
 * UNet configs built in, so memory plans (which need shapes, not weights) can be made without a
 * checkpoint at hand.
 */
public final class BuiltinConfigs {
    /**
     * The {@code unet/config.json} of Stable Diffusion 1.5 ({@code UNet2DConditionModel}, diffusers'
     * layout): block_out_channels 320/640/1280/1280, 2 layers per block, 8 heads, cross-attention
     * width 768, GroupNorm with 32 groups, latent 4 channels at 1/8 of the image size.
     */
    public static final String SD15_JSON = """
            {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.6.0", "act_fn": "silu",
             "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280],
             "center_input_sample": false, "cross_attention_dim": 768,
             "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
             "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4,
             "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32,
             "out_channels": 4, "sample_size": 64,
             "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}
            """;

    /** Image pixels per latent pixel (the SD VAE downsamples by 8). */
    public static final int VAE_SCALE = 8;

    private BuiltinConfigs() {
    }

    public static UNetConfig sd15() {
        return UNetConfig.parse(SD15_JSON, "built-in sd15 config");
    }

    /** The built-in config called {@code name}, or null. */
    public static UNetConfig byName(String name) {
        return switch (name) {
            case "sd15" -> sd15();
            default -> null;
        };
    }

    public static List<String> names() {
        return List.of("sd15");
    }
}
