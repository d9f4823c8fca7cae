package dev.latte.cuda.backend;

import dev.latte.core.OpChecks;
import dev.latte.core.Shape;
import dev.latte.core.StorageType;
import dev.latte.core.Tensor;
import dev.latte.cuda.CudaContext;
import dev.latte.cuda.KernelArgs;
import dev.latte.math.SleefExp;

import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;

import static dev.latte.cuda.backend.Launch.check;

/** {@code elementwise.cu}: activations, the timestep embedding, resampling, adds, concat, transposes. */
final class ElementwiseLauncher implements AutoCloseable {
    static final String FILE = "elementwise.cu";
    /** The transpose's shared tile (TILE²) and its block (TILE × TILE_ROWS threads), as the kernel defines them. */
    private static final int TILE = KernelLibrary.define(FILE, "TR_TILE"), TILE_ROWS = KernelLibrary.define(FILE, "TR_ROWS");

    private final Launch l;
    private final Map<String, Long> frequencyTables = new HashMap<>();

    public ElementwiseLauncher(Launch launch) {
        this.l = launch;
    }

    /**
     * out [B, L, D] = table[ids] (+ positions): ids stored as fp32 whatever the activations are
     * (a token id above 2048 is not exact in fp16), table, positions and out as the activations.
     * An id that is not a row gives a NaN row, which the caller's finiteness check names.
     */
    public void embedding(Tensor idt, Tensor tt, Tensor pt, Tensor outt) {
        String what = OpChecks.embedding(idt, tt, pt, outt);
        CudaTensor ids = l.own(what, idt), table = l.cuda(what, tt), out = l.cuda(what, outt);
        check(ids.dtype() == StorageType.F32, what + ": ids stored as " + ids.dtype().label()
                + "; token ids need fp32 (above 2048 fp16 rounds them)");
        CudaTensor pos = pt == null ? null : l.cuda(what, pt);
        Launch.apart(what, out, ids, "ids");
        Launch.apart(what, out, table, "table");
        if (pos != null) {
            Launch.apart(what, out, pos, "positions");
        }
        Shape os = outt.shape();
        l.elementwise(FILE, "embedding", os.numel(), new KernelArgs().ptr(Launch.ptr(ids)).ptr(Launch.ptr(table))
                .ptr(pos == null ? 0L : Launch.ptr(pos)).ptr(Launch.ptr(out)).i32(os.dim(1)).i32(os.dim(2))
                .i32(tt.shape().dim(0)).i64(os.numel()));
    }

    /** {@code silu}, {@code gelu} or {@code quick_gelu}; out may be x. */
    public void unary(String op, Tensor xt, Tensor outt) {
        String what = OpChecks.unary(op, xt, outt);
        CudaTensor x = l.cuda(what, xt), out = l.cuda(what, outt);
        Launch.sameOrApart(what, out, x, "x");
        long n = xt.shape().numel();
        l.elementwise(FILE, op, n, new KernelArgs().ptr(Launch.ptr(x)).ptr(Launch.ptr(out)).i64(n));
    }

    public void geglu(Tensor xt, Tensor outt) {
        Shape xs = xt.shape(), os = outt.shape();
        String what = OpChecks.geglu(xt, outt);
        int f = xs.dim(-1) / 2;
        CudaTensor x = l.cuda(what, xt), out = l.cuda(what, outt);
        Launch.apart(what, out, x, "x");
        l.elementwise(FILE, "geglu", os.numel(), new KernelArgs().ptr(x.ptr()).ptr(out.ptr()).i32(f).i64(os.numel()));
    }

    public void timestepEmbedding(Tensor tt, boolean flipSinToCos, float downscaleFreqShift, Tensor outt) {
        Shape os = outt.shape();
        String what = OpChecks.timestepEmbedding(tt, outt);
        CudaTensor t = l.cuda(what, tt), out = l.cuda(what, outt);
        Launch.apart(what, out, t, "t");
        int dim = os.dim(1), half = dim / 2;
        if (os.numel() == 0) {
            return;
        }
        long freq = frequencies(half, downscaleFreqShift);
        int sinAt = flipSinToCos ? half : 0, cosAt = flipSinToCos ? 0 : half;
        l.elementwise(FILE, "timestep_embedding", os.numel(), new KernelArgs().ptr(t.ptr()).ptr(freq)
                .ptr(out.ptr()).i32(dim).i32(half).i32(sinAt).i32(cosAt).i64(os.numel()));
    }

    /**
     * exp(−ln(10000)·i / (half − shift)) for i < half, as fp32 on the device, computed on the host
     * with PyTorch's CPU rounding of exp (one ulp of a frequency moves sin(t·f) by up to 6e-5 at
     * t ≈ 1000), once per (half, shift).
     */
    long frequencies(int half, float shift) {
        String key = half + ":" + Float.floatToIntBits(shift);
        Long cached = frequencyTables.get(key);
        if (cached != null) {
            return cached;
        }
        if (half == 0) {
            return 0;
        }
        if (l.context().capturing()) {
            throw new IllegalStateException("CUDA graph capture: timestep frequency table (" + half + ", shift " + shift
                    + ") not reserved (run it from a planned arena: Backend.reserve)");
        }
        float negLog = (float) -Math.log(10000.0), denom = (float) (half - (double) shift);
        float[] freq = new float[half];
        for (int i = 0; i < half; i++) {
            freq[i] = SleefExp.expf((negLog * i) / denom);
        }
        CudaContext ctx = l.context();
        long ptr = ctx.malloc(4L * half);
        frequencyTables.put(key, ptr);
        ctx.copyHtoD(ptr, MemorySegment.ofArray(freq), 4L * half);
        return ptr;
    }

