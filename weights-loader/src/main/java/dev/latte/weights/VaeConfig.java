package dev.latte.weights;

import java.nio.file.Path;
import java.util.List;

/** diffusers' {@code AutoencoderKL} config ({@code vae/config.json}), with diffusers' defaults. */
public record VaeConfig(int inChannels, int outChannels, List<String> downBlockTypes, List<String> upBlockTypes,
                        List<Integer> blockOutChannels, int layersPerBlock, String actFn, int latentChannels,
                        int normNumGroups, int sampleSize, double scalingFactor, Double shiftFactor,
                        boolean useQuantConv, boolean usePostQuantConv, boolean midBlockAddAttention) {

    /** Image pixels per latent pixel: 2^(levels − 1). */
    public int downscale() {
        return 1 << (blockOutChannels.size() - 1);
    }

    public static VaeConfig load(Path configJson) {
        return ConfigReader.load(configJson, VaeConfig::parse);
    }

    public static VaeConfig parse(String json, String source) {
        ConfigReader r = new ConfigReader(Json.readObject(json, source, "config"), source);
        String cls = r.optString("_class_name", "AutoencoderKL");
        if (cls != null && !cls.equals("AutoencoderKL")) {
            throw r.fail("_class_name", "is '" + cls + "'; Latte reads AutoencoderKL VAEs");
        }
        List<String> down = r.strings("down_block_types", List.of("DownEncoderBlock2D"));
        List<String> up = r.strings("up_block_types", List.of("UpDecoderBlock2D"));
        List<Integer> boc = r.ints("block_out_channels", List.of(64));
        if (boc.isEmpty()) {
            throw r.fail("block_out_channels", "must not be empty");
        }
        r.checkLevels("block_out_channels", boc.size(), down.size());
        if (up.size() != down.size()) {
            throw r.fail("up_block_types", "has " + up.size() + " entries but down_block_types has " + down.size());
        }
        for (String t : down) {
            if (!t.equals("DownEncoderBlock2D")) {
                throw r.fail("down_block_types", "entry '" + t + "' is not supported (DownEncoderBlock2D)");
            }
        }
        for (String t : up) {
            if (!t.equals("UpDecoderBlock2D")) {
                throw r.fail("up_block_types", "entry '" + t + "' is not supported (UpDecoderBlock2D)");
            }
        }
        VaeConfig c = new VaeConfig(
                r.integer("in_channels", 3),
                r.integer("out_channels", 3),
                down, up, boc,
                r.integer("layers_per_block", 1),
                r.string("act_fn", "silu"),
                r.integer("latent_channels", 4),
                r.integer("norm_num_groups", 32),
                r.integer("sample_size", 32),
                r.number("scaling_factor", 0.18215),
                r.node("shift_factor") == null || r.node("shift_factor").isNull() ? null : r.number("shift_factor", 0),
                r.bool("use_quant_conv", true),
                r.bool("use_post_quant_conv", true),
                r.bool("mid_block_add_attention", true));
        if (!c.actFn.equals("silu")) {
            throw r.fail("act_fn", "'" + c.actFn + "' is not supported (silu)");
        }
        for (int ch : boc) {
            if (ch <= 0 || ch % c.normNumGroups != 0) {
                throw r.fail("block_out_channels", "entry " + ch + " is not a positive multiple of norm_num_groups "
                        + c.normNumGroups);
            }
        }
        if (c.layersPerBlock <= 0 || c.latentChannels <= 0 || c.inChannels <= 0 || c.outChannels <= 0) {
            throw r.fail("layers_per_block", "and the channel counts must be positive");
        }
        if (!(c.scalingFactor > 0)) {
            throw r.fail("scaling_factor", "must be positive, got " + c.scalingFactor);
        }
        return c;
    }
}
