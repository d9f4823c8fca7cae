package dev.latte.math;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class SleefExpTest {
    @Test
    void withinOneUlpOfCorrectlyRounded() {
        int differing = 0;
        for (int i = 0; i < 50_000; i++) {
            float x = -87f + i * 0.0035f;
            float exact = (float) Math.exp(x), got = SleefExp.expf(x);
            assertTrue(Math.abs(got - exact) <= Math.ulp(exact), () -> "expf(" + x + ") = " + got + " vs " + exact);
            if (got != exact) {
                differing++;
            }
        }
        assertTrue(differing > 0, "SLEEF's u10 exp is not correctly rounded everywhere; a port that is has lost its point");
    }

    @Test
    void specialValues() {
        assertEquals(1f, SleefExp.expf(0f));
        assertEquals(0f, SleefExp.expf(-200f));
        assertEquals(Float.POSITIVE_INFINITY, SleefExp.expf(89f));
        assertEquals(Float.POSITIVE_INFINITY, SleefExp.expf(Float.POSITIVE_INFINITY));
        assertEquals(0f, SleefExp.expf(Float.NEGATIVE_INFINITY));
        assertTrue(Float.isNaN(SleefExp.expf(Float.NaN)));
        assertTrue(SleefExp.expf(88.7f) < Float.POSITIVE_INFINITY);
    }

    @Test
    void reproducesPytorchRoundingOfTimestepFrequencies() {
        // exp(-ln(10000)·2/160) in fp32: PyTorch (SLEEF) returns one ulp above the correctly rounded value
        float e = ((float) -Math.log(10000.0) * 2) / 160f;
        float exact = (float) Math.exp(e);
        assertEquals(Math.nextUp(exact), SleefExp.expf(e));
    }
}
