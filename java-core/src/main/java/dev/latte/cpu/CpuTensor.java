package dev.latte.cpu;

import dev.latte.core.Shape;
import dev.latte.core.Tensor;

/** A host fp32 tensor: a shape and a row-major float array it owns. */
public final class CpuTensor implements Tensor {
    private final Shape shape;
    private float[] data;

    /** Wraps {@code data} without copying; the tensor owns it from now on. */
    public CpuTensor(Shape shape, float[] data) {
        if (data.length != shape.size()) {
            throw new IllegalArgumentException("CpuTensor: " + data.length + " values for shape " + shape);
        }
        this.shape = shape;
        this.data = data;
    }

    public CpuTensor(Shape shape) {
        this(shape, new float[shape.size()]);
    }

    @Override
    public Shape shape() {
        return shape;
    }

    /** The backing array itself (not a copy). */
    public float[] data() {
        if (data == null) {
            throw new IllegalStateException("CpuTensor " + shape + " used after release");
        }
        return data;
    }

    void release() {
        data = null;
    }

    @Override
    public String toString() {
        return "CpuTensor" + shape;
    }
}
