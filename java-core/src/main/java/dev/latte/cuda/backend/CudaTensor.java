package dev.latte.cuda.backend;

import dev.latte.core.Shape;
import dev.latte.core.StorageType;
import dev.latte.core.Tensor;

/**
 * A tensor in device memory: a shape, a storage type and a device pointer owned by the
 * {@link CudaBackend} that made it. An empty tensor has no storage (pointer 0). A view
 * ({@link CudaBackend#view}) points into an arena's storage and owns none.
 */
public final class CudaTensor implements Tensor {
    private final Shape shape;
    private final StorageType dtype;
    private final long ptr;
    private final CudaBackend owner;
    private final CudaTensor arena;   // non-null for a view
    private final boolean borrowed;   // device memory another library allocated: never freed here
    private boolean released;

    CudaTensor(Shape shape, StorageType dtype, long ptr, CudaBackend owner, CudaTensor arena) {
        this(shape, dtype, ptr, owner, arena, false);
    }

    CudaTensor(Shape shape, StorageType dtype, long ptr, CudaBackend owner, CudaTensor arena, boolean borrowed) {
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

    /** fp32 or fp16 (a float tensor), or int8 (quantised weights, {@link CudaBackend#uploadInt8}). */
    public StorageType dtype() {
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
        return shape.numel() * dtype.bytes();
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
        return "CudaTensor" + shape + " " + dtype.label() + (released ? " (released)" : "");
    }
}
