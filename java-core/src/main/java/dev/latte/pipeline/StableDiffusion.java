package dev.latte.pipeline;

import dev.latte.clip.ClipTextModel;
import dev.latte.clip.ClipTokenizer;
import dev.latte.core.Backend;
import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.model.GraphRunner;
import dev.latte.model.UNetRunner;
import dev.latte.model.VaeModel;
import dev.latte.sampling.GuidedUNet;
import dev.latte.sampling.NoiseSource;
import dev.latte.sampling.Sampler;
import dev.latte.sampling.SamplingInputs;
import dev.latte.sampling.Scheduler;
import dev.latte.vae.AutoencoderKL;
import dev.latte.vae.TiledDecode;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code StableDiffusionPipeline.__call__} (and the img2img variant) of diffusers 0.25.1 on a
 * backend, one phase after another: tokenize; the text encoder on [uncond, cond]; (img2img: the
 * VAE encoder, then noise added at the first timestep); the denoising loop with classifier-free
 * guidance; the VAE decoder on {@code latents / scaling_factor}; {@code (x/2 + 0.5).clamp(0, 1)};
 * 8-bit rounding. Each phase's weights and arena are freed before the next phase allocates its
 * own, so the run's peak is the largest phase, not their sum.
 */
public final class StableDiffusion {
    private StableDiffusion() {
    }

    /** An init image for img2img: [1, 3, H, W] in [-1, 1], and how much of the schedule re-noises it. */
    public record InitImage(float[] pixels, double strength) {
    }

    /**
     * @param height,width image pixels (multiples of the VAE's scale)
     * @param initLatents  replaces the seeded draw of the initial latents (txt2img), or null
     * @param unetWeights  UNet tensors to upload instead of the file's (a merged LoRA); may be empty
     */
    public record Request(String prompt, String negativePrompt, Scheduler scheduler, double guidance,
                          NoiseSource noise, int height, int width, float[] initLatents,
                          Map<String, float[]> unetWeights, boolean vaeTiling, InitImage initImage) {
    }

    /** Told when a phase starts, and after every denoising step. */
    public interface Listener extends Sampler.Listener {
        default void phase(String name) {
        }
    }

    public record Result(int[] condIds, int[] uncondIds, float[] condEmbeds, float[] uncondEmbeds, float[] initLatents,
                         int[] timesteps, List<float[]> noisePreds, List<float[]> stepLatents, float[] latents,
                         float[] sample, float[] image, byte[] imageUint8, int height, int width,
                         List<String> warnings, boolean tiled) {
    }

