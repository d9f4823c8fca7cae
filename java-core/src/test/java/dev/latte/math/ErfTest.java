package dev.latte.math;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class ErfTest {
    private static void assertRel(double expected, double actual, double rel) {
        assertEquals(expected, actual, Math.abs(expected) * rel, () -> "erf: expected " + expected + " got " + actual);
    }

    @Test
    void knownValues() {
        // reference values (glibc's erf via CPython), covering every branch of the approximation
        assertRel(0.5204998778130465, Erf.erf(0.5), 1e-15);
        assertRel(0.8427007929497149, Erf.erf(1.0), 1e-15);
        assertRel(0.9953222650189527, Erf.erf(2.0), 1e-15);
        assertRel(-0.9999779095030014, Erf.erf(-3.0), 1e-15);
        assertRel(1.1283791670955126e-10, Erf.erf(1e-10), 1e-15);
        assertRel(0.1124629160182849, Erf.erf(0.1), 1e-15);
        assertRel(0.9661051464753108, Erf.erf(1.5), 1e-15);
        assertRel(0.9999999845827421, Erf.erf(4.0), 1e-15);
        assertRel(-0.7421009647076605, Erf.erf(-0.8), 1e-15);
    }

    @Test
    void specialValues() {
        assertEquals(0.0, Erf.erf(0.0));
        assertEquals(1.0, Erf.erf(6.0));
        assertEquals(-1.0, Erf.erf(-30.0));
        assertEquals(1.0, Erf.erf(Double.POSITIVE_INFINITY));
        assertEquals(-1.0, Erf.erf(Double.NEGATIVE_INFINITY));
        assertTrue(Double.isNaN(Erf.erf(Double.NaN)));
        assertEquals(Double.MIN_NORMAL * 1.1283791670955126, Erf.erf(Double.MIN_NORMAL), 1e-320);
    }

    @Test
    void oddAndMonotone() {
        double prev = -1.0;
        for (double x = -7; x <= 7; x += 1.0 / 64) {
            double e = Erf.erf(x);
            assertEquals(-e, Erf.erf(-x));
            assertTrue(e >= prev, () -> "not monotone at " + e);
            prev = e;
        }
    }

    @Test
    void branchBoundariesAreContinuous() {
        for (double b : new double[] {0.84375, 1.25, 1 / 0.35, 6.0}) {
            double below = Erf.erf(Math.nextDown(b)), above = Erf.erf(b);
            assertTrue(above >= below && above - below < 4e-16, () -> "jump at " + b + ": " + below + " → " + above);
        }
    }

    @Test
    void matchesTaylorSeriesNearZero() {
        for (double x = -0.7; x <= 0.7; x += 0.013) {
            double sum = 0, term = x;
            for (int n = 0; n < 60; n++) {
                sum += term / (2 * n + 1);
                term *= -x * x / (n + 1);
            }
            assertRel(2 / Math.sqrt(Math.PI) * sum, Erf.erf(x), 2e-15);
        }
    }
}
