package dev.latte.tests.unet;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.latte.graph.Value;
import dev.latte.unet.UNet2DConditionModel;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.UNetConfig;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.function.BiFunction;

/**
 * UNet folders with random weights drawn the way the goldens were (weights ~ N(0, 1/fan_in),
 * norm weights 1 + 0.1·N, biases 0.1·N), for configs no golden covers.
 */
final class RandomModels {
    private RandomModels() {
    }

    /** A small SD-shaped config; {@code extra} JSON members override or add keys. */
    static String tinyConfig(String extra) {
        ObjectMapper json = new ObjectMapper();
        try {
            ObjectNode cfg = (ObjectNode) json.readTree("""
                    {"block_out_channels": [32, 64, 64],
                     "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                     "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
                     "layers_per_block": 1, "attention_head_dim": 8, "cross_attention_dim": 32,
                     "norm_num_groups": 8, "sample_size": 16}
                    """);
            cfg.setAll((ObjectNode) json.readTree("{" + extra + "}"));
            return json.writeValueAsString(cfg);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(e);
        }
    }

    static Path write(Path dir, String configJson, long seed) throws IOException {
        return write(dir, configJson, seed, (name, values) -> values);
    }

    /** Writes config.json and random weights; {@code edit} may rewrite each tensor's values by name. */
    static Path write(Path dir, String configJson, long seed, BiFunction<String, float[], float[]> edit)
            throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), configJson);
        UNetConfig cfg = UNetConfig.parse(configJson, "config.json");
        var unet = new UNet2DConditionModel(cfg, "config.json");
        int side = 2 << cfg.levels();
        Random rnd = new Random(seed);
        SafeTensorsWriter w = new SafeTensorsWriter();
        for (Value p : unet.graph(1, side, side, 1).params().values()) {
            float[] v = random(rnd, p);
            int[] dims = p.shape().dims();
            long[] shape = new long[dims.length];
            for (int i = 0; i < dims.length; i++) {
                shape[i] = dims[i];
            }
            w.addF32(p.name(), shape, edit.apply(p.name(), v));
        }
        w.write(dir.resolve("diffusion_pytorch_model.safetensors"));
        return dir;
    }

    private static float[] random(Random rnd, Value p) {
        float[] v = new float[p.shape().size()];
        boolean norm = p.name().matches(".*norm[^.]*\\.weight");
        boolean bias = p.name().endsWith(".bias");
        long fanIn = p.shape().rank() > 1 ? p.shape().numel() / p.shape().dim(0) : 1;
        double std = bias ? 0.1 : norm ? 0.1 : 1 / Math.sqrt(fanIn);
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) ((norm ? 1 : 0) + std * rnd.nextGaussian());
        }
        return v;
    }

    static float[] gaussian(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }
}
