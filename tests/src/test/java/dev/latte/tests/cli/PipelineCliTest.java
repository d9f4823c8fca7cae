package dev.latte.tests.cli;

import dev.latte.tests.Resources;
import dev.latte.tests.cli.Cli.Result;
import dev.latte.weights.SafeTensorsFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static dev.latte.tests.cli.Cli.assertBadInput;
import static dev.latte.tests.cli.Cli.latte;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** txt2img / img2img / tokenize on the bundled tiny pipeline folder, and the bad input they must name. */
class PipelineCliTest {
    static final String PROMPT = "a photograph of an astronaut riding a horse";
    @TempDir
    Path tmp;

    static Path pipeline() {
        return Resources.golden("pipeline");
    }

    static String goldenRun() {
        return pipeline().resolve("txt2img/tiny-ddim20-cfg7.5.safetensors").toString();
    }

    /** A pipeline folder of links to the bundled one's components, but {@code replaced} as an empty folder. */
    Path pipelineWith(String replaced) throws IOException {
        Path d = Files.createTempDirectory(tmp, "pipe");
        for (String c : new String[] {"model_index.json", "tokenizer", "text_encoder", "unet", "vae", "scheduler"}) {
            if (!c.equals(replaced)) {
                Files.createSymbolicLink(d.resolve(c), pipeline().resolve(c).toRealPath());
            }
        }
        return d;
    }

