package dev.latte.weights;

import java.util.Arrays;
import java.util.Objects;

/**
 * One tensor's header entry. {@code begin}/{@code end} are byte offsets into the data section
 * (after the 8-byte length and the JSON header), exactly as the file states them.
 *
 * <p>The shape array is copied in and out, so a record can be shared freely; equality compares
 * shapes by content, not by array identity.
 */
public record TensorInfo(String name, DType dtype, long[] shape, long begin, long end) {

    public TensorInfo {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(dtype, "dtype");
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    /** Element count; 1 for a scalar (empty shape). Overflow was ruled out when the header was read. */
    public long numel() {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    public long byteSize() {
        return end - begin;
    }

    /** The shape as ints, for kernels and Java arrays that cannot index past {@code Integer.MAX_VALUE}. */
    public int[] intShape() {
        int[] dims = new int[shape.length];
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] > Integer.MAX_VALUE) {
                throw new WeightsException("tensor '" + Text.quote(name) + "': dimension " + i + " of " + this
                        + " exceeds " + Integer.MAX_VALUE);
            }
            dims[i] = (int) shape[i];
        }
        return dims;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TensorInfo t && name.equals(t.name) && dtype == t.dtype
                && Arrays.equals(shape, t.shape) && begin == t.begin && end == t.end;
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, dtype, Arrays.hashCode(shape), begin, end);
    }

    /** E.g. {@code conv_in.weight F32[32, 4, 3, 3]}. */
    @Override
    public String toString() {
        return name + " " + dtype + Arrays.toString(shape);
    }
}
