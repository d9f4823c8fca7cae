package dev.latte.cpu;

import dev.latte.core.Backend;
import dev.latte.core.Conv2dParams;
import dev.latte.core.Int8Mode;
import dev.latte.core.NormAct;
import dev.latte.core.OpChecks;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.math.Erf;
import dev.latte.math.SleefExp;
import dev.latte.quant.Int8;
import dev.latte.weights.DType;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.WeakHashMap;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntConsumer;

/**
 * The fp32 reference backend: plain Java arrays, PyTorch's semantics. Each op splits into
 * independent output slices (a block of output channels and rows, a tile of rows and features,
 * a block of queries of one head) that the calling thread and threads-1 pool workers share out.
 * Conv, linear and attention reduce to contiguous multiply-adds over the innermost output
 * dimension ({@link Kernels}), accumulated in double so that HotSpot vectorises them; norm
 * statistics and softmax sums run in double too. Calls from several threads are safe; they
 * share the pool.
 */
public final class CpuBackend implements Backend {
    /** Output channels one conv task computes, reusing its slice of input while it is in cache. */
    private static final int CONV_K_BLOCK = 4;
    /** Output elements (whole rows at the phase width) one conv task accumulates at a time. */
    private static final int CONV_CHUNK = 512;
    /** Kernel taps (c, r, s) applied to every output channel of a task before moving on. */
    private static final int CONV_TAP_BLOCK = 64;
    /** One linear task's output tile (16 × 256 doubles) and the wᵀ rows it streams per pass. */
    private static final int LINEAR_M_BLOCK = 16;
    private static final int LINEAR_N_BLOCK = 256;
    private static final int LINEAR_K_BLOCK = 256;
    private static final int ATTENTION_Q_BLOCK = 64;
    private static final int ELEMENTWISE_CHUNK = 1 << 14;
    private static final int TRANSPOSE_TILE = 32;

    private final int threads;
    private final ForkJoinPool pool;
    private final ScratchPool scratch = new ScratchPool();
    private final AtomicLong allocations = new AtomicLong();
    /** The Vector API kernels, or null where the JVM lacks jdk.incubator.vector (then the scalar paths run). */
    final FastPaths fast;

    public CpuBackend() {
        this(Runtime.getRuntime().availableProcessors());
    }

