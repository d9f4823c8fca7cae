package dev.latte.weights;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** linear.safetensors was written by Python's safetensors (see shared/golden/README.md). */
class GoldenLinearTest {
    static Path resource(String name) throws Exception {
        return Path.of(GoldenLinearTest.class.getResource("/" + name).toURI());
    }

    @Test
    void readsPythonWrittenFile() throws Exception {
        try (SafeTensorsFile st = SafeTensorsFile.open(resource("linear.safetensors"))) {
            assertEquals(List.of("bias F32[40]", "weight F32[40, 48]", "x F32[2, 10, 48]", "y F32[2, 10, 40]"),
                    st.tensors().stream().map(TensorInfo::toString).toList());
            assertTrue(st.metadata().isEmpty());

            // y = x·Wᵀ + b as PyTorch computed it: checks layout and byte order, not just parsing.
            float[] x = st.toFloatArray("x");
            float[] w = st.toFloatArray("weight");
            float[] b = st.toFloatArray("bias");
            float[] y = st.toFloatArray("y");
            for (int row = 0; row < 20; row++) {
                for (int o = 0; o < 40; o++) {
                    double acc = b[o];
                    for (int i = 0; i < 48; i++) {
                        acc += (double) x[row * 48 + i] * w[o * 48 + i];
                    }
                    assertEquals(y[row * 40 + o], acc, 1e-4, "y[" + row + "," + o + "]");
                }
            }
        }
    }

    @Test
    void writerReproducesPythonBytesExactly(@TempDir Path dir) throws Exception {
        Path golden = resource("linear.safetensors");
        Path copy = dir.resolve("linear.safetensors");
        try (SafeTensorsFile st = SafeTensorsFile.open(golden)) {
            SafeTensorsWriter w = new SafeTensorsWriter();
            for (TensorInfo t : st.tensors()) {
                w.add(t.name(), t.dtype(), t.shape(), st.data(t.name()));
            }
            w.write(copy);
        }
        assertArrayEquals(Files.readAllBytes(golden), Files.readAllBytes(copy));
    }
}
