package dev.latte.lora;

import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.WeightsException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** LoRA files built here with known math, in both key layouts, against a three-weight "model". */
class LoraTest {
    @TempDir
    Path tmp;

    static final Map<String, int[]> SHAPES = Map.of(
            "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight", new int[] {2, 3},
            "down_blocks.0.resnets.0.conv1.weight", new int[] {2, 1, 3, 3},
            "down_blocks.0.attentions.0.proj_in.weight", new int[] {2, 3, 1, 1},
            "down_blocks.0.resnets.0.conv1.bias", new int[] {2});
    static final String TO_Q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q";
    static final String CONV = "down_blocks.0.resnets.0.conv1";
    static final String PROJ = "down_blocks.0.attentions.0.proj_in";

    static Map<String, float[]> weights() {
        Map<String, float[]> w = new HashMap<>();
        Random r = new Random(1);
        SHAPES.forEach((k, s) -> {
            int n = 1;
            for (int d : s) n *= d;
            float[] v = new float[n];
            for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian();
            w.put(k, v);
        });
        return w;
    }

    static String kohya(String module) {
        return "lora_unet_" + module.replace('.', '_');
    }

    @Test
    void kohyaLinearIsUpTimesDownTimesScaleAlphaOverRank() {
        Path f = tmp.resolve("k.safetensors");
        new SafeTensorsWriter()
                .addF32(kohya(TO_Q) + ".lora_down.weight", new long[] {1, 3}, new float[] {1, 2, 3})
                .addF32(kohya(TO_Q) + ".lora_up.weight", new long[] {2, 1}, new float[] {1, -1})
                .addF32(kohya(TO_Q) + ".alpha", new long[] {}, new float[] {2})
                .write(f);
        Lora lora = Lora.load(f, SHAPES);
        assertEquals(1, lora.modules().size());
        assertEquals(TO_Q + ".weight", lora.modules().getFirst().target());
        Map<String, float[]> w = weights();
        float[] before = w.get(TO_Q + ".weight").clone();
        lora.merge(w, 0.5);
        // 0.5 · (2 / 1) · [1, −1]ᵀ·[1, 2, 3]
        float[] d = {1, 2, 3, -1, -2, -3};
        for (int i = 0; i < 6; i++) {
            assertEquals(before[i] + d[i], w.get(TO_Q + ".weight")[i], 1e-6);
        }
    }

    @Test
    void peftConvKernelsAndOneByOne() {
        Random r = new Random(2);
        float[] down = gaussian(r, 2 * 9), up = gaussian(r, 2 * 2);       // conv1: rank 2, 3×3 kernel on 1 channel
        float[] pDown = gaussian(r, 4 * 3), pUp = gaussian(r, 2 * 4);     // proj_in: rank 4, 1×1
        Path f = tmp.resolve("p.safetensors");
        new SafeTensorsWriter()
                .addF32("unet." + CONV + ".lora_A.weight", new long[] {2, 1, 3, 3}, down)
                .addF32("unet." + CONV + ".lora_B.weight", new long[] {2, 2, 1, 1}, up)
                .addF32(PROJ + ".lora_A.weight", new long[] {4, 3, 1, 1}, pDown)
                .addF32(PROJ + ".lora_B.weight", new long[] {2, 4, 1, 1}, pUp)
                .addF32(PROJ + ".alpha", new long[] {1}, new float[] {8})
                .write(f);
        Lora lora = Lora.load(f, SHAPES);
        Map<String, float[]> w = weights(), orig = weights();
        lora.merge(w, 1.5);
        // conv1, no alpha: factor 1.5 · 2/2; W[o,0,ky,kx] += Σ_q up[o,q]·down[q,0,ky,kx]
        for (int o = 0; o < 2; o++) {
            for (int k = 0; k < 9; k++) {
                double s = 0;
                for (int q = 0; q < 2; q++) s += up[o * 2 + q] * down[q * 9 + k];
                assertEquals(orig.get(CONV + ".weight")[o * 9 + k] + 1.5 * s, w.get(CONV + ".weight")[o * 9 + k], 1e-5);
            }
        }
        // proj_in, alpha 8 over rank 4
        for (int o = 0; o < 2; o++) {
            for (int i = 0; i < 3; i++) {
                double s = 0;
                for (int q = 0; q < 4; q++) s += pUp[o * 4 + q] * pDown[q * 3 + i];
                assertEquals(orig.get(PROJ + ".weight")[o * 3 + i] + 1.5 * 2 * s, w.get(PROJ + ".weight")[o * 3 + i],
                        1e-5);
            }
        }
        assertArrayEquals(orig.get(TO_Q + ".weight"), w.get(TO_Q + ".weight"));
    }

    @Test
    void bothLayoutsMergeTheSame() {
        Random r = new Random(3);
        float[] down = gaussian(r, 4 * 3), up = gaussian(r, 2 * 4);
        Path k = tmp.resolve("k.safetensors"), p = tmp.resolve("p.safetensors");
        new SafeTensorsWriter().addF32(kohya(TO_Q) + ".lora_down.weight", new long[] {4, 3}, down)
                .addF32(kohya(TO_Q) + ".lora_up.weight", new long[] {2, 4}, up)
                .addF32(kohya(TO_Q) + ".alpha", new long[] {}, new float[] {4}).write(k);
        new SafeTensorsWriter().addF32("base_model.model." + TO_Q + ".lora_A.weight", new long[] {4, 3}, down)
                .addF32("base_model.model." + TO_Q + ".lora_B.weight", new long[] {2, 4}, up).write(p);
        Map<String, float[]> a = weights(), b = weights();
        Lora.load(k, SHAPES).merge(a, 0.8);
        Lora.load(p, SHAPES).merge(b, 0.8);
        assertArrayEquals(a.get(TO_Q + ".weight"), b.get(TO_Q + ".weight"));
    }