    public CpuBackend(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("CpuBackend: threads " + threads + " < 1");
        }
        this.threads = threads;
        this.pool = threads == 1 ? null : new ForkJoinPool(threads - 1);
        this.fast = FastPaths.available() ? new FastPaths(this, scratch) : null;
    }

    /**
     * Whether conv, linear and attention run on the Vector API micro-kernels (fp32 accumulation),
     * which needs the JVM started with {@code --add-modules jdk.incubator.vector}; otherwise they
     * run the scalar, double-accumulating loops.
     */
    public boolean vectorised() {
        return fast != null;
    }

    /** Every tensor made by upload or uploadMapped (the weights), for the memory report; weakly held. */
    private final Set<CpuTensor> weights = Collections.synchronizedSet(Collections.newSetFromMap(new WeakHashMap<>()));

    /** Bytes of the packed copies of weights this backend holds (the kernels' layout of conv and linear weights). */
    public long packedBytes() {
        return sumOverWeights(t -> FastPaths.packedFloats(t) * Float.BYTES);
    }

    /**
     * Bytes of mapped weight files that weights are read from in place ({@link #uploadMapped}):
     * address space, resident only while pages are being read (a packed weight's pages are handed
     * back once packed).
     */
    public long mappedBytes() {
        return sumOverWeights(t -> {
            var m = t.mapped();
            return m == null ? 0 : m.byteSize();
        });
    }

    /**
     * Bytes of mapped weights read in place, without a packed copy (biases, norm scales, embedding
     * tables): the part of {@link #mappedBytes} whose pages stay resident once read.
     */
    public long inPlaceBytes() {
        return sumOverWeights(t -> {
            var m = t.mapped();
            return m == null || FastPaths.packedFloats(t) > 0 ? 0 : m.byteSize();
        });
    }

    /**
     * Bytes of heap arrays held by uploaded tensors (weights uploaded as copies, not yet packed), or
     * by mapped weights something widened whole.
     */
    public long heapWeightBytes() {
        return sumOverWeights(t -> t.heapFloats() * Float.BYTES);
    }

    private long sumOverWeights(java.util.function.ToLongFunction<CpuTensor> bytes) {
        synchronized (weights) {
            return weights.stream().mapToLong(bytes).sum();
        }
    }

    /** Called when a weight gets its packed copy. */
    void packed(CpuTensor t) {
        weights.add(t);
    }

    public int threads() {
        return threads;
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public Tensor allocate(Shape shape) {
        allocations.incrementAndGet();
        return new CpuTensor(shape);
    }

    /**
     * Tensors this backend has allocated so far ({@link #allocate}, {@link #upload}, {@link #arena}),
     * including those a composed op allocates for itself: a step run from a planned arena adds none.
     */
    public long allocations() {
        return allocations.get();
    }

    @Override
    public Tensor upload(Shape shape, float[] values) {
        OpChecks.valueCount("upload", values.length, shape);
        allocations.incrementAndGet();
        CpuTensor t = new CpuTensor(shape, values.clone());
        t.uploaded = true;
        weights.add(t);
        return t;
    }

    /**
     * A weight read in place from its mapped file: no copy is made. Conv and linear weights are
     * packed from the file bytes on first use (fp16/bf16 widened as they are packed); biases and
     * norm scales are widened per call (a few KB); an embedding table row by row. Anything else
     * that needs the whole tensor as fp32 (the scalar paths without the Vector API, an op writing
     * into the weight) widens it once into a heap array of its own ({@link #heapWeightBytes}).
     */
    @Override
    public Tensor uploadMapped(Shape shape, MemorySegment bytes, DType dtype) {
        allocations.incrementAndGet();
        CpuTensor t = new CpuTensor(shape, bytes, dtype);
        t.uploaded = true;
        weights.add(t);
        return t;
    }

    @Override
    public float[] download(Tensor t) {
        if (t instanceof CpuInt8Tensor q) {
            return Int8.widen(q.data());
        }
        CpuTensor.Read r = cpu("download", t).read();
        return Arrays.copyOfRange(r.array(), r.offset(), r.offset() + t.shape().size());
    }

    @Override
    public void write(Tensor t, float[] values) {
        CpuTensor c = cpu("write", t);
        OpChecks.valueCount("write", values.length, t.shape());
        c.dropPack();
        System.arraycopy(values, 0, c.array(), c.offset(), values.length);
    }

    @Override
    public boolean supportsArena() {
        return true;
    }

    /** One host float array of {@code bytes / 4} floats (fp32 plans: {@code bytes} is a multiple of 4). */
    @Override
    public Tensor arena(long bytes) {
        int n = OpChecks.hostArenaFloats(bytes);
        allocations.incrementAndGet();
        return new CpuTensor(Shape.of(n));
    }

    @Override
    public Tensor view(Tensor arena, long byteOffset, Shape shape) {
        CpuTensor a = cpu("view", arena);
        if (a.isView() || byteOffset % Float.BYTES != 0 || byteOffset < 0
                || byteOffset / Float.BYTES > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("view: " + shape + " at byte " + byteOffset + " of " + arena
                    + " (the arena must come from arena(), the offset must be a multiple of 4)");
        }
        return new CpuTensor(a, (int) (byteOffset / Float.BYTES), shape);
    }

    @Override
    public void release(Tensor t) {
        if (t instanceof CpuInt8Tensor q) {
            q.release();
            return;
        }
        cpu("release", t).release();
    }

    // ---------------------------------------------------------------- int8 weights (CpuInt8Ops)

    @Override
    public boolean supports(String op) {
        return true;
    }

    @Override
    public Tensor uploadInt8(Shape shape, byte[] values) {
        return new CpuInt8Tensor(shape, values.clone());
    }

    @Override
    public void linearInt8(Tensor x, Tensor wq, Tensor wScale, Tensor bias, Int8Mode mode, Tensor out) {
        CpuInt8Ops.linear(this, x, wq, wScale, bias, mode, out);
    }

    @Override
    public void conv2dInt8(Tensor x, Tensor wq, Tensor wScale, Tensor bias, Conv2dParams p, Int8Mode mode,
                           Tensor out) {
        CpuInt8Ops.conv2d(this, x, wq, wScale, bias, p, mode, out);
    }

    @Override
    public void close() {
        if (pool != null) {
            pool.shutdown();
        }
        scratch.clear();
    }

    // ---------------------------------------------------------------- convolution

    @Override
    public void conv2d(Tensor xt, Tensor wt, Tensor bt, Conv2dParams p, Tensor outt) {
        conv(xt, wt, bt, p, null, outt);
    }

    /**
     * GroupNorm(+SiLU) into per-call scratch, then the conv with the residual added in its
     * epilogue: out = residual + (float) conv, the same float sum {@code add(residual, conv, out)}
     * rounds to. Each output element reads its residual element just before writing it, so out may
     * be residual; no backend tensor is allocated.
     */
    @Override
    public void conv2dUpsampled(Tensor x, int height, int width, Tensor w, Tensor bias, Conv2dParams p, Tensor out) {
        conv(x, height, width, w, bias, p, null, out);
    }

    @Override
    public void conv2dFused(Tensor x, NormAct norm, Tensor w, Tensor bias, Conv2dParams p, Tensor residual,
                            Tensor out) {
        if (norm == null || fast != null) {
            conv(x, x.shape().dim(-2), x.shape().dim(-1), w, bias, p, norm, residual, out);
            return;
        }
        float[] buf = scratch.take(x.shape().size());
        try {
            CpuTensor normed = new CpuTensor(new CpuTensor(Shape.of(buf.length), buf), 0, x.shape());
            groupNorm(x, norm.gamma(), norm.beta(), norm.groups(), norm.eps(), norm.silu(), normed);
            conv(normed, w, bias, p, residual, out);
        } finally {
            scratch.give(buf);
        }
    }

    private void conv(Tensor xt, Tensor wt, Tensor bt, Conv2dParams p, Tensor rt, Tensor outt) {
        conv(xt, xt.shape().dim(-2), xt.shape().dim(-1), wt, bt, p, rt, outt);
    }

    /**
     * The conv of x resized (nearest) to h × w: with h, w equal to x's own size a plain conv; else
     * the upsample happens while the padded input is gathered, so it is never written out.
     */
    private void conv(Tensor xt, int h, int w, Tensor wt, Tensor bt, Conv2dParams p, Tensor rt, Tensor outt) {
        conv(xt, h, w, wt, bt, p, null, rt, outt);
    }

    /** As above, with {@code norm} (fast path only) applied to x as it is loaded. */
    private void conv(Tensor xt, int h, int w, Tensor wt, Tensor bt, Conv2dParams p, NormAct norm, Tensor rt,
                      Tensor outt) {
        Shape xs = xt.shape(), ws = wt.shape(), os = outt.shape();
        String what = OpChecks.conv2d(xt, h, w, wt, bt, p, outt, "");
        int n = xs.dim(0), c = xs.dim(1), hs = xs.dim(2), wsrc = xs.dim(3);
        int k = ws.dim(0), r = ws.dim(2), s = ws.dim(3);
        int pOut = p.outHeight(h, r), qOut = p.outWidth(w, s);
        check(rt == null || rt.shape().equals(os), what + ", residual " + (rt == null ? "none" : rt.shape()));
        CpuTensor xc = cpu("conv2d", xt), wc = cpu("conv2d", wt), oc = out("conv2d", outt);
        CpuTensor bc = bt == null ? null : cpu("conv2d", bt), rc = rt == null ? null : cpu("conv2d", rt);
        check(!oc.overlaps(xc), what + " (out aliases x)");
        check(rc == null || !rc.overlaps(oc) || rc.offset() == oc.offset(), what + " (out partly overlaps residual)");
        if (norm != null) {
            OpChecks.groupNorm(xt, norm.gamma(), norm.beta(), norm.groups(), xt);
        }
        if (fast != null) { // before wc.array(): a packed weight has no row-major copy to hand out
            fast.conv(xc, h, w, wc, bc, p, norm, rc, oc);
            return;
        }
        check(norm == null, what + " (GroupNorm on load needs the vector kernels)");
        float[] x = xc.array(), wts = wc.array(), out = oc.array();
        float[] bias = bc == null ? null : bc.array(), res = rc == null ? null : rc.array();
        int xo = xc.offset(), wo = wc.offset(), oo = oc.offset(), bo = bc == null ? 0 : bc.offset();
        int ro = rc == null ? 0 : rc.offset();

        // Zero-pad x and split it into stride phases (xp[c][a][b][i][j] = padded x[i·sh + a][j·sw + b]):
        // every kernel tap then reads one phase plane at a fixed shift, so a run of output rows
        // laid out at the phase width is one contiguous multiply-add per tap, edges included.
        int sh = p.strideH(), sw = p.strideW(), pt = p.padTop(), pl = p.padLeft();
        int hph = Math.ceilDiv(h + pt + p.padBottom(), sh), wph = Math.ceilDiv(w + pl + p.padRight(), sw);
        int perImage = c * sh * sw * hph * wph, perChannel = sh * sw * hph * wph, phPlane = hph * wph;
        // the discarded columns past q = Q of the last row read up to (s-1)/sw beyond the last plane
        float[] xp = scratch.take(n * perImage + s);
        try {
            Arrays.fill(xp, n * perImage, n * perImage + s, 0f);
            parallelFor(n * c, nc -> {
                for (int a = 0; a < sh; a++) {
                    for (int b = 0; b < sw; b++) {
                        int base = nc * perChannel + (a * sw + b) * phPlane;
                        for (int i = 0; i < hph; i++) {
                            int ih = i * sh + a - pt, row = base + i * wph;
                            for (int j = 0; j < wph; j++) {
                                int iw = j * sw + b - pl;
                                xp[row + j] = ih >= 0 && ih < h && iw >= 0 && iw < w
                                        ? x[xo + (nc * hs + ih * hs / h) * wsrc + iw * wsrc / w] : 0f;
                            }
                        }
                    }
                }
            });
            convPhased(xp, wts, wo, bias, bo, res, ro, out, oo, n, c, k, r, s, sh, sw, hph, wph, pOut, qOut);
        } finally {
            scratch.give(xp);
        }
    }

    /** The conv proper over the phase-split input built by {@link #conv2d}. */
    private void convPhased(float[] xp, float[] wts, int wo, float[] bias, int bo, float[] res, int ro, float[] out,
            int oo, int n, int c, int k, int r, int s, int sh, int sw, int hph, int wph, int pOut, int qOut) {
        int phPlane = hph * wph, perChannel = sh * sw * phPlane, perImage = c * perChannel;
        int terms = c * r * s;
        int[] off = new int[terms];
        for (int ci = 0; ci < c; ci++) {
            for (int ri = 0; ri < r; ri++) {
                for (int si = 0; si < s; si++) {
                    off[(ci * r + ri) * s + si] = ((ci * sh + ri % sh) * sw + si % sw) * phPlane + (ri / sh) * wph + si / sw;
                }
            }
        }
        int rowsPerChunk = Math.max(1, CONV_CHUNK / wph), chunks = Math.ceilDiv(pOut, rowsPerChunk);
        int kBlocks = Math.ceilDiv(k, CONV_K_BLOCK);
        parallelFor(n * kBlocks * chunks, task -> {
            int ni = task / (kBlocks * chunks), kb = task / chunks % kBlocks, chunk = task % chunks;
            int p0 = chunk * rowsPerChunk, p1 = Math.min(pOut, p0 + rowsPerChunk), len = (p1 - p0) * wph;
            int k0 = kb * CONV_K_BLOCK, k1 = Math.min(k, k0 + CONV_K_BLOCK);
            double[] acc = new double[(k1 - k0) * len];
            for (int ki = k0; ki < k1; ki++) {
                Arrays.fill(acc, (ki - k0) * len, (ki - k0 + 1) * len, bias == null ? 0.0 : bias[bo + ki]);
            }
            // a block of taps at a time, so its slice of input stays in cache across the output channels
            for (int t0 = 0; t0 < terms; t0 += CONV_TAP_BLOCK) {
                int t1 = Math.min(terms, t0 + CONV_TAP_BLOCK);
                for (int ki = k0; ki < k1; ki++) {
                    Kernels.maddTaps(acc, (ki - k0) * len, xp, off, t0, t1, ni * perImage + p0 * wph, wts, wo + ki * terms, len);
                }
            }
            for (int ki = k0; ki < k1; ki++) {
                for (int pi = p0; pi < p1; pi++) {
                    int o = ((ni * k + ki) * pOut + pi) * qOut, a = (ki - k0) * len + (pi - p0) * wph;
                    if (res == null) {
                        Kernels.store(out, oo + o, acc, a, qOut);
                    } else {
                        Kernels.storeAdd(out, oo + o, res, ro + o, acc, a, qOut);
                    }
                }
            }
        });
    }

    // ---------------------------------------------------------------- normalisation

    @Override
    public void groupNorm(Tensor xt, Tensor gt, Tensor bt, int groups, float eps, boolean silu, Tensor outt) {
        Shape xs = xt.shape();
        String what = OpChecks.groupNorm(xt, gt, bt, groups, outt);
        int n = xs.dim(0), c = xs.dim(1);
        CpuTensor xc = cpu("groupNorm", xt);
        CpuTensor.Read gc = cpu("groupNorm", gt).read(), bc = cpu("groupNorm", bt).read();
        CpuTensor oc = out("groupNorm", outt);
        float[] x = xc.array(), gamma = gc.array(), beta = bc.array(), out = oc.array();
        int xo = xc.offset(), go = gc.offset(), bo = bc.offset(), oo = oc.offset();
        check(!oc.overlaps(xc) || xo == oo, what + " (out partly overlaps x)");
        int hw = n * c == 0 ? 0 : xs.size() / (n * c), cpg = c / groups, len = cpg * hw;
        parallelFor(n * groups, task -> {
            int base = task * len;
            double[] stats = meanAndRstd(x, xo + base, len, eps);
            float mean = (float) stats[0];
            for (int ci = 0; ci < cpg; ci++) {
                int ch = (task % groups) * cpg + ci;
                normRow(x, xo + base + ci * hw, out, oo + base + ci * hw, hw, mean, (float) (gamma[go + ch] * stats[1]),
                        beta[bo + ch], silu);
            }
        });
    }

    @Override
    public void layerNorm(Tensor xt, Tensor gt, Tensor bt, float eps, Tensor outt) {
        Shape xs = xt.shape();
        String what = OpChecks.layerNorm(xt, gt, bt, outt);
        int d = xs.dim(-1);
        CpuTensor xc = cpu("layerNorm", xt);
        CpuTensor.Read gc = cpu("layerNorm", gt).read(), bc = cpu("layerNorm", bt).read();
        CpuTensor oc = out("layerNorm", outt);
        float[] x = xc.array(), gamma = gc.array(), beta = bc.array(), out = oc.array();
        int xo = xc.offset(), go = gc.offset(), bo = bc.offset(), oo = oc.offset();
        check(!oc.overlaps(xc) || xo == oo, what + " (out partly overlaps x)");
        int rows = leading(xs);
        int rowsPerTask = Math.max(1, ELEMENTWISE_CHUNK / Math.max(1, d));
        parallelFor(Math.ceilDiv(rows, rowsPerTask), task -> {
            for (int row = task * rowsPerTask; row < Math.min(rows, (task + 1) * rowsPerTask); row++) {
                int base = row * d;
                double[] stats = meanAndRstd(x, xo + base, d, eps);
                float mean = (float) stats[0], rstd = (float) stats[1];
                for (int i = 0; i < d; i++) {
                    out[oo + base + i] = (x[xo + base + i] - mean) * rstd * gamma[go + i] + beta[bo + i];
                }
            }
        });
    }

    /** {mean, 1/sqrt(biased variance + eps)} in double, two-pass so the variance loses nothing. */
    private static double[] meanAndRstd(float[] x, int base, int len, float eps) {
        double sum = 0;
        for (int i = 0; i < len; i++) {
            sum += x[base + i];
        }
        double mean = sum / len, sq = 0;
        for (int i = 0; i < len; i++) {
            double dv = x[base + i] - mean;
            sq += dv * dv;
        }
        return new double[] {mean, 1.0 / Math.sqrt(sq / len + eps)};
    }

    /** out = (x - mean)·a + b; subtracting first keeps precision when |mean| ≫ std. */
    private static void normRow(float[] x, int xOff, float[] out, int oOff, int len, float mean, float a, float b,
                                boolean silu) {
        for (int i = 0; i < len; i++) {
            out[oOff + i] = (x[xOff + i] - mean) * a + b;
        }
        if (silu) {
            for (int i = oOff; i < oOff + len; i++) {
                out[i] = silu(out[i]);
            }
        }
    }

    // ---------------------------------------------------------------- linear and attention

    @Override
    public void linear(Tensor xt, Tensor wt, Tensor bt, Tensor outt) {
        Shape xs = xt.shape(), ws = wt.shape();
        String what = OpChecks.linear(xt, wt, bt, outt);
        int in = ws.dim(1), outF = ws.dim(0);
        CpuTensor xc = cpu("linear", xt), wc = cpu("linear", wt), oc = out("linear", outt);
        CpuTensor bc = bt == null ? null : cpu("linear", bt);
        check(!oc.overlaps(xc), what + " (out aliases x)");
        int m = leading(xs);
        if (fast != null) { // before wc.array(): a packed weight has no row-major copy to hand out
            fast.linear(xc, m, in, wc, outF, bc, oc);
            return;
        }
        float[] x = xc.array(), w = wc.array(), out = oc.array(), bias = bc == null ? null : bc.array();
        int xo = xc.offset(), oo = oc.offset(), bo = bc == null ? 0 : bc.offset();

        // wᵀ [in, outF] turns each output row into multiply-adds over contiguous weight rows
        float[] wT = scratch.take(in * outF);
        try {
            transpose(w, wc.offset(), wT, 0, 1, outF, in);
            linearTransposed(x, xo, wT, bias, bo, out, oo, m, in, outF);
        } finally {
            scratch.give(wT);
        }
    }

    /**
     * x·wᵀ + bias + residual with the residual added as each output row is stored (the Vector API
     * path): out = residual + (x·wᵀ + bias), the float sum {@code add(residual, linear, out)}
     * rounds to. Out may be residual; no backend tensor is allocated.
     */
    @Override
    public void linearResidual(Tensor xt, Tensor wt, Tensor bt, Tensor rt, Tensor outt) {
        String what = OpChecks.linearResidual(xt, wt, bt, rt, outt);
        CpuTensor xc = cpu("linearResidual", xt), wc = cpu("linearResidual", wt), rc = cpu("linearResidual", rt);
        CpuTensor oc = out("linearResidual", outt);
        check(!oc.overlaps(xc), what + " (out aliases x)");
        check(!oc.overlaps(rc) || (oc.array() == rc.array() && oc.offset() == rc.offset()),
                what + " (out partly overlaps the residual)");
        if (fast != null) {
            CpuTensor bc = bt == null ? null : cpu("linearResidual", bt);
            fast.linear(xc, leading(xt.shape()), wt.shape().dim(1), wc, wt.shape().dim(0), bc, rc, oc);
            return;
        }
        withScratch(outt.shape(), y -> {
            linear(xt, wt, bt, y);
            add(rt, y, outt);
        });
    }

    /** The [..., 2F] projection into per-call scratch, then the GEGLU: no backend tensor is allocated. */
    @Override
    public void linearGeglu(Tensor xt, Tensor wt, Tensor bt, Tensor outt) {
        OpChecks.linearGeglu(xt, wt, bt, outt);
        int[] pd = xt.shape().dims();
        pd[pd.length - 1] = wt.shape().dim(0);
        withScratch(Shape.of(pd), y -> {
            linear(xt, wt, bt, y);
            geglu(y, outt);
        });
    }

    @Override
    public Tensor part(Tensor t, int index) {
        CpuTensor c = cpu("part", t);
        Shape s = c.shape();
        check(s.rank() >= 2 && index >= 0 && index < s.dim(0), "part " + index + " of " + s);
        Shape p = Shape.of(Arrays.copyOfRange(s.dims(), 1, s.rank()));
        float[] a = c.array();
        return new CpuTensor(new CpuTensor(Shape.of(a.length), a), c.offset() + index * p.size(), p);
    }

    /** Runs {@code body} on a tensor of {@code shape} over a scratch buffer (not a backend allocation). */
    private void withScratch(Shape shape, java.util.function.Consumer<Tensor> body) {
        long n = shape.numel();
        check(n <= Integer.MAX_VALUE - 8, "scratch of " + shape + " exceeds one array");
        float[] buf = scratch.take((int) n);
        try {
            body.accept(new CpuTensor(new CpuTensor(Shape.of(buf.length), buf), 0, shape));
        } finally {
            scratch.give(buf);
        }
    }

    private void linearTransposed(float[] x, int xo, float[] wT, float[] bias, int bo, float[] out, int oo, int m,
                                  int in, int outF) {
        int[] weightRows = new int[in];
        for (int ci = 0; ci < in; ci++) {
            weightRows[ci] = ci * outF;
        }
        int mBlocks = Math.ceilDiv(m, LINEAR_M_BLOCK), nBlocks = Math.ceilDiv(outF, LINEAR_N_BLOCK);
        parallelFor(mBlocks * nBlocks, task -> {
            int m0 = (task / nBlocks) * LINEAR_M_BLOCK, m1 = Math.min(m, m0 + LINEAR_M_BLOCK);
            int n0 = (task % nBlocks) * LINEAR_N_BLOCK, nb = Math.min(outF, n0 + LINEAR_N_BLOCK) - n0;
            double[] acc = new double[(m1 - m0) * nb];
            for (int mi = m0; mi < m1; mi++) {
                for (int j = 0; j < nb; j++) {
                    acc[(mi - m0) * nb + j] = bias == null ? 0.0 : bias[bo + n0 + j];
                }
            }
            // a block of wᵀ rows stays in cache while every row of the tile uses it
            for (int c0 = 0; c0 < in; c0 += LINEAR_K_BLOCK) {
                int c1 = Math.min(in, c0 + LINEAR_K_BLOCK);
                for (int mi = m0; mi < m1; mi++) {
                    Kernels.maddTaps(acc, (mi - m0) * nb, wT, weightRows, c0, c1, n0, x, xo + mi * in, nb);
                }
            }
            for (int mi = m0; mi < m1; mi++) {
                Kernels.store(out, oo + mi * outF + n0, acc, (mi - m0) * nb, nb);
            }
        });
    }

    @Override
    public void attention(Tensor qt, Tensor kt, Tensor vt, int heads, float scale, Tensor outt) {
        attention(qt, kt, vt, heads, scale, false, outt);
    }

    @Override
    public void attention(Tensor qt, Tensor kt, Tensor vt, int heads, float scale, boolean causal, Tensor outt) {
        Shape qs = qt.shape(), ks = kt.shape();
        String what = OpChecks.attention(qt, kt, vt, heads, outt) + (causal ? ", causal" : "");
        CpuTensor qc = cpu("attention", qt), kc = cpu("attention", kt), vc = cpu("attention", vt);
        CpuTensor oc = out("attention", outt);
        float[] q = qc.array(), k = kc.array(), v = vc.array(), out = oc.array();
        check(!oc.overlaps(qc) && !oc.overlaps(kc) && !oc.overlaps(vc), what + " (out aliases an input)");
        int b = qs.dim(0), sq = qs.dim(1), sk = ks.dim(1), ch = qs.dim(2), d = ch / heads;
        if (fast != null && !causal) { // the vector kernel has no mask; the text encoder's 77 tokens are cheap
            fast.attention(qc, kc, vc, b, heads, sq, sk, d, scale, oc);
            return;
        }

        // Per (batch, head): kᵀ [D, Sk] so scores are multiply-adds over keys, v [Sk, D] packed contiguously.
        float[] kT = scratch.take(b * heads * d * sk), vh = scratch.take(b * heads * sk * d);
        try {
            attentionPacked(q, qc.offset(), k, kc.offset(), v, vc.offset(), kT, vh, b, heads, sq, sk, d, scale, causal,
                    out, oc.offset());
        } finally {
            scratch.give(kT);
            scratch.give(vh);
        }
    }

    private void attentionPacked(float[] q, int qo, float[] k, int ko, float[] v, int vo, float[] kT, float[] vh,
            int b, int heads, int sq, int sk, int d, float scale, boolean causal, float[] out, int oo) {
        int ch = heads * d;
        parallelFor(b * heads, bh -> {
            int bi = bh / heads, hi = bh % heads, base = bh * sk * d;
            for (int j = 0; j < sk; j++) {
                int src = (bi * sk + j) * ch + hi * d;
                System.arraycopy(v, vo + src, vh, base + j * d, d);
                for (int di = 0; di < d; di++) {
                    kT[base + di * sk + j] = k[ko + src + di];
                }
            }
        });
        int[] keyRows = new int[d], valueRows = new int[sk];
        for (int di = 0; di < d; di++) {
            keyRows[di] = di * sk;
        }
        for (int j = 0; j < sk; j++) {
            valueRows[j] = j * d;
        }
        int qBlocks = Math.ceilDiv(sq, ATTENTION_Q_BLOCK);
        parallelFor(b * heads * qBlocks, task -> {
            int bh = task / qBlocks, bi = bh / heads, hi = bh % heads, base = bh * sk * d;
            int i0 = (task % qBlocks) * ATTENTION_Q_BLOCK, i1 = Math.min(sq, i0 + ATTENTION_Q_BLOCK);
            double[] scores = new double[sk], acc = new double[d];
            float[] p = new float[sk];
            for (int i = i0; i < i1; i++) {
                int qOff = (bi * sq + i) * ch + hi * d;
                int keys = causal ? Math.min(sk, i + 1 + sk - sq) : sk; // causal: keys past the query never enter
                Arrays.fill(scores, 0.0);
                Kernels.maddTaps(scores, 0, kT, keyRows, 0, d, base, q, qo + qOff, sk); // q·kᵀ, one row
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < keys; j++) {
                    scores[j] *= scale;
                    max = Math.max(max, scores[j]);
                }
                double sum = 0;
                for (int j = 0; j < keys; j++) {
                    p[j] = (float) Math.exp(scores[j] - max);
                    sum += p[j];
                }
                Arrays.fill(acc, 0.0);
                Kernels.maddTaps(acc, 0, vh, valueRows, 0, keys, base, p, 0, d); // p·v
                for (int di = 0; di < d; di++) {
                    out[oo + qOff + di] = (float) (acc[di] / sum);
                }
            }
        });
    }

    // ---------------------------------------------------------------- activations

    @Override
    public void silu(Tensor xt, Tensor outt) {
        CpuTensor xc = cpu("silu", xt), oc = unary("silu", xt, outt);
        float[] x = xc.array(), out = oc.array();
        int xo = xc.offset(), oo = oc.offset();
        chunked(xt.shape().size(), (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                out[oo + i] = silu(x[xo + i]);
            }
        });
    }

    @Override
    public void gelu(Tensor xt, Tensor outt) {
        CpuTensor xc = cpu("gelu", xt), oc = unary("gelu", xt, outt);
        float[] x = xc.array(), out = oc.array();
        int xo = xc.offset(), oo = oc.offset();
        chunked(xt.shape().size(), (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                out[oo + i] = gelu(x[xo + i]);
            }
        });
    }

    @Override
    public void quickGelu(Tensor xt, Tensor outt) {
        CpuTensor xc = cpu("quickGelu", xt), oc = unary("quickGelu", xt, outt);
        float[] x = xc.array(), out = oc.array();
        int xo = xc.offset(), oo = oc.offset();
        chunked(xt.shape().size(), (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                float v = x[xo + i];
                out[oo + i] = (float) (v / (1.0 + Math.exp(-1.702 * v)));
            }
        });
    }

    @Override
    public void embedding(Tensor idt, Tensor tt, Tensor pt, Tensor outt) {
        String what = OpChecks.embedding(idt, tt, pt, outt);
        CpuTensor ic = cpu("embedding", idt), tc = cpu("embedding", tt), oc = cpu("embedding", outt);
        CpuTensor pc = pt == null ? null : cpu("embedding", pt);
        check(!oc.overlaps(ic) && !oc.overlaps(tc) && (pc == null || !oc.overlaps(pc)), what + " (out aliases an input)");
        int b = idt.shape().dim(0), l = idt.shape().dim(1), vocab = tt.shape().dim(0), d = tt.shape().dim(1);
        float[] ids = ic.array(), out = oc.array();
        float[] pos = pc == null ? null : new float[d];
        for (int i = 0; i < b * l; i++) {
            float id = ids[ic.offset() + i];
            check(id >= 0 && id < vocab && id == Math.rint(id), what + " (id " + id + " at [" + i / l + ", " + i % l
                    + "] is not a row of the " + vocab + "-row table)");
            int row = (int) id;
            int o = oc.offset() + i * d;
            tc.readInto(row * d, out, o, d); // a row at a time: a mapped table is never widened whole
            if (pc != null) {
                pc.readInto((i % l) * d, pos, 0, d);
                for (int j = 0; j < d; j++) {
                    out[o + j] += pos[j];
                }
            }
        }
    }

    @Override
    public void geglu(Tensor xt, Tensor outt) {
        Shape xs = xt.shape();
        String what = OpChecks.geglu(xt, outt);
        int f = xs.dim(-1) / 2;
        CpuTensor xc = cpu("geglu", xt), oc = out("geglu", outt);
        float[] x = xc.array(), out = oc.array();
        int xo = xc.offset(), oo = oc.offset();
        check(!oc.overlaps(xc), what + " (out aliases x)");
        int rows = leading(xs);
        int rowsPerTask = Math.max(1, ELEMENTWISE_CHUNK / Math.max(1, f));
        parallelFor(Math.ceilDiv(rows, rowsPerTask), task -> {
            for (int row = task * rowsPerTask; row < Math.min(rows, (task + 1) * rowsPerTask); row++) {
                for (int i = 0; i < f; i++) {
                    out[oo + row * f + i] = x[xo + row * 2 * f + i] * gelu(x[xo + row * 2 * f + f + i]);
                }
            }
        });
    }

    static float silu(float x) {
        return (float) (x / (1.0 + Math.exp(-x)));
    }

    static float gelu(float x) {
        return (float) (0.5 * x * (1.0 + Erf.erf(x * 0.70710678118654752440)));
    }

    // ---------------------------------------------------------------- embeddings and resampling

    @Override
    public void timestepEmbedding(Tensor tt, boolean flipSinToCos, float downscaleFreqShift, Tensor outt) {
        Shape os = outt.shape();
        String what = OpChecks.timestepEmbedding(tt, outt);
        CpuTensor tc = cpu("timestepEmbedding", tt), oc = out("timestepEmbedding", outt);
        float[] t = tc.array(), out = oc.array();
        int to = tc.offset(), oo = oc.offset();
        check(!oc.overlaps(tc), what + " (out aliases t)");
        int b = os.dim(0), dim = os.dim(1), half = dim / 2;
        // diffusers, all in fp32: exponent = -ln(10000)·arange(half) / (half - shift); emb = t·exp(exponent),
        // exp rounded as PyTorch's CPU kernel rounds it; sin and cos of the fp32 argument in double
        float negLog = (float) -Math.log(10000.0), denom = (float) (half - (double) downscaleFreqShift);
        float[] freq = new float[half];
        for (int i = 0; i < half; i++) {
            freq[i] = SleefExp.expf((negLog * i) / denom);
        }
        int sinAt = flipSinToCos ? half : 0, cosAt = flipSinToCos ? 0 : half;
        for (int bi = 0; bi < b; bi++) {
            int row = oo + bi * dim;
            for (int i = 0; i < half; i++) {
                float arg = t[to + bi] * freq[i];
                out[row + sinAt + i] = (float) Math.sin(arg);
                out[row + cosAt + i] = (float) Math.cos(arg);
            }
            if (dim % 2 == 1) {
                out[row + dim - 1] = 0f;
            }
        }
    }

    @Override
    public void upsampleNearest(Tensor xt, Tensor outt) {
        Shape xs = xt.shape(), os = outt.shape();
        String what = OpChecks.upsampleNearest(xt, outt);
        int h = xs.dim(2), w = xs.dim(3), oh = os.dim(2), ow = os.dim(3);
        CpuTensor xc = cpu("upsampleNearest", xt), oc = out("upsampleNearest", outt);
        float[] x = xc.array(), out = oc.array();
        int xo = xc.offset(), oo = oc.offset();
        check(!oc.overlaps(xc), what + " (out aliases x)");
        int[] srcCol = new int[ow];
        for (int j = 0; j < ow; j++) {
            srcCol[j] = (int) ((long) j * w / ow);
        }
        parallelFor(xs.dim(0) * xs.dim(1), plane -> {
            for (int i = 0; i < oh; i++) {
                int src = xo + plane * h * w + (int) ((long) i * h / oh) * w, dst = oo + (plane * oh + i) * ow;
                for (int j = 0; j < ow; j++) {
                    out[dst + j] = x[src + srcCol[j]];
                }
            }
        });
    }

    // ---------------------------------------------------------------- plumbing ops

    @Override
    public void concatChannels(Tensor at, Tensor bt, Tensor outt) {
        Shape as = at.shape(), bs = bt.shape();
        String what = OpChecks.concatChannels(at, bt, outt);
        CpuTensor ac = cpu("concatChannels", at), bc = cpu("concatChannels", bt), oc = out("concatChannels", outt);
        float[] a = ac.array(), b = bc.array(), out = oc.array();
        check(!oc.overlaps(ac) && !oc.overlaps(bc), what + " (out aliases an input)");
        int aLen = as.size() / Math.max(1, as.dim(0)), bLen = bs.size() / Math.max(1, bs.dim(0));
        for (int n = 0; n < as.dim(0); n++) {
            System.arraycopy(a, ac.offset() + n * aLen, out, oc.offset() + n * (aLen + bLen), aLen);
            System.arraycopy(b, bc.offset() + n * bLen, out, oc.offset() + n * (aLen + bLen) + aLen, bLen);
        }
    }

    @Override
    public void add(Tensor at, Tensor bt, Tensor outt) {
        String what = OpChecks.add(at, bt, outt);
        CpuTensor ac = cpu("add", at), bc = cpu("add", bt), oc = out("add", outt);
        check((!oc.overlaps(ac) || oc.offset() == ac.offset()) && (!oc.overlaps(bc) || oc.offset() == bc.offset()),
                what + " (out partly overlaps an input)");
        float[] a = ac.array(), b = bc.array(), out = oc.array();
        int ao = ac.offset(), bo = bc.offset(), oo = oc.offset();
        chunked(at.shape().size(), (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                out[oo + i] = a[ao + i] + b[bo + i];
            }
        });
    }

    @Override
    public void addChannelBias(Tensor xt, Tensor vt, Tensor outt) {
        Shape xs = xt.shape();
        String what = OpChecks.addChannelBias(xt, vt, outt);
        CpuTensor xc = cpu("addChannelBias", xt), oc = out("addChannelBias", outt);
        CpuTensor.Read vc = cpu("addChannelBias", vt).read();
        check(!oc.overlaps(xc) || oc.offset() == xc.offset(), what + " (out partly overlaps x)");
        float[] x = xc.array(), v = vc.array(), out = oc.array();
        int xo = xc.offset(), vo = vc.offset(), oo = oc.offset();
        int planes = xs.dim(0) * xs.dim(1), hw = planes == 0 ? 0 : xs.size() / planes;
        parallelFor(planes, pl -> {
            float bias = v[vo + pl];
            for (int i = pl * hw; i < (pl + 1) * hw; i++) {
                out[oo + i] = x[xo + i] + bias;
            }
        });
    }

    @Override
    public void scale(Tensor xt, float s, Tensor outt) {
        CpuTensor xc = cpu("scale", xt), oc = unary("scale", xt, outt);
        float[] x = xc.array(), out = oc.array();
        int xo = xc.offset(), oo = oc.offset();
        chunked(xt.shape().size(), (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                out[oo + i] = x[xo + i] * s;
            }
        });
    }

    @Override
    public void nchwToTokens(Tensor xt, Tensor outt) {
        Shape xs = xt.shape();
        String what = OpChecks.nchwToTokens(xt, outt);
        transposeBatched("nchwToTokens", xt, outt, xs.dim(0), xs.dim(1), xs.dim(2) * xs.dim(3), what);
    }

    @Override
    public void tokensToNchw(Tensor xt, Tensor outt) {
        Shape xs = xt.shape();
        String what = OpChecks.tokensToNchw(xt, outt);
        transposeBatched("tokensToNchw", xt, outt, xs.dim(0), xs.dim(1), xs.dim(2), what);
    }

    /** out[n] = x[n]ᵀ for x [N, rows, cols]. */
    private void transposeBatched(String op, Tensor xt, Tensor outt, int n, int rows, int cols, String what) {
        CpuTensor xc = cpu(op, xt), oc = out(op, outt);
        check(!oc.overlaps(xc), what + " (out aliases x)");
        transpose(xc.array(), xc.offset(), oc.array(), oc.offset(), n, rows, cols);
    }

    /** dst[b] = src[b]ᵀ for src [batches, rows, cols], in tiles so both sides stay in cache. */
    private void transpose(float[] src, int srcOff, float[] dst, int dstOff, int batches, int rows, int cols) {
        int rowTiles = Math.ceilDiv(rows, TRANSPOSE_TILE);
        parallelFor(batches * rowTiles, task -> {
            int base = (task / rowTiles) * rows * cols, r0 = (task % rowTiles) * TRANSPOSE_TILE;
            transposeTile(src, srcOff + base, rows, cols, dst, dstOff + base, r0, Math.min(rows, r0 + TRANSPOSE_TILE));
        });
    }

    private static void transposeTile(float[] src, int srcOff, int rows, int cols, float[] dst, int dstOff, int r0, int r1) {
        for (int c0 = 0; c0 < cols; c0 += TRANSPOSE_TILE) {
            int c1 = Math.min(cols, c0 + TRANSPOSE_TILE);
            for (int r = r0; r < r1; r++) {
                for (int c = c0; c < c1; c++) {
                    dst[dstOff + c * rows + r] = src[srcOff + r * cols + c];
                }
            }
        }
    }

    // ---------------------------------------------------------------- helpers

    /** Product of all dimensions but the last. */
    private static int leading(Shape s) {
        int rows = 1;
        for (int i = 0; i < s.rank() - 1; i++) {
            rows = Math.multiplyExact(rows, s.dim(i));
        }
        return rows;
    }

    /** out after checking it has x's shape and is x itself or apart from it. */
    private static CpuTensor unary(String op, Tensor xt, Tensor outt) {
        String what = OpChecks.unary(op, xt, outt);
        CpuTensor x = cpu(op, xt), out = out(op, outt);
        check(!out.overlaps(x) || out.offset() == x.offset(), what + " (out partly overlaps x)");
        return out;
    }

    private interface Range {
        void run(int from, int to);
    }

    private void chunked(int len, Range body) {
        parallelFor(Math.ceilDiv(len, ELEMENTWISE_CHUNK),
                c -> body.run(c * ELEMENTWISE_CHUNK, Math.min(len, (c + 1) * ELEMENTWISE_CHUNK)));
    }

    /**
     * Runs body(0..tasks) on the caller and threads-1 pool workers, which take task indices from a
     * shared counter until none are left. (A parallel stream split its range lazily and often ran
     * a whole op on one thread.)
     */
    void parallelFor(int tasks, IntConsumer body) {
        int helpers = pool == null ? 0 : Math.min(threads, tasks) - 1;
        if (helpers <= 0) {
            for (int i = 0; i < tasks; i++) {
                body.accept(i);
            }
            return;
        }
        AtomicInteger next = new AtomicInteger();
        Runnable worker = () -> {
            try {
                for (int i = next.getAndIncrement(); i < tasks; i = next.getAndIncrement()) {
                    body.accept(i);
                }
            } catch (RuntimeException | Error e) {
                next.set(tasks); // the others stop at their next task
                throw e;
            }
        };
        List<ForkJoinTask<?>> helping = new ArrayList<>(helpers);
        for (int h = 0; h < helpers; h++) {
            helping.add(pool.submit(worker));
        }
        Throwable failure = null;
        try {
            worker.run();
        } catch (RuntimeException | Error e) {
            failure = e;
        }
        // every helper has finished before the op returns or throws: none may still write into out
        for (ForkJoinTask<?> t : helping) {
            try {
                t.join();
            } catch (RuntimeException | Error e) {
                if (failure == null) {
                    failure = e;
                }
            }
        }
        if (failure instanceof RuntimeException e) {
            throw e;
        } else if (failure instanceof Error e) {
            throw e;
        }
    }

    /** An op's output: as {@link #cpu}, and a weight written by an op loses its packed copy. */
    private static CpuTensor out(String op, Tensor t) {
        CpuTensor c = cpu(op, t);
        c.dropPack();
        return c;
    }

    static CpuTensor cpu(String op, Tensor t) {
        if (t instanceof CpuTensor c) {
            return c;
        }
        throw new IllegalArgumentException(op + ": " + (t == null ? "null tensor" : t.getClass().getName() + " is not a CpuTensor"));
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new IllegalArgumentException(what);
        }
    }
}
