package dev.latte.cpu.gemm;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.latte.quant.Int8;
import java.util.Random;
import org.junit.jupiter.api.Test;

class Int8DotTest {
    @Test
    void equalsScalarInt32SumsIncludingExtremesAndTails() {
        Random rnd = new Random(17);
        for (int n : new int[] {1, 31, 32, 33, 100, 360, 1280, 11520}) {
            for (int rows = 1; rows <= 4; rows++) {
                int lda = n + 3;
                byte[] a = new byte[rows * lda + 5], b = new byte[n + 7];
                for (int i = 0; i < a.length; i++) {
                    a[i] = (byte) (rnd.nextBoolean() ? -127 : rnd.nextInt(255) - 127);
                }
                for (int i = 0; i < b.length; i++) {
                    b[i] = (byte) (rnd.nextBoolean() ? -127 : rnd.nextInt(255) - 127);
                }
                int[] acc = new int[4];
                Int8Dot.dots(a, 2, lda, rows, b, 5, n, acc);
                for (int r = 0; r < rows; r++) {
                    assertEquals(Int8.dot(a, 2 + r * lda, b, 5, n), acc[r], "n " + n + " row " + r + " of " + rows);
                }
            }
        }
    }
}
