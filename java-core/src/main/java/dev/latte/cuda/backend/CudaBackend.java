package dev.latte.cuda.backend;

import dev.latte.core.Backend;
import dev.latte.core.Conv2dParams;
import dev.latte.core.NormAct;
import dev.latte.core.OpChecks;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cuda.CudaContext;
import dev.latte.exec.ArenaStep;
import dev.latte.exec.PlannedStep;
import dev.latte.exec.Steps;
import dev.latte.graph.Graph;
import dev.latte.graph.Op;
import dev.latte.graph.OpSupport;
import dev.latte.plan.MemoryPlan;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Collections;
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
 * <p>Each op goes to its launcher (ggml's middle level), one per kernel file beside it:
 * {@link ConvLauncher} ({@code conv.cu}: GroupNorm statistics in a read-only pass, normalise+SiLU
 * on the conv's load, bias and residual in its epilogue; mma.sync m16n8k16 for fp16),
 * {@link GemmLauncher} ({@code gemm.cu}), {@link AttentionLauncher} ({@code attention.cu},
 * flash-style, online softmax), {@link NormLauncher}, {@link ElementwiseLauncher}. A launcher
 * checks shapes, dtypes and aliasing (by device address, so two views of the same bytes are one
 * tensor), picks the kernel and the grid, reads its launch constants from its kernel file, and
 * queues one or two launches through {@link Launch}; none calls back into this class.
 */
public final class CudaBackend implements Backend, Steps.Preparer, OpSupport {
    public enum Precision { FP32, FP16 }

    private final CudaContext ctx;
    private final boolean ownsContext;
    private final Precision precision;
    private final CudaTensor.DType dtype;
    private final KernelLibrary lib;
    private final Set<CudaTensor> live = Collections.newSetFromMap(new IdentityHashMap<>());
    private final Launch launch;
    private final NormLauncher norms;
    private final ConvLauncher convs;
    private final GemmLauncher gemms;
    private final AttentionLauncher attentions;
    private final ElementwiseLauncher elementwise;
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
        this.launch = new Launch(ctx, lib, dtype, this);
        this.norms = new NormLauncher(launch);
        this.convs = new ConvLauncher(launch, norms);
        this.gemms = new GemmLauncher(launch);
        this.attentions = new AttentionLauncher(launch);
        this.elementwise = new ElementwiseLauncher(launch);
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
        return prepare(graph, plan, params, Map.of(), options);
    }

    @Override
    public ArenaStep prepare(Graph graph, MemoryPlan plan, Map<String, Tensor> params, Map<String, Tensor> external,
                             Steps.Options options) {
        PlannedStep planned = new PlannedStep(this, graph, plan, params, external);
        return options.eager() ? planned : new CudaGraphStep(ctx, planned);
    }

    /** No int8 kernels behind the Backend methods yet; attention up to head dim {@link AttentionLauncher#MAX_D}. */
    @Override
    public String unsupported(Op op, Graph g) {
        if (op instanceof Op.LinearInt8 || op instanceof Op.Conv2dInt8) {
            return "no int8 kernels behind " + op.kind() + " yet";
        }
        if (op instanceof Op.Attention a && g.value(a.q()).shape().dim(2) / a.heads() > AttentionLauncher.MAX_D) {
            return "head dim " + g.value(a.q()).shape().dim(2) / a.heads() + " > " + AttentionLauncher.MAX_D;
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
        for (long p : ptrs) {
            step(errors, () -> ctx.free(p));
        }
        step(errors, elementwise::close);
        step(errors, launch::close);
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

    // ---------------------------------------------------------------- ops: the launchers (cuda/ops), one per kernel file

    @Override
    public void conv2d(Tensor x, Tensor w, Tensor bias, Conv2dParams p, Tensor out) {
        conv2dFused(x, null, w, bias, p, null, out);
    }

    @Override
    public void conv2dFused(Tensor x, NormAct norm, Tensor w, Tensor bias, Conv2dParams p, Tensor residual,
                            Tensor out) {
        convs.conv(x, x.shape().dim(-2), x.shape().dim(-1), norm, w, bias, p, residual, out);
    }

    /** The same kernel reading x nearest-resized to height × width: Upsample2D in the conv's load. */
    @Override
    public void conv2dUpsampled(Tensor x, int height, int width, Tensor w, Tensor bias, Conv2dParams p, Tensor out) {
        convs.conv(x, height, width, null, w, bias, p, null, out);
    }

    @Override
    public void groupNorm(Tensor x, Tensor gamma, Tensor beta, int groups, float eps, boolean silu, Tensor out) {
        norms.groupNorm(x, gamma, beta, groups, eps, silu, out);
    }

    @Override
    public void layerNorm(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor out) {
        norms.layerNorm(x, gamma, beta, eps, out);
    }

    @Override
    public void linear(Tensor x, Tensor w, Tensor bias, Tensor out) {
        gemms.linear(x, w, bias, out);
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, int heads, float scale, Tensor out) {
        attentions.attention(q, k, v, heads, scale, out);
    }

    @Override
    public void silu(Tensor x, Tensor out) {
        elementwise.unary("silu", x, out);
    }

    @Override
    public void gelu(Tensor x, Tensor out) {
        elementwise.unary("gelu", x, out);
    }

    @Override
    public void geglu(Tensor x, Tensor out) {
        elementwise.geglu(x, out);
    }

    @Override
    public void timestepEmbedding(Tensor t, boolean flipSinToCos, float downscaleFreqShift, Tensor out) {
        elementwise.timestepEmbedding(t, flipSinToCos, downscaleFreqShift, out);
    }

    @Override
    public void upsampleNearest(Tensor x, Tensor out) {
        elementwise.upsampleNearest(x, out);
    }

    @Override
    public void concatChannels(Tensor a, Tensor b, Tensor out) {
        elementwise.concatChannels(a, b, out);
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        elementwise.add(a, b, out);
    }

    @Override
    public void addChannelBias(Tensor x, Tensor v, Tensor out) {
        elementwise.addChannelBias(x, v, out);
    }

    @Override
    public void scale(Tensor x, float s, Tensor out) {
        elementwise.scale(x, s, out);
    }

    @Override
    public void nchwToTokens(Tensor x, Tensor out) {
        Shape xs = x.shape();
        elementwise.transpose(OpChecks.nchwToTokens(x, out), x, out, xs.dim(0), xs.dim(1), xs.dim(2) * xs.dim(3));
    }

    @Override
    public void tokensToNchw(Tensor x, Tensor out) {
        Shape xs = x.shape();
        elementwise.transpose(OpChecks.tokensToNchw(x, out), x, out, xs.dim(0), xs.dim(1), xs.dim(2));
    }

    // ---------------------------------------------------------------- helpers

    private CudaTensor cuda(String what, Tensor t) {
        return launch.cuda(what, t);
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
