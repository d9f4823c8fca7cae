package dev.latte.cpu.gemm;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Multi-head attention in blocks, never holding the Sq × Sk score matrix. Per (batch, head,
 * block of BR queries), keys come in blocks of BC and both products run on {@link Gemm#kernel}
 * transposed, queries along the vector lanes: Sᵀ = K·(scale·Q)ᵀ lands as B-operand panels
 * [keys][NR queries], so the softmax over keys is lane-wise (a running max m and sum l per
 * query, no horizontal reductions), P overwrites S in place, and Oᵀ += Vᵀ·Pᵀ reads it as is.
 * When a key block raises a query's max, its O column and l are rescaled by e^(m_old − m_new)
 * (the online softmax). All fp32, exp by {@link VExp}. K (as [keys][d] panels of MR keys) and Vᵀ
 * (panels of MR channels over all keys) are packed once per (batch, head).
 */
public final class FlashAttention {
    private static final VectorSpecies<Float> S = Gemm.S;
    private static final int MR = Gemm.MR, NR = Gemm.NR, L = Gemm.L;
    /** Query panels per task. */
    private static final int QP = 2;
    private static final int BR = QP * NR;
    /** Keys per block, whole register tiles of keys. */
    private static final int BC = 32 * MR;

    private FlashAttention() {
    }

    /** Floats of packed K and V {@link #run} needs in {@code kv}. */
    public static long packFloats(int b, int heads, int sk, int d) {
        return (long) b * heads * (kFloats(sk, d) + vFloats(sk, d));
    }

    private static int kFloats(int sk, int d) {
        return Math.ceilDiv(sk, MR) * MR * d;
    }

    private static int vFloats(int sk, int d) {
        return Math.ceilDiv(d, MR) * MR * sk;
    }

    /** Multiply-adds ×2 of both products. */
    public static double flops(int b, int heads, int sq, int sk, int d) {
        return 4.0 * b * heads * sq * sk * d;
    }

    /**
     * q [B, Sq, H·D], k and v [B, Sk, H·D] → out [B, Sq, H·D]; kv holds {@link #packFloats} floats.
     */
    public static void run(Gemm.Parallel par, float[] q, int qo, float[] k, int ko, float[] v, int vo, int b, int heads,
                           int sq, int sk, int d, float scale, float[] out, int oo, float[] kv) {
        if (sk == 0) {
            throw new IllegalArgumentException("attention: no keys");
        }
        int ch = heads * d, kSize = kFloats(sk, d), per = kSize + vFloats(sk, d);
        int dPanels = Math.ceilDiv(d, MR);
        par.forEach(b * heads, bh -> {
            int bi = bh / heads, hi = bh % heads, kb = bh * per, vb = kb + kSize;
            for (int j = 0; j < Math.ceilDiv(sk, MR) * MR; j++) {
                int src = ko + (bi * sk + j) * ch + hi * d, kp = kb + (j / MR) * d * MR + j % MR;
                for (int di = 0; di < d; di++) {
                    kv[kp + di * MR] = j < sk ? k[src + di] : 0f;
                }
            }
            for (int j = 0; j < sk; j++) {
                int src = vo + (bi * sk + j) * ch + hi * d;
                for (int di = 0; di < dPanels * MR; di++) {
                    kv[vb + ((di / MR) * sk + j) * MR + di % MR] = di < d ? v[src + di] : 0f;
                }
            }
        });
        int qBlocks = Math.ceilDiv(sq, BR);
        par.forEach(b * heads * qBlocks, task -> {
            int bh = task / qBlocks, bi = bh / heads, hi = bh % heads, i0 = (task % qBlocks) * BR;
            int rows = Math.min(BR, sq - i0), kb = bh * per, vb = kb + kSize;
            Work wk = WORK.get().ensure(d, dPanels);
            float[] qb = wk.qb, sp = wk.sp, ot = wk.ot, m = wk.m, l = wk.l;
            int ldo = BR, spPanel = BC * NR;
            // scale·Qᵀ as B panels [QP][d][NR]; queries past Sq are zero
            for (int j = 0; j < BR; j++) {
                int qp = j / NR, src = qo + (bi * sq + i0 + j) * ch + hi * d, dst = qp * d * NR + j % NR;
                for (int di = 0; di < d; di++) {
                    qb[dst + di * NR] = j < rows ? q[src + di] * scale : 0f;
                }
            }
            java.util.Arrays.fill(m, Float.NEGATIVE_INFINITY);
            java.util.Arrays.fill(l, 0f);
            java.util.Arrays.fill(ot, 0, dPanels * MR * ldo, 0f);
            for (int j0 = 0; j0 < sk; j0 += BC) {
                int bc = Math.min(BC, sk - j0), kPanels = Math.ceilDiv(bc, MR);
                for (int qp = 0; qp < QP; qp++) {
                    for (int kp = 0; kp < kPanels; kp++) {
                        Gemm.kernel(kv, kb + (j0 / MR + kp) * d * MR, qb, qp * d * NR, d, sp,
                                qp * spPanel + kp * MR * NR, NR, false);
                    }
                    for (int lane = 0; lane < NR; lane += L) {
                        softmaxBlock(sp, qp * spPanel + lane, bc, m, l, qp * NR + lane, ot, ldo, dPanels * MR, wk.tmp);
                    }
                    for (int dp = 0; dp < dPanels; dp++) {
                        Gemm.kernel(kv, vb + (dp * sk + j0) * MR, sp, qp * spPanel, bc, ot, dp * MR * ldo + qp * NR,
                                ldo, true);
                    }
                }
            }
            for (int j = 0; j < rows; j++) {
                int dst = oo + (bi * sq + i0 + j) * ch + hi * d;
                float inv = 1f / l[j];
                for (int di = 0; di < d; di++) {
                    out[dst + di] = ot[di * ldo + j] * inv;
                }
            }
        });
    }

    /**
     * One key block of L queries' scores, s[so + key·NR + lane] for key < bc: P = e^(s − m_new)
     * in place, l and m updated, and those queries' columns of Oᵀ (rows × ldo at column c)
     * rescaled by e^(m_old − m_new).
     */
    private static void softmaxBlock(float[] s, int so, int bc, float[] m, float[] l, int c, float[] ot, int ldo,
                                     int otRows, float[] tmp) {
        FloatVector mx = FloatVector.fromArray(S, s, so);
        for (int j = 1; j < bc; j++) {
            mx = mx.max(FloatVector.fromArray(S, s, so + j * NR));
        }
        FloatVector mOld = FloatVector.fromArray(S, m, c), mNew = mOld.max(mx);
        // alpha = e^(m_old − m_new); e^(−∞) is 0, so the first block's rescale clears nothing (O and l are 0)
        mOld.sub(mNew).intoArray(tmp, 0);
        VExp.rows(tmp, 0, L, 1, null, 0, null, 0, false);
        FloatVector alpha = FloatVector.fromArray(S, tmp, 0);
        mNew.intoArray(m, c);
        FloatVector.zero(S).intoArray(tmp, L);
        VExp.rows(s, so, NR, bc, m, c, tmp, L, false);
        FloatVector.fromArray(S, l, c).fma(alpha, FloatVector.fromArray(S, tmp, L)).intoArray(l, c);
        for (int r = 0; r < otRows; r++) {
            FloatVector.fromArray(S, ot, r * ldo + c).mul(alpha).intoArray(ot, r * ldo + c);
        }
    }

    private static final class Work {
        float[] qb = new float[0], ot = new float[0];
        final float[] sp = new float[QP * BC * NR], m = new float[BR], l = new float[BR], tmp = new float[2 * L];

        Work ensure(int d, int dPanels) {
            if (qb.length < BR * d) {
                qb = new float[BR * d];
            }
            if (ot.length < dPanels * MR * BR) {
                ot = new float[dPanels * MR * BR];
            }
            return this;
        }
    }

    private static final ThreadLocal<Work> WORK = ThreadLocal.withInitial(Work::new);
}
