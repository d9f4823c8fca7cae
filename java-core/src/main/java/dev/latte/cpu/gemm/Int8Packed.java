package dev.latte.cpu.gemm;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * An int8 weight packed once in {@link Packed}'s panel layout (panel p is [K][W] bytes from
 * {@code p·K·W}), one byte per value: it stays as small as the int8 weight. The kernels multiply
 * floats, so each KC slice of a panel is widened into the caller's buffer when a block asks for it
 * ({@link #panels}); a block then reuses it against all its rows of the other operand, so the
 * widening costs about 1/MC (B) or 1/NC (A) of the multiply-adds. Widened as {@code q} (W8A8: the
 * products are then integers, exact in fp32, see {@link Gemm#runExact}) or as {@code q · scale}
 * of its row (W8A16: the fp32 value {@code Int8.dequantize} gives, so the result is the fp32 op
 * on the dequantised weight, bit for bit).
 */
public final class Int8Packed {
    private static final VectorSpecies<Float> S = Gemm.S;
    /** A vector's worth of bytes for one float vector. */
    private static final VectorSpecies<Byte> BS = VectorSpecies.of(byte.class,
            VectorShape.forBitSize(S.vectorBitSize() / Float.SIZE * Byte.SIZE));

    private final byte[] data;
    private final int width;
    private final int k;
    private final int rows;

    private Int8Packed(byte[] data, int width, int k, int rows) {
        this.data = data;
        this.width = width;
        this.k = k;
        this.rows = rows;
    }

    /** {@code q} (rows × k, row-major) as W-wide panels, as {@link Packed#ofRows} lays out floats. */
    public static Int8Packed ofRows(byte[] q, int rows, int k, int width) {
        int panels = Math.ceilDiv(rows, width);
        byte[] d = new byte[Math.multiplyExact(panels * width, Math.max(k, 1))];
        for (int p = 0; p < panels; p++) {
            int base = p * k * width;
            for (int i = 0; i < width && p * width + i < rows; i++) {
                int s = (p * width + i) * k;
                for (int kk = 0; kk < k; kk++) {
                    d[base + kk * width + i] = q[s + kk];
                }
            }
        }
        return new Int8Packed(d, width, k, rows);
    }

    /** A conv weight [K, C·R·S] as the A operand. */
    public static Int8Packed convWeight(byte[] q, int k, int crs) {
        return ofRows(q, k, crs, Gemm.MR);
    }

    /** A linear weight [out, in] as the B operand. */
    public static Int8Packed linearWeight(byte[] q, int outF, int in) {
        return ofRows(q, outF, in, Gemm.NR);
    }

    /** The row-major {@code rows × k} values it was packed from. */
    public byte[] unpack() {
        byte[] v = new byte[Math.multiplyExact(rows, k)];
        for (int r = 0; r < rows; r++) {
            int p = r / width, i = r % width;
            for (int kk = 0; kk < k; kk++) {
                v[r * k + kk] = data[p * k * width + kk * width + i];
            }
        }
        return v;
    }

    public int width() {
        return width;
    }

    public int k() {
        return k;
    }

    public int rows() {
        return rows;
    }

    /** Bytes held, padding included. */
    public long bytes() {
        return data.length;
    }

    /**
     * The operand widened to floats on demand: {@code q}, or {@code q · scale[row]} when
     * {@code scale} is not null.
     */
    public Gemm.Panels panels(float[] scale) {
        if (scale != null && scale.length != rows) {
            throw new IllegalArgumentException("int8 weight of " + rows + " rows given " + scale.length + " scales");
        }
        // per panel, the scales of its rows repeated over a whole number of vectors (lcm(W, L) floats)
        int period = width / gcd(width, Gemm.L) * Gemm.L, panels = Math.ceilDiv(rows, width);
        float[] pattern = scale == null ? null : new float[panels * period];
        for (int p = 0; pattern != null && p < panels; p++) {
            for (int t = 0; t < period; t++) {
                int r = p * width + t % width;
                pattern[p * period + t] = r < rows ? scale[r] : 0f;
            }
        }
        return (image, p0, np, k0, kc, buf, offs) -> {
            for (int i = 0; i < np; i++) {
                int from = (p0 + i) * k * width + k0 * width, to = i * kc * width;
                offs[i] = to;
                if (pattern == null) {
                    widen(data, from, kc * width, buf, to);
                } else {
                    widenScaled(data, from, kc * width, pattern, (p0 + i) * period, period, buf, to);
                }
            }
            return buf;
        };
    }

    private static int gcd(int a, int b) {
        return b == 0 ? a : gcd(b, a % b);
    }

    private static void widen(byte[] src, int s, int len, float[] dst, int d) {
        int j = 0;
        for (; j <= len - Gemm.L; j += Gemm.L) {
            ((FloatVector) ByteVector.fromArray(BS, src, s + j).convertShape(VectorOperators.B2F, S, 0))
                    .intoArray(dst, d + j);
        }
        for (; j < len; j++) {
            dst[d + j] = src[s + j];
        }
    }

    /**
     * dst[d+j] = src[s+j] · pattern[po + j mod period] for j < len: a run of whole panel rows
     * (it starts at a row's first value), each value times its row's scale.
     */
    private static void widenScaled(byte[] src, int s, int len, float[] pattern, int po, int period, float[] dst,
                                    int d) {
        int j = 0;
        for (; j <= len - period; j += period) {
            for (int v = 0; v < period; v += Gemm.L) {
                ((FloatVector) ByteVector.fromArray(BS, src, s + j + v).convertShape(VectorOperators.B2F, S, 0))
                        .mul(FloatVector.fromArray(S, pattern, po + v)).intoArray(dst, d + j + v);
            }
        }
        for (; j < len; j++) {
            dst[d + j] = src[s + j] * pattern[po + j % period];
        }
    }
}