    public void upsampleNearest(Tensor xt, Tensor outt) {
        Shape xs = xt.shape(), os = outt.shape();
        String what = OpChecks.upsampleNearest(xt, outt);
        int h = xs.dim(2), w = xs.dim(3), oh = os.dim(2), ow = os.dim(3);
        CudaTensor x = l.cuda(what, xt), out = l.cuda(what, outt);
        Launch.apart(what, out, x, "x");
        l.elementwise(FILE, "upsample_nearest", os.numel(), new KernelArgs().ptr(x.ptr()).ptr(out.ptr())
                .i32(h).i32(w).i32(oh).i32(ow).i64(os.numel()));
    }

    public void concatChannels(Tensor at, Tensor bt, Tensor outt) {
        Shape as = at.shape(), bs = bt.shape(), os = outt.shape();
        String what = OpChecks.concatChannels(at, bt, outt);
        CudaTensor a = l.cuda(what, at), b = l.cuda(what, bt), out = l.cuda(what, outt);
        Launch.apart(what, out, a, "a");
        Launch.apart(what, out, b, "b");
        if (os.numel() == 0) {
            return;
        }
        long aLen = as.numel() / as.dim(0), bLen = bs.numel() / bs.dim(0);
        l.elementwise(FILE, "concat_channels", os.numel(), new KernelArgs().ptr(Launch.ptr(a)).ptr(Launch.ptr(b))
                .ptr(out.ptr()).i64(aLen).i64(bLen).i64(os.numel()));
    }

    /** out may be a or b. */
    public void add(Tensor at, Tensor bt, Tensor outt) {
        String what = OpChecks.add(at, bt, outt);
        CudaTensor a = l.cuda(what, at), b = l.cuda(what, bt), out = l.cuda(what, outt);
        Launch.sameOrApart(what, out, a, "a");
        Launch.sameOrApart(what, out, b, "b");
        long n = at.shape().numel();
        l.elementwise(FILE, "add", n, new KernelArgs().ptr(Launch.ptr(a)).ptr(Launch.ptr(b)).ptr(Launch.ptr(out))
                .i64(n));
    }

    /** out may be x. */
    public void addChannelBias(Tensor xt, Tensor vt, Tensor outt) {
        Shape xs = xt.shape();
        String what = OpChecks.addChannelBias(xt, vt, outt);
        CudaTensor x = l.cuda(what, xt), v = l.cuda(what, vt), out = l.cuda(what, outt);
        Launch.sameOrApart(what, out, x, "x");
        long planes = (long) xs.dim(0) * xs.dim(1);
        if (xs.numel() == 0) {
            return;
        }
        long hw = xs.numel() / planes;
        check(hw < Integer.MAX_VALUE, what);
        l.elementwise(FILE, "add_channel_bias", xs.numel(), new KernelArgs().ptr(x.ptr()).ptr(v.ptr())
                .ptr(out.ptr()).i32((int) hw).i64(xs.numel()));
    }

    /** out may be x. */
    public void scale(Tensor xt, float s, Tensor outt) {
        String what = OpChecks.unary("scale", xt, outt);
        CudaTensor x = l.cuda(what, xt), out = l.cuda(what, outt);
        Launch.sameOrApart(what, out, x, "x");
        long n = xt.shape().numel();
        l.elementwise(FILE, "scale", n, new KernelArgs().ptr(Launch.ptr(x)).ptr(Launch.ptr(out)).f32(s).i64(n));
    }

    /** out[b] = x[b]ᵀ for x [batches, rows, cols], a shared tile per block. */
    public void transpose(String what, Tensor xt, Tensor outt, int batches, int rows, int cols) {
        CudaTensor x = l.cuda(what, xt), out = l.cuda(what, outt);
        Launch.apart(what, out, x, "x");
        transpose(what, x.ptr(), out.ptr(), batches, rows, cols);
    }

    /** As above on device pointers of the backend's storage type (the W8A8 conv's [N, P·Q, K] result). */
    void transpose(String what, long x, long out, int batches, int rows, int cols) {
        check(batches <= 65535 && rows / TILE < 65535, what + " (grid)");
        if ((long) batches * rows * cols == 0) {
            return;
        }
        l.kernel(FILE, "transpose").launch(Launch.blocks(cols, TILE), Launch.blocks(rows, TILE), batches, TILE,
                TILE_ROWS, 1, 0, new KernelArgs().ptr(x).ptr(out).i32(rows).i32(cols));
    }

    /** Frees the frequency tables. */
    @Override
    public void close() {
        CudaContext ctx = l.context();
        RuntimeException first = null;
        for (long p : frequencyTables.values()) {
            try {
                ctx.free(p);
            } catch (RuntimeException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        frequencyTables.clear();
        if (first != null) {
            throw first;
        }
    }
}
