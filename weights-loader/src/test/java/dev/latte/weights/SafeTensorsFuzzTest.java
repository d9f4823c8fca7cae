package dev.latte.weights;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Any byte string given as a safetensors file either opens, with every tensor readable within the
 * file's bytes, or fails with one {@link WeightsException} line that names the file. Anything else
 * (another exception, an error, a hang) is a finding. Regression mode (the default) replays the
 * committed seeds under {@code src/test/resources/dev/latte/weights/SafeTensorsFuzzTestInputs/};
 * {@code JAZZER_FUZZ=1} fuzzes (README, "Fuzzing").
 */
class SafeTensorsFuzzTest {
    private static final Path FILE = scratch();

    @FuzzTest(maxDuration = "10m")
    void openAndReadEveryTensor(byte[] bytes) throws IOException {
        Files.write(FILE, bytes);
        try (SafeTensorsFile f = SafeTensorsFile.open(FILE)) {
            for (TensorInfo t : f.tensors()) {
                assertTrue(t.end() - t.begin() <= bytes.length, t.toString());
                f.data(t.name());
                float[] v = f.toFloatArray(t.name());
                assertTrue(v.length == t.numel(), t.toString());
                long nonFinite = 0;
                for (float x : v) {
                    nonFinite += Float.isFinite(x) ? 0 : 1;
                }
                if (t.dtype() != DType.F64) { // F64 → float can overflow to Inf; the scan reads doubles
                    assertTrue(f.nonFiniteCount(t.name()) == nonFinite, t.toString());
                }
                if (!t.dtype().isFloatingPoint()) {
                    f.toLongArray(t.name());
                }
            }
            f.metadata().forEach((k, v) -> Text.quote(k + v));
        } catch (WeightsException e) {
            Fuzzing.assertOneLine(e, "fuzz.safetensors");
        }
    }

    private static Path scratch() {
        try {
            Path dir = Files.createTempDirectory("latte-fuzz");
            dir.toFile().deleteOnExit();
            Path f = dir.resolve("fuzz.safetensors");
            f.toFile().deleteOnExit();
            return f;
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }
}
