package dev.latte.cuda.backend;

import dev.latte.core.Backend;
import dev.latte.core.Conv2dParams;
import dev.latte.core.Int8Mode;
import dev.latte.core.NormAct;
import dev.latte.core.OpChecks;
import dev.latte.core.Shape;
import dev.latte.core.StorageType;
import dev.latte.core.Tensor;
import dev.latte.cuda.CudaContext;
import dev.latte.cuda.KernelCache;
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
 * driver's free waits for the stream); the GroupNorm statistics scratch, the timestep frequency
 * tables and the W8A8 activation scratch are allocated when a plan is bound ({@link #reserve}),
 * else on first use, and kept.
 *
 * <p>Each op goes to its launcher (ggml's middle level), one per kernel file beside it:
 * {@link ConvLauncher} ({@code conv.cu}: GroupNorm statistics in a read-only pass, normalise+SiLU
 * on the conv's load, bias and residual in its epilogue; mma.sync m16n8k16 for fp16),
 * {@link GemmLauncher} ({@code gemm.cu}), {@link AttentionLauncher} ({@code attention.cu},
 * flash-style, online softmax), {@link NormLauncher}, {@link ElementwiseLauncher}, and
 * {@link Int8Ops} ({@code int8_ops.cu} and the s8 GEMM) for int8 weights. A launcher
 * checks shapes, dtypes and aliasing (by device address, so two views of the same bytes are one
 * tensor), picks the kernel and the grid, reads its launch constants from its kernel file, and
 * queues one or two launches through {@link Launch}; none calls back into this class.
 *
 * <p>Where a kernel family has several versions side by side (the kernel lab: {@link AttentionV2},
 * {@link LinearV2}, {@link ConvV2} beside the v1 launchers), {@link Tactics} picks one per call: the
 * default table, or a version forced by name.
 */
public final class CudaBackend implements Backend, Steps.Preparer, OpSupport {
    public enum Precision { FP32, FP16 }

    private final CudaContext ctx;
    private final boolean ownsContext;
    private final Precision precision;
    private final StorageType dtype;
    private final KernelLibrary lib;
    private final Tactics tactics;
    private final Set<CudaTensor> live = Collections.newSetFromMap(new IdentityHashMap<>());
    private final Launch launch;
    private final NormLauncher norms;
    private final ConvLauncher convs;
    private final GemmLauncher gemms;
    private final AttentionLauncher attentions;
    private final ElementwiseLauncher elementwise;
    private final Int8Ops int8;
    private boolean closed;

    /** A backend on an open context the caller keeps owning. */
    public CudaBackend(CudaContext ctx, Precision precision) {
        this(ctx, precision, Tactics.defaults());
    }

    /** A backend running the kernel versions {@code tactics} picks. */
    public CudaBackend(CudaContext ctx, Precision precision, Tactics tactics) {
        this(ctx, precision, tactics, ctx.computeCapability(), false);
    }

    /**
     * A backend whose kernels are built for compute capability {@code cc} (at most the device's): on a
     * newer or emulated device it runs what an sm_{@code cc} GPU would run, e.g. sm_75's CUDA-core paths.
     */
    public CudaBackend(CudaContext ctx, Precision precision, Tactics tactics, int cc) {
        this(ctx, precision, tactics, cc, false);
    }

    private CudaBackend(CudaContext ctx, Precision precision, Tactics tactics, int cc, boolean ownsContext) {
        this.ctx = ctx;
        this.precision = precision;
        this.tactics = tactics;
        this.ownsContext = ownsContext;
        this.dtype = precision == Precision.FP16 ? StorageType.F16 : StorageType.F32;
        this.lib = new KernelLibrary(ctx, KernelCache.defaultCache(), cc);
        this.launch = new Launch(ctx, lib, dtype, this);
        this.norms = new NormLauncher(launch);
        this.convs = new ConvLauncher(launch, norms, tactics, precision);
        this.gemms = new GemmLauncher(launch, tactics, precision);
        this.attentions = new AttentionLauncher(launch, tactics, precision);
        this.elementwise = new ElementwiseLauncher(launch);
        this.int8 = new Int8Ops(launch, elementwise);
    }

    /** Opens device {@code ordinal} and a backend that closes the context with itself. */
    public static CudaBackend open(int ordinal, Precision precision) {
        return open(ordinal, precision, Tactics.defaults());
    }

    /** As {@link #open(int, Precision)}, running the kernel versions {@code tactics} picks. */
    public static CudaBackend open(int ordinal, Precision precision, Tactics tactics) {
        CudaContext ctx = CudaContext.open(ordinal);
        try {
            return new CudaBackend(ctx, precision, tactics, ctx.computeCapability(), true);
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
     * {@code options.eager()} ({@code -Dlatte.eager=true}) op by op every run. The kernel version of
     * every op is resolved here, once, from its shapes ({@link StepTactics}); the step's launches
     * run those, and {@link dev.latte.core.Step#tactics} lists them.
     */
    @Override
    public ArenaStep prepare(Graph graph, MemoryPlan plan, Map<String, Tensor> params, Steps.Options options) {
        return prepare(graph, plan, params, Map.of(), options);
    }

    @Override
    public ArenaStep prepare(Graph graph, MemoryPlan plan, Map<String, Tensor> params, Map<String, Tensor> external,
                             Steps.Options options) {
        StepTactics chosen = StepTactics.resolve(graph, tactics, precision, lib.computeCapability());
        PlannedStep planned = new PlannedStep(this, graph, plan, params, external, options.arena(),
                chosen.scope(launch), chosen.lines());
        return options.eager() ? planned : new CudaGraphStep(ctx, planned);
    }

    /** Every op; attention up to head dim {@link AttentionLauncher#MAX_D}. */
    @Override
    public String unsupported(Op op, Graph g) {
        if (op instanceof Op.Attention a && g.value(a.q()).shape().dim(2) / a.heads() > AttentionLauncher.MAX_D) {
            return "head dim " + g.value(a.q()).shape().dim(2) / a.heads() + " > " + AttentionLauncher.MAX_D;
        }
        // a kernel version forced by name that cannot run this op's shapes
        try {
            tactics.forOp(op, g, precision, lib.computeCapability());
        } catch (IllegalArgumentException e) {
            return e.getMessage();
        }
        return null;
    }

    /**
     * The GroupNorm statistics scratch, timestep frequency tables and W8A8 activation scratch every
     * op of {@code graph} needs, allocated now: a step, and so a captured CUDA graph, then
     * allocates and frees nothing.
     */
    @Override
    public void reserve(Graph graph) {
        checkOpen();
        long bytes = 0;
        for (Op op : graph.ops()) {
            switch (op) {
                case Op.Conv2dFused c when c.normGamma() >= 0 ->
                        bytes = Math.max(bytes, NormLauncher.statsBytes(graph.value(c.x()).shape().dim(0), c.groups()));
                case Op.GroupNorm g ->
                        bytes = Math.max(bytes, NormLauncher.statsBytes(graph.value(g.x()).shape().dim(0), g.groups()));
                case Op.TimestepEmbedding t ->
                        elementwise.frequencies(graph.value(t.out()).shape().dim(1) / 2, t.freqShift());
                case Op.LinearInt8 l when l.mode() == Int8Mode.W8A8 -> {
                    Shape w = graph.value(l.w()).shape();
                    bytes = Math.max(bytes, Int8Ops.linearScratch(Launch.leading(graph.value(l.x()).shape()),
                            w.dim(1), w.dim(0)));
                }
                case Op.Conv2dInt8 c when c.mode() == Int8Mode.W8A8 -> {
                    Shape w = graph.value(c.w()).shape(), o = graph.value(c.out()).shape();
                    bytes = Math.max(bytes, Int8Ops.convScratch((long) o.dim(0) * o.dim(2) * o.dim(3),
                            w.dim(1) * w.dim(2) * w.dim(3), w.dim(0), dtype.bytes()));
                }
                default -> {
                }
            }
        }
        launch.scratch(bytes);
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

    public Tactics tactics() {
        return tactics;
    }

    // ---------------------------------------------------------------- memory

    @Override
    public CudaTensor allocate(Shape shape) {
        return allocate(shape, null);
    }

    /** fp32 or fp16 storage whatever the activations' (null: theirs): fp32 token ids under fp16 activations. */
    @Override
    public CudaTensor allocate(Shape shape, StorageType storage) {
        checkOpen();
        StorageType type = floatStorage("allocate", storage);
        long bytes = shape.numel() * type.bytes();
        CudaTensor t = new CudaTensor(shape, type, bytes == 0 ? 0 : ctx.malloc(bytes), this, null);
        live.add(t);
        return t;
    }

    /** Both float types, whichever the activations are. */
    @Override
    public boolean stores(StorageType storage) {
        return storage != StorageType.I8;
    }

    private StorageType floatStorage(String what, StorageType storage) {
        check(stores(storage), what + ": int8 tensors are made by uploadInt8");
        return storage == null ? dtype : storage;
    }

    // ---- planned memory: one device allocation per plan, activations as views into it

    @Override
    public boolean supportsArena() {
        return true;
    }

    /** Every op, the text encoder's (causal attention, quick-GELU, embedding over fp32 ids) and int8 included. */
    @Override
    public boolean supports(String op) {
        return true;
    }

    @Override
    public StorageType activationType() {
        return dtype;
    }

    /** One cuMemAlloc of {@code bytes}; its shape counts storage elements (rounded up). */
    @Override
    public Tensor arena(long bytes) {
        checkOpen();
        if (bytes < 0) {
            throw new IllegalArgumentException("arena of " + bytes + " bytes");
        }
        long elements = (bytes + dtype.bytes() - 1) / dtype.bytes();
        CudaTensor t = new CudaTensor(Shape.of(Math.toIntExact(elements)), dtype,
                elements == 0 ? 0 : ctx.malloc(elements * dtype.bytes()), this, null);
        live.add(t);
        return t;
    }

    @Override
    public Tensor view(Tensor arenaTensor, long byteOffset, Shape shape) {
        return view(arenaTensor, byteOffset, shape, null);
    }

    @Override
    public Tensor view(Tensor arenaTensor, long byteOffset, Shape shape, StorageType storage) {
        CudaTensor a = cuda("view", arenaTensor);
        check(!a.isView(), "view: " + a + " is itself a view");
        StorageType type = floatStorage("view", storage);
        long bytes = shape.numel() * type.bytes();
        check(byteOffset >= 0 && byteOffset % type.bytes() == 0 && byteOffset + bytes <= a.bytes(),
                "view: " + shape + " at byte " + byteOffset + " outside an arena of " + a.bytes() + " bytes");
        return new CudaTensor(shape, type, a.ptr() + byteOffset, this, a);
    }

    /** Converted to the tensor's own storage type. */
    @Override
    public void write(Tensor tensor, float[] values) {
        CudaTensor t = cuda("write", tensor);
        check(t.dtype() != StorageType.I8, "write: " + t + " holds int8 weights, not floats");
        check(values.length == t.shape().numel(), "write: " + values.length + " values into " + t);
        if (values.length > 0) {
            ctx.copyHtoD(t.ptr(), hostSegment(values, t.dtype()), t.bytes());
        }
    }

    @Override
    public Tensor upload(Shape shape, float[] values) {
        return upload(shape, values, null);
    }

    @Override
    public Tensor upload(Shape shape, float[] values, StorageType storage) {
        if (values.length != shape.numel()) {
            throw new IllegalArgumentException("upload: " + values.length + " values for shape " + shape);
        }
        CudaTensor t = allocate(shape, storage);
        try {
            write(t, values);
        } catch (RuntimeException e) {
            release(t);
            throw e;
        }
        return t;
    }

    private static MemorySegment hostSegment(float[] values, StorageType type) {
        if (type == StorageType.F32) {
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
        check(t.dtype() != StorageType.I8, "download: " + t + " holds int8 weights, not floats");
        int n = t.shape().size();
        float[] out = new float[n];
        if (n == 0) {
            return out;
        }
        if (t.dtype() == StorageType.F32) {
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
        if (ptr != 0 && !t.borrowed()) {
            ctx.free(ptr);
        }
    }

    /**
     * A tensor over device memory this backend does not own: another library's allocation in the
     * same (primary) context, e.g. a JCuda {@code CUdeviceptr}. Ops read and write it like any
     * tensor of this backend's storage type; {@link #release} and {@link #close} never free it.
     */
    public CudaTensor borrow(long dptr, Shape shape) {
        checkOpen();
        check(dptr != 0 || shape.numel() == 0, "borrow: null device pointer for " + shape);
        return new CudaTensor(shape, dtype, dptr, this, null, true);
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

    // int8 weights

    /** Every float op, and the int8 ones ({@link Int8Ops}). */
    @Override
    public Tensor uploadInt8(Shape shape, byte[] values) {
        checkOpen();
        check(values.length == shape.numel(), "uploadInt8: " + values.length + " values for shape " + shape);
        CudaTensor t = new CudaTensor(shape, StorageType.I8, values.length == 0 ? 0 : ctx.malloc(values.length),
                this, null);
        live.add(t);
        if (values.length > 0) {
            ctx.copyHtoD(t.ptr(), MemorySegment.ofArray(values), values.length);
        }
        return t;
    }

    @Override
    public void linearInt8(Tensor x, Tensor wq, Tensor wScale, Tensor bias, Int8Mode mode, Tensor out) {
        int8.linear(x, wq, wScale, bias, mode, out);
    }

    @Override
    public void conv2dInt8(Tensor x, Tensor wq, Tensor wScale, Tensor bias, Conv2dParams p, Int8Mode mode,
                           Tensor out) {
        int8.conv(x, wq, wScale, bias, p, mode, out);
    }

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
        linearFused(LinearV2.Epilogue.BIAS, x, w, bias, null, out);
    }

    /** out = x·wᵀ + bias + residual (residual may be out): the residual add in the GEMM's epilogue on v2. */
    public void linearResidual(Tensor x, Tensor w, Tensor bias, Tensor residual, Tensor out) {
        linearFused(LinearV2.Epilogue.RESIDUAL, x, w, bias, residual, out);
    }

    /** out = SiLU(x·wᵀ + bias), fused on v2. */
    public void linearSilu(Tensor x, Tensor w, Tensor bias, Tensor out) {
        linearFused(LinearV2.Epilogue.SILU, x, w, bias, null, out);
    }

    /**
     * diffusers' GEGLU in one GEMM on v2: w [2F, in] (value rows, then gate rows), bias [2F] or null,
     * out [..., F] = (x·w_aᵀ + b_a)·gelu(x·w_gᵀ + b_g); the [..., 2F] projection is never written.
     */
    public void linearGeglu(Tensor x, Tensor w, Tensor bias, Tensor out) {
        linearFused(LinearV2.Epilogue.GEGLU, x, w, bias, null, out);
    }

    /** v2 fuses the epilogue; where v1 runs: its GEMM, then the epilogue as its own kernel (through a temporary). */
    private void linearFused(LinearV2.Epilogue epi, Tensor x, Tensor w, Tensor bias, Tensor residual, Tensor out) {
        if (gemms.fused(epi, x, w, bias, residual, out)) {
            return;
        }
        switch (epi) {
            case BIAS -> gemms.linear(x, w, bias, out);
            case SILU -> {
                gemms.linear(x, w, bias, out);
                silu(out, out);
            }
            case RESIDUAL -> {
                Tensor tmp = allocate(out.shape());
                try {
                    gemms.linear(x, w, bias, tmp);
                    add(tmp, residual, out);
                } finally {
                    release(tmp);
                }
            }
            case GEGLU -> {
                int[] pd = x.shape().dims();
                pd[pd.length - 1] = w.shape().dim(0);
                Tensor tmp = allocate(Shape.of(pd));
                try {
                    gemms.linear(x, w, bias, tmp);
                    geglu(tmp, out);
                } finally {
                    release(tmp);
                }
            }
        }
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, int heads, float scale, Tensor out) {
        attentions.attention(q, k, v, heads, scale, false, out);
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, int heads, float scale, boolean causal, Tensor out) {
        attentions.attention(q, k, v, heads, scale, causal, out);
    }

    @Override
    public void quickGelu(Tensor x, Tensor out) {
        elementwise.unary("quick_gelu", x, out);
    }

    /** ids stored as fp32 (whatever the activations are), table, positions and out as the activations. */
    @Override
    public void embedding(Tensor ids, Tensor table, Tensor positions, Tensor out) {
        elementwise.embedding(ids, table, positions, out);
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
        return launch.own(what, t);
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
