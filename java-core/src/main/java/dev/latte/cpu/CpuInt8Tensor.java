package dev.latte.cpu;

import dev.latte.core.Shape;
import dev.latte.core.Tensor;

/**
 * A host int8 tensor (quantised weights): a shape and a row-major byte array it owns. On first use
 * by the vector kernels the bytes are re-laid out as their panels ({@code Int8Packed}) and that
 * becomes the only copy (the same bytes, padded to whole panels); the row-major array is rebuilt
 * only if something reads it.
 */
public final class CpuInt8Tensor implements Tensor {
    private final Shape shape;
    private byte[] data;
    private Object pack;
    private boolean released;

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

    /** The row-major values (the backing array itself, not a copy; rebuilt from the pack if it was dropped). */
    public synchronized byte[] data() {
        if (released) {
            throw new IllegalStateException("CpuInt8Tensor " + shape + " used after release");
        }
        if (data == null) {
            data = FastPaths.unpackInt8(pack, shape.size());
        }
        return data;
    }

    /** The kernels' layout of this weight, made by {@code make} from the row-major bytes on first use, then kept. */
    synchronized Object pack(java.util.function.Function<byte[], Object> make, java.util.function.Predicate<Object> fits) {
        if (released) {
            throw new IllegalStateException("CpuInt8Tensor " + shape + " used after release");
        }
        if (pack == null || !fits.test(pack)) {
            pack = make.apply(data());
            data = null;
        }
        return pack;
    }

    synchronized void release() {
        data = null;
        pack = null;
        released = true;
    }

    @Override
    public String toString() {
        return "CpuInt8Tensor" + shape;
    }
}