    @Test
    void txt2imgReproducesTheGoldenPng() throws IOException {
        Path png = tmp.resolve("out/astronaut.png");
        Result r = latte("txt2img", "--model", pipeline().toString(), "--prompt", PROMPT, "--steps", "20",
                "--guidance", "7.5", "--init-latents", goldenRun(), "--out", png.toString(), "--trace");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("txt2img: 128x128, ddim 20 steps"), r.out());
        BufferedImage got = ImageIO.read(png.toFile());
        BufferedImage ref = ImageIO.read(pipeline().resolve("txt2img/tiny-ddim20-cfg7.5.png").toFile());
        assertEquals(ref.getWidth(), got.getWidth());
        assertEquals(ref.getHeight(), got.getHeight());
        int differ = 0;
        for (int y = 0; y < 128; y++) {
            for (int x = 0; x < 128; x++) {
                int a = got.getRGB(x, y), b = ref.getRGB(x, y);
                for (int c = 0; c < 3; c++) {
                    int d = Math.abs(((a >> 8 * c) & 0xff) - ((b >> 8 * c) & 0xff));
                    assertTrue(d <= 1, "pixel " + x + "," + y + " differs by " + d);
                    differ += d;
                }
            }
        }
        assertTrue(differ <= 5, differ + " 8-bit values differ from the golden PNG");
        try (SafeTensorsFile t = SafeTensorsFile.open(tmp.resolve("out/astronaut.safetensors"))) {
            for (String name : new String[] {"cond_embeds", "uncond_embeds", "latents.0", "latents.19", "sample", "image",
                    "image_uint8", "input_ids_cond", "timesteps"}) {
                assertTrue(t.contains(name), name);
            }
        }
        assertEquals(0, Files.list(png.getParent()).filter(p -> p.getFileName().toString().endsWith(".tmp")
                || p.getFileName().toString().contains(".latte-tmp.")).count());
    }

    @Test
    void img2imgRunsFromAnImage() throws IOException {
        Path png = tmp.resolve("a.png");
        assertEquals(0, latte("txt2img", "--model", pipeline().toString(), "--prompt", "a cat", "--steps", "2",
                "--height", "64", "--width", "64", "--out", png.toString()).code());
        Path out = tmp.resolve("b.png");
        Result r = latte("img2img", "--model", pipeline().toString(), "--image", png.toString(), "--prompt", "a dog",
                "--steps", "4", "--strength", "0.5", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("img2img: 64x64, ddim 2 steps"), r.out());
        assertEquals(64, ImageIO.read(out.toFile()).getWidth());
    }

    @Test
    void tokenizePrintsIds() {
        Result r = latte("tokenize", "--model", pipeline().toString(), "--json", "a photo of a cat");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("[{\"prompt\":\"a photo of a cat\",\"input_ids\":[49406,320,1125,539,320,2368,49407,"),
                r.out());
    }

    @Test
    void aLongPromptIsTruncatedWithAWarning() {
        Result r = latte("txt2img", "--model", pipeline().toString(), "--prompt", "cat ".repeat(80), "--steps", "1",
                "--height", "64", "--width", "64", "--out", tmp.resolve("c.png").toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("latte: warning: the prompt is 80 tokens; CLIP reads 75, the last 5 were dropped"),
                r.err());
    }

    @Test
    void badInputIsNamed() throws IOException {
        String out = tmp.resolve("x.png").toString();
        assertBadInput(latte("txt2img", "--model", pipelineWith("vae").toString(), "--prompt", "a", "--out", out),
                "no vae/ folder");
        Path noTok = pipelineWith("tokenizer");
        Files.createDirectories(noTok.resolve("tokenizer"));
        Files.writeString(noTok.resolve("tokenizer/vocab.json"), "{\"a\": 0}");
        Files.writeString(noTok.resolve("tokenizer/merges.txt"), "#version: 0.2\n");
        assertBadInput(latte("txt2img", "--model", noTok.toString(), "--prompt", "a", "--out", out),
                "vocab.json", "not CLIP's");
        assertBadInput(latte("txt2img", "--model", pipeline().toString(), "--prompt", "caf\ufffd", "--out", out),
                "not valid UTF-8");
        assertBadInput(latte("txt2img", "--model", pipeline().toString(), "--prompt", "a", "--out",
                pipeline().resolve("vae/x.png").toString()), "inside the model folder");
        assertBadInput(latte("txt2img", "--model", pipeline().toString(), "--prompt", "a", "--height", "100", "--out",
                out), "multiples of 8");

        BufferedImage odd = new BufferedImage(60, 64, BufferedImage.TYPE_INT_RGB);
        Path oddPng = tmp.resolve("odd.png");
        ImageIO.write(odd, "png", oddPng.toFile());
        assertBadInput(latte("img2img", "--model", pipeline().toString(), "--image", oddPng.toString(), "--prompt", "a",
                "--out", out), "odd.png", "60x64", "multiples of 8");
        assertBadInput(latte("img2img", "--model", pipeline().toString(), "--image", oddPng.toString(), "--prompt", "a",
                "--out", oddPng.toString()), "would replace the input", "odd.png");
        Path notImage = tmp.resolve("n.png");
        Files.writeString(notImage, "hello");
        assertBadInput(latte("img2img", "--model", pipeline().toString(), "--image", notImage.toString(), "--prompt",
                "a", "--out", out), "n.png", "not an image");
    }

    /** No output (the PNG or its --trace) may be, or replace, an input, by any path that reaches it. */
    @Test
    void outputsNeverReplaceAnInput() throws IOException {
        // the trace beside OUT.png is OUT.safetensors: through a link to vae/ it would be the VAE's weights
        Path vaeLink = Files.createSymbolicLink(tmp.resolve("v"), pipeline().resolve("vae").toRealPath());
        Path weights = pipeline().resolve("vae/diffusion_pytorch_model.safetensors");
        byte[] before = Files.readAllBytes(weights);
        assertBadInput(latte("txt2img", "--model", pipeline().toString(), "--prompt", "a", "--steps", "1", "--trace",
                "--out", vaeLink.resolve("diffusion_pytorch_model.png").toString()), "inside the model folder");
        // the golden run given as --init-latents, replaced by the trace of --out beside it (a hard link to it)
        Path init = tmp.resolve("init.safetensors");
        Files.copy(Path.of(goldenRun()), init);
        Path dir = Files.createDirectories(tmp.resolve("d"));
        Files.createLink(dir.resolve("run.safetensors"), init);
        byte[] initBefore = Files.readAllBytes(init);
        assertBadInput(latte("txt2img", "--model", pipeline().toString(), "--prompt", "a", "--steps", "1", "--trace",
                "--init-latents", init.toString(), "--out", dir.resolve("run.png").toString()),
                "--trace", "would replace the input", "init.safetensors");
        assertBadInput(latte("txt2img", "--model", pipeline().toString(), "--prompt", "a", "--steps", "1", "--trace",
                "--init-latents", init.toString(), "--out", tmp.resolve("init.png").toString()),
                "--trace", "would replace the input", "init.safetensors");
        // img2img onto its own image through a symbolic link
        Path png = tmp.resolve("a.png");
        ImageIO.write(new BufferedImage(64, 64, BufferedImage.TYPE_INT_RGB), "png", png.toFile());
        Path pngLink = Files.createSymbolicLink(tmp.resolve("l.png"), png);
        byte[] pngBefore = Files.readAllBytes(png);
        assertBadInput(latte("img2img", "--model", pipeline().toString(), "--image", png.toString(), "--prompt", "a",
                "--steps", "2", "--out", pngLink.toString()), "--out", "would replace the input", "a.png");
        assertArrayEquals(before, Files.readAllBytes(weights));
        assertArrayEquals(initBefore, Files.readAllBytes(init));
        assertArrayEquals(pngBefore, Files.readAllBytes(png));
        assertFalse(Files.exists(dir.resolve("run.png")));
        assertFalse(Files.exists(tmp.resolve("init.png")));
    }

    @Test
    void validateInfoAndPlanKnowEveryComponent() {
        Path p = pipeline();
        Result te = latte("validate", "--model", p.resolve("text_encoder").toString(), "--golden",
                p.resolve("text_encoder/case-2.safetensors").toString());
        assertEquals(0, te.code(), te.err());
        assertTrue(te.out().contains("case-2.safetensors: 5 tensors, all >= 110.0 dB"), te.out());
        Result vae = latte("validate", "--model", p.resolve("vae").toString(), "--golden",
                p.resolve("vae/decode-1.safetensors").toString());
        assertEquals(0, vae.code(), vae.err());
        assertTrue(vae.out().contains("decode-1.safetensors: 8 tensors, all >= 110.0 dB"), vae.out());

        Result info = latte("info", "--model", p.toString());
        assertEquals(0, info.code(), info.err());
        assertTrue(info.out().contains("text_encoder: CLIPTextModel, 1,597,162 parameters"), info.out());
        assertTrue(info.out().contains("vae: AutoencoderKL, 1,028,935 parameters"), info.out());
        Result infoVae = latte("info", "--model", p.resolve("vae").toString());
        assertTrue(infoVae.out().contains("parameters: 1,028,935"), infoVae.out());

        Result plan = latte("plan", "--pipeline", "--config", "sd15", "--height", "256", "--width", "256");
        assertEquals(0, plan.code(), plan.err());
        assertTrue(plan.out().contains("text encoder (batch 2, 77 tokens)"), plan.out());
        assertTrue(plan.out().contains("peak, phases one at a time"), plan.out());
        Result tiled = latte("plan", "--config", p.toString(), "--height", "256", "--width", "256", "--vae-tiling");
        assertEquals(0, tiled.code(), tiled.err());
        assertTrue(tiled.out().contains("vae decode, tiled (16x16 latent tiles)"), tiled.out());
        assertTrue(tiled.out().contains("tiling saves"), tiled.out());
        Result planTe = latte("plan", "--config", p.resolve("text_encoder").toString());
        assertEquals(0, planTe.code(), planTe.err());
        assertTrue(planTe.out().contains("text encoder"), planTe.out());
    }

    @Test
    void validateNamesAGoldenOfAnotherComponent() {
        assertBadInput(latte("validate", "--model", pipeline().resolve("vae").toString(), "--golden",
                pipeline().resolve("text_encoder/case-2.safetensors").toString()), "case-2.safetensors", "image");
    }
}
