package dev.latte.sampling;

import dev.latte.core.Shape;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.WeightsException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SamplingInputsTest {
    @TempDir
    Path tmp;

    @Test
    void oneNegativePromptServesTheWholeBatch() {
        Path f = tmp.resolve("ctx.safetensors");
        new SafeTensorsWriter().addF32("cond", new long[] {3, 2, 4}, new Gaussian(1).next(24))
                .addF32("uncond", new long[] {1, 2, 4}, new float[] {1, 2, 3, 4, 5, 6, 7, 8}).write(f);
        var c = SamplingInputs.context(f, 4, true);
        assertEquals(3, c.batch());
        assertEquals(2, c.tokens());
        float[] want = new float[24];
        for (int i = 0; i < 24; i++) {
            want[i] = i % 8 + 1;
        }
        assertArrayEquals(want, c.uncond());
        assertNull(SamplingInputs.context(f, 4, false).uncond(), "no guidance, no uncond");
    }

    @Test
    void recordedNoiseIsReplayedInOrderAndChecked() {
        Path f = tmp.resolve("noise.safetensors");
        new SafeTensorsWriter().addF32("noise.0", new long[] {1, 2}, new float[] {1, 2})
                .addF32("noise.1", new long[] {1, 2}, new float[] {3, 4}).write(f);
        NoiseSource n = SamplingInputs.noise(f, Shape.of(1, 2), 2);
        assertArrayEquals(new float[] {1, 2}, n.next(2));
        assertArrayEquals(new float[] {3, 4}, n.next(2));
        var e = assertThrows(WeightsException.class, () -> SamplingInputs.noise(f, Shape.of(2, 1), 2));
        assertTrue(e.getMessage().contains("'noise.0'") && e.getMessage().contains("[2, 1]"), e.getMessage());
        e = assertThrows(WeightsException.class, () -> SamplingInputs.noise(f, Shape.of(1, 2), 3));
        assertTrue(e.getMessage().contains("no tensor 'noise.2'"), e.getMessage());
    }
}
