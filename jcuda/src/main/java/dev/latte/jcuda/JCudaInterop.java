package dev.latte.jcuda;

import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.CudaTensor;
import jcuda.driver.CUdeviceptr;

/**
 * Latte tensors and JCuda device pointers, for code that already holds JCuda buffers. Both sides
 * work in the device's primary context (Latte's {@code CudaContext} retains it and makes it current
 * on the calling thread; JCuda's driver calls then use it), so an address from one is valid in
 * the other. Nothing is copied and ownership does not move: a wrapped {@code CUdeviceptr} stays
 * JCuda's to free, a pointer handed out stays the Latte tensor's.
 */
public final class JCudaInterop {
    private JCudaInterop() {
    }

    /**
     * {@code ptr} (at least {@code shape.numel()} elements of the backend's storage type, fp32 or
     * fp16) as a tensor of {@code backend}: ops read and write it in place; releasing it frees
     * nothing.
     */
    public static CudaTensor wrap(CudaBackend backend, CUdeviceptr ptr, Shape shape) {
        return backend.borrow(address(ptr), shape);
    }

    /** The device address of a Latte CUDA tensor as a JCuda pointer (valid while the tensor is). */
    public static CUdeviceptr pointer(Tensor t) {
        if (!(t instanceof CudaTensor c)) {
            throw new IllegalArgumentException("pointer: " + t + " is not a CUDA tensor");
        }
        return pointer(c.ptr());
    }

    /** A raw device address (of Latte's {@code CudaContext}, e.g. from {@code malloc}) as a JCuda pointer. */
    public static CUdeviceptr pointer(long dptr) {
        return new CUdeviceptr().withByteOffset(dptr);
    }

    /** The address a JCuda pointer holds (its native pointer plus byte offset). */
    public static long address(CUdeviceptr ptr) {
        return new Address(ptr).value();
    }

    /** JCuda keeps the address behind protected accessors; a subclass may copy and read them. */
    private static final class Address extends CUdeviceptr {
        Address(CUdeviceptr p) {
            super(p);
        }

        long value() {
            return getNativePointer() + getByteOffset();
        }
    }
}
