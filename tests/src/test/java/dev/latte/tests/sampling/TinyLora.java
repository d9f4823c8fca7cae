package dev.latte.tests.sampling;

import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.SafeTensorsWriter;

import java.nio.file.Path;
import java.util.List;
import java.util.Random;

/**
 * A random rank-4 LoRA for unet-tiny in kohya's layout, over every kind of layer the LCM-LoRA
 * touches (attention and feed-forward linears, proj_in/out, resnet 3×3 and 1×1 convs, the
 * samplers' convs, time_emb_proj), plus one text-encoder module the UNet must ignore.
 */
public final class TinyLora {
    public static final int RANK = 4;
    public static final float ALPHA = 2;
    public static final String TEXT_ENCODER_KEY = "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight";
    public static final List<String> MODULES = List.of(
            "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
            "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k",
            "up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_out.0",
            "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj",
            "down_blocks.0.attentions.1.transformer_blocks.0.ff.net.2",
            "up_blocks.2.attentions.1.proj_in",
            "mid_block.attentions.0.proj_out",
            "down_blocks.0.resnets.0.conv1",
            "up_blocks.1.resnets.2.conv2",
            "up_blocks.1.resnets.2.conv_shortcut",
            "down_blocks.1.downsamplers.0.conv",
            "up_blocks.0.upsamplers.0.conv",
            "mid_block.resnets.1.time_emb_proj");

    private TinyLora() {
    }

    /** Writes the LoRA for the model whose weights are {@code model}; returns {@code file}. */
    public static Path write(SafeTensorsFile model, Path file, long seed) {
        Random r = new Random(seed);
        SafeTensorsWriter w = new SafeTensorsWriter();
        for (String m : MODULES) {
            long[] s = model.info(m + ".weight").shape();
            long out = s[0], in = s[1];
            boolean conv = s.length == 4;
            long k = conv ? s[2] : 1;
            String key = "lora_unet_" + m.replace('.', '_');
            long[] down = conv ? new long[] {RANK, in, k, k} : new long[] {RANK, in};
            long[] up = conv ? new long[] {out, RANK, 1, 1} : new long[] {out, RANK};
            w.addF32(key + ".lora_down.weight", down, gaussian(r, RANK * in * k * k, 1 / Math.sqrt(in * k * k)));
            w.addF32(key + ".lora_up.weight", up, gaussian(r, out * RANK, 0.5 / Math.sqrt(RANK)));
            w.addF32(key + ".alpha", new long[] {}, new float[] {ALPHA});
        }
        w.addF32(TEXT_ENCODER_KEY, new long[] {RANK, 8}, gaussian(r, RANK * 8, 1));
        w.write(file);
        return file;
    }

    static float[] gaussian(Random r, long n, double std) {
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (std * r.nextGaussian());
        }
        return v;
    }
}
