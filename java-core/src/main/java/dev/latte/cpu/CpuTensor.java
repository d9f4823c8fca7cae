package dev.latte.cpu;

import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.weights.DType;
import dev.latte.weights.SafeTensorsFile;
import java.lang.foreign.MemorySegment;

/**
 * A host fp32 tensor: a shape and a row-major run of {@code shape.numel()} floats starting at
 * {@link #offset()} in a float array. The array is the tensor's own, or an arena's that many
 * tensors share at planned offsets ({@link CpuBackend#view}); every kernel indexes from the
 * offset.
 *
 * <p>A weight may instead be read from its memory-mapped file ({@link CpuBackend#uploadMapped}):
 * the file's bytes (fp32, fp16, bf16 or fp64) are then its stored values, GEMM packs are made
 * straight from them, and small reads ({@link #read}, {@link #readInto}) widen what they need
 * for the call; only {@link #array()} keeps a widened heap copy (the scalar fallbacks, or an op
 * writing into the weight, which also forgets the file).
 */
public final class CpuTensor implements Tensor {
    private final Shape shape;
    private final int offset;
    private final int length;
    private final CpuTensor arena;
    private float[] array;
    /** The weight's bytes in its mapped safetensors file, and their dtype; null once it is written. */
    private MemorySegment file;
    private DType fileType;
    /** Set by {@link CpuBackend#upload}: only such tensors (weights) keep a packed copy. */
    boolean uploaded;
    /** This tensor laid out for the GEMM kernels, made on first use as a weight; dropped when written. */
    private Object pack;

    /** A run of floats to read only: the tensor's values are {@code [offset, offset + size)} of {@code array}. */
    record Read(float[] array, int offset) {
    }

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

    /** A tensor whose values are {@code bytes} of a mapped file, read in place; no copy is made here. */
    CpuTensor(Shape shape, MemorySegment bytes, DType dtype) {
        if (!dtype.isFloatingPoint() || bytes.byteSize() != (long) shape.size() * dtype.byteSize()) {
            throw new IllegalArgumentException("CpuTensor: " + bytes.byteSize() + " bytes of " + dtype + " for shape "
                    + shape);
        }
        this.shape = shape;
        this.offset = 0;
        this.length = shape.size();
        this.arena = null;
        this.file = bytes;
        this.fileType = dtype;
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
        float[] a = storage();
        if (a == null && arena == null) {
            a = materialised();
        }
        if (a == null) {
            throw new IllegalStateException("CpuTensor " + shape + " used after " + (arena != null
                    ? "its arena was released" : "release"));
        }
        return a;
    }

    /** The float array holding the values now, or null (a weight held only packed or in its file). */
    private float[] storage() {
        return arena != null ? arena.array : array;
    }

    /**
     * The values for reading in this call only: the backing array where there is one, else (a
     * weight read from its file) a widened copy that is not kept. For per-channel vectors (biases,
     * norm scales): a large tensor read this way is widened on every call.
     */
    Read read() {
        float[] a = storage();
        if (a != null) {
            return new Read(a, offset);
        }
        MemorySegment f;
        DType t;
        synchronized (this) {
            f = file;
            t = fileType;
        }
        if (f == null) {
            return new Read(array(), offset);
        }
        float[] v = new float[length];
        SafeTensorsFile.toFloats(f, t, 0, v, 0, length);
        return new Read(v, 0);
    }

    /** Copies values {@code [from, from + n)} into {@code dst[dstOff..]}, widening from the file if that is where they are. */
    void readInto(int from, float[] dst, int dstOff, int n) {
        float[] a = storage();
        if (a == null) {
            MemorySegment f;
            DType t;
            synchronized (this) {
                f = file;
                t = fileType;
            }
            if (f != null) {
                SafeTensorsFile.toFloats(f, t, from, dst, dstOff, n);
                return;
            }
            a = array();
        }
        System.arraycopy(a, offset + from, dst, dstOff, n);
    }

    /** The mapped file bytes this weight is read from, or null if its values are held in memory. */
    public synchronized MemorySegment mapped() {
        return file;
    }

    /** Floats of a heap array this tensor owns (0 for arena views and for weights held packed or in their file). */
    synchronized long heapFloats() {
        return arena == null && array != null ? array.length : 0;
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

    /** Whether the two tensors' values share any float of one array (a weight held packed or in its file shares none). */
    boolean overlaps(CpuTensor o) {
        float[] a = storage();
        return a != null && a == o.storage() && offset < o.offset + o.length && o.offset < offset + length;
    }

    void release() {
        synchronized (this) {
            if (arena == null) {
                array = null;
            }
            pack = null;
            file = null;
        }
    }

    synchronized Object pack() {
        return pack;
    }

    /**
     * Keeps {@code p}, the kernels' layout of this weight, as its only copy: the row-major array
     * is dropped (so a weight is not held twice) and rebuilt from the file or the pack if anything
     * asks for it. The file pages the pack was read from are handed back to the OS (they stay in
     * the page cache), so the weight does not count twice in resident memory either.
     */
    synchronized void pack(Object p) {
        pack = p;
        if (p != null && arena == null && offset == 0) {
            array = null;
            if (file != null && file.isMapped()) {
                file.unload();
            }
        }
    }

    /** The row-major values, from the file or the pack, kept from now on; null if released. */
    private synchronized float[] materialised() {
        if (array == null && file != null) {
            float[] v = new float[length];
            SafeTensorsFile.toFloats(file, fileType, 0, v, 0, length);
            array = v;
        } else if (array == null && pack != null) {
            array = FastPaths.unpack(pack, length);
        }
        return array;
    }

    /** Forgets the packed copy and the file: the values are about to change, in a heap array of their own. */
    void dropPack() {
        if (uploaded) {
            synchronized (this) {
                materialised();
                pack = null;
                file = null;
            }
        }
    }

    @Override
    public String toString() {
        return "CpuTensor" + shape + (arena != null ? "@" + offset : "");
    }
}
