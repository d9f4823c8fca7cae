package dev.latte.sampling;

import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

class GaussianTest {
    @Test
    void aSeedGivesPinnedNumbers() {
        // java.util.Random's Gaussian is specified, so these hold on every JDK: a run is reproducible anywhere
        assertArrayEquals(new float[] {1.1419053f, 0.91940796f, -0.94986665f, -1.1069903f}, new Gaussian(42).next(4));
    }

    @Test
    void drawsContinueOneStream() {
        Gaussian g = new Gaussian(5);
        float[] a = g.next(3), b = g.next(2);
        float[] all = new Gaussian(5).next(5);
        assertArrayEquals(all, new float[] {a[0], a[1], a[2], b[0], b[1]});
        assertFalse(Arrays.equals(new Gaussian(6).next(5), all));
    }

    @Test
    void isStandardNormal() {
        float[] v = new Gaussian(1).next(200_000);
        double mean = 0, sq = 0;
        for (float x : v) {
            mean += x;
            sq += x * x;
        }
        mean /= v.length;
        assertEquals(0, mean, 0.01);
        assertEquals(1, sq / v.length - mean * mean, 0.01);
    }
}
