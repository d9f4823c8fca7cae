package dev.latte.cuda.backend;

import dev.latte.core.Shape;
import dev.latte.core.Tensor;

/**
 * A tensor in device memory: a shape, a storage type and a device pointer owned by the
 * {@link CudaBackend} that made it. An empty tensor has no storage (pointer 0). A view
 * ({@link CudaBackend#view}) points into an arena's storage and owns none.
 */
public final class CudaTensor implements Tensor {
    /** Storage types; arithmetic is fp32 in every kernel (I8: quantised weights, {@link CudaBackend#uploadInt8}). */
    public enum DType {
        F32(4, "_f32"), F16(2, "_f16"), I8(1, "_i8");

        final int bytes;
        final String suffix;

        DType(int bytes, String suffix) {
            this.bytes = bytes;
            this.suffix = suffix;
        }

        public int bytes() {
            return bytes;
        }
    }

    private final Shape shape;
    private final DType dtype;
    private final long ptr;
    private final CudaBackend owner;
    private final CudaTensor arena;   // non-null for a view
    private final boolean borrowed;   // device memory another library allocated: never freed here
    private boolean released;

    CudaTensor(Shape shape, DType dtype, long ptr, CudaBackend owner, CudaTensor arena) {
        this(shape, dtype, ptr, owner, arena, false);
    }

    CudaTensor(Shape shape, DType dtype, long ptr, CudaBackend owner, CudaTensor arena, boolean borrowed) {
        this.borrowed = borrowed;
        this.shape = shape;
        this.dtype = dtype;
        this.ptr = ptr;
        this.owner = owner;
        this.arena = arena;
    }

    @Override
    public Shape shape() {
        return shape;
    }

    public DType dtype() {
        return dtype;
    }

    /** The device pointer; throws once the tensor is released. */
    public long ptr() {
        if (released || (arena != null && arena.released)) {
            throw new IllegalStateException("CudaTensor " + shape + " was released");
        }
        return ptr;
    }

    public long bytes() {
        return shape.numel() * dtype.bytes;
    }

    CudaBackend owner() {
        return owner;
    }

    boolean released() {
        return released || (arena != null && arena.released);
    }

    boolean borrowed() {
        return borrowed;
    }

    boolean isView() {
        return arena != null;
    }

    void markReleased() {
        released = true;
    }

    @Override
    public String toString() {
        return "CudaTensor" + shape + " " + dtype + (released ? " (released)" : "");
    }
}
