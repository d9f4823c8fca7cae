package dev.latte.weights;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.List;

/**
 * A diffusers {@code UNet2DConditionModel} {@code config.json} (diffusers 0.25.1). Missing keys take
 * that version's {@code __init__} defaults and unknown keys are ignored, as diffusers does. Keys that
 * diffusers accepts as a scalar or a per-level list are stored expanded to one entry per level
 * (one per down block), so consumers never branch on the JSON shape.
 */
public record UNetConfig(
        Integer sampleSize,
        int inChannels,
        int outChannels,
        boolean centerInputSample,
        boolean flipSinToCos,
        int freqShift,
        List<String> downBlockTypes,
        String midBlockType,
        List<String> upBlockTypes,
        List<Boolean> onlyCrossAttention,
        List<Integer> blockOutChannels,
        List<Integer> layersPerBlock,
        int downsamplePadding,
        double midBlockScaleFactor,
        double dropout,
        String actFn,
        Integer normNumGroups,
        double normEps,
        List<Integer> crossAttentionDim,
        List<Integer> transformerLayersPerBlock,
        boolean reverseTransformerLayersPerBlockSet,
        List<Integer> attentionHeadDim,
        List<Integer> numAttentionHeads,
        boolean dualCrossAttention,
        boolean useLinearProjection,
        String classEmbedType,
        String additionEmbedType,
        Integer numClassEmbeds,
        boolean upcastAttention,
        String resnetTimeScaleShift,
        boolean resnetSkipTimeAct,
        double resnetOutScaleFactor,
        String timeEmbeddingType,
        Integer timeEmbeddingDim,
        String timeEmbeddingActFn,
        String timestepPostAct,
        Integer timeCondProjDim,
        int convInKernel,
        int convOutKernel,
        String attentionType,
        Integer encoderHidDim,
        String encoderHidDimType,
        Boolean midBlockOnlyCrossAttention,
        String crossAttentionNorm,
        boolean classEmbeddingsConcat,
        Integer projectionClassEmbeddingsInputDim,
        Integer additionTimeEmbedDim,
        String latteQuantization,
        boolean lattePruned) {

    // latteQuantization ("int8-per-channel") and lattePruned (a "latte_pruned" object is present) are
    // Latte's own keys, written by `latte quantize` and `latte prune`; diffusers ignores them.

    /** Number of resolution levels: one per down block (and, checked, one per up block). */
    public int levels() {
        return downBlockTypes.size();
    }

    /** Width of the time embedding fed to every resnet, as diffusers' {@code _set_time_proj} derives it. */
    public int timeEmbedDim() {
        if (timeEmbeddingDim != null) {
            return timeEmbeddingDim;
        }
        return blockOutChannels.getFirst() * ("fourier".equals(timeEmbeddingType) ? 2 : 4);
    }

    /** Reads {@code configJson}; a directory is taken to mean its {@code config.json}. */
    public static UNetConfig load(Path configJson) {
        return ConfigReader.load(configJson, UNetConfig::parse);
    }

    /** Parses config JSON; {@code sourceName} starts every error message. */
    public static UNetConfig parse(String json, String sourceName) {
        ConfigReader r = new ConfigReader(Json.readObject(json, sourceName, "config"), sourceName);
        List<String> down = r.strings("down_block_types",
                List.of("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"));
        if (down.isEmpty()) {
            throw r.fail("down_block_types", "must not be empty");
        }
        int levels = down.size();
        List<String> up = r.strings("up_block_types",
                List.of("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"));
        r.checkLevels("up_block_types", up.size(), levels);
        List<Integer> blockOut = r.ints("block_out_channels", List.of(320, 640, 1280, 1280));
        r.checkLevels("block_out_channels", blockOut.size(), levels);
        JsonNode reverse = r.node("reverse_transformer_layers_per_block");
        JsonNode className = r.node("_class_name");
        if (className != null && !(className.isTextual() && className.textValue().equals("UNet2DConditionModel"))) {
            throw r.fail("_class_name", "must be \"UNet2DConditionModel\" (this is a UNet2DConditionModel"
                    + " runtime), got " + Json.show(className));
        }

        UNetConfig c = new UNetConfig(
                r.optInt("sample_size", null),
                r.integer("in_channels", 4),
                r.integer("out_channels", 4),
                r.bool("center_input_sample", false),
                r.bool("flip_sin_to_cos", true),
                r.integer("freq_shift", 0),
                down,
                r.optString("mid_block_type", "UNetMidBlock2DCrossAttn"),
                up,
                r.perLevelBools("only_cross_attention", false, levels),
                blockOut,
                r.perLevelInts("layers_per_block", 2, levels),
                r.integer("downsample_padding", 1),
                r.number("mid_block_scale_factor", 1),
                r.number("dropout", 0),
                r.string("act_fn", "silu"),
                r.optInt("norm_num_groups", 32),
                r.number("norm_eps", 1e-5),
                r.perLevelInts("cross_attention_dim", 1280, levels),
                r.perLevelInts("transformer_layers_per_block", 1, levels),
                reverse != null && !reverse.isNull(),
                r.perLevelInts("attention_head_dim", 8, levels),
                r.optPerLevelInts("num_attention_heads", levels),
                r.bool("dual_cross_attention", false),
                r.bool("use_linear_projection", false),
                r.optString("class_embed_type", null),
                r.optString("addition_embed_type", null),
                r.optInt("num_class_embeds", null),
                r.bool("upcast_attention", false),
                r.string("resnet_time_scale_shift", "default"),
                r.bool("resnet_skip_time_act", false),
                r.number("resnet_out_scale_factor", 1.0),
                r.string("time_embedding_type", "positional"),
                r.optInt("time_embedding_dim", null),
                r.optString("time_embedding_act_fn", null),
                r.optString("timestep_post_act", null),
                r.optInt("time_cond_proj_dim", null),
                r.integer("conv_in_kernel", 3),
                r.integer("conv_out_kernel", 3),
                r.string("attention_type", "default"),
                r.optInt("encoder_hid_dim", null),
                r.optString("encoder_hid_dim_type", null),
                r.optBool("mid_block_only_cross_attention", null),
                r.optString("cross_attention_norm", null),
                r.bool("class_embeddings_concat", false),
                r.optInt("projection_class_embeddings_input_dim", null),
                r.optInt("addition_time_embed_dim", null),
                r.optString("latte_quantization", null),
                r.node("latte_pruned") != null && !r.node("latte_pruned").isNull());
        c.checkRanges(r);
        return c;
    }

    /** Largest channel width accepted (SD1.5 tops out at 1280, SDXL's at 1280, its context at 2048). */
    public static final int MAX_CHANNELS = 16_384;
    /** Most resolution levels (SD1.5: 4); each halves the latent once. */
    public static final int MAX_LEVELS = 8;
    /** Most ResNet layers per block, and transformer layers per block (SDXL: 10). */
    public static final int MAX_LAYERS = 64;
    /** Largest sample_size in latent pixels. */
    public static final int MAX_SAMPLE_SIZE = 4096;

    /**
     * Ranges a network can be built from, named by key: what diffusers would reject at
     * construction or that would make a shape, an index or a division go wrong. Sizes are capped
     * so that building the graph stays small and every weight fits one Java array.
     */
    private void checkRanges(ConfigReader r) {
        if (levels() > MAX_LEVELS) {
            throw r.fail("down_block_types", "has " + levels() + " levels; at most " + MAX_LEVELS + " are supported");
        }
        range(r, "in_channels", inChannels, 1, MAX_CHANNELS);
        range(r, "out_channels", outChannels, 1, MAX_CHANNELS);
        if (sampleSize != null) {
            range(r, "sample_size", sampleSize, 1, MAX_SAMPLE_SIZE);
        }
        if (normNumGroups != null) {
            range(r, "norm_num_groups", normNumGroups, 1, MAX_CHANNELS);
        }
        for (int i = 0; i < levels(); i++) {
            int ch = blockOutChannels.get(i);
            range(r, "block_out_channels", ch, 1, MAX_CHANNELS);
            if (normNumGroups != null && ch % normNumGroups != 0) {
                throw r.fail("block_out_channels", "entry " + ch + " is not a multiple of norm_num_groups "
                        + normNumGroups + " (GroupNorm splits channels into whole groups)");
            }
            range(r, "layers_per_block", layersPerBlock.get(i), 1, MAX_LAYERS);
            range(r, "transformer_layers_per_block", transformerLayersPerBlock.get(i), 1, MAX_LAYERS);
            range(r, "cross_attention_dim", crossAttentionDim.get(i), 1, MAX_CHANNELS);
            // diffusers' old name: attention_head_dim holds the number of heads, each channels/heads wide
            range(r, "attention_head_dim", attentionHeadDim.get(i), 1, ch);
            if (numAttentionHeads != null) {
                range(r, "num_attention_heads", numAttentionHeads.get(i), 1, ch);
            }
        }
        if (timeEmbeddingDim != null) {
            range(r, "time_embedding_dim", timeEmbeddingDim, 1, 4 * MAX_CHANNELS);
        }
        int half = blockOutChannels.getFirst() / 2;
        if (freqShift < 0 || (half > 0 && freqShift >= half)) {
            throw r.fail("freq_shift", "must be in 0.." + Math.max(0, half - 1) + " (half of block_out_channels[0]"
                    + " is the divisor it shifts), got " + freqShift);
        }
        range(r, "downsample_padding", downsamplePadding, 0, 1);
        for (String k : new String[] {"conv_in_kernel", "conv_out_kernel"}) {
            int v = k.equals("conv_in_kernel") ? convInKernel : convOutKernel;
            if (v < 1 || v > 15 || v % 2 == 0) {
                throw r.fail(k, "must be an odd number in 1..15, got " + v);
            }
        }
        positive(r, "norm_eps", normEps);
        positive(r, "mid_block_scale_factor", midBlockScaleFactor);
        positive(r, "resnet_out_scale_factor", resnetOutScaleFactor);
        if (!(dropout >= 0 && dropout < 1)) {
            throw r.fail("dropout", "must be in [0, 1), got " + dropout);
        }
        if (latteQuantization != null && !latteQuantization.equals("int8-per-channel")) {
            throw r.fail("latte_quantization", "must be \"int8-per-channel\" (the only scheme Latte writes), got \""
                    + latteQuantization + "\"");
        }
    }

    private static void range(ConfigReader r, String key, int v, int lo, int hi) {
        if (v < lo || v > hi) {
            throw r.fail(key, "must be in " + lo + ".." + hi + ", got " + v);
        }
    }

    private static void positive(ConfigReader r, String key, double v) {
        if (!(v > 0 && Double.isFinite(v))) {
            throw r.fail(key, "must be a finite number > 0, got " + v);
        }
    }
}
