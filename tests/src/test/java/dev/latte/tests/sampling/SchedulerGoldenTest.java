package dev.latte.tests.sampling;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.latte.core.Compare;
import dev.latte.core.Shape;
import dev.latte.sampling.DdimScheduler;
import dev.latte.sampling.LcmScheduler;
import dev.latte.sampling.NoiseModel;
import dev.latte.sampling.NoiseSource;
import dev.latte.sampling.Sampler;
import dev.latte.sampling.SamplingInputs;
import dev.latte.sampling.Scheduler;
import dev.latte.sampling.SchedulerConfig;
import dev.latte.tests.Resources;
import dev.latte.weights.SafeTensorsFile;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * DDIM and LCM against diffusers 0.25.1's trajectories for the synthetic model
 * eps(x, t) = 0.1·x + sin(t/100): timesteps exactly, ᾱ and every stored step at ≥ 100 dB.
 */
class SchedulerGoldenTest {
    static final double MIN_PSNR = 100;

    /** The goldens' model, exactly as their README states it. */
    static final NoiseModel SYNTHETIC = (x, t) -> {
        float[] e = new float[x.length];
        float s = (float) Math.sin(t / 100.0);
        for (int i = 0; i < x.length; i++) {
            e[i] = 0.1f * x[i] + s;
        }
        return e;
    };

    @ParameterizedTest
    @ValueSource(strings = {"ddim-20", "ddim-50", "lcm-4"})
    void trajectoryMatchesDiffusers(String name) throws Exception {
        Path path = Resources.golden("schedulers/" + name + ".safetensors");
        try (SafeTensorsFile g = SafeTensorsFile.open(path)) {
            JsonNode cfg = new ObjectMapper().readTree(g.metadata().get("config"));
            SchedulerConfig sd = SchedulerConfig.SD15;
            // the golden was made with the config SD15 claims to be
            assertEquals(sd.numTrainTimesteps(), cfg.get("num_train_timesteps").asInt());
            assertEquals(sd.betaStart(), cfg.get("beta_start").asDouble());
            assertEquals(sd.betaEnd(), cfg.get("beta_end").asDouble());
            assertEquals(sd.betaSchedule(), cfg.get("beta_schedule").asText());
            assertEquals(sd.setAlphaToOne(), cfg.get("set_alpha_to_one").asBoolean());
            assertEquals(sd.stepsOffset(), cfg.get("steps_offset").asInt());
            assertEquals("epsilon", cfg.get("prediction_type").asText());
            assertEquals("leading", cfg.get("timestep_spacing").asText());

            long[] want = g.toLongArray("timesteps");
            int steps = want.length;
            Scheduler s = name.startsWith("lcm")
                    ? new LcmScheduler(sd.withOriginalInferenceSteps(cfg.get("original_inference_steps").asInt()), steps)
                    : new DdimScheduler(sd, steps, 0);
            if (name.startsWith("lcm")) {
                assertEquals(sd.timestepScaling(), cfg.get("timestep_scaling").asDouble());
            }
            assertArrayEquals(want, Arrays.stream(s.timesteps()).asLongStream().toArray());
            if (g.contains("alphas_cumprod")) {
                Compare c = Compare.of(g.toFloatArray("alphas_cumprod"), sd.alphasCumprod());
                System.out.printf("%s alphas_cumprod: %.1f dB%n", name, c.psnr());
                assertTrue(c.psnr() >= MIN_PSNR, "alphas_cumprod " + c.psnr());
            }

            Shape shape = Shape.of(g.info("x_T").intShape());
            var noise = s.noiseDraws() == 0 ? NoiseSource.NONE
                    : SamplingInputs.noise(path, shape, s.noiseDraws());
            List<String> failures = new ArrayList<>();
            double[] worst = {Double.POSITIVE_INFINITY};
            Sampler.run(s, SYNTHETIC, g.toFloatArray("x_T"), noise, (i, n, t, x, denoised) -> {
                check(g, "x." + i, x, failures, worst);
                if (g.contains("denoised." + i)) {
                    check(g, "denoised." + i, denoised, failures, worst);
                }
            });
            System.out.printf("%s: %d steps, worst step %.1f dB%n", name, steps, worst[0]);
            assertTrue(failures.isEmpty(), String.join("; ", failures));
        }
    }

    private static void check(SafeTensorsFile g, String tensor, float[] got, List<String> failures, double[] worst) {
        Compare c = Compare.of(g.toFloatArray(tensor), got);
        worst[0] = Math.min(worst[0], c.psnr());
        if (!(c.psnr() >= MIN_PSNR)) {
            failures.add(String.format("%s %.1f dB", tensor, c.psnr()));
        }
    }
}
