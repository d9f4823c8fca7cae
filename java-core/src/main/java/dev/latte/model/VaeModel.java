package dev.latte.model;

import dev.latte.graph.Graph;
import dev.latte.graph.Value;
import dev.latte.vae.AutoencoderKL;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.VaeConfig;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A diffusers {@code vae/} folder ({@code AutoencoderKL}): config.json and
 * {@code diffusion_pytorch_model.safetensors}, checked on load. Checkpoints saved before diffusers
 * 0.14 (SD1.5's VAE among them) name the mid-block attention {@code query/key/value/proj_attn};
 * they load under today's names {@code to_q/to_k/to_v/to_out.0}, as diffusers renames them.
 */
public final class VaeModel implements AutoCloseable {
    public static final List<String> WEIGHT_FILES =
            List.of("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors");
    private static final Map<String, String> LEGACY = Map.of("to_q", "query", "to_k", "key", "to_v", "value",
            "to_out.0", "proj_attn");

    private final Path dir;
    private final AutoencoderKL vae;
    private final SafeTensorsFile weights;
    /** Graph parameter name → tensor name in the file, where they differ. */
    private final Map<String, String> fileNames;

    private VaeModel(Path dir, AutoencoderKL vae, SafeTensorsFile weights, Map<String, String> fileNames) {
        this.dir = dir;
        this.vae = vae;
        this.weights = weights;
        this.fileNames = fileNames;
    }

    public static VaeModel load(Path dir) {
        Path config = ModelWeights.config(dir, "an AutoencoderKL folder with config.json and "
                + WEIGHT_FILES.getFirst());
        AutoencoderKL vae = new AutoencoderKL(VaeConfig.load(config));
        SafeTensorsFile weights = SafeTensorsFile.open(ModelWeights.find(dir, WEIGHT_FILES, "AutoencoderKL weights"));
        try {
            Map<String, Value> params = parameters(vae);
            Map<String, String> names = new HashMap<>();
            Map<String, Value> asStored = new LinkedHashMap<>();
            for (var e : params.entrySet()) {
                String stored = e.getKey();
                if (!weights.contains(stored)) {
                    String legacy = legacyName(stored);
                    if (legacy != null && weights.contains(legacy)) {
                        stored = legacy;
                        names.put(e.getKey(), legacy);
                    }
                }
                Value v = e.getValue();
                asStored.put(stored, new Value(v.id(), v.kind(), stored, v.shape()));
            }
            ModelWeights.check(asStored, weights, Set.of());
            return new VaeModel(dir, vae, weights, Map.copyOf(names));
        } catch (RuntimeException e) {
            weights.close();
            throw e;
        }
    }

    private static String legacyName(String name) {
        for (var e : LEGACY.entrySet()) {
            String marker = ".attentions.0." + e.getKey() + ".";
            int i = name.indexOf(marker);
            if (i >= 0) {
                return name.substring(0, i) + ".attentions.0." + e.getValue() + "." + name.substring(i + marker.length());
            }
        }
        return null;
    }

    /** All parameters: encoder, quant_conv, post_quant_conv, decoder. */
    public static Map<String, Value> parameters(AutoencoderKL vae) {
        int side = vae.config().downscale();
        Map<String, Value> all = new LinkedHashMap<>(vae.encoder(1, side, side).params());
        all.putAll(vae.decoder(1, 1, 1).params());
        return all;
    }

    public Path dir() {
        return dir;
    }

    public VaeConfig config() {
        return vae.config();
    }

    public AutoencoderKL vae() {
        return vae;
    }

    public SafeTensorsFile weights() {
        return weights;
    }

    /** The name a graph parameter has in the file. */
    public String storedName(String param) {
        return fileNames.getOrDefault(param, param);
    }

    public long parameterCount() {
        return ModelWeights.parameterCount(parameters(vae));
    }

    public Graph decoder(int batch, int height, int width) {
        return vae.decoder(batch, height, width);
    }

    public Graph encoder(int batch, int height, int width) {
        return vae.encoder(batch, height, width);
    }

    /** The pipeline's decode input: latents / scaling_factor (− shift_factor's inverse where set). */
    public float[] latentsToZ(float[] latents) {
        float[] z = new float[latents.length];
        float sf = (float) config().scalingFactor();
        float shift = config().shiftFactor() == null ? 0f : config().shiftFactor().floatValue();
        for (int i = 0; i < z.length; i++) {
            z[i] = latents[i] / sf + shift;
        }
        return z;
    }

    /** {@code (sample / 2 + 0.5).clamp(0, 1)}, in fp32 as the pipeline's VaeImageProcessor computes it. */
    public static float[] toImage(float[] sample) {
        float[] img = new float[sample.length];
        for (int i = 0; i < img.length; i++) {
            float v = sample[i] / 2f + 0.5f;
            img[i] = v < 0f ? 0f : Math.min(v, 1f);
        }
        return img;
    }

    /** Mean and clamped log-variance from the encoder's moments [B, 2L, h, w]: index 0 mean, 1 logvar. */
    public static float[][] meanLogvar(float[] moments, int batch, int latent, int hw) {
        float[] mean = new float[batch * latent * hw], logvar = new float[batch * latent * hw];
        for (int b = 0; b < batch; b++) {
            System.arraycopy(moments, b * 2 * latent * hw, mean, b * latent * hw, latent * hw);
            for (int i = 0; i < latent * hw; i++) {
                float v = moments[b * 2 * latent * hw + latent * hw + i];
                logvar[b * latent * hw + i] = Math.max(-30f, Math.min(20f, v));
            }
        }
        return new float[][] {mean, logvar};
    }

    @Override
    public void close() {
        weights.close();
    }
}
