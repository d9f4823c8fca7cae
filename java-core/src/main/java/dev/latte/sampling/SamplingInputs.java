package dev.latte.sampling;

import dev.latte.core.Shape;
import dev.latte.exec.Executor;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.Text;
import dev.latte.weights.WeightsException;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The files a sampling run reads, checked on load: every problem is a one-line
 * {@link WeightsException} naming the file and the tensor.
 */
public final class SamplingInputs {
    private SamplingInputs() {
    }

    /**
     * Text-encoder outputs: {@code cond} [B, L, D] and, for guidance, {@code uncond} [B or 1, L, D]
     * (a single negative prompt is repeated over the batch).
     */
    public record Conditioning(float[] cond, float[] uncond, int batch, int tokens, int dim) {
        public boolean hasUncond() {
            return uncond != null;
        }
    }

    /** Initial latents [B, C, H, W]. */
    public record Latents(float[] values, int batch, int channels, int height, int width) {
    }

    public static Conditioning context(Path path, int dim, boolean needUncond) {
        try (SafeTensorsFile f = SafeTensorsFile.open(path)) {
            String file = name(path);
            if (!f.contains("cond")) {
                throw new WeightsException(file + ": no tensor 'cond' (the prompt's encoder_hidden_states, [batch, "
                        + "tokens, " + dim + "]); it has " + names(f));
            }
            int[] c = f.info("cond").intShape();
            if (c.length != 3 || c[2] != dim || c[0] < 1 || c[1] < 1) {
                throw new WeightsException(file + ": tensor 'cond' has shape " + Shape.of(c)
                        + ", expected [batch, tokens, " + dim + "] (the model's cross_attention_dim is " + dim + ")");
            }
            float[] cond = finite(f, file, "cond");
            float[] uncond = null;
            if (needUncond) {
                if (!f.contains("uncond")) {
                    throw new WeightsException(file + ": no tensor 'uncond' (the negative prompt's"
                            + " encoder_hidden_states), needed for guidance > 1");
                }
                int[] u = f.info("uncond").intShape();
                if (u.length != 3 || (u[0] != c[0] && u[0] != 1) || u[1] != c[1] || u[2] != c[2]) {
                    throw new WeightsException(file + ": tensor 'uncond' has shape " + Shape.of(u) + ", expected ["
                            + c[0] + " or 1, " + c[1] + ", " + c[2] + "] to match 'cond' " + Shape.of(c));
                }
                uncond = repeat(finite(f, file, "uncond"), c[0] / u[0]);
            }
            return new Conditioning(cond, uncond, c[0], c[1], c[2]);
        }
    }

    /** {@code latents} [batch, channels, H, W] from {@code path}. */
    public static Latents latents(Path path, int batch, int channels) {
        return latents(path, batch, channels, "latents");
    }

    /** Tensor {@code name} [batch, channels, H, W] from {@code path}. */
    public static Latents latents(Path path, int batch, int channels, String name) {
        try (SafeTensorsFile f = SafeTensorsFile.open(path)) {
            String file = name(path);
            if (!f.contains(name)) {
                throw new WeightsException(file + ": no tensor '" + name + "' (initial latents [" + batch + ", " + channels
                        + ", H, W]); it has " + names(f));
            }
            int[] s = f.info(name).intShape();
            if (s.length != 4 || s[0] != batch || s[1] != channels || s[2] < 1 || s[3] < 1) {
                throw new WeightsException(file + ": tensor '" + name + "' has shape " + Shape.of(s) + ", expected ["
                        + batch + ", " + channels + ", H, W] (batch from the context, channels from the model)");
            }
            return new Latents(finite(f, file, name), s[0], s[1], s[2], s[3]);
        }
    }

    /**
     * Recorded noise {@code noise.0 … noise.(draws−1)}, each of {@code shape}, replayed in order;
     * the layout of the scheduler goldens.
     */
    public static NoiseSource noise(Path path, Shape shape, int draws) {
        try (SafeTensorsFile f = SafeTensorsFile.open(path)) {
            String file = name(path);
            List<float[]> list = new ArrayList<>();
            for (int i = 0; i < draws; i++) {
                String t = "noise." + i;
                if (!f.contains(t)) {
                    throw new WeightsException(file + ": no tensor '" + t + "' (this schedule draws noise " + draws
                            + " times: noise.0 … noise." + (draws - 1) + ")");
                }
                if (!Shape.of(f.info(t).intShape()).equals(shape)) {
                    throw new WeightsException(file + ": tensor '" + t + "' has shape "
                            + Shape.of(f.info(t).intShape()) + ", expected the latents' " + shape);
                }
                list.add(finite(f, file, t));
            }
            return new NoiseSource() {
                private int next;

                @Override
                public float[] next(int n) {
                    if (next >= list.size() || list.get(next).length != n) {
                        throw new IllegalStateException("draw " + next + " of " + n + " values does not fit " + file);
                    }
                    return list.get(next++).clone();
                }
            };
        }
    }

    private static float[] repeat(float[] v, int times) {
        float[] out = new float[v.length * times];
        for (int i = 0; i < times; i++) {
            System.arraycopy(v, 0, out, i * v.length, v.length);
        }
        return out;
    }

    private static float[] finite(SafeTensorsFile f, String file, String name) {
        if (!f.info(name).dtype().isFloatingPoint()) {
            throw new WeightsException(file + ": tensor '" + Text.quote(name) + "' has dtype " + f.info(name).dtype()
                    + ", expected a float type");
        }
        float[] v = f.toFloatArray(name);
        long bad = Executor.nonFinite(v);
        if (bad > 0) {
            throw new WeightsException(file + ": tensor '" + Text.quote(name) + "' holds " + bad + " NaN/Inf values");
        }
        return v;
    }

    private static String names(SafeTensorsFile f) {
        List<String> n = f.tensors().stream().map(t -> "'" + Text.quote(t.name()) + "'").limit(8).toList();
        return n.isEmpty() ? "no tensors" : String.join(", ", n) + (f.tensors().size() > 8 ? ", …" : "");
    }

    private static String name(Path p) {
        return Text.quote(p.getFileName() == null ? p.toString() : p.getFileName().toString());
    }
}
