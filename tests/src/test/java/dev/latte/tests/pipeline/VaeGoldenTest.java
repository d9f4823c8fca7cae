package dev.latte.tests.pipeline;

import dev.latte.cpu.CpuBackend;
import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.model.ComponentGolden;
import dev.latte.model.GoldenCase;
import dev.latte.model.GraphRunner;
import dev.latte.model.ModelWeights;
import dev.latte.model.VaeModel;
import dev.latte.tests.Resources;
import dev.latte.vae.AutoencoderKL;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.VaeConfig;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** AutoencoderKL decoder and encoder on the CPU against diffusers' vae-tiny goldens, every intermediate. */
class VaeGoldenTest {
    static final double GATE = 110;

    static Path dir() {
        return Resources.golden("pipeline/vae");
    }

    @Test
    void decodeEveryIntermediate() {
        try (VaeModel vae = VaeModel.load(dir()); CpuBackend cpu = new CpuBackend();
             GraphRunner runner = new GraphRunner(cpu, vae.weights(), vae::storedName);
             SafeTensorsFile f = SafeTensorsFile.open(dir().resolve("decode-1.safetensors"))) {
            int[] s = f.info("z").intShape();
            Graph graph = Fusion.fuse(vae.decoder(s[0], s[2], s[3]));
            float[] z = vae.latentsToZ(f.toFloatArray("latents"));
            assertTrue(dev.latte.core.Compare.of(f.toFloatArray("z"), z).psnr() > 140, "latents / scaling_factor");
            List<GoldenCase.Row> rows = ComponentGolden.validate(runner, graph, f, Map.of(AutoencoderKL.Z, z),
                    Set.of("latents"), Map.of("image", r -> VaeModel.toImage(r.get(AutoencoderKL.SAMPLE))));
            check("decode-1", rows, 8);
        }
    }

    @Test
    void encodeEveryIntermediate() {
        try (VaeModel vae = VaeModel.load(dir()); CpuBackend cpu = new CpuBackend();
             GraphRunner runner = new GraphRunner(cpu, vae.weights(), vae::storedName);
             SafeTensorsFile f = SafeTensorsFile.open(dir().resolve("encode-1.safetensors"))) {
            int[] s = f.info("image").intShape();
            Graph graph = Fusion.fuse(vae.encoder(s[0], s[2], s[3]));
            int l = vae.config().latentChannels(), down = vae.config().downscale();
            int hw = (s[2] / down) * (s[3] / down);
            List<GoldenCase.Row> rows = ComponentGolden.validate(runner, graph, f,
                    Map.of(AutoencoderKL.IMAGE, f.toFloatArray("image")), Set.of(), Map.of(
                            "mean", r -> VaeModel.meanLogvar(r.get(AutoencoderKL.MOMENTS), s[0], l, hw)[0],
                            "logvar", r -> VaeModel.meanLogvar(r.get(AutoencoderKL.MOMENTS), s[0], l, hw)[1]));
            check("encode-1", rows, 10);
        }
    }

    private static void check(String name, List<GoldenCase.Row> rows, int expected) {
        for (GoldenCase.Row r : rows) {
            System.out.printf("vae %s %-28s %-16s %.1f dB%n", name, r.name(), r.shape(), r.compare().psnr());
        }
        assertEquals(expected, rows.size(), rows.toString());
        for (GoldenCase.Row r : rows) {
            assertTrue(r.compare().psnr() >= GATE, name + " " + r.name() + ": " + r.compare().psnr() + " dB");
        }
    }

    /** SD1.5's vae/config.json (diffusers 0.6.0 era keys). */
    static final String SD15 = """
            {"_class_name": "AutoencoderKL", "_diffusers_version": "0.6.0", "act_fn": "silu",
             "block_out_channels": [128, 256, 512, 512],
             "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
             "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3,
             "sample_size": 512,
             "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]}""";

    @Test
    void sd15ConfigHasItsParameterCount() {
        AutoencoderKL vae = new AutoencoderKL(VaeConfig.parse(SD15, "sd15 vae/config.json"));
        assertEquals(83_653_863L, ModelWeights.parameterCount(VaeModel.parameters(vae)));
        Graph dec = vae.decoder(1, 64, 64);
        assertEquals(List.of(1, 3, 512, 512), java.util.Arrays.stream(dec.outputs().get("sample").shape().dims())
                .boxed().toList());
    }
}
