package dev.latte.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

class CompareTest {
    /** 4096 rows of 64: every element off by 1e-5 relative, except one row. */
    static float[][] oneWrongRow(float rowError) {
        Random rnd = new Random(1);
        float[] ref = new float[4096 * 64], got = new float[ref.length];
        for (int i = 0; i < ref.length; i++) {
            ref[i] = (float) rnd.nextGaussian();
            got[i] = ref[i] * (1 + 1e-5f);
        }
        for (int j = 0; j < 64; j++) {
            got[1234 * 64 + j] += rowError;
        }
        return new float[][] {ref, got};
    }

    /** The reason for per-element bounds: a row wrong by 0.05 passes a 50 dB PSNR gate, not the bound. */
    @Test
    void oneWrongRowPassesPsnrButNotTheBound() {
        float[][] t = oneWrongRow(0.05f);
        assertTrue(Compare.of(t[0], t[1]).psnr() > 50, "PSNR " + Compare.of(t[0], t[1]).psnr());
        Compare.Bound b = Compare.bound(t[0], t[1], 1e-3, 1e-3);
        assertFalse(b.ok(), b.toString());
        assertEquals(64, b.outside(), b.toString());
        assertEquals(1234, b.worst() / 64, b.toString());
        assertTrue(b.toString().startsWith("64 of 262144 elements outside"), b.toString());
        assertTrue(Compare.bound(t[0], oneWrongRow(0f)[1], 1e-3, 1e-3).ok());
    }

    @Test
    void boundIsAbsolutePlusRelative() {
        float[] ref = {0f, 10f, -100f}, got = {0.9e-3f, 10.011f, -100.1f};
        assertTrue(Compare.bound(ref, got, 1e-3, 1e-3).ok());   // allowances 1e-3, 0.011, 0.101
        Compare.Bound b = Compare.bound(ref, got, 1e-3, 1e-4);  // 0.011 > 0.002, 0.1 > 0.011
        assertEquals(2, b.outside());
        assertEquals(2, b.worst());
        assertEquals(-100.1f, b.result());
        assertEquals(-100f, b.reference());
    }

    @Test
    void nonFiniteIsAlwaysTheWorst() {
        float[] ref = {1f, 2f, 3f}, got = {1.5f, Float.NaN, 3f};
        Compare.Bound b = Compare.bound(ref, got, 1, 1);
        assertEquals(1, b.outside());
        assertEquals(1, b.worst());
        assertEquals(Double.POSITIVE_INFINITY, b.ratio());
        assertFalse(Compare.bound(new float[] {0f}, new float[] {Float.POSITIVE_INFINITY}, 1e30, 1e30).ok());
    }

    @Test
    void badArguments() {
        assertThrows(IllegalArgumentException.class, () -> Compare.bound(new float[2], new float[3], 0, 0));
        assertThrows(IllegalArgumentException.class, () -> Compare.bound(new float[1], new float[1], -1, 0));
        assertTrue(Compare.bound(new float[0], new float[0], 0, 0).ok());
    }
}
