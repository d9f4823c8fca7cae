package dev.latte.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.latte.sampling.SchedulerConfig;
import dev.latte.weights.WeightsException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * {@code scheduler/scheduler_config.json} read for the keys DDIM and LCM share, whatever
 * scheduler class it names (SD1.5 ships a PNDMScheduler config; diffusers' {@code from_config}
 * reads the same keys). Settings Latte's schedulers do not implement are refused, by key.
 */
public final class SchedulerFile {
    private SchedulerFile() {
    }

    public static SchedulerConfig load(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new WeightsException(file.getParent() + ": no " + file.getFileName());
        }
        JsonNode n;
        try {
            n = new ObjectMapper().readTree(Files.readAllBytes(file));
        } catch (IOException e) {
            throw new WeightsException((file + ": not valid JSON: " + e.getMessage()).replaceAll("\\R", " "));
        }
        if (n == null || !n.isObject()) {
            throw new WeightsException(file + ": not a JSON object");
        }
        SchedulerConfig d = SchedulerConfig.SD15;
        refuseTrue(n, file, "clip_sample");
        refuseTrue(n, file, "thresholding");
        refuseTrue(n, file, "rescale_betas_zero_snr");
        if (n.hasNonNull("trained_betas")) {
            throw new WeightsException(file + ": trained_betas is not supported by Latte");
        }
        try {
            return new SchedulerConfig(
                    integer(n, file, "num_train_timesteps", d.numTrainTimesteps()),
                    number(n, file, "beta_start", d.betaStart()),
                    number(n, file, "beta_end", d.betaEnd()),
                    text(n, file, "beta_schedule", "linear"),
                    bool(n, file, "set_alpha_to_one", true),
                    integer(n, file, "steps_offset", 0),
                    SchedulerConfig.PredictionType.parse(text(n, file, "prediction_type", "epsilon")),
                    SchedulerConfig.TimestepSpacing.parse(text(n, file, "timestep_spacing", "leading")),
                    integer(n, file, "original_inference_steps", d.originalInferenceSteps()),
                    number(n, file, "timestep_scaling", d.timestepScaling()));
        } catch (IllegalArgumentException e) {
            throw new WeightsException(file + ": " + e.getMessage());
        }
    }

    private static void refuseTrue(JsonNode n, Path file, String key) {
        if (n.path(key).asBoolean(false)) {
            throw new WeightsException(file + ": " + key + " = true is not supported by Latte's DDIM/LCM");
        }
    }

    private static int integer(JsonNode n, Path file, String key, int dflt) {
        JsonNode v = n.get(key);
        if (v == null || v.isNull()) {
            return dflt;
        }
        if (!v.canConvertToInt() || !v.isIntegralNumber()) {
            throw new WeightsException(file + ": '" + key + "' must be an integer, got " + v);
        }
        return v.intValue();
    }

    private static double number(JsonNode n, Path file, String key, double dflt) {
        JsonNode v = n.get(key);
        if (v == null || v.isNull()) {
            return dflt;
        }
        if (!v.isNumber()) {
            throw new WeightsException(file + ": '" + key + "' must be a number, got " + v);
        }
        return v.doubleValue();
    }

    private static boolean bool(JsonNode n, Path file, String key, boolean dflt) {
        JsonNode v = n.get(key);
        if (v == null || v.isNull()) {
            return dflt;
        }
        if (!v.isBoolean()) {
            throw new WeightsException(file + ": '" + key + "' must be true or false, got " + v);
        }
        return v.booleanValue();
    }

    private static String text(JsonNode n, Path file, String key, String dflt) {
        JsonNode v = n.get(key);
        if (v == null || v.isNull()) {
            return dflt;
        }
        if (!v.isTextual()) {
            throw new WeightsException(file + ": '" + key + "' must be a string, got " + v);
        }
        return v.textValue();
    }
}
