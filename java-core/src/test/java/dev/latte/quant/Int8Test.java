package dev.latte.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** Per-output-channel symmetric int8: the rounding rule and the error bound it implies. */
class Int8Test {
    @Test
    void dequantisedRowIsWithinHalfAStepOfEveryWeight() {
        Random rnd = new Random(1);
        int rows = 37, cols = 3 * 3 * 19;
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            // rows of very different magnitudes: a per-tensor scale would fail the small ones
            w[i] = (float) (rnd.nextGaussian() * Math.pow(10, (i / cols) % 5 - 3));
        }
        Int8.Rows q = Int8.quantizeRows(w, rows);
        float[] back = Int8.dequantize(q.q(), q.scale());
        for (int r = 0; r < rows; r++) {
            float max = 0;
            int maxQ = 0;
            for (int c = r * cols; c < (r + 1) * cols; c++) {
                max = Math.max(max, Math.abs(w[c]));
                maxQ = Math.max(maxQ, Math.abs(q.q()[c]));
            }
            assertEquals(max / 127, q.scale()[r], 0f, "row " + r + " scale");
            assertEquals(127, maxQ, "row " + r + ": its largest weight maps to ±127");
            double bound = q.scale()[r] / 2 * (1 + 1e-6);
            for (int c = r * cols; c < (r + 1) * cols; c++) {
                assertTrue(Math.abs(w[c] - back[c]) <= bound,
                        "row " + r + " col " + (c - r * cols) + ": |" + w[c] + " - " + back[c] + "| > scale/2 " + bound);
            }
        }
    }

    @Test
    void roundsHalfToEvenAndClampsAtPlusMinus127() {
        // max 127 → scale exactly 1, so q = round(w) with ties to even, as torch.round does
        float[] w = {127f, 2.5f, -2.5f, 0.5f, 1.5f, -0.5f, -127f, 3.4999998f};
        Int8.Rows q = Int8.quantizeRows(w, 1);
        assertEquals(1f, q.scale()[0]);
        assertArrayEquals(new byte[] {127, 2, -2, 0, 2, 0, -127, 3}, q.q());
        byte[] out = new byte[1];
        Int8.quantize(new float[] {-300f}, 0, 1, 1f, out, 0);
        assertEquals(-127, out[0], "symmetric: never -128");
    }

    @Test
    void zeroRowGetsScaleOneAndZeros() {
        Int8.Rows q = Int8.quantizeRows(new float[] {0, 0, 0, 1, -2, 4}, 2);
        assertArrayEquals(new float[] {1f, 4f / 127}, q.scale());
        assertArrayEquals(new byte[] {0, 0, 0, 32, -64, 127}, q.q());
        assertArrayEquals(new float[] {0, 0, 0}, java.util.Arrays.copyOf(Int8.dequantize(q.q(), q.scale()), 3));
    }

    @Test
    void nonFiniteRowIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> Int8.quantizeRows(new float[] {1, Float.NaN}, 1));
        assertThrows(IllegalArgumentException.class, () -> Int8.quantizeRows(new float[] {1, 2, 3}, 2));
    }
}