    public static Result run(PipelineFolder p, Backend backend, Request r, Listener listener) {
        int scale = p.vaeScale();
        if (r.height() <= 0 || r.width() <= 0 || r.height() % scale != 0 || r.width() % scale != 0) {
            throw new IllegalArgumentException("height and width must be positive multiples of " + scale + " (the VAE's"
                    + " scale), got " + r.height() + "x" + r.width());
        }
        int lh = r.height() / scale, lw = r.width() / scale, lc = p.vae().config().latentChannels();
        int n = lc * lh * lw;
        boolean guided = r.guidance() > 1;
        List<String> warnings = new ArrayList<>();

        // 1. tokenize (diffusers: padding to max_length, truncation with a warning)
        listener.phase("tokenize");
        ClipTokenizer tok = p.tokenizer();
        ClipTokenizer.Encoding cond = encode(tok, r.prompt(), "prompt", warnings);
        ClipTokenizer.Encoding uncond = guided ? encode(tok, r.negativePrompt() == null ? "" : r.negativePrompt(),
                "negative prompt", warnings) : null;

        // 2. text encoder on [uncond, cond]; its weights and arena are gone before the UNet's arrive
        listener.phase("text encoder");
        int len = tok.maxLength(), dim = p.textEncoder().config().hiddenSize();
        float[] ids = new float[(guided ? 2 : 1) * len];
        int off = 0;
        if (guided) {
            for (int i = 0; i < len; i++) {
                ids[i] = uncond.ids()[i];
            }
            off = len;
        }
        for (int i = 0; i < len; i++) {
            ids[off + i] = cond.ids()[i];
        }
        float[] embeds;
        try (GraphRunner te = new GraphRunner(backend, p.textEncoder().weights())) {
            Graph g = Fusion.fuse(p.textEncoder().graph(guided ? 2 : 1, len));
            embeds = te.run(g, Map.of(ClipTextModel.INPUT, ids), Set.of(ClipTextModel.OUT)).get(ClipTextModel.OUT);
        }
        float[] uncondEmbeds = guided ? java.util.Arrays.copyOfRange(embeds, 0, len * dim) : null;
        float[] condEmbeds = java.util.Arrays.copyOfRange(embeds, guided ? len * dim : 0, embeds.length);

        // 3. initial latents: seeded N(0, 1) or given (txt2img), or the encoded image noised to the first step
        Scheduler s = r.scheduler();
        int[] ts = s.timesteps();
        int start = 0;
        float[] x;
        if (r.initImage() != null) {
            listener.phase("vae encoder");
            double strength = r.initImage().strength();
            if (!(strength > 0 && strength <= 1)) {
                throw new IllegalArgumentException("strength must be in (0, 1], got " + strength);
            }
            int initSteps = Math.min((int) (ts.length * strength), ts.length);
            start = Math.max(ts.length - initSteps, 0);
            if (start >= ts.length) {
                throw new IllegalArgumentException("strength " + strength + " with " + ts.length + " steps leaves no "
                        + "step to run; raise --strength or --steps");
            }
            float[] x0 = encodeImage(p, backend, r.initImage().pixels(), r.height(), r.width(), r.noise());
            float[] eps = r.noise().next(n);
            float acp = p.scheduler().alphasCumprod()[ts[start]];
            float a = (float) Math.sqrt(acp), b = (float) Math.sqrt(1 - acp);
            x = new float[n];
            for (int i = 0; i < n; i++) {
                x[i] = a * x0[i] + b * eps[i];
            }
        } else if (r.initLatents() != null) {
            if (r.initLatents().length != n) {
                throw new IllegalArgumentException("initial latents have " + r.initLatents().length + " values, a "
                        + r.height() + "x" + r.width() + " image needs [1, " + lc + ", " + lh + ", " + lw + "]");
            }
            x = r.initLatents().clone();
        } else {
            x = r.noise().next(n);
        }
        float[] initLatents = x.clone();

        // 4. denoising loop
        listener.phase("unet");
        List<float[]> noisePreds = new ArrayList<>(), stepLatents = new ArrayList<>();
        try (UNetRunner runner = new UNetRunner(p.unet(), backend, r.unetWeights())) {
            var ctx = new SamplingInputs.Conditioning(condEmbeds, uncondEmbeds, 1, len, dim);
            var unet = new GuidedUNet(runner, ctx, r.guidance(), lh, lw);
            for (int i = start; i < ts.length; i++) {
                float[] eps = unet.predict(x, ts[i]);
                Scheduler.Step step = s.step(i, eps, x, r.noise());
                x = step.prevSample();
                noisePreds.add(eps);
                stepLatents.add(x);
                listener.onStep(i - start, ts.length - start, ts[i], x, step.denoised());
            }
        }

        // 5. VAE decode, image, 8-bit
        listener.phase("vae decoder");
        DecodeResult d = decode(p, backend, x, lh, lw, r.vaeTiling());
        float[] image = VaeModel.toImage(d.sample);
        int[] tsRun = java.util.Arrays.copyOfRange(ts, start, ts.length);
        return new Result(cond.ids(), uncond == null ? null : uncond.ids(), condEmbeds, uncondEmbeds, initLatents, tsRun,
                noisePreds, stepLatents, x, d.sample, image, toUint8Hwc(image, 3, d.height, d.width), d.height, d.width,
                warnings, d.tiled);
    }

    private static ClipTokenizer.Encoding encode(ClipTokenizer tok, String text, String what, List<String> warnings) {
        if (text.indexOf('\ufffd') >= 0) {
            throw new IllegalArgumentException("the " + what + " holds U+FFFD (text that was not valid UTF-8 before it"
                    + " reached Latte); pass UTF-8 text");
        }
        ClipTokenizer.Encoding e = tok.encode(text);
        if (e.truncated()) {
            // as diffusers: the part past the limit is dropped, with a warning naming how much
            warnings.add("the " + what + " is " + e.bpeLength() + " tokens; CLIP reads " + (tok.maxLength() - 2)
                    + ", the last " + (e.bpeLength() - (tok.maxLength() - 2)) + " were dropped");
        }
        return e;
    }

    public record DecodeResult(float[] sample, int height, int width, boolean tiled) {
    }

