package dev.latte.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.latte.clip.ClipTextModel;
import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.vae.AutoencoderKL;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.WeightsException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** Which network a component folder holds, told by its {@code config.json}, and golden validation for each. */
public enum Component {
    UNET("UNet2DConditionModel"), TEXT_ENCODER("CLIPTextModel"), VAE("AutoencoderKL");

    public final String className;

    Component(String className) {
        this.className = className;
    }

    /** From {@code _class_name} (diffusers), {@code model_type}/{@code architectures} (transformers), or the keys. */
    public static Component of(Path dir) {
        Path config = ModelWeights.config(dir, "a component folder with config.json (unet/, text_encoder/, vae/)");
        JsonNode n;
        try {
            n = new ObjectMapper().readTree(Files.readAllBytes(config));
        } catch (IOException e) {
            throw new WeightsException((config + ": not valid JSON: " + e.getMessage()).replaceAll("\\R", " "));
        }
        if (n == null || !n.isObject()) {
            throw new WeightsException(config + ": not a JSON object");
        }
        String cls = n.path("_class_name").asText("");
        if (cls.equals("AutoencoderKL") || (cls.isEmpty() && n.has("latent_channels"))) {
            return VAE;
        }
        if (cls.equals("UNet2DConditionModel") || (cls.isEmpty() && n.has("down_block_types"))) {
            return UNET;
        }
        if (n.path("model_type").asText("").equals("clip_text_model")
                || n.path("architectures").toString().contains("CLIPTextModel")) {
            return TEXT_ENCODER;
        }
        // the UNet config's own wording for _class_name, so info, validate and plan refuse one alike
        throw new WeightsException(config + (cls.isEmpty()
                ? ": not a UNet2DConditionModel, CLIPTextModel or AutoencoderKL config"
                : ": '_class_name' must be \"UNet2DConditionModel\", \"CLIPTextModel\" or \"AutoencoderKL\", got '"
                        + dev.latte.weights.Text.quote(cls) + "'"));
    }

    /**
     * Validates a CLIPTextModel case ({@code input_ids} → {@code hidden_states.i},
     * {@code last_hidden_state}, {@code pooler_output}) or an AutoencoderKL case (decode: {@code z}
     * or {@code latents}; encode: {@code image}) on {@code backend}.
     */
    public static List<GoldenCase.Row> validate(Path dir, dev.latte.core.Backend backend, Path caseFile) {
        Component kind = of(dir);
        try (SafeTensorsFile f = SafeTensorsFile.open(caseFile)) {
            String file = caseFile.getFileName().toString();
            switch (kind) {
                case TEXT_ENCODER -> {
                    try (TextEncoderModel m = TextEncoderModel.load(dir); GraphRunner r = new GraphRunner(backend, m.weights())) {
                        int[] s = shape(f, file, ClipTextModel.INPUT, 2);
                        Graph g = Fusion.fuse(m.graph(s[0], s[1]));
                        float[] ids = ComponentGolden.ids(f, ClipTextModel.INPUT);
                        int d = m.config().hiddenSize();
                        return ComponentGolden.validate(r, g, f, Map.of(ClipTextModel.INPUT, ids), Set.of(),
                                Map.of("pooler_output", o -> TextEncoderModel.pool(o.get(ClipTextModel.OUT), ids, s[0], s[1], d)));
                    }
                }
                case VAE -> {
                    try (VaeModel m = VaeModel.load(dir); GraphRunner r = new GraphRunner(backend, m.weights(), m::storedName)) {
                        int lc = m.config().latentChannels();
                        if (f.contains(AutoencoderKL.Z) || f.contains("latents")) {
                            boolean hasZ = f.contains(AutoencoderKL.Z);
                            int[] s = shape(f, file, hasZ ? AutoencoderKL.Z : "latents", 4);
                            float[] z = hasZ ? f.toFloatArray(AutoencoderKL.Z) : m.latentsToZ(f.toFloatArray("latents"));
                            Graph g = Fusion.fuse(m.decoder(s[0], s[2], s[3]));
                            return ComponentGolden.validate(r, g, f, Map.of(AutoencoderKL.Z, z), Set.of("latents"),
                                    Map.of("image", o -> VaeModel.toImage(o.get(AutoencoderKL.SAMPLE))));
                        }
                        int[] s = shape(f, file, AutoencoderKL.IMAGE, 4);
                        int down = m.config().downscale(), hw = (s[2] / down) * (s[3] / down);
                        Graph g = Fusion.fuse(m.encoder(s[0], s[2], s[3]));
                        return ComponentGolden.validate(r, g, f, Map.of(AutoencoderKL.IMAGE, f.toFloatArray(AutoencoderKL.IMAGE)),
                                Set.of(), Map.of(
                                        "mean", o -> VaeModel.meanLogvar(o.get(AutoencoderKL.MOMENTS), s[0], lc, hw)[0],
                                        "logvar", o -> VaeModel.meanLogvar(o.get(AutoencoderKL.MOMENTS), s[0], lc, hw)[1]));
                    }
                }
                default -> throw new IllegalArgumentException(dir + " is a UNet; validate it with UNetRunner");
            }
        }
    }

    private static int[] shape(SafeTensorsFile f, String file, String name, int rank) {
        if (!f.contains(name)) {
            throw new WeightsException(file + ": no tensor '" + name + "'");
        }
        int[] s = f.info(name).intShape();
        if (s.length != rank) {
            throw new WeightsException(file + ": tensor '" + name + "' has rank " + s.length + ", expected " + rank);
        }
        return s;
    }
}
