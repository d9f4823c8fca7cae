package dev.latte.cpu.gemm;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Exact s8·s8 dot products for W8A8 on the Vector API: bytes widened to shorts, multiplied (a
 * product of two values in [−127, 127] fits a short), each product vector widened to ints in two
 * halves and summed in int32, as the reference sums them. Four activation rows share each load of
 * a weight row.
 */
public final class Int8Dot {
    private static final VectorSpecies<Integer> IS = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> SS = ShortVector.SPECIES_PREFERRED;
    /** Half a vector of bytes: widened, one full vector of shorts. */
    private static final VectorSpecies<Byte> BS = VectorSpecies.of(byte.class,
            VectorShape.forBitSize(IS.vectorBitSize() / 2));
    private static final int STEP = BS.length();
    private static final VectorOperators.Conversion<Byte, Short> B2S = VectorOperators.B2S;
    private static final VectorOperators.Conversion<Short, Integer> S2I = VectorOperators.S2I;

    private Int8Dot() {
    }

    /**
     * acc[r] = Σ_i a[ao + r·lda + i] · b[bo + i] over i < n, for r < rows (1 to 4).
     */
    public static void dots(byte[] a, int ao, int lda, int rows, byte[] b, int bo, int n, int[] acc) {
        if (rows == 4) {
            dot4(a, ao, lda, b, bo, n, acc);
        } else {
            for (int r = 0; r < rows; r++) {
                acc[r] = dot(a, ao + r * lda, b, bo, n);
            }
        }
    }

    // Straight-line code in one method: a vector held in an array, assigned under a branch or
    // passed to a helper that is not inlined is boxed, and the loop then runs the Vector API's
    // Java fallback, slower than scalar code.
    private static void dot4(byte[] a, int ao, int lda, byte[] b, int bo, int n, int[] acc) {
        IntVector s0 = IntVector.zero(IS), s1 = s0, s2 = s0, s3 = s0;
        int i = 0;
        for (; i + STEP <= n; i += STEP) {
            ShortVector w = (ShortVector) ByteVector.fromArray(BS, b, bo + i).convertShape(B2S, SS, 0);
            ShortVector p0 = ((ShortVector) ByteVector.fromArray(BS, a, ao + i).convertShape(B2S, SS, 0)).mul(w);
            ShortVector p1 = ((ShortVector) ByteVector.fromArray(BS, a, ao + lda + i).convertShape(B2S, SS, 0)).mul(w);
            ShortVector p2 = ((ShortVector) ByteVector.fromArray(BS, a, ao + 2 * lda + i).convertShape(B2S, SS, 0))
                    .mul(w);
            ShortVector p3 = ((ShortVector) ByteVector.fromArray(BS, a, ao + 3 * lda + i).convertShape(B2S, SS, 0))
                    .mul(w);
            s0 = s0.add((IntVector) p0.convertShape(S2I, IS, 0)).add((IntVector) p0.convertShape(S2I, IS, 1));
            s1 = s1.add((IntVector) p1.convertShape(S2I, IS, 0)).add((IntVector) p1.convertShape(S2I, IS, 1));
            s2 = s2.add((IntVector) p2.convertShape(S2I, IS, 0)).add((IntVector) p2.convertShape(S2I, IS, 1));
            s3 = s3.add((IntVector) p3.convertShape(S2I, IS, 0)).add((IntVector) p3.convertShape(S2I, IS, 1));
        }
        acc[0] = s0.reduceLanes(VectorOperators.ADD) + tail(a, ao, b, bo, i, n);
        acc[1] = s1.reduceLanes(VectorOperators.ADD) + tail(a, ao + lda, b, bo, i, n);
        acc[2] = s2.reduceLanes(VectorOperators.ADD) + tail(a, ao + 2 * lda, b, bo, i, n);
        acc[3] = s3.reduceLanes(VectorOperators.ADD) + tail(a, ao + 3 * lda, b, bo, i, n);
    }

    private static int dot(byte[] a, int ao, byte[] b, int bo, int n) {
        IntVector s0 = IntVector.zero(IS);
        int i = 0;
        for (; i + STEP <= n; i += STEP) {
            ShortVector p = ((ShortVector) ByteVector.fromArray(BS, a, ao + i).convertShape(B2S, SS, 0))
                    .mul((ShortVector) ByteVector.fromArray(BS, b, bo + i).convertShape(B2S, SS, 0));
            s0 = s0.add((IntVector) p.convertShape(S2I, IS, 0)).add((IntVector) p.convertShape(S2I, IS, 1));
        }
        return s0.reduceLanes(VectorOperators.ADD) + tail(a, ao, b, bo, i, n);
    }

    private static int tail(byte[] a, int ao, byte[] b, int bo, int from, int n) {
        int sum = 0;
        for (int t = from; t < n; t++) {
            sum += a[ao + t] * b[bo + t];
        }
        return sum;
    }
}
