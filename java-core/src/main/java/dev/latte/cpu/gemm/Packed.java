package dev.latte.cpu.gemm;

/**
 * A GEMM operand packed once, whole: panel p is [K][W] from {@code p·K·W}, so any KC slice of it
 * is already contiguous and {@link #panels} copies nothing. Weights are packed this way when
 * first used and kept.
 */
public final class Packed implements Gemm.Panels {
    private final float[] data;
    private final int width;
    private final int k;
    private final int rows;

    private Packed(float[] data, int width, int k, int rows) {
        this.data = data;
        this.width = width;
        this.k = k;
        this.rows = rows;
    }

    /**
     * src as A (MR-row panels) or B (NR-column panels) where each of its {@code rows} rows is one
     * K-long run: {@code src[off + r·k + kk]} is element (r, kk). For A that is a row-major M×K
     * matrix (a conv weight [K, C·R·S]); for B it is Bᵀ stored row-major (a linear weight
     * [out, in], which multiplies as wᵀ).
     */
    public static Packed ofRows(float[] src, int off, int rows, int k, int width) {
        return ofRows((r0, n, dst) -> System.arraycopy(src, off + r0 * k, dst, 0, n * k), rows, k, width);
    }

    /** Where a weight's rows come from when it is packed: a heap array, or a mapped file widened a panel at a time. */
    @FunctionalInterface
    public interface Rows {
        /** Copies rows {@code [r0, r0 + n)}, each K long, into {@code dst[0 .. n·K)}. */
        void read(int r0, int n, float[] dst);
    }

    /** As {@link #ofRows(float[], int, int, int, int)}, reading one panel's rows at a time from {@code src}. */
    public static Packed ofRows(Rows src, int rows, int k, int width) {
        int panels = Math.ceilDiv(rows, width);
        float[] d = new float[Math.multiplyExact(panels * width, Math.max(k, 1))];
        float[] rowBuf = new float[Math.multiplyExact(width, k)];
        for (int p = 0; p < panels; p++) {
            int base = p * k * width, n = Math.min(width, rows - p * width);
            src.read(p * width, n, rowBuf);
            for (int i = 0; i < n; i++) {
                for (int kk = 0; kk < k; kk++) {
                    d[base + kk * width + i] = rowBuf[i * k + kk];
                }
            }
        }
        return new Packed(d, width, k, rows);
    }

    /** The row-major {@code rows × k} values it was packed from. */
    public float[] unpack() {
        float[] v = new float[Math.multiplyExact(rows, k)];
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

    /** Rows (A) or columns (B) of the operand, before padding to whole panels. */
    public int rows() {
        return rows;
    }

    /** Floats held, padding included. */
    public long floats() {
        return data.length;
    }

    @Override
    public float[] panels(int image, int p0, int np, int k0, int kc, float[] buf, int[] offs) {
        for (int i = 0; i < np; i++) {
            offs[i] = (p0 + i) * k * width + k0 * width;
        }
        return data;
    }
}
