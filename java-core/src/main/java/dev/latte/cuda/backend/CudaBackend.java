package dev.latte.cuda.backend;

import dev.latte.core.Backend;
import dev.latte.core.Conv2dParams;
import dev.latte.core.NormAct;
import dev.latte.core.OpChecks;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cuda.CudaContext;
import dev.latte.cuda.CudaKernel;
import dev.latte.cuda.KernelArgs;
import dev.latte.exec.ArenaStep;
import dev.latte.exec.PlannedStep;
import dev.latte.exec.Steps;
import dev.latte.graph.Graph;
import dev.latte.graph.Op;
import dev.latte.graph.OpSupport;
import dev.latte.math.SleefExp;
import dev.latte.plan.MemoryPlan;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The CUDA backend: every op a kernel of {@code latte-kernels} on the context's one stream, tensors
 * in device memory as fp32 or fp16 ({@link Precision}), arithmetic always fp32. Weights are
 * uploaded once by whoever holds them; activations live in one arena per memory plan
 * ({@link #arena}, {@link #view}), so a planned step allocates nothing. Nothing waits for the
 * device except {@link #download}, {@link #write} of heap arrays and {@link #release} (the
 * driver's free waits for the stream); the GroupNorm statistics scratch and the timestep
 * frequency table are allocated on first use and kept.
 *
 * <p>Each op method is the launcher (ggml's middle level): it checks shapes and dtypes, picks
 * the kernel and the grid, and queues one or two launches. Fused and tensor-core paths:
 * {@link #conv2dFused} (GroupNorm statistics in a read-only pass, normalise+SiLU on the conv's
 * load, bias and residual in its epilogue; mma.sync m16n8k16 for fp16), {@link #linear}
 * (mma.sync for fp16), {@link #attention} (flash-style, online softmax).
 */
public final class CudaBackend implements Backend, Steps.Preparer, OpSupport {
    public enum Precision { FP32, FP16 }

    private static final int ELEMENTWISE_THREADS = 256;
    private static final int ELEMENTWISE_MAX_BLOCKS = 1 << 20;
    private static final int GEMM_TILE = 64, GEMM_THREADS = 128;
    private static final int NORM_THREADS = 256;
    private static final int ATT_QUERIES = 32, ATT_KEYS = 32, ATT_THREADS = 128, ATT_MAX_D = 256;
    private static final int DEFAULT_SHARED_LIMIT = 48 * 1024;

    private final CudaContext ctx;
    private final boolean ownsContext;
    private final Precision precision;
    private final CudaTensor.DType dtype;
    private final KernelLibrary lib;
    private final Set<CudaTensor> live = Collections.newSetFromMap(new IdentityHashMap<>());
    private final Map<String, Long> frequencyTables = new HashMap<>();
    /** Per kernel, the dynamic shared memory it was allowed beyond the default (the generic attention varies with d). */
    private final Map<String, Integer> sharedRaised = new HashMap<>();
    private long scratch;
    private long scratchBytes;
    private boolean closed;

    /** A backend on an open context the caller keeps owning. */
    public CudaBackend(CudaContext ctx, Precision precision) {
        this(ctx, precision, false);
    }

    private CudaBackend(CudaContext ctx, Precision precision, boolean ownsContext) {
        this.ctx = ctx;
        this.precision = precision;
        this.ownsContext = ownsContext;
        this.dtype = precision == Precision.FP16 ? CudaTensor.DType.F16 : CudaTensor.DType.F32;
        this.lib = new KernelLibrary(ctx);
    }

    /** Opens device {@code ordinal} and a backend that closes the context with itself. */
    public static CudaBackend open(int ordinal, Precision precision) {
        CudaContext ctx = CudaContext.open(ordinal);
        try {
            return new CudaBackend(ctx, precision, true);
        } catch (RuntimeException e) {
            try {
                ctx.close();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    @Override
    public String name() {
        return precision == Precision.FP16 ? "cuda-fp16" : "cuda-fp32";
    }

    /**
     * A planned step replayed as one CUDA graph ({@link CudaGraphStep}); with
     * {@code options.eager()} ({@code -Dlatte.eager=true}) op by op every run.
     */
    @Override
    public ArenaStep prepare(Graph graph, MemoryPlan plan, Map<String, Tensor> params, Steps.Options options) {
        PlannedStep planned = new PlannedStep(this, graph, plan, params);
        return options.eager() ? planned : new CudaGraphStep(ctx, planned);
    }

    /** No int8 kernels behind the Backend methods yet; attention up to head dim {@value #ATT_MAX_D}. */
    @Override
    public String unsupported(Op op, Graph g) {
        if (op instanceof Op.LinearInt8 || op instanceof Op.Conv2dInt8) {
            return "no int8 kernels behind " + op.kind() + " yet";
        }
        if (op instanceof Op.Attention a && g.value(a.q()).shape().dim(2) / a.heads() > ATT_MAX_D) {
            return "head dim " + g.value(a.q()).shape().dim(2) / a.heads() + " > " + ATT_MAX_D;
        }
        return null;
    }

    public Precision precision() {
        return precision;
    }

    public CudaContext context() {
        return ctx;
    }

    public KernelLibrary library() {
        return lib;
    }

    // ---------------------------------------------------------------- memory

    @Override
    public CudaTensor allocate(Shape shape) {
        checkOpen();
        long bytes = shape.numel() * dtype.bytes;
        CudaTensor t = new CudaTensor(shape, dtype, bytes == 0 ? 0 : ctx.malloc(bytes), this, null);
        live.add(t);
        return t;
    }

    // ---- planned memory: one device allocation per plan, activations as views into it

    @Override
    public boolean supportsArena() {
        return true;
    }

    @Override
    public int activationBytes() {
        return dtype.bytes;
    }

    /** One cuMemAlloc of {@code bytes}; its shape counts storage elements (rounded up). */
    @Override
    public Tensor arena(long bytes) {
        checkOpen();
        if (bytes < 0) {
            throw new IllegalArgumentException("arena of " + bytes + " bytes");
        }
        long elements = (bytes + dtype.bytes - 1) / dtype.bytes;
        CudaTensor t = new CudaTensor(Shape.of(Math.toIntExact(elements)), dtype,
                elements == 0 ? 0 : ctx.malloc(elements * dtype.bytes), this, null);
        live.add(t);
        return t;
    }

    @Override
    public Tensor view(Tensor arenaTensor, long byteOffset, Shape shape) {
        CudaTensor a = cuda("view", arenaTensor);
        check(!a.isView(), "view: " + a + " is itself a view");
        long bytes = shape.numel() * dtype.bytes;
        check(byteOffset >= 0 && byteOffset % dtype.bytes == 0 && byteOffset + bytes <= a.bytes(),
                "view: " + shape + " at byte " + byteOffset + " outside an arena of " + a.bytes() + " bytes");
        return new CudaTensor(shape, dtype, a.ptr() + byteOffset, this, a);
    }

    @Override
    public void write(Tensor tensor, float[] values) {
        CudaTensor t = cuda("write", tensor);
        check(values.length == t.shape().numel(), "write: " + values.length + " values into " + t);
        if (values.length > 0) {
            ctx.copyHtoD(t.ptr(), hostSegment(values), t.bytes());
        }
    }

    @Override
    public Tensor upload(Shape shape, float[] values) {
        if (values.length != shape.numel()) {
            throw new IllegalArgumentException("upload: " + values.length + " values for shape " + shape);
        }
        CudaTensor t = allocate(shape);
        try {
            if (values.length > 0) {
                ctx.copyHtoD(t.ptr(), hostSegment(values), t.bytes());
            }
        } catch (RuntimeException e) {
            release(t);
            throw e;
        }
        return t;
    }

    private MemorySegment hostSegment(float[] values) {
        if (dtype == CudaTensor.DType.F32) {
            return MemorySegment.ofArray(values);
        }
        short[] h = new short[values.length];
        for (int i = 0; i < h.length; i++) {
            h[i] = Float.floatToFloat16(values[i]);
        }
        return MemorySegment.ofArray(h);
    }

    @Override
    public float[] download(Tensor tensor) {
        CudaTensor t = cuda("download", tensor);
        int n = t.shape().size();
        float[] out = new float[n];
        if (n == 0) {
            return out;
        }
        if (t.dtype() == CudaTensor.DType.F32) {
            ctx.copyDtoH(MemorySegment.ofArray(out), t.ptr(), t.bytes());
        } else {
            short[] h = new short[n];
            ctx.copyDtoH(MemorySegment.ofArray(h), t.ptr(), t.bytes());
            for (int i = 0; i < n; i++) {
                out[i] = Float.float16ToFloat(h[i]);
            }
        }
        return out;
    }

    @Override
    public void release(Tensor tensor) {
        CudaTensor t = cuda("release", tensor);
        check(!t.isView(), "release: " + t + " is a view of an arena; release the arena");
        if (t.released()) {
            return;
        }
        long ptr = t.ptr();
        t.markReleased();
        live.remove(t);
        if (ptr != 0) {
            ctx.free(ptr);
        }
    }

    /** Device scratch of at least {@code bytes}, reused by every op (one stream: in-order use). */
    private long scratch(long bytes) {
        if (bytes > scratchBytes) {
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

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        List<RuntimeException> errors = new ArrayList<>();
        List<Long> ptrs = new ArrayList<>();
        for (CudaTensor t : live) {
            if (!t.released() && t.ptr() != 0) {
                ptrs.add(t.ptr());
            }
            t.markReleased();
        }
        live.clear();
        ptrs.addAll(frequencyTables.values());
        frequencyTables.clear();
        if (scratch != 0) {
            ptrs.add(scratch);
            scratch = 0;
        }
        for (long p : ptrs) {
            step(errors, () -> ctx.free(p));
        }
        step(errors, lib::close);
        if (ownsContext) {
            step(errors, ctx::close);
        }
        if (!errors.isEmpty()) {
            errors.subList(1, errors.size()).forEach(errors.get(0)::addSuppressed);
            throw errors.get(0);
        }
    }

    private static void step(List<RuntimeException> errors, Runnable r) {
        try {
            r.run();
        } catch (RuntimeException e) {
            errors.add(e);
        }
    }

    // ---------------------------------------------------------------- convolution

    @Override
    public void conv2d(Tensor x, Tensor w, Tensor bias, Conv2dParams p, Tensor out) {
        conv2dFused(x, null, w, bias, p, null, out);
    }

    /**
     * One launch of {@code conv2d_*} (implicit GEMM, 64×64 tiles; tensor cores for fp16), after a
     * read-only GroupNorm statistics pass over x when {@code norm} is given.
     */
    @Override
    public void conv2dFused(Tensor xt, NormAct norm, Tensor wt, Tensor bt, Conv2dParams p, Tensor residualt,
                            Tensor outt) {
        conv(xt, xt.shape().dim(-2), xt.shape().dim(-1), norm, wt, bt, p, residualt, outt);
    }

    /** The same kernel reading x nearest-resized to height × width: Upsample2D in the conv's load. */
    @Override
    public void conv2dUpsampled(Tensor xt, int height, int width, Tensor wt, Tensor bt, Conv2dParams p, Tensor outt) {
        conv(xt, height, width, null, wt, bt, p, null, outt);
    }

    private void conv(Tensor xt, int h, int w, NormAct norm, Tensor wt, Tensor bt, Conv2dParams p, Tensor residualt,
                      Tensor outt) {
        Shape xs = xt.shape(), ws = wt.shape(), os = outt.shape();
        String what = OpChecks.conv2d(xt, h, w, wt, bt, p, outt, (norm == null ? "" : ", norm groups " + norm.groups())
                + (residualt == null ? "" : ", residual " + residualt.shape()));
        int n = xs.dim(0), c = xs.dim(1);
        int k = ws.dim(0), r = ws.dim(2), s = ws.dim(3);
        int pOut = p.outHeight(h, r), qOut = p.outWidth(w, s);
        check(residualt == null || residualt.shape().equals(os), what); // out may be residual
        CudaTensor x = cuda(what, xt), wgt = cuda(what, wt), out = cuda(what, outt);
        CudaTensor b = bt == null ? null : cuda(what, bt), res = residualt == null ? null : cuda(what, residualt);
        check(out != x, what + " (out aliases x)");
        long m = (long) n * pOut * qOut;
        check(m < Integer.MAX_VALUE && (long) c * r * s < Integer.MAX_VALUE, what + " (too large)");
        if (m == 0 || k == 0) {
            return;
        }
        long stats = 0;
        int groups = 0, silu = 0;
        CudaTensor gamma = null, beta = null;
        if (norm != null) {
            groups = norm.groups();
            check(groups > 0 && c % groups == 0 && norm.gamma().shape().equals(Shape.of(c))
                    && norm.beta().shape().equals(Shape.of(c)), what);
            gamma = cuda(what, norm.gamma());
            beta = cuda(what, norm.beta());
            silu = norm.silu() ? 1 : 0;
            stats = groupNormStats(x, n, groups, (long) (c / groups) * h * w, norm.eps());
        }
        KernelArgs a = new KernelArgs().ptr(x.ptr()).ptr(wgt.ptr()).ptr(ptr(b)).ptr(ptr(res)).ptr(out.ptr())
                .ptr(stats).ptr(ptr(gamma)).ptr(ptr(beta))
                .i32(n).i32(c).i32(h).i32(w).i32(k).i32(r).i32(s).i32(pOut).i32(qOut)
                .i32(p.strideH()).i32(p.strideW()).i32(p.padTop()).i32(p.padLeft()).i32(groups).i32(silu)
                .i32(xs.dim(2)).i32(xs.dim(3));
        kernel("conv.cu", "conv2d").launch(blocks(m, GEMM_TILE), blocks(k, GEMM_TILE), 1, GEMM_THREADS, 1, 1, 0, a);
    }

    /** Queues groupnorm_stats into scratch: {mean, rstd} per (n, group), fp32. Returns its pointer. */
    private long groupNormStats(CudaTensor x, int n, int groups, long groupLen, float eps) {
        check(groupLen < Integer.MAX_VALUE, "groupNorm: group of " + groupLen + " elements");
        long stats = scratch(8L * n * groups);
        kernel("norm.cu", "groupnorm_stats").launch(n * groups, 1, 1, NORM_THREADS, 1, 1, 0,
                new KernelArgs().ptr(x.ptr()).ptr(stats).i32((int) groupLen).f32(eps));
        return stats;
    }

    // ---------------------------------------------------------------- normalisation

    @Override
    public void groupNorm(Tensor xt, Tensor gt, Tensor bt, int groups, float eps, boolean silu, Tensor outt) {
        Shape xs = xt.shape();
        String what = OpChecks.groupNorm(xt, gt, bt, groups, outt);
        int n = xs.dim(0), c = xs.dim(1);
        CudaTensor x = cuda(what, xt), gamma = cuda(what, gt), beta = cuda(what, bt), out = cuda(what, outt);
        long total = xs.numel();
        if (total == 0) {
            return;
        }
        long hw = total / ((long) n * c);
        check(hw < Integer.MAX_VALUE, what);
        long stats = groupNormStats(x, n, groups, (c / groups) * hw, eps);
        elementwise("norm.cu", "groupnorm_apply", total, new KernelArgs().ptr(x.ptr()).ptr(stats).ptr(gamma.ptr())
                .ptr(beta.ptr()).ptr(out.ptr()).i32(c).i32((int) hw).i32(c / groups).i32(groups).i32(silu ? 1 : 0)
                .i64(total));
    }

    @Override
    public void layerNorm(Tensor xt, Tensor gt, Tensor bt, float eps, Tensor outt) {
        Shape xs = xt.shape();
        String what = OpChecks.layerNorm(xt, gt, bt, outt);
        int d = xs.dim(-1);
        CudaTensor x = cuda(what, xt), gamma = cuda(what, gt), beta = cuda(what, bt), out = cuda(what, outt);
        long rows = leading(xs);
        check(rows < Integer.MAX_VALUE, what);
        if (rows == 0 || d == 0) {
            return;
        }
        kernel("norm.cu", "layernorm").launch((int) rows, 1, 1, NORM_THREADS, 1, 1, 0,
                new KernelArgs().ptr(x.ptr()).ptr(gamma.ptr()).ptr(beta.ptr()).ptr(out.ptr()).i32(d).f32(eps));
    }

    // ---------------------------------------------------------------- linear and attention

    /** One launch of {@code linear_*}: 64×64 tiles, tensor cores (mma.sync) for fp16, FMA for fp32. */
    @Override
    public void linear(Tensor xt, Tensor wt, Tensor bt, Tensor outt) {
        Shape xs = xt.shape(), ws = wt.shape();
        String what = OpChecks.linear(xt, wt, bt, outt);
        int in = ws.dim(1), outF = ws.dim(0);
        CudaTensor x = cuda(what, xt), w = cuda(what, wt), out = cuda(what, outt);
        CudaTensor b = bt == null ? null : cuda(what, bt);
        check(out != x, what + " (out aliases x)");
        long m = leading(xs);
        check(m < Integer.MAX_VALUE, what);
        if (m == 0 || outF == 0) {
            return;
        }
        kernel("gemm.cu", "linear").launch(blocks(m, GEMM_TILE), blocks(outF, GEMM_TILE), 1, GEMM_THREADS, 1, 1, 0,
                new KernelArgs().ptr(x.ptr()).ptr(w.ptr()).ptr(ptr(b)).ptr(out.ptr()).i32((int) m).i32(outF).i32(in));
    }

    /**
     * Flash-style attention, one launch: a block per 32 queries of one (batch, head), K/V streamed
     * through shared memory 32 keys at a time; head dims 40, 64, 80, 160 have their own kernels,
     * any other d ≤ 256 takes the generic one.
     */
    @Override
    public void attention(Tensor qt, Tensor kt, Tensor vt, int heads, float scale, Tensor outt) {
        Shape qs = qt.shape(), ks = kt.shape();
        String what = OpChecks.attention(qt, kt, vt, heads, outt);
        int b = qs.dim(0), sq = qs.dim(1), sk = ks.dim(1), d = qs.dim(2) / heads;
        check(d <= ATT_MAX_D, what + " (head dim " + d + " > " + ATT_MAX_D + ")");
        check(heads <= 65535 && b <= 65535, what + " (grid)");
        CudaTensor q = cuda(what, qt), k = cuda(what, kt), v = cuda(what, vt), out = cuda(what, outt);
        check(out != k && out != v, what + " (out aliases k or v)");
        if ((long) b * sq == 0 || d == 0) {
            return;
        }
        String name = switch (d) {
            case 40, 64, 80, 160 -> "attention_d" + d;
            default -> "attention";
        };
        int shared = 4 * (ATT_KEYS * (d + 1) + ATT_KEYS * d + ATT_QUERIES * d);
        CudaKernel kernel = kernel("attention.cu", name);
        if (shared > DEFAULT_SHARED_LIMIT && shared > sharedRaised.getOrDefault(kernel.name(), DEFAULT_SHARED_LIMIT)) {
            sharedRaised.put(kernel.name(), shared);
            kernel.setMaxDynamicSharedMemory(shared);
        }
        kernel.launch(blocks(sq, ATT_QUERIES), heads, b, ATT_THREADS, 1, 1, shared, new KernelArgs()
                .ptr(q.ptr()).ptr(k.ptr()).ptr(v.ptr()).ptr(out.ptr()).i32(sq).i32(sk).i32(heads).i32(d).f32(scale));
    }

    // ---------------------------------------------------------------- activations

    @Override
    public void silu(Tensor x, Tensor out) {
        unary("silu", x, out);
    }

    @Override
    public void gelu(Tensor x, Tensor out) {
        unary("gelu", x, out);
    }

    @Override
    public void geglu(Tensor xt, Tensor outt) {
        Shape xs = xt.shape(), os = outt.shape();
        String what = OpChecks.geglu(xt, outt);
        int f = xs.dim(-1) / 2;
        CudaTensor x = cuda(what, xt), out = cuda(what, outt);
        check(out != x, what + " (out aliases x)");
        elementwise("elementwise.cu", "geglu", os.numel(),
                new KernelArgs().ptr(x.ptr()).ptr(out.ptr()).i32(f).i64(os.numel()));
    }

    // ---------------------------------------------------------------- embeddings and resampling

    @Override
    public void timestepEmbedding(Tensor tt, boolean flipSinToCos, float downscaleFreqShift, Tensor outt) {
        Shape os = outt.shape();
        String what = OpChecks.timestepEmbedding(tt, outt);
        CudaTensor t = cuda(what, tt), out = cuda(what, outt);
        check(out != t, what + " (out aliases t)");
        int dim = os.dim(1), half = dim / 2;
        if (os.numel() == 0) {
            return;
        }
        long freq = frequencies(half, downscaleFreqShift);
        int sinAt = flipSinToCos ? half : 0, cosAt = flipSinToCos ? 0 : half;
        elementwise("elementwise.cu", "timestep_embedding", os.numel(), new KernelArgs().ptr(t.ptr()).ptr(freq)
                .ptr(out.ptr()).i32(dim).i32(half).i32(sinAt).i32(cosAt).i64(os.numel()));
    }

    /**
     * exp(−ln(10000)·i / (half − shift)) for i < half, as fp32 on the device, computed on the host
     * with PyTorch's CPU rounding of exp (one ulp of a frequency moves sin(t·f) by up to 6e-5 at
     * t ≈ 1000), once per (half, shift).
     */
    private long frequencies(int half, float shift) {
        String key = half + ":" + Float.floatToIntBits(shift);
        Long cached = frequencyTables.get(key);
        if (cached != null) {
            return cached;
        }
        if (half == 0) {
            return 0;
        }
        float negLog = (float) -Math.log(10000.0), denom = (float) (half - (double) shift);
        float[] freq = new float[half];
        for (int i = 0; i < half; i++) {
            freq[i] = SleefExp.expf((negLog * i) / denom);
        }
        long ptr = ctx.malloc(4L * half);
        frequencyTables.put(key, ptr);
        ctx.copyHtoD(ptr, MemorySegment.ofArray(freq), 4L * half);
        return ptr;
    }

    @Override
    public void upsampleNearest(Tensor xt, Tensor outt) {
        Shape xs = xt.shape(), os = outt.shape();
        String what = OpChecks.upsampleNearest(xt, outt);
        int h = xs.dim(2), w = xs.dim(3), oh = os.dim(2), ow = os.dim(3);
        CudaTensor x = cuda(what, xt), out = cuda(what, outt);
        check(out != x, what + " (out aliases x)");
        elementwise("elementwise.cu", "upsample_nearest", os.numel(), new KernelArgs().ptr(x.ptr()).ptr(out.ptr())
                .i32(h).i32(w).i32(oh).i32(ow).i64(os.numel()));
    }

    // ---------------------------------------------------------------- plumbing ops

    @Override
    public void concatChannels(Tensor at, Tensor bt, Tensor outt) {
        Shape as = at.shape(), bs = bt.shape(), os = outt.shape();
        String what = OpChecks.concatChannels(at, bt, outt);
        CudaTensor a = cuda(what, at), b = cuda(what, bt), out = cuda(what, outt);
        check(out != a && out != b, what + " (out aliases an input)");
        if (os.numel() == 0) {
            return;
        }
        long aLen = as.numel() / as.dim(0), bLen = bs.numel() / bs.dim(0);
        elementwise("elementwise.cu", "concat_channels", os.numel(), new KernelArgs().ptr(ptr(a)).ptr(ptr(b))
                .ptr(out.ptr()).i64(aLen).i64(bLen).i64(os.numel()));
    }

    @Override
    public void add(Tensor at, Tensor bt, Tensor outt) {
        String what = OpChecks.add(at, bt, outt);
        CudaTensor a = cuda(what, at), b = cuda(what, bt), out = cuda(what, outt);
        long n = at.shape().numel();
        elementwise("elementwise.cu", "add", n, new KernelArgs().ptr(ptr(a)).ptr(ptr(b)).ptr(ptr(out)).i64(n));
    }

    @Override
    public void addChannelBias(Tensor xt, Tensor vt, Tensor outt) {
        Shape xs = xt.shape();
        String what = OpChecks.addChannelBias(xt, vt, outt);
        CudaTensor x = cuda(what, xt), v = cuda(what, vt), out = cuda(what, outt);
        long planes = (long) xs.dim(0) * xs.dim(1);
        if (xs.numel() == 0) {
            return;
        }
        long hw = xs.numel() / planes;
        check(hw < Integer.MAX_VALUE, what);
        elementwise("elementwise.cu", "add_channel_bias", xs.numel(), new KernelArgs().ptr(x.ptr()).ptr(v.ptr())
                .ptr(out.ptr()).i32((int) hw).i64(xs.numel()));
    }

    @Override
    public void scale(Tensor xt, float s, Tensor outt) {
        String what = OpChecks.unary("scale", xt, outt);
        CudaTensor x = cuda(what, xt), out = cuda(what, outt);
        long n = xt.shape().numel();
        elementwise("elementwise.cu", "scale", n, new KernelArgs().ptr(ptr(x)).ptr(ptr(out)).f32(s).i64(n));
    }

    @Override
    public void nchwToTokens(Tensor xt, Tensor outt) {
        Shape xs = xt.shape();
        String what = OpChecks.nchwToTokens(xt, outt);
        transpose(what, xt, outt, xs.dim(0), xs.dim(1), xs.dim(2) * xs.dim(3));
    }

    @Override
    public void tokensToNchw(Tensor xt, Tensor outt) {
        Shape xs = xt.shape();
        String what = OpChecks.tokensToNchw(xt, outt);
        transpose(what, xt, outt, xs.dim(0), xs.dim(1), xs.dim(2));
    }

    /** out[b] = x[b]ᵀ for x [batches, rows, cols]: 32×32 shared tiles, block (32, 8). */
    private void transpose(String what, Tensor xt, Tensor outt, int batches, int rows, int cols) {
        CudaTensor x = cuda(what, xt), out = cuda(what, outt);
        check(out != x, what + " (out aliases x)");
        check(batches <= 65535 && rows / 32 < 65535, what + " (grid)");
        if ((long) batches * rows * cols == 0) {
            return;
        }
        kernel("elementwise.cu", "transpose").launch(blocks(cols, 32), blocks(rows, 32), batches, 32, 8, 1, 0,
                new KernelArgs().ptr(x.ptr()).ptr(out.ptr()).i32(rows).i32(cols));
    }

    // ---------------------------------------------------------------- helpers

    private void unary(String op, Tensor xt, Tensor outt) {
        String what = OpChecks.unary(op, xt, outt);
        CudaTensor x = cuda(what, xt), out = cuda(what, outt);
        long n = xt.shape().numel();
        elementwise("elementwise.cu", op, n, new KernelArgs().ptr(ptr(x)).ptr(ptr(out)).i64(n));
    }

    /** A grid-stride kernel over {@code n} elements: 256 threads a block, at most 2²⁰ blocks. */
    private void elementwise(String file, String op, long n, KernelArgs args) {
        if (n == 0) {
            return;
        }
        int grid = (int) Math.min((n + ELEMENTWISE_THREADS - 1) / ELEMENTWISE_THREADS, ELEMENTWISE_MAX_BLOCKS);
        kernel(file, op).launch(grid, 1, 1, ELEMENTWISE_THREADS, 1, 1, 0, args);
    }

    /** The kernel for this backend's storage type: {@code op + "_f32"} or {@code "_f16"}. */
    private CudaKernel kernel(String file, String op) {
        checkOpen();
        return lib.kernel(file, op + dtype.suffix);
    }

    private static int blocks(long n, int per) {
        long b = (n + per - 1) / per;
        if (b > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("grid of " + b + " blocks");
        }
        return (int) b;
    }

    private static long ptr(CudaTensor t) {
        return t == null ? 0 : t.ptr();
    }

    private static long leading(Shape s) {
        long rows = 1;
        for (int i = 0; i < s.rank() - 1; i++) {
            rows *= s.dim(i);
        }
        return rows;
    }

    private CudaTensor cuda(String what, Tensor t) {
        if (t instanceof CudaTensor c) {
            if (c.owner() != this) {
                throw new IllegalArgumentException(what + ": tensor of another backend");
            }
            if (c.released() && !what.equals("release")) {
                throw new IllegalArgumentException(what + ": tensor " + c.shape() + " was released");
            }
            return c;
        }
        throw new IllegalArgumentException(what + ": " + (t == null ? "null tensor" : t.getClass().getName() + " is not a CudaTensor"));
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("CudaBackend is closed");
        }
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new IllegalArgumentException(what);
        }
    }
}
