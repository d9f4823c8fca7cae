package dev.latte.quant;

/**
 * Symmetric int8 quantisation, one scale per row: {@code scale = max|row| / 127} (fp32),
 * {@code q = clamp(round(v / scale), −127, 127)} with round half to even as {@code torch.round};
 * so {@code v ≈ q · scale} with {@code |v − q·scale| ≤ scale/2}. A row of zeros gets scale 1 and
 * q = 0 (any scale dequantises it exactly; 1 keeps the scale finite and nonzero). Weights are
 * rows = output channels (a conv weight [K,C,R,S] is K rows of C·R·S); W8A8 activations are rows
 * = tokens (or conv patch rows). The golden {@code ops/int8_weight_quant} is this exactly.
 */
public final class Int8 {
    public static final int QMAX = 127;

    /** Per-row int8 values and their fp32 scales. */
    public record Rows(byte[] q, float[] scale, int rows, int cols) {
    }

    private Int8() {
    }

    /** The scale of {@code v[off, off+n)}: max|v| / 127, or 1 for an all-zero row. */
    public static float scale(float[] v, int off, int n) {
        float max = 0f;
        for (int i = off; i < off + n; i++) {
            max = Math.max(max, Math.abs(v[i]));
        }
        if (!Float.isFinite(max)) {
            throw new IllegalArgumentException("cannot quantise a row holding NaN/Inf");
        }
        return max == 0f ? 1f : max / QMAX;
    }

    /** q[qOff + i] = clamp(round_half_even(v[off + i] / scale), −127, 127) for i in [0, n). */
    public static void quantize(float[] v, int off, int n, float scale, byte[] q, int qOff) {
        for (int i = 0; i < n; i++) {
            double r = Math.rint(v[off + i] / scale);
            q[qOff + i] = (byte) Math.max(-QMAX, Math.min(QMAX, r));
        }
    }

    /** Quantises {@code v} as {@code rows} rows of {@code v.length / rows} values each. */
    public static Rows quantizeRows(float[] v, int rows) {
        if (rows <= 0 || v.length % rows != 0) {
            throw new IllegalArgumentException(v.length + " values do not split into " + rows + " rows");
        }
        int cols = v.length / rows;
        byte[] q = new byte[v.length];
        float[] scale = new float[rows];
        for (int r = 0; r < rows; r++) {
            scale[r] = scale(v, r * cols, cols);
            quantize(v, r * cols, cols, scale[r], q, r * cols);
        }
        return new Rows(q, scale, rows, cols);
    }

    /** w[r, c] = q[r, c] · scale[r], in fp32. */
    public static float[] dequantize(byte[] q, float[] scale) {
        if (scale.length == 0 || q.length % scale.length != 0) {
            throw new IllegalArgumentException(q.length + " int8 values do not split into " + scale.length + " rows");
        }
        int cols = q.length / scale.length;
        float[] w = new float[q.length];
        for (int r = 0; r < scale.length; r++) {
            float s = scale[r];
            for (int c = r * cols; c < (r + 1) * cols; c++) {
                w[c] = q[c] * s;
            }
        }
        return w;
    }

    /** The int8 values themselves as floats (what downloading an int8 tensor returns). */
    public static float[] widen(byte[] q) {
        float[] v = new float[q.length];
        for (int i = 0; i < q.length; i++) {
            v[i] = q[i];
        }
        return v;
    }

    /** Σ a[aOff + i]·b[bOff + i] over i in [0, n), exact in int32 (|sum| ≤ n·127·128). */
    public static int dot(byte[] a, int aOff, byte[] b, int bOff, int n) {
        int acc = 0;
        for (int i = 0; i < n; i++) {
            acc += a[aOff + i] * b[bOff + i];
        }
        return acc;
    }
}
