package dev.latte.cpu.gemm;

import dev.latte.math.SleefExp;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * exp and SiLU on whole vectors: SLEEF's {@code expf_u10}, whose scalar twin is {@link SleefExp}:
 * every lane of {@link #exp} equals it bit for bit from −104 up, within one ulp of the true value.
 * Round-to-nearest-even of d/ln2 by the 1.5·2²³ trick, Cody–Waite reduction
 * in two fused multiply-adds, a degree-6 polynomial, and 2^q applied as two halves so that q near
 * ±128 neither overflows nor flushes.
 */
public final class VExp {
    private static final VectorSpecies<Float> S = Gemm.S;
    private static final int L = Gemm.L;
    private static final float R_LN2 = 1.442695040888963407359924681001892137426645954152985934135449406931f;
    private static final float L2U = 0.693145751953125f;
    private static final float L2L = 1.428606765330187045e-06f;
    private static final float ROUND = 12582912f; // 1.5·2²³: v + ROUND − ROUND rounds v half-even for |v| < 2²²

    private VExp() {
    }

    /** a[o+j] = e^a[o+j] for j < len. */
    public static void expInPlace(float[] a, int o, int len) {
        int whole = len / L * L;
        rows(a, o, L, whole / L, null, 0, null, 0, false);
        for (int j = whole; j < len; j++) {
            a[o + j] = SleefExp.expf(Math.max(a[o + j], -104f));
        }
    }

    /** a[o+j] = a[o+j] / (1 + e^−a[o+j]) for j < len. */
    public static void siluInPlace(float[] a, int o, int len) {
        int whole = len / L * L;
        rows(a, o, L, whole / L, null, 0, null, 0, true);
        for (int j = whole; j < len; j++) {
            a[o + j] = a[o + j] / (1f + SleefExp.expf(Math.max(-a[o + j], -104f)));
        }
    }

    /**
     * For r < rows, the vector v at a[o + r·stride]: a ← e^(v − m) with m the vector at
     * sub[so] (or 0 if sub is null), or, with {@code silu}, v / (1 + e^−v); the results are
     * summed into the vector at sum[sumo] if sum is not null. The exp is written out in this one
     * loop, every vector made from the constant species here: C2 only intrinsifies Vector API calls
     * whose species it can see, and a helper taking a vector argument, compiled on its own,
     * was not (nor inlined).
     */
    static void rows(float[] a, int o, int stride, int rows, float[] sub, int so, float[] sum, int sumo,
                     boolean silu) {
        FloatVector m = sub == null ? FloatVector.zero(S) : FloatVector.fromArray(S, sub, so);
        FloatVector acc = FloatVector.zero(S);
        for (int r = 0, at = o; r < rows; r++, at += stride) {
            FloatVector v = FloatVector.fromArray(S, a, at).sub(m);
            // clamped, not blended afterwards: below −104 the result is the smallest denormal
            // instead of 0; above 100 it overflows to ∞ as it should
            FloatVector d = (silu ? v.neg() : v).max(-104f).min(100f);
            FloatVector qf = d.mul(R_LN2).add(ROUND).sub(ROUND);
            IntVector q = (IntVector) qf.convert(VectorOperators.F2I, 0);
            FloatVector t = qf.fma(FloatVector.broadcast(S, -L2U), d);
            t = qf.fma(FloatVector.broadcast(S, -L2L), t);
            FloatVector u = t.fma(FloatVector.broadcast(S, 0.000198527617612853646278381f),
                    FloatVector.broadcast(S, 0.00139304355252534151077271f));
            u = u.fma(t, FloatVector.broadcast(S, 0.00833336077630519866943359f));
            u = u.fma(t, FloatVector.broadcast(S, 0.0416664853692054748535156f));
            u = u.fma(t, FloatVector.broadcast(S, 0.166666671633720397949219f));
            u = u.fma(t, FloatVector.broadcast(S, 0.5f));
            u = t.mul(t).fma(u, t).add(1f);
            IntVector h = q.lanewise(VectorOperators.ASHR, 1), g = q.sub(h);
            u = u.mul(h.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats())
                    .mul(g.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats());
            if (silu) {
                u = v.div(u.add(1f));
            }
            acc = acc.add(u);
            u.intoArray(a, at);
        }
        if (sum != null) {
            FloatVector.fromArray(S, sum, sumo).add(acc).intoArray(sum, sumo);
        }
    }
}
