package dev.latte.weights;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
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
        Path file = Files.isDirectory(configJson) ? configJson.resolve("config.json") : configJson;
        String text;
        try {
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new WeightsException(file.toAbsolutePath().getParent() + ": no " + file.getFileName());
        } catch (IOException e) {
            throw new WeightsException(Json.oneLine(file + ": cannot read: " + Json.describe(e)), e);
        }
        return parse(text, file.toString());
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

        return new UNetConfig(
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
    }
}
