package dev.latte.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.latte.model.Component;
import dev.latte.model.TextEncoderModel;
import dev.latte.model.UNetModel;
import dev.latte.model.VaeModel;
import dev.latte.pipeline.PipelineFolder;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.DType;
import dev.latte.weights.TensorInfo;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.Map;

/** {@code latte info}: what a model folder holds. */
final class Info {
    private Info() {
    }

    /**
     * What the model's weights take on the CUDA backend: {int8 bytes, float bytes}, int8 weights as
     * stored (one byte each), every float tensor (int8 scales included) at {@code floatBytes}.
     */
    static long[] deviceBytes(UNetModel model, int floatBytes) {
        long int8 = 0, floats = 0;
        for (TensorInfo t : model.weights().tensors()) {
            if (t.dtype() == DType.I8) {
                int8 += t.numel();
            } else {
                floats += t.numel() * floatBytes;
            }
        }
        return new long[] {int8, floats};
    }

    static int run(Args a, PrintStream out) {
        Path dir = Path.of(a.required("model"));
        if (PipelineFolder.isPipeline(dir)) {
            return pipeline(dir, out);
        }
        Component kind = Component.of(dir);
        if (kind == Component.TEXT_ENCODER) {
            try (TextEncoderModel m = TextEncoderModel.load(dir)) {
                component(out, dir, kind, m.weights(), m.parameterCount(), m.config());
                return 0;
            }
        }
        if (kind == Component.VAE) {
            try (VaeModel m = VaeModel.load(dir)) {
                component(out, dir, kind, m.weights(), m.parameterCount(), m.config());
                return 0;
            }
        }
        try (UNetModel model = UNetModel.load(dir)) {
            ObjectMapper json = new ObjectMapper()
                    .setPropertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
                    .enable(SerializationFeature.INDENT_OUTPUT);
            out.println("model: " + model.dir());
            out.println("weights: " + model.weights().path().getFileName() + " (" + model.weights().tensors().size()
                    + " tensors)");
            out.println("mode: " + model.mode());
            out.printf("parameters: %,d%n", model.parameterCount());
            for (Map.Entry<DType, Long> e : model.bytesByDtype().entrySet()) {
                out.printf("bytes %s: %,d (%.2f MiB)%n", e.getKey(), e.getValue(), e.getValue() / 1048576.0);
            }
            for (int floatBytes : new int[] {4, 2}) {
                long[] b = deviceBytes(model, floatBytes);
                out.printf("device bytes, cuda %s: %,d (%.2f MiB; int8 %,d, float %,d)%n", floatBytes == 4 ? "fp32" : "fp16",
                        b[0] + b[1], (b[0] + b[1]) / 1048576.0, b[0], b[1]);
            }
            out.println("config (with diffusers' defaults filled in):");
            out.println(json.writeValueAsString(model.config()));
            return 0;
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private static ObjectMapper json() {
        return new ObjectMapper().setPropertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
                .enable(SerializationFeature.INDENT_OUTPUT);
    }

    private static void component(PrintStream out, Path dir, Component kind, SafeTensorsFile weights, long params,
                                  Object config) {
        out.println("model: " + dir + " (" + kind.className + ")");
        out.println("weights: " + weights.path().getFileName() + " (" + weights.tensors().size() + " tensors)");
        out.printf("parameters: %,d%n", params);
        Map<DType, Long> bytes = new EnumMap<>(DType.class);
        weights.tensors().forEach(t -> bytes.merge(t.dtype(), t.byteSize(), Long::sum));
        for (Map.Entry<DType, Long> e : bytes.entrySet()) {
            out.printf("bytes %s: %,d (%.2f MiB)%n", e.getKey(), e.getValue(), e.getValue() / 1048576.0);
        }
        out.println("config (with defaults filled in):");
        try {
            out.println(json().writeValueAsString(config));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private static int pipeline(Path dir, PrintStream out) {
        try (PipelineFolder p = PipelineFolder.load(dir)) {
            out.println("pipeline: " + dir);
            out.printf("tokenizer: %,d tokens, max length %d, bos %d, eos %d, pad %d%n", p.tokenizer().vocabSize(),
                    p.tokenizer().maxLength(), p.tokenizer().bosId(), p.tokenizer().eosId(), p.tokenizer().padId());
            long te = p.textEncoder().parameterCount(), unet = p.unet().parameterCount(), vae = p.vae().parameterCount();
            var t = p.textEncoder().config();
            out.printf("text_encoder: CLIPTextModel, %,d parameters (width %d, %d layers, %d heads, %s)%n", te,
                    t.hiddenSize(), t.numHiddenLayers(), t.numAttentionHeads(), t.hiddenAct());
            out.printf("unet: UNet2DConditionModel, %,d parameters (%s, block_out_channels %s)%n", unet, p.unet().mode(),
                    p.unet().config().blockOutChannels());
            out.printf("vae: AutoencoderKL, %,d parameters (block_out_channels %s, latent %d, scaling_factor %s)%n", vae,
                    p.vae().config().blockOutChannels(), p.vae().config().latentChannels(),
                    p.vae().config().scalingFactor());
            var s = p.scheduler();
            out.printf("scheduler: %d train steps, %s %s..%s, steps_offset %d, %s, %s spacing%n",
                    s.numTrainTimesteps(), s.betaSchedule(), s.betaStart(), s.betaEnd(), s.stepsOffset(),
                    s.predictionType().name().toLowerCase(java.util.Locale.ROOT),
                    s.timestepSpacing().name().toLowerCase(java.util.Locale.ROOT));
            out.printf("total: %,d parameters%n", te + unet + vae);
            return 0;
        }
    }
}
