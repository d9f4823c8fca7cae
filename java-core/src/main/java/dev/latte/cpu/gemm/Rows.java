package dev.latte.cpu.gemm;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/** Vector loops over runs of floats that the epilogues and packers share. */
final class Rows {
    private static final VectorSpecies<Float> S = Gemm.S;
    private static final int L = Gemm.L;

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
}
