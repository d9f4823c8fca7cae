package dev.latte.cpu.gemm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latte.math.SleefExp;
import java.util.Random;
import org.junit.jupiter.api.Test;

class VExpTest {
    /** Every value a lane may see in a softmax or SiLU, and the edges of the range. */
    private static float[] inputs() {
        Random rnd = new Random(7);
        float[] x = new float[1 << 18];
        for (int i = 0; i < x.length; i++) {
            x[i] = switch (i % 4) {
                case 0 -> -104f + 204f * rnd.nextFloat();        // the whole finite range
                case 1 -> -20f * rnd.nextFloat();                // a softmax's s − max
                case 2 -> (float) rnd.nextGaussian();            // SiLU arguments
                default -> Math.nextUp(-104f) + i % 977 * 0.1f;  // the denormal results
            };
        }
        return x;
    }

    @Test
    void lanesEqualScalarSleefBitForBit() {
        float[] x = inputs(), y = x.clone();
        VExp.expInPlace(y, 0, y.length);
        for (int i = 0; i < x.length; i++) {
            float want = SleefExp.expf(x[i]);
            if (Float.floatToRawIntBits(want) != Float.floatToRawIntBits(y[i])) {
                throw new AssertionError("exp(" + x[i] + "): vector " + y[i] + ", scalar SLEEF " + want);
            }
        }
    }

    @Test
    void withinOneUlpOfTheTrueValue() {
        float[] x = inputs(), y = x.clone();
        VExp.expInPlace(y, 0, y.length);
        double worst = 0;
        for (int i = 0; i < x.length; i++) {
            double exact = Math.exp(x[i]);
            float nearest = (float) exact;
            if (Float.isInfinite(nearest)) {
                assertEquals(Float.POSITIVE_INFINITY, y[i], "exp(" + x[i] + ")");
                continue;
            }
            double ulp = Math.ulp(nearest == 0f ? Float.MIN_VALUE : nearest);
            worst = Math.max(worst, Math.abs(y[i] - exact) / ulp);
        }
        assertTrue(worst <= 1.0, "worst error " + worst + " ulp");
    }

    @Test
    void edgesOfTheRange() {
        float[] x = {Float.NaN, Float.POSITIVE_INFINITY, 89f, 100f, 1000f, Float.NEGATIVE_INFINITY, -104.5f, -1e30f,
            0f, -0f, 1f, -1f, 88.7f, -87.3f, -103.9f, 0.5f};
        float[] y = x.clone();
        VExp.expInPlace(y, 0, Gemm.L * (y.length / Gemm.L));
        VExp.expInPlace(y, Gemm.L * (y.length / Gemm.L), y.length % Gemm.L);
        assertTrue(Float.isNaN(y[0]));
        for (int i = 1; i <= 4; i++) {
            assertEquals(Float.POSITIVE_INFINITY, y[i], "exp(" + x[i] + ")");
        }
        for (int i = 5; i <= 7; i++) {
            // below e^−104 the true value rounds to 0 or the smallest denormal; we return the latter
            assertTrue(y[i] >= 0f && y[i] <= Float.MIN_VALUE, "exp(" + x[i] + ") = " + y[i]);
        }
        for (int i = 8; i < x.length; i++) {
            assertEquals(SleefExp.expf(x[i]), y[i], "exp(" + x[i] + ")");
        }
    }

    @Test
    void siluMatchesDouble() {
        float[] x = inputs(), y = x.clone();
        VExp.siluInPlace(y, 0, y.length - 3); // a tail the scalar loop finishes
        for (int i = 0; i < x.length - 3; i++) {
            double want = x[i] / (1.0 + Math.exp(-x[i]));
            // where e^−x overflows fp32 (x < −88.7) the result is −0 for a true value below 1e−36
            assertTrue(Math.abs(y[i] - want) <= 4 * Math.ulp((float) want) + 1e-36,
                    "silu(" + x[i] + ") = " + y[i] + ", want " + want);
        }
        for (int i = x.length - 3; i < x.length; i++) {
            assertEquals(x[i], y[i]);
        }
    }

    @Test
    void softmaxRowsSubtractAndSum() {
        int rows = 5, stride = 3 * Gemm.L;
        float[] a = new float[rows * stride], m = new float[2 * Gemm.L], sum = new float[2 * Gemm.L];
        Random rnd = new Random(3);
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) rnd.nextGaussian();
        }
        for (int j = 0; j < Gemm.L; j++) {
            m[Gemm.L + j] = j * 0.25f;
            sum[Gemm.L + j] = 1f;
        }
        float[] before = a.clone();
        VExp.rows(a, Gemm.L, stride, rows, m, Gemm.L, sum, Gemm.L, false);
        for (int j = 0; j < Gemm.L; j++) {
            double s = 1;
            for (int r = 0; r < rows; r++) {
                int at = r * stride + Gemm.L + j;
                assertEquals(SleefExp.expf(before[at] - m[Gemm.L + j]), a[at]);
                s += a[at];
                assertEquals(before[r * stride + j], a[r * stride + j]); // other lanes untouched
            }
            assertEquals(s, sum[Gemm.L + j], 1e-5);
        }
    }
}
