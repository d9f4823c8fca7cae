package dev.latte.tests.fuzz;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.latte.model.GoldenCase;
import dev.latte.model.UNetModel;
import dev.latte.tests.Resources;
import dev.latte.weights.WeightsException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Any bytes as a golden case for unet-tiny: either every input and reference is read, finite and
 * shaped as the model's graph says (and no reference is all zeros), or one line naming the file.
 * The UNet itself is not run: the loader is what is fuzzed. Seeds: {@code GoldenFuzzTestInputs/readCase/}.
 */
class GoldenFuzzTest {
    private static final UNetModel MODEL = UNetModel.load(Resources.unetTiny());
    private static final Path FILE = Fuzzing.scratch("fuzz-case.safetensors");

    @FuzzTest(maxDuration = "10m")
    void readCase(byte[] bytes) throws IOException {
        Files.write(FILE, bytes);
        try {
            GoldenCase.Loaded c = GoldenCase.read(MODEL, FILE);
            var d = c.dims();
            assertEquals((long) d.batch() * MODEL.config().inChannels() * d.height() * d.width(), c.sample().length);
            assertTrue(c.timestep().length == 1 || c.timestep().length == d.batch());
            assertTrue(!c.expected().isEmpty());
            for (float[] ref : c.expected().values()) {
                for (float v : ref) {
                    assertTrue(Float.isFinite(v));
                }
            }
        } catch (WeightsException e) {
            Fuzzing.assertOneLine(e, "fuzz-case.safetensors");
        }
    }
}
