package dev.latte.cuda.backend;

import dev.latte.core.Shape;
import dev.latte.core.StorageType;
import dev.latte.core.Tensor;
import dev.latte.cuda.CudaContext;
import dev.latte.cuda.CudaKernel;
import dev.latte.cuda.KernelArgs;

/**
 * What every launcher shares: the kernel of its storage type, grid sizes, device pointers, the
 * checks on tensors (this backend's, not released, not aliased by bytes) and one device scratch
 * buffer. One per backend; its launchers ({@link ConvLauncher}, {@link GemmLauncher},
 * {@link AttentionLauncher}, {@link NormLauncher}, {@link ElementwiseLauncher}) each sit beside
 * their kernel file and read their launch constants from it ({@link KernelLibrary#define}).
 */
final class Launch implements AutoCloseable {
    /** Threads a block of a grid-stride kernel, and at most this many blocks. */
    private static final int ELEMENTWISE_THREADS = 256, ELEMENTWISE_MAX_BLOCKS = 1 << 20;

    private final CudaContext ctx;
    private final KernelLibrary lib;
    private final StorageType dtype;
    private final Object owner;
    private Tactics.Version pinned;
    private long scratch;
    private long scratchBytes;
    private boolean closed;

    /** @param owner the backend whose tensors these launchers accept */
    public Launch(CudaContext ctx, KernelLibrary lib, StorageType dtype, Object owner) {
        this.ctx = ctx;
        this.lib = lib;
        this.dtype = dtype;
        this.owner = owner;
    }

    CudaContext context() {
        return ctx;
    }

    KernelLibrary library() {
        return lib;
    }

    /** The backend's float storage type. */
    StorageType dtype() {
        return dtype;
    }

    /** The kernel for this storage type: {@code op + "_f32"} or {@code "_f16"}. */
    CudaKernel kernel(String file, String op) {
        if (closed) {
            throw new IllegalStateException("CudaBackend is closed");
        }
        return lib.kernel(file, op + dtype.kernelSuffix());
    }

    /** The version the running op's step chose for it ({@link StepTactics}), or null outside a prepared step. */
    void pin(Tactics.Version version) {
        pinned = version;
    }

    /**
     * The version a launcher of family {@code f} runs: the one its step pinned for this op where
     * the tensors are aligned as that choice assumed, else the table's answer for this launch.
     */
    Tactics.Version version(Tactics.Family f, boolean aligned, java.util.function.Supplier<Tactics.Version> table) {
        return pinned != null && pinned.family() == f && aligned ? pinned : table.get();
    }

    /** A grid-stride kernel over {@code n} elements. */
    void elementwise(String file, String op, long n, KernelArgs args) {
        if (n == 0) {
            return;
        }
        int grid = (int) Math.min((n + ELEMENTWISE_THREADS - 1) / ELEMENTWISE_THREADS, ELEMENTWISE_MAX_BLOCKS);
        kernel(file, op).launch(grid, 1, 1, ELEMENTWISE_THREADS, 1, 1, 0, args);
    }

    /**
     * Device scratch of at least {@code bytes}, reused by every op (one stream: in-order use).
     * Growing it frees the old one, which a captured graph may still use: refused while capturing
     * (binding a plan reserves it, {@code CudaBackend.reserve}).
     */
    long scratch(long bytes) {
        if (bytes > scratchBytes) {
            if (ctx.capturing()) {
                throw new IllegalStateException("CUDA graph capture: the step needs " + bytes + " bytes of scratch, "
                        + scratchBytes + " reserved (run it from a planned arena: Backend.reserve)");
            }
            if (scratch != 0) {
                ctx.free(scratch); // waits for the stream: nothing still reads the old one
                scratch = 0;
                scratchBytes = 0;
            }
            long size = Math.max(bytes, 64 * 1024);
            scratch = ctx.malloc(size);
            scratchBytes = size;
        }
        return scratch;
    }

    /**
     * {@code t} as an operand of an op: a live tensor of this backend stored as its activations
     * (or int8, which the int8 ops check for themselves), not a tensor of another float type that
     * a kernel of this type would misread; {@code what} names the op in the error.
     */
    public CudaTensor cuda(String what, Tensor t) {
        CudaTensor c = own(what, t);
        if (c.dtype() != dtype && c.dtype() != StorageType.I8) {
            throw new IllegalArgumentException(what + ": tensor " + c.shape() + " is stored as " + c.dtype().label()
                    + "; this op reads " + dtype.label());
        }
        return c;
    }

    /** {@code t} as a tensor of this backend that is still live, of any storage type. */
    public CudaTensor own(String what, Tensor t) {
        if (t instanceof CudaTensor c) {
            if (c.owner() != owner) {
                throw new IllegalArgumentException(what + ": tensor of another backend");
            }
            if (c.released() && !what.equals("release")) {
                throw new IllegalArgumentException(what + ": tensor " + c.shape() + " was released");
            }
            return c;
        }
        throw new IllegalArgumentException(what + ": " + (t == null ? "null tensor"
                : t.getClass().getName() + " is not a CudaTensor"));
    }

    /** Refuses an output sharing any byte with an input (views of one arena compared by address, not identity). */
    static void apart(String what, CudaTensor out, CudaTensor in, String name) {
        check(!overlaps(out, in), what + " (out aliases " + name + ")");
    }

    /** Refuses an output that overlaps an input without being exactly its bytes (in-place ops). */
    static void sameOrApart(String what, CudaTensor out, CudaTensor in, String name) {
        check(!overlaps(out, in) || (out.ptr() == in.ptr() && out.bytes() == in.bytes()),
                what + " (out partly overlaps " + name + ")");
    }

    static boolean overlaps(CudaTensor a, CudaTensor b) {
        return b != null && a.bytes() > 0 && b.bytes() > 0 && a.ptr() < b.ptr() + b.bytes()
                && b.ptr() < a.ptr() + a.bytes();
    }

    static int blocks(long n, int per) {
        long b = (n + per - 1) / per;
        if (b > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("grid of " + b + " blocks");
        }
        return (int) b;
    }

    static long ptr(CudaTensor t) {
        return t == null ? 0 : t.ptr();
    }

    /** Product of all dimensions but the last. */
    static long leading(Shape s) {
        long rows = 1;
        for (int i = 0; i < s.rank() - 1; i++) {
            rows *= s.dim(i);
        }
        return rows;
    }

    static void check(boolean ok, String what) {
        if (!ok) {
            throw new IllegalArgumentException(what);
        }
    }

    /** Frees the scratch; later launches are refused. */
    @Override
    public void close() {
        closed = true;
        if (scratch != 0) {
            long p = scratch;
            scratch = 0;
            scratchBytes = 0;
            ctx.free(p);
        }
    }
}