    @Test
    void mergeThenUnmergeRestoresTheWeights() {
        Random r = new Random(4);
        Path f = tmp.resolve("m.safetensors");
        new SafeTensorsWriter()
                .addF32(kohya(CONV) + ".lora_down.weight", new long[] {3, 1, 3, 3}, gaussian(r, 27))
                .addF32(kohya(CONV) + ".lora_up.weight", new long[] {2, 3, 1, 1}, gaussian(r, 6))
                .addF32(kohya(TO_Q) + ".lora_down.weight", new long[] {2, 3}, gaussian(r, 6))
                .addF32(kohya(TO_Q) + ".lora_up.weight", new long[] {2, 2}, gaussian(r, 4))
                .write(f);
        Lora lora = Lora.load(f, SHAPES);
        Map<String, float[]> w = weights(), orig = weights();
        lora.merge(w, 1.0);
        assertFalse(Arrays.equals(orig.get(CONV + ".weight"), w.get(CONV + ".weight")));
        lora.unmerge(w, 1.0);
        for (String name : orig.keySet()) {
            float[] o = orig.get(name), back = w.get(name);
            for (int i = 0; i < o.length; i++) {
                // (w + d) − d is w up to one rounding of the sum
                float ulp = Math.ulp(Math.abs(o[i]) + 10f);
                assertEquals(o[i], back[i], ulp, name + " at " + i);
            }
        }
    }

    @Test
    void unknownKeysAreListedNotApplied() {
        Path f = tmp.resolve("u.safetensors");
        new SafeTensorsWriter()
                .addF32(kohya(TO_Q) + ".lora_down.weight", new long[] {1, 3}, new float[3])
                .addF32(kohya(TO_Q) + ".lora_up.weight", new long[] {2, 1}, new float[2])
                .addF32("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", new long[] {1, 3}, new float[3])
                .addF32(kohya(CONV) + ".hada_w1_a", new long[] {1, 3}, new float[3])
                .addF32("lora_unet_no_such_block.lora_up.weight", new long[] {2, 1}, new float[2])
                .write(f);
        Lora lora = Lora.load(f, SHAPES);
        assertEquals(1, lora.modules().size());
        assertEquals(List.of("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", kohya(CONV) + ".hada_w1_a",
                "lora_unet_no_such_block.lora_up.weight"), lora.unknownKeys());
    }

    @Test
    void aShapeThatDoesNotFitIsNamed() {
        Path f = tmp.resolve("bad.safetensors");
        new SafeTensorsWriter()
                .addF32(kohya(TO_Q) + ".lora_down.weight", new long[] {1, 4}, new float[4])
                .addF32(kohya(TO_Q) + ".lora_up.weight", new long[] {2, 1}, new float[2])
                .write(f);
        var e = assertThrows(WeightsException.class, () -> Lora.load(f, SHAPES));
        assertTrue(e.getMessage().contains("bad.safetensors"), e.getMessage());
        assertTrue(e.getMessage().contains("'" + kohya(TO_Q) + ".lora_down.weight'"), e.getMessage());
        assertTrue(e.getMessage().contains("[1, 4]"), e.getMessage());

        new SafeTensorsWriter()
                .addF32(kohya(TO_Q) + ".lora_down.weight", new long[] {1, 3}, new float[3])
                .addF32(kohya(TO_Q) + ".lora_up.weight", new long[] {3, 1}, new float[3])
                .write(f);
        e = assertThrows(WeightsException.class, () -> Lora.load(f, SHAPES));
        assertTrue(e.getMessage().contains(".lora_up.weight'") && e.getMessage().contains("[2, 1]"), e.getMessage());

        new SafeTensorsWriter()
                .addF32(kohya(CONV) + ".lora_down.weight", new long[] {1, 1, 1, 1}, new float[1])
                .addF32(kohya(CONV) + ".lora_up.weight", new long[] {2, 1, 1, 1}, new float[2])
                .write(f);
        e = assertThrows(WeightsException.class, () -> Lora.load(f, SHAPES));
        assertTrue(e.getMessage().contains("[rank, 1, 3, 3]"), e.getMessage());
    }

    @Test
    void halfAModuleIsAnError() {
        Path f = tmp.resolve("half.safetensors");
        new SafeTensorsWriter()
                .addF32(kohya(TO_Q) + ".lora_down.weight", new long[] {1, 3}, new float[3])
                .addF32(kohya(TO_Q) + ".alpha", new long[] {}, new float[] {1})
                .write(f);
        var e = assertThrows(WeightsException.class, () -> Lora.load(f, SHAPES));
        assertTrue(e.getMessage().contains("no matching up"), e.getMessage());
    }

    static float[] gaussian(Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian();
        return v;
    }
}
