package dev.latte.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.latte.clip.ClipTokenizer;
import dev.latte.model.TextEncoderModel;
import dev.latte.model.UNetModel;
import dev.latte.model.VaeModel;
import dev.latte.sampling.SchedulerConfig;
import dev.latte.weights.WeightsException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A diffusers Stable Diffusion folder loaded as one model: {@code model_index.json},
 * {@code tokenizer/}, {@code text_encoder/}, {@code unet/}, {@code vae/} and
 * {@code scheduler/scheduler_config.json}. Each component is checked as its own folder is, then
 * against the others: the text encoder's width is the UNet's cross-attention width, the UNet's
 * channels are the VAE's latent channels, every token id fits the text encoder's vocabulary.
 */
public final class PipelineFolder implements AutoCloseable {
    public static final String INDEX = "model_index.json";

    private final Path dir;
    private final ClipTokenizer tokenizer;
    private final TextEncoderModel textEncoder;
    private final UNetModel unet;
    private final VaeModel vae;
    private final SchedulerConfig scheduler;

    private PipelineFolder(Path dir, ClipTokenizer tokenizer, TextEncoderModel textEncoder, UNetModel unet, VaeModel vae,
                           SchedulerConfig scheduler) {
        this.dir = dir;
        this.tokenizer = tokenizer;
        this.textEncoder = textEncoder;
        this.unet = unet;
        this.vae = vae;
        this.scheduler = scheduler;
    }

    /** Whether {@code dir} looks like a pipeline folder (has a model_index.json). */
    public static boolean isPipeline(Path dir) {
        return Files.isRegularFile(dir.resolve(INDEX));
    }

    public static PipelineFolder load(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new WeightsException(dir + ": not a directory (expected a diffusers pipeline folder)");
        }
        Path index = dir.resolve(INDEX);
        if (!Files.isRegularFile(index)) {
            throw new WeightsException(dir + ": no " + INDEX + " (expected a diffusers pipeline folder with "
                    + "tokenizer/, text_encoder/, unet/, vae/ and scheduler/)");
        }
        JsonNode idx;
        try {
            idx = new ObjectMapper().readTree(Files.readAllBytes(index));
        } catch (IOException e) {
            throw new WeightsException((index + ": not valid JSON: " + e.getMessage()).replaceAll("\\R", " "));
        }
        if (idx == null || !idx.isObject()) {
            throw new WeightsException(index + ": not a JSON object");
        }
        for (String c : new String[] {"tokenizer", "text_encoder", "unet", "vae", "scheduler"}) {
            if (!Files.isDirectory(dir.resolve(c))) {
                throw new WeightsException(dir + ": no " + c + "/ folder (a Stable Diffusion pipeline needs tokenizer/, "
                        + "text_encoder/, unet/, vae/ and scheduler/)");
            }
            if (idx.has(c) && idx.get(c).isNull()) {
                throw new WeightsException(index + ": component '" + c + "' is null; Latte needs it");
            }
        }
        ClipTokenizer tokenizer = ClipTokenizer.load(dir.resolve("tokenizer"));
        SchedulerConfig scheduler = SchedulerFile.load(dir.resolve("scheduler").resolve("scheduler_config.json"));
        TextEncoderModel te = TextEncoderModel.load(dir.resolve("text_encoder"));
        UNetModel unet = null;
        VaeModel vae = null;
        try {
            unet = UNetModel.load(dir.resolve("unet"));
            vae = VaeModel.load(dir.resolve("vae"));
            int width = te.config().hiddenSize(), ctx = unet.unet().contextDim();
            if (width != ctx) {
                throw new WeightsException(dir + ": text_encoder hidden_size " + width + " != unet cross_attention_dim "
                        + ctx + " (components do not belong together)");
            }
            int latent = vae.config().latentChannels();
            if (unet.config().inChannels() != latent || unet.config().outChannels() != latent) {
                throw new WeightsException(dir + ": unet in/out_channels " + unet.config().inChannels() + "/"
                        + unet.config().outChannels() + " != vae latent_channels " + latent);
            }
            if (tokenizer.vocabSize() > te.config().vocabSize()) {
                throw new WeightsException(dir + ": the tokenizer has " + tokenizer.vocabSize() + " tokens, the text "
                        + "encoder's vocab_size is " + te.config().vocabSize());
            }
            if (tokenizer.maxLength() > te.config().maxPositionEmbeddings()) {
                throw new WeightsException(dir + ": tokenizer model_max_length " + tokenizer.maxLength()
                        + " > text_encoder max_position_embeddings " + te.config().maxPositionEmbeddings());
            }
            return new PipelineFolder(dir, tokenizer, te, unet, vae, scheduler);
        } catch (RuntimeException e) {
            te.close();
            if (unet != null) {
                unet.close();
            }
            if (vae != null) {
                vae.close();
            }
            throw e;
        }
    }

    public Path dir() {
        return dir;
    }

    public ClipTokenizer tokenizer() {
        return tokenizer;
    }

    public TextEncoderModel textEncoder() {
        return textEncoder;
    }

    public UNetModel unet() {
        return unet;
    }

    public VaeModel vae() {
        return vae;
    }

    public SchedulerConfig scheduler() {
        return scheduler;
    }

    /** Image pixels per latent pixel. */
    public int vaeScale() {
        return vae.config().downscale();
    }

    @Override
    public void close() {
        textEncoder.close();
        unet.close();
        vae.close();
    }
}
