package dev.latte.cpu.gemm;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/** Vector loops over runs of floats that the epilogues and packers share. */
final class Rows {
    private static final VectorSpecies<Float> S = Gemm.S;
    private static final int L = Gemm.L;
    private static final VectorSpecies<Integer> IS = IntVector.SPECIES_PREFERRED;
    /** Doubles per vector, and the int and float species of as many lanes (half the width). */
    private static final VectorSpecies<Double> DS = DoubleVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> IHS = VectorSpecies.of(int.class,
            VectorShape.forBitSize(DS.vectorBitSize() / 2));
    private static final VectorSpecies<Float> FHS = VectorSpecies.of(float.class,
            VectorShape.forBitSize(DS.vectorBitSize() / 2));
    private static final int DL = DS.length();
    /** Adding then subtracting 1.5·2²³ rounds a float below 2²² to an integer, half to even. */
    private static final float ROUNDER = 12582912f;

    private Rows() {
    }

    /** out[o+j] = c[co+j] + bias[bo+j] (bias null: + 0) for j < len. */
    static void storePlusVector(float[] out, int o, float[] c, int co, float[] bias, int bo, int len) {
        int j = 0;
        if (bias == null) {
            for (; j <= len - L; j += L) {
                FloatVector.fromArray(S, c, co + j).intoArray(out, o + j);
            }
            for (; j < len; j++) {
                out[o + j] = c[co + j];
            }
            return;
        }
        for (; j <= len - L; j += L) {
            FloatVector.fromArray(S, c, co + j).add(FloatVector.fromArray(S, bias, bo + j)).intoArray(out, o + j);
        }
        for (; j < len; j++) {
            out[o + j] = c[co + j] + bias[bo + j];
        }
    }

    /**
     * out[o+j] = res[r+j] + (c[co+j] + bias[bo+j]) (bias null: + 0) for j < len: a linear's bias
     * and residual. Each residual element is read before its output element is written, so out may be res.
     */
    static void storePlusVectorResidual(float[] out, int o, float[] c, int co, float[] bias, int bo, float[] res,
                                        int r, int len) {
        int j = 0;
        for (; j <= len - L; j += L) {
            FloatVector y = FloatVector.fromArray(S, c, co + j);
            if (bias != null) {
                y = y.add(FloatVector.fromArray(S, bias, bo + j));
            }
            FloatVector.fromArray(S, res, r + j).add(y).intoArray(out, o + j);
        }
        for (; j < len; j++) {
            out[o + j] = res[r + j] + (bias == null ? c[co + j] : c[co + j] + bias[bo + j]);
        }
    }

    /**
     * out[o+j] = (res[r+j] +) (c[co+j] + b) for j < len: a conv's bias and skip-add. Each
     * residual element is read before its output element is written, so out may be res.
     */
    static void storePlusScalar(float[] out, int o, float[] c, int co, float b, float[] res, int r, int len) {
        int j = 0;
        FloatVector bv = FloatVector.broadcast(S, b);
        if (res == null) {
            for (; j <= len - L; j += L) {
                FloatVector.fromArray(S, c, co + j).add(bv).intoArray(out, o + j);
            }
            for (; j < len; j++) {
                out[o + j] = c[co + j] + b;
            }
            return;
        }
        for (; j <= len - L; j += L) {
            FloatVector.fromArray(S, res, r + j).add(FloatVector.fromArray(S, c, co + j).add(bv)).intoArray(out, o + j);
        }
        for (; j < len; j++) {
            out[o + j] = res[r + j] + (c[co + j] + b);
        }
    }

    /** dst[d+j] = src[s+j] for j < len, then zeros up to {@code width}. */
    static void copyPadded(float[] src, int s, int len, float[] dst, int d, int width) {
        int j = 0;
        for (; j <= len - L; j += L) {
            FloatVector.fromArray(S, src, s + j).intoArray(dst, d + j);
        }
        for (; j < len; j++) {
            dst[d + j] = src[s + j];
        }
        for (; j < width; j++) {
            dst[d + j] = 0f;
        }
    }

    /**
     * c[co + r·ldc + j] (+)= (int) tile[r·NR + j] for an MR × NR tile of integer-valued floats
     * (exact: they are below 2²⁴).
     */
    static void tileToInts(float[] tile, int[] c, int co, int ldc, boolean add) {
        for (int r = 0; r < Gemm.MR; r++, co += ldc) {
            for (int v = 0; v < Gemm.NR; v += L) {
                IntVector t = (IntVector) FloatVector.fromArray(S, tile, r * Gemm.NR + v).convert(VectorOperators.F2I, 0);
                if (add) {
                    t.add(IntVector.fromArray(IS, c, co + v)).intoArray(c, co + v);
                } else {
                    t.intoArray(c, co + v);
                }
            }
        }
    }

