package dev.latte.cpu;

import dev.latte.core.Shape;
import dev.latte.core.Tensor;

/**
 * A host fp32 tensor: a shape and a row-major run of {@code shape.numel()} floats starting at
 * {@link #offset()} in a float array. The array is the tensor's own, or an arena's that many
 * tensors share at planned offsets ({@link CpuBackend#view}); every kernel indexes from the
 * offset.
 */
public final class CpuTensor implements Tensor {
    private final Shape shape;
    private final int offset;
    private final int length;
    private final CpuTensor arena;
    private float[] array;
    /** Set by {@link CpuBackend#upload}: only such tensors (weights) keep a packed copy. */
    boolean uploaded;
    /** This tensor laid out for the GEMM kernels, made on first use as a weight; dropped when written. */
    private Object pack;

    /** Wraps {@code data} without copying; the tensor owns it from now on. */
    public CpuTensor(Shape shape, float[] data) {
        if (data.length != shape.size()) {
            throw new IllegalArgumentException("CpuTensor: " + data.length + " values for shape " + shape);
        }
        this.shape = shape;
        this.array = data;
        this.offset = 0;
        this.length = data.length;
        this.arena = null;
    }

    public CpuTensor(Shape shape) {
        this(shape, new float[shape.size()]);
    }

    /** A view of {@code shape.numel()} floats of {@code arena}'s array from {@code offset} on. */
    CpuTensor(CpuTensor arena, int offset, Shape shape) {
        int len = shape.size();
        if (offset < 0 || (long) offset + len > arena.length) {
            throw new IllegalArgumentException("CpuTensor view of " + shape + " at float " + offset
                    + " runs past its " + arena.length + "-float arena");
        }
        this.shape = shape;
        this.array = null;
        this.offset = arena.offset + offset;
        this.length = len;
        this.arena = arena;
    }

    @Override
    public Shape shape() {
        return shape;
    }

    /** The backing array itself (not a copy); the tensor's values are {@code [offset, offset + size)}. */
    public float[] array() {
        float[] a = arena != null ? arena.array : array;
        if (a == null && arena == null) {
            a = unpacked();
        }
        if (a == null) {
            throw new IllegalStateException("CpuTensor " + shape + " used after " + (arena != null
                    ? "its arena was released" : "release"));
        }
        return a;
    }

    /** Index of the first value in {@link #array()}. */
    public int offset() {
        return offset;
    }

    /** Whether this tensor is a view into an arena (its storage is the arena's). */
    public boolean isView() {
        return arena != null;
    }

    /**
     * The backing array of a tensor that owns all of it (offset 0, one value per element).
     *
     * @throws IllegalStateException for an arena view; use {@link #array()} and {@link #offset()}
     */
    public float[] data() {
        if (arena != null || offset != 0 || array().length != length) {
            throw new IllegalStateException("CpuTensor " + shape + " is a view at offset " + offset
                    + "; read it with array() and offset()");
        }
        return array();
    }

    /** Whether the two tensors' values share any float of one array. */
    boolean overlaps(CpuTensor o) {
        return array() == o.array() && offset < o.offset + o.length && o.offset < offset + length;
    }

    void release() {
        if (arena == null) {
            array = null;
        }
        pack = null;
    }

    synchronized Object pack() {
        return pack;
    }

    /**
     * Keeps {@code p}, the kernels' layout of this weight, as its only copy: the row-major array
     * is dropped (so a weight is not held twice) and rebuilt from the pack if anything asks for it.
     */
    synchronized void pack(Object p) {
        pack = p;
        if (p != null && arena == null && offset == 0) {
            array = null;
        }
    }

    /** The row-major values rebuilt from the pack, kept from now on; null if there is none. */
    private synchronized float[] unpacked() {
        if (array == null && pack != null) {
            array = FastPaths.unpack(pack, length);
        }
        return array;
    }

    /** Forgets the packed copy: the values are about to change. */
    void dropPack() {
        if (uploaded) {
            synchronized (this) {
                unpacked();
                pack = null;
            }
        }
    }

    @Override
    public String toString() {
        return "CpuTensor" + shape + (arena != null ? "@" + offset : "");
    }
}
