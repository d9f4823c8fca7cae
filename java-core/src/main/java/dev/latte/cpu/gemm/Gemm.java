package dev.latte.cpu.gemm;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * C = A·B in fp32 on the Vector API, blocked as BLIS/GotoBLAS block it. A is M×K, B is K×N, both
 * handed over as micro-panels ({@link Panels}: A as MR-row panels, B as NR-column panels, each
 * k-major); the micro-kernel keeps an MR × NR tile of C in registers ({@code MR·NR/L} vector
 * accumulators) across a KC-long run of k, one B vector load feeding MR fused multiply-adds.
 * Per task (a block of MC rows × NC columns of one image's C): for each KC slice of K, the B
 * micro-panel (KC × NR, 32 KiB at AVX-512) stays in L1 while it meets every A micro-panel of
 * the block, which stays in L2. Partial sums across KC slices live in a per-thread C block, and
 * the {@link Epilogue} (bias, residual, layout) reads it once at the end, so the output may be an
 * operand of the epilogue (a residual added in place).
 */
public final class Gemm {
    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    /** Floats per vector on this machine (16 with AVX-512). */
    public static final int L = S.length();
    /** Rows of the register tile. */
    public static final int MR = 6;
    /** Columns of the register tile: two vectors. 6 × 2 accumulators + 2 B vectors + 1 broadcast fit 16 registers. */
    public static final int NR = 2 * L;
    static final int KC = 256;
    static final int MC = 16 * MR;
    static final int NC = 12 * NR;
    /** Below this many multiply-adds a product runs on the calling thread alone. */
    static final double SERIAL_MULTIPLY_ADDS = 1 << 21;

    private Gemm() {
    }

    /** Runs {@code tasks} independent bodies on the backend's threads. */
    public interface Parallel {
        int threads();

        void forEach(int tasks, java.util.function.IntConsumer body);
    }

    /** One operand as micro-panels of width W (MR for A, NR for B), zero-padded past its edge. */
    public interface Panels {
        /**
         * Makes panels [p0, p0 + np) over k in [k0, k0 + kc) of {@code image} readable, each laid
         * out [kc][W] from {@code offs[i]} in the returned array; packs into {@code buf} (at least
         * np·kc·W floats) when the operand is not packed already.
         */
        float[] panels(int image, int p0, int np, int k0, int kc, float[] buf, int[] offs);
    }

    /** Where a finished block of C goes. */
    public interface Epilogue {
        /** c[i·ldc + j] is C[m0 + i][n0 + j] of {@code image}, for i < mc, j < nc. */
        void store(int image, int m0, int mc, int n0, int nc, float[] c, int ldc);
    }

    /** Where a finished block of an integer C ({@link #runExact}) goes. */
    public interface IntEpilogue {
        /** c[i·ldc + j] is C[m0 + i][n0 + j] of {@code image}, for i < mc, j < nc. */
        void store(int image, int m0, int mc, int n0, int nc, int[] c, int ldc);
    }

    private static final class Scratch {
        float[] a = new float[0], b = new float[0], c = new float[0];
        int[] ci = new int[0];
        final float[] tile = new float[MR * NR];
        int[] aOffs = new int[MC / MR], bOffs = new int[64];

        float[] a(int n) {
            return a.length >= n ? a : (a = new float[n]);
        }

        int[] ci(int n) {
            return ci.length >= n ? ci : (ci = new int[n]);
        }

        int[] aOffs(int n) {
            return aOffs.length >= n ? aOffs : (aOffs = new int[n]);
        }

        float[] b(int n) {
            return b.length >= n ? b : (b = new float[n]);
        }

        float[] c(int n) {
            return c.length >= n ? c : (c = new float[n]);
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    /**
     * C = A·B for each of {@code images} independent products of the same M, N, K, handed block
     * by block to {@code epi}. Blocks are spread over the threads; MC and NC shrink (in whole
     * micro-panels) until there are a few blocks per thread.
     */
    public static void run(Parallel par, int images, int m, int n, int k, Panels a, Panels b, Epilogue epi) {
        run(par, images, m, n, k, a, b, epi, null, MC);
    }

    /**
     * C = A·B exactly, for operands holding int8 values as floats: a KC slice sums at most
     * {@code 256 · 128²} = 2²² in magnitude, below 2²⁴, so every fused multiply-add of it is exact
     * in fp32; each slice's tile is converted to int32 and summed there, so C is the exact int32
     * sum whatever K (below 2³¹ / 128²). Blocks are up to {@code mc} rows tall: with
     * an expensive B (quantised as it is packed) a taller block packs each B panel fewer times.
     */
    public static void runExact(Parallel par, int images, int m, int n, int k, Panels a, Panels b, IntEpilogue epi,
                                int mc) {
        if ((long) k * 128 * 128 > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("int8 GEMM: K = " + k + " may overflow an int32 sum");
        }
        run(par, images, m, n, k, a, b, null, epi, Math.max(MR, mc / MR * MR));
    }

    private static void run(Parallel par, int images, int m, int n, int k, Panels a, Panels b, Epilogue epi,
                            IntEpilogue iepi, int mc) {
        if (images == 0 || m == 0 || n == 0) {
            return;
        }
        int mp = Math.ceilDiv(m, MR), np = Math.ceilDiv(n, NR);
        int mcPanels = Math.min(mc / MR, mp), ncPanels = Math.min(NC / NR, np);
        int want = 3 * par.threads();
        while ((long) images * Math.ceilDiv(mp, mcPanels) * Math.ceilDiv(np, ncPanels) < want) {
            if (ncPanels > 4) {
                ncPanels = Math.ceilDiv(ncPanels, 2);
            } else if (mcPanels > 2) {
                mcPanels = Math.ceilDiv(mcPanels, 2);
            } else {
                break;
            }
        }
        int mBlocks = Math.ceilDiv(mp, mcPanels), nBlocks = Math.ceilDiv(np, ncPanels);
        int mcp = mcPanels, ncp = ncPanels;
        java.util.function.IntConsumer body = task -> {
            int image = task / (mBlocks * nBlocks), mb = task / nBlocks % mBlocks, nb = task % nBlocks;
            int p0 = mb * mcp, pm = Math.min(mp, p0 + mcp) - p0;
            int q0 = nb * ncp, pn = Math.min(np, q0 + ncp) - q0;
            if (epi != null) {
                block(image, p0, pm, q0, pn, k, a, b, epi, m, n);
            } else {
                blockExact(image, p0, pm, q0, pn, k, a, b, iepi, m, n);
            }
        };
        int tasks = images * mBlocks * nBlocks;
        if ((double) images * m * n * k < SERIAL_MULTIPLY_ADDS) {
            // a few microseconds of work: handing it to another thread costs more than it saves
            for (int t = 0; t < tasks; t++) {
                body.accept(t);
            }
        } else {
            par.forEach(tasks, body);
        }
    }

    private static void block(int image, int p0, int pm, int q0, int pn, int k, Panels a, Panels b, Epilogue epi,
                              int m, int n) {
        Scratch s = SCRATCH.get();
        int ldc = pn * NR;
        float[] c = s.c(pm * MR * ldc);
        int[] aOffs = s.aOffs(pm), bOffs = pn <= s.bOffs.length ? s.bOffs : new int[pn];
        if (k == 0) {
            java.util.Arrays.fill(c, 0, pm * MR * ldc, 0f);
        }
        for (int k0 = 0; k0 < k; k0 += KC) {
            int kc = Math.min(KC, k - k0);
            float[] ap = a.panels(image, p0, pm, k0, kc, s.a(pm * kc * MR), aOffs);
            float[] bp = b.panels(image, q0, pn, k0, kc, s.b(pn * kc * NR), bOffs);
            boolean add = k0 > 0;
            for (int j = 0; j < pn; j++) {
                for (int i = 0; i < pm; i++) {
                    kernel(ap, aOffs[i], bp, bOffs[j], kc, c, i * MR * ldc + j * NR, ldc, add);
                }
            }
        }
        int m0 = p0 * MR, n0 = q0 * NR;
        epi.store(image, m0, Math.min(m, m0 + pm * MR) - m0, n0, Math.min(n, n0 + pn * NR) - n0, c, ldc);
    }

    /** {@link #block} with each KC slice's tiles summed into an int32 C. */
    private static void blockExact(int image, int p0, int pm, int q0, int pn, int k, Panels a, Panels b,
                                   IntEpilogue epi, int m, int n) {
        Scratch s = SCRATCH.get();
        int ldc = pn * NR;
        int[] c = s.ci(pm * MR * ldc);
        float[] tile = s.tile;
        int[] aOffs = s.aOffs(pm), bOffs = pn <= s.bOffs.length ? s.bOffs : new int[pn];
        if (k == 0) {
            java.util.Arrays.fill(c, 0, pm * MR * ldc, 0);
        }
        for (int k0 = 0; k0 < k; k0 += KC) {
            int kc = Math.min(KC, k - k0);
            float[] ap = a.panels(image, p0, pm, k0, kc, s.a(pm * kc * MR), aOffs);
            float[] bp = b.panels(image, q0, pn, k0, kc, s.b(pn * kc * NR), bOffs);
            boolean add = k0 > 0;
            for (int j = 0; j < pn; j++) {
                for (int i = 0; i < pm; i++) {
                    kernel(ap, aOffs[i], bp, bOffs[j], kc, tile, 0, NR, false);
                    Rows.tileToInts(tile, c, i * MR * ldc + j * NR, ldc, add);
                }
            }
        }
        int m0 = p0 * MR, n0 = q0 * NR;
        epi.store(image, m0, Math.min(m, m0 + pm * MR) - m0, n0, Math.min(n, n0 + pn * NR) - n0, c, ldc);
    }

    /**
     * The register tile: c[co + r·ldc + j] (+)= Σ_k a[ao + k·MR + r] · b[bo + k·NR + j] for r < MR,
     * j < NR. Twelve accumulators named one by one, so they stay in registers.
     */
    static void kernel(float[] a, int ao, float[] b, int bo, int kc, float[] c, int co, int ldc, boolean add) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        for (int kk = 0; kk < kc; kk++, ao += MR, bo += NR) {
            FloatVector b0 = FloatVector.fromArray(S, b, bo), b1 = FloatVector.fromArray(S, b, bo + L);
            FloatVector x = FloatVector.broadcast(S, a[ao]);
            c00 = x.fma(b0, c00);
            c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(S, a[ao + 1]);
            c10 = x.fma(b0, c10);
            c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(S, a[ao + 2]);
            c20 = x.fma(b0, c20);
            c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(S, a[ao + 3]);
            c30 = x.fma(b0, c30);
            c31 = x.fma(b1, c31);
            x = FloatVector.broadcast(S, a[ao + 4]);
            c40 = x.fma(b0, c40);
            c41 = x.fma(b1, c41);
            x = FloatVector.broadcast(S, a[ao + 5]);
            c50 = x.fma(b0, c50);
            c51 = x.fma(b1, c51);
        }
        if (add) {
            c00 = c00.add(FloatVector.fromArray(S, c, co));
            c01 = c01.add(FloatVector.fromArray(S, c, co + L));
            c10 = c10.add(FloatVector.fromArray(S, c, co + ldc));
            c11 = c11.add(FloatVector.fromArray(S, c, co + ldc + L));
            c20 = c20.add(FloatVector.fromArray(S, c, co + 2 * ldc));
            c21 = c21.add(FloatVector.fromArray(S, c, co + 2 * ldc + L));
            c30 = c30.add(FloatVector.fromArray(S, c, co + 3 * ldc));
            c31 = c31.add(FloatVector.fromArray(S, c, co + 3 * ldc + L));
            c40 = c40.add(FloatVector.fromArray(S, c, co + 4 * ldc));
            c41 = c41.add(FloatVector.fromArray(S, c, co + 4 * ldc + L));
            c50 = c50.add(FloatVector.fromArray(S, c, co + 5 * ldc));
            c51 = c51.add(FloatVector.fromArray(S, c, co + 5 * ldc + L));
        }
        c00.intoArray(c, co);
        c01.intoArray(c, co + L);
        c10.intoArray(c, co + ldc);
        c11.intoArray(c, co + ldc + L);
        c20.intoArray(c, co + 2 * ldc);
        c21.intoArray(c, co + 2 * ldc + L);
        c30.intoArray(c, co + 3 * ldc);
        c31.intoArray(c, co + 3 * ldc + L);
        c40.intoArray(c, co + 4 * ldc);
        c41.intoArray(c, co + 4 * ldc + L);
        c50.intoArray(c, co + 5 * ldc);
        c51.intoArray(c, co + 5 * ldc + L);
    }
}
