package dev.latte.cpu;

import dev.latte.core.Shape;
import dev.latte.core.Tensor;

/** A host int8 tensor (quantised weights): a shape and a row-major byte array it owns. */
public final class CpuInt8Tensor implements Tensor {
    private final Shape shape;
    private byte[] data;

    public CpuInt8Tensor(Shape shape, byte[] data) {
        if (data.length != shape.size()) {
            throw new IllegalArgumentException("CpuInt8Tensor: " + data.length + " values for shape " + shape);
        }
        this.shape = shape;
        this.data = data;
    }

    @Override
    public Shape shape() {
        return shape;
    }

    /** The backing array itself (not a copy). */
    public byte[] data() {
        if (data == null) {
            throw new IllegalStateException("CpuInt8Tensor " + shape + " used after release");
        }
        return data;
    }

    void release() {
        data = null;
    }

    @Override
    public String toString() {
        return "CpuInt8Tensor" + shape;
    }
}
