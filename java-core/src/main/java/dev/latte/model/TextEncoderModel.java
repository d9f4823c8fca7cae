package dev.latte.model;

import dev.latte.clip.ClipTextModel;
import dev.latte.graph.Graph;
import dev.latte.graph.Value;
import dev.latte.weights.ClipTextConfig;
import dev.latte.weights.SafeTensorsFile;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A diffusers {@code text_encoder/} folder: transformers' {@code config.json} and
 * {@code model.safetensors} in Hugging Face naming, checked on load like a UNet folder.
 */
public final class TextEncoderModel implements AutoCloseable {
    public static final List<String> WEIGHT_FILES = List.of("model.safetensors", "model.fp16.safetensors");
    /** A buffer transformers before 4.31 saved with the weights; ignored (positions are 0..L-1). */
    public static final Set<String> IGNORED = Set.of("text_model.embeddings.position_ids");

    private final Path dir;
    private final ClipTextModel model;
    private final SafeTensorsFile weights;

    private TextEncoderModel(Path dir, ClipTextModel model, SafeTensorsFile weights) {
        this.dir = dir;
        this.model = model;
        this.weights = weights;
    }

    public static TextEncoderModel load(Path dir) {
        Path config = ModelWeights.config(dir, "a CLIPTextModel folder with config.json and model.safetensors");
        ClipTextModel model = new ClipTextModel(ClipTextConfig.load(config));
        SafeTensorsFile weights = SafeTensorsFile.open(ModelWeights.find(dir, WEIGHT_FILES, "CLIPTextModel weights"));
        try {
            ModelWeights.check(parameters(model), weights, IGNORED);
        } catch (RuntimeException e) {
            weights.close();
            throw e;
        }
        return new TextEncoderModel(dir, model, weights);
    }

    public static Map<String, Value> parameters(ClipTextModel model) {
        return model.graph(1, 1).params();
    }

    public Path dir() {
        return dir;
    }

    public ClipTextConfig config() {
        return model.config();
    }

    public ClipTextModel model() {
        return model;
    }

    public SafeTensorsFile weights() {
        return weights;
    }

    public Graph graph(int batch, int length) {
        return model.graph(batch, length);
    }

    public long parameterCount() {
        return ModelWeights.parameterCount(parameters(model));
    }

    /** CLIP's pooled output: each row's state at its first eos (the highest id, as transformers' argmax). */
    public static float[] pool(float[] lastHidden, float[] ids, int batch, int length, int dim) {
        float[] pooled = new float[batch * dim];
        for (int b = 0; b < batch; b++) {
            int best = 0;
            for (int l = 1; l < length; l++) {
                if (ids[b * length + l] > ids[b * length + best]) {
                    best = l;
                }
            }
            System.arraycopy(lastHidden, (b * length + best) * dim, pooled, b * dim, dim);
        }
        return pooled;
    }

    @Override
    public void close() {
        weights.close();
    }
}