    /**
     * out[o+j] = (float) ((double) c[co+j] · a · w[wo+j] + b[bo+j]) for j < len: the W8A8
     * epilogue of a row whose activation scale is {@code a}, in double, as the reference rounds it.
     */
    static void storeRescaledRow(float[] out, int o, int[] c, int co, double a, double[] w, int wo, double[] b,
                                 int bo, int len) {
        DoubleVector av = DoubleVector.broadcast(DS, a);
        int j = 0;
        for (; j <= len - DL; j += DL) {
            DoubleVector acc = (DoubleVector) IntVector.fromArray(IHS, c, co + j).convertShape(VectorOperators.I2D, DS, 0);
            ((FloatVector) acc.mul(av).mul(DoubleVector.fromArray(DS, w, wo + j)).add(DoubleVector.fromArray(DS, b, bo + j))
                    .convertShape(VectorOperators.D2F, FHS, 0)).intoArray(out, o + j);
        }
        for (; j < len; j++) {
            out[o + j] = (float) ((double) c[co + j] * a * w[wo + j] + b[bo + j]);
        }
    }

    /**
     * out[o+j] = (float) ((double) c[co+j] · a[ao+j] · w + b) for j < len: the W8A8 epilogue of a
     * conv's output-channel row (weight scale w, bias b) over pixels with their own scales a.
     */
    static void storeRescaledColumns(float[] out, int o, int[] c, int co, double[] a, int ao, double w, double b,
                                     int len) {
        DoubleVector wv = DoubleVector.broadcast(DS, w), bv = DoubleVector.broadcast(DS, b);
        int j = 0;
        for (; j <= len - DL; j += DL) {
            DoubleVector acc = (DoubleVector) IntVector.fromArray(IHS, c, co + j).convertShape(VectorOperators.I2D, DS, 0);
            ((FloatVector) acc.mul(DoubleVector.fromArray(DS, a, ao + j)).mul(wv).add(bv)
                    .convertShape(VectorOperators.D2F, FHS, 0)).intoArray(out, o + j);
        }
        for (; j < len; j++) {
            out[o + j] = (float) ((double) c[co + j] * a[ao + j] * w + b);
        }
    }

    /** max |v[s+j]| over j < len (NaN if any is NaN). */
    static float maxAbs(float[] v, int s, int len) {
        FloatVector m = FloatVector.zero(S);
        int j = 0;
        for (; j <= len - L; j += L) {
            m = m.max(FloatVector.fromArray(S, v, s + j).abs());
        }
        float max = m.reduceLanes(VectorOperators.MAX);
        for (; j < len; j++) {
            max = Math.max(max, Math.abs(v[s + j]));
        }
        return max;
    }

    /** m[d+j] = max(m[d+j], |v[s+j]|) for j < len. */
    static void maxAbsInto(float[] v, int s, int len, float[] m, int d) {
        int j = 0;
        for (; j <= len - L; j += L) {
            FloatVector.fromArray(S, m, d + j).max(FloatVector.fromArray(S, v, s + j).abs()).intoArray(m, d + j);
        }
        for (; j < len; j++) {
            m[d + j] = Math.max(m[d + j], Math.abs(v[s + j]));
        }
    }

    /**
     * dst[d+j] = clamp(rint(src[s+j] / scale), ±127) for j < len, as floats: {@code Int8.quantize}
     * of a row with one scale (float division, round half to even).
     */
    static void quantize(float[] src, int s, int len, float scale, float[] dst, int d) {
        FloatVector sv = FloatVector.broadcast(S, scale);
        int j = 0;
        for (; j <= len - L; j += L) {
            round(FloatVector.fromArray(S, src, s + j).div(sv)).intoArray(dst, d + j);
        }
        for (; j < len; j++) {
            dst[d + j] = quantize(src[s + j], scale);
        }
    }

    /**
     * dst[d+j] = clamp(rint(src[s+j] / scale[so+j]), ±127) for j < len (each column its own
     * scale), then zeros up to {@code width}.
     */
    static void quantizePadded(float[] src, int s, int len, float[] scale, int so, float[] dst, int d, int width) {
        int j = 0;
        for (; j <= len - L; j += L) {
            round(FloatVector.fromArray(S, src, s + j).div(FloatVector.fromArray(S, scale, so + j))).intoArray(dst, d + j);
        }
        for (; j < len; j++) {
            dst[d + j] = quantize(src[s + j], scale[so + j]);
        }
        for (; j < width; j++) {
            dst[d + j] = 0f;
        }
    }

    private static FloatVector round(FloatVector y) {
        return y.add(ROUNDER).sub(ROUNDER).max(-127f).min(127f);
    }

    private static float quantize(float v, float scale) {
        return (float) Math.max(-127, Math.min(127, Math.rint(v / scale)));
    }
}
