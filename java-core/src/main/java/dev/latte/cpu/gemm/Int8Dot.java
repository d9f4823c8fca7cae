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

    private Int8Dot() {
    }

    /**
     * acc[r] = Σ_i a[ao + r·lda + i] · b[bo + i] over i < n, for r < rows (1 to 4).
     */
    public static void dots(byte[] a, int ao, int lda, int rows, byte[] b, int bo, int n, int[] acc) {
        IntVector s0 = IntVector.zero(IS), s1 = s0, s2 = s0, s3 = s0;
        int i = 0;
        for (; i + STEP <= n; i += STEP) {
            ShortVector w = widen(b, bo + i);
            s0 = add(s0, widen(a, ao + i).mul(w));
            if (rows > 1) {
                s1 = add(s1, widen(a, ao + lda + i).mul(w));
            }
            if (rows > 2) {
                s2 = add(s2, widen(a, ao + 2 * lda + i).mul(w));
            }
            if (rows > 3) {
                s3 = add(s3, widen(a, ao + 3 * lda + i).mul(w));
            }
        }
        IntVector[] s = {s0, s1, s2, s3};
        for (int r = 0; r < rows; r++) {
            int sum = s[r].reduceLanes(VectorOperators.ADD);
            for (int t = i; t < n; t++) {
                sum += a[ao + r * lda + t] * b[bo + t];
            }
            acc[r] = sum;
        }
    }

    private static ShortVector widen(byte[] x, int at) {
        return (ShortVector) ByteVector.fromArray(BS, x, at).convertShape(VectorOperators.B2S, SS, 0);
    }

    private static IntVector add(IntVector acc, ShortVector p) {
        return acc.add(p.convertShape(VectorOperators.S2I, IS, 0)).add(p.convertShape(VectorOperators.S2I, IS, 1));
    }
}
