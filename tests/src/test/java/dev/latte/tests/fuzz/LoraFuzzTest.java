package dev.latte.tests.fuzz;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.latte.lora.Lora;
import dev.latte.model.UNetModel;
import dev.latte.tests.Resources;
import dev.latte.weights.WeightsException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Any bytes as a LoRA file for unet-tiny: either it loads and merges into finite weights of the
 * targets' sizes, or one line naming the file. Seeds: {@code LoraFuzzTestInputs/loadAndMerge/}.
 */
class LoraFuzzTest {
    private static final UNetModel MODEL = UNetModel.load(Resources.unetTiny());
    private static final Path FILE = Fuzzing.scratch("fuzz-lora.safetensors");

    @FuzzTest(maxDuration = "10m")
    void loadAndMerge(byte[] bytes) throws IOException {
        Files.write(FILE, bytes);
        try {
            Lora lora = Lora.load(FILE, MODEL.weights());
            for (var e : lora.mergedWeights(MODEL.weights(), 1.0).entrySet()) {
                assertTrue(e.getValue().length == MODEL.weights().info(e.getKey()).numel(), e.getKey());
                for (float v : e.getValue()) {
                    assertTrue(Float.isFinite(v), e.getKey());
                }
            }
        } catch (WeightsException e) {
            Fuzzing.assertOneLine(e, "fuzz-lora.safetensors");
        }
    }
}
