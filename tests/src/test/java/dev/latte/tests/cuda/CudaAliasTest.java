package dev.latte.tests.cuda;

import dev.latte.cli.Backends;
import dev.latte.core.Backend;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The CUDA backend compares tensors by their device bytes, as the CPU backend compares arrays: two
 * view objects of the same arena bytes are one tensor (an op that may run in place accepts them,
 * one that may not refuses them), and a partial overlap is refused.
 */
class CudaAliasTest {
    /** The cuda backend at {@code dtype}; skips the calling test, saying why, where none can be opened. */
    static Backend open(String dtype) {
        try {
            return Backends.open("cuda", dtype, 1);
        } catch (Backends.Unavailable e) {
            assumeTrue(false, e.getMessage());
            return null;
        }
    }

    @Test
    void viewsOfTheSameBytesAreOneTensor() {
        try (Backend b = open("fp32")) {
            Tensor arena = b.arena(4096);
            Shape s = Shape.of(4, 8);
            Tensor x = b.view(arena, 0, s), sameBytes = b.view(arena, 0, s), shifted = b.view(arena, 4, s);
            Tensor w = b.upload(Shape.of(8, 8), new float[64]);
            var e = assertThrows(IllegalArgumentException.class, () -> b.linear(x, w, null, sameBytes));
            assertTrue(e.getMessage().endsWith("(out aliases x)"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> b.scale(x, 2f, shifted));
            assertTrue(e.getMessage().endsWith("(out partly overlaps x)"), e.getMessage());
            float[] v = new float[32];
            for (int i = 0; i < v.length; i++) {
                v[i] = i;
            }
            b.write(x, v);
            b.scale(x, 2f, sameBytes); // in place through another view object: allowed
            float[] twice = new float[32];
            for (int i = 0; i < v.length; i++) {
                twice[i] = 2 * i;
            }
            assertArrayEquals(twice, b.download(x));
            b.release(w);
            b.release(arena);
        }
    }
}