    /** latents / scaling_factor through the decoder; tiled as diffusers' enable_tiling when asked and large enough. */
    public static DecodeResult decode(PipelineFolder p, Backend backend, float[] latents, int lh, int lw, boolean tiling) {
        VaeModel vae = p.vae();
        float[] z = vae.latentsToZ(latents);
        int lc = vae.config().latentChannels();
        int tileSample = vae.config().sampleSize(), tileLatent = tileSample / vae.config().downscale();
        try (GraphRunner dec = new GraphRunner(backend, vae.weights(), vae::storedName)) {
            Map<String, Graph> graphs = new HashMap<>();
            var decodeOne = (java.util.function.BiFunction<float[], int[], TiledDecode.Tile>) (tile, hw) -> {
                Graph g = graphs.computeIfAbsent(hw[0] + "x" + hw[1], k -> Fusion.fuse(vae.decoder(1, hw[0], hw[1])));
                float[] out = dec.run(g, Map.of(AutoencoderKL.Z, tile), Set.of(AutoencoderKL.SAMPLE))
                        .get(AutoencoderKL.SAMPLE);
                var os = g.outputs().get(AutoencoderKL.SAMPLE).shape();
                return new TiledDecode.Tile(out, 1, os.dim(1), os.dim(2), os.dim(3));
            };
            if (tiling && TiledDecode.needed(lh, lw, tileLatent)) {
                TiledDecode.Tile t = TiledDecode.decode(z, 1, lc, lh, lw, tileLatent, tileSample, decodeOne);
                return new DecodeResult(t.values(), t.height(), t.width(), true);
            }
            TiledDecode.Tile t = decodeOne.apply(z, new int[] {lh, lw});
            return new DecodeResult(t.values(), t.height(), t.width(), false);
        }
    }

    /** latent_dist.sample() · scaling_factor: mean + exp(logvar / 2)·N(0, 1), as diffusers' img2img draws it. */
    private static float[] encodeImage(PipelineFolder p, Backend backend, float[] pixels, int h, int w, NoiseSource noise) {
        VaeModel vae = p.vae();
        int lc = vae.config().latentChannels(), down = vae.config().downscale();
        float[] moments;
        try (GraphRunner enc = new GraphRunner(backend, vae.weights(), vae::storedName)) {
            Graph g = Fusion.fuse(vae.encoder(1, h, w));
            moments = enc.run(g, Map.of(AutoencoderKL.IMAGE, pixels), Set.of(AutoencoderKL.MOMENTS))
                    .get(AutoencoderKL.MOMENTS);
        }
        int hw = (h / down) * (w / down);
        float[][] ml = VaeModel.meanLogvar(moments, 1, lc, hw);
        float[] eps = noise.next(lc * hw);
        float sf = (float) vae.config().scalingFactor();
        float[] x0 = new float[lc * hw];
        for (int i = 0; i < x0.length; i++) {
            float std = (float) Math.exp(0.5 * ml[1][i]);
            x0[i] = (ml[0][i] + std * eps[i]) * sf;
        }
        return x0;
    }

    /** numpy's {@code (image * 255).round().astype(uint8)} (round half to even) on [B=1, C, H, W] → HWC. */
    public static byte[] toUint8Hwc(float[] image, int channels, int height, int width) {
        byte[] out = new byte[channels * height * width];
        for (int c = 0; c < channels; c++) {
            for (int y = 0; y < height; y++) {
                for (int x = 0; x < width; x++) {
                    float v = image[(c * height + y) * width + x] * 255f;
                    out[(y * width + x) * channels + c] = (byte) (int) Math.rint(v);
                }
            }
        }
        return out;
    }

    /** The trace's tensors, named as the txt2img golden names them. */
    public static Map<String, float[]> traceTensors(Result r) {
        Map<String, float[]> m = new LinkedHashMap<>();
        m.put("cond_embeds", r.condEmbeds());
        if (r.uncondEmbeds() != null) {
            m.put("uncond_embeds", r.uncondEmbeds());
        }
        m.put("init_latents", r.initLatents());
        for (int i = 0; i < r.stepLatents().size(); i++) {
            m.put("noise_pred." + i, r.noisePreds().get(i));
            m.put("latents." + i, r.stepLatents().get(i));
        }
        m.put("latents", r.latents());
        m.put("sample", r.sample());
        m.put("image", r.image());
        return m;
    }
}
