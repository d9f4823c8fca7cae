package dev.latte.prune;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Kept width = ceil((1−R)·C·1.05) rounded up to the unit multiple, capped at C. */
class KeptWidthTest {
    @ParameterizedTest(name = "C {0}, R {1}, multiple {2} -> {3}")
    @CsvSource({
            "32, 0, 4, 32",      // ratio 0 keeps everything, whatever the margin
            "32, 0.5, 4, 20",    // 16.8 -> 17 -> 20
            "64, 0.5, 8, 40",    // 33.6 -> 34 -> 40 (whole groups of 8)
            "320, 0.5, 20, 180", // SD1.5: 32 groups of 10, blocks of 4 -> multiples of 20; 168 -> 180
            "256, 0.25, 4, 204", // 201.6 -> 202 -> 204
            "1280, 0.41, 4, 796",
            "8, 0.99, 4, 4",     // never below one unit
            "4, 0.5, 1, 3"})     // a head of 4 dims: 2.1 -> 3
    void keptWidth(int c, double ratio, int multiple, int expected) {
        assertEquals(expected, Pruner.keptWidth(c, ratio, multiple));
    }

    @Test
    void ratioOutsideZeroToOneIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> Pruner.keptWidth(32, 1, 4));
        assertThrows(IllegalArgumentException.class, () -> Pruner.keptWidth(32, -0.1, 4));
        assertThrows(IllegalArgumentException.class, () -> Pruner.keptWidth(32, Double.NaN, 4));
    }
}
