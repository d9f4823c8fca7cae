package dev.latte.cuda.backend;

import dev.latte.core.OpChecks;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cuda.CublasLt;
import dev.latte.cuda.KernelArgs;

import java.util.Locale;

import static dev.latte.cuda.backend.Launch.check;

/**
 * {@code gemm.cu} (and the tile every GEMM of {@code common.cuh} shares, the convolution's too);
 * where {@code linear=cublaslt} is forced, cuBLASLt instead ({@link CublasLt}, its handle made on
 * first use and kept until {@link #close}).
 */
final class GemmLauncher implements AutoCloseable {
    static final String FILE = "gemm.cu";
    /** The output tile of one block (rows × columns) and its threads, as {@code common.cuh} defines them. */
    static final int TILE_M = KernelLibrary.define("common.cuh", "GEMM_BM"),
            TILE_N = KernelLibrary.define("common.cuh", "GEMM_BN"),
            THREADS = KernelLibrary.define("common.cuh", "GEMM_THREADS");

    private final Launch l;
    private final Tactics tactics;
    private final CudaBackend.Precision precision;
    private final LinearV2 v2;
    private CublasLt lt;

    public GemmLauncher(Launch launch, Tactics tactics, CudaBackend.Precision precision) {
        this.l = launch;
        this.tactics = tactics;
        this.precision = precision;
        this.v2 = new LinearV2(launch.library());
    }

    /**
     * The GEMM with epilogue {@code epi} on v2 ({@link LinearV2}) where {@link Tactics} picks it: true
     * when it ran; false where v1 is picked (nothing queued: the caller runs {@link #linear} and the
     * epilogue as its own kernel). GEGLU: w [2F, in], bias [2F] or null, out [..., F].
     */
    boolean fused(LinearV2.Epilogue epi, Tensor xt, Tensor wt, Tensor bt, Tensor residualt, Tensor outt) {
        Shape xs = xt.shape(), ws = wt.shape();
        String what;
        if (epi == LinearV2.Epilogue.GEGLU) {
            int[] od = xs.dims();
            od[od.length - 1] = ws.rank() == 2 ? ws.dim(0) / 2 : -1;
            what = "linear+geglu: x " + xs + ", w " + ws + ", bias " + (bt == null ? "none" : bt.shape()) + ", out "
                    + outt.shape();
            check(xs.rank() >= 1 && ws.rank() == 2 && ws.dim(0) % 2 == 0 && ws.dim(1) == xs.dim(-1)
                    && (bt == null || bt.shape().equals(Shape.of(ws.dim(0)))) && outt.shape().equals(Shape.of(od)), what);
        } else {
            what = OpChecks.linear(xt, wt, bt, outt)
                    + (epi == LinearV2.Epilogue.BIAS ? "" : ", " + epi.name().toLowerCase(Locale.ROOT));
        }
        int in = ws.dim(1), outF = epi == LinearV2.Epilogue.GEGLU ? ws.dim(0) / 2 : ws.dim(0);
        CudaTensor x = l.cuda(what, xt), w = l.cuda(what, wt), out = l.cuda(what, outt);
        CudaTensor b = bt == null ? null : l.cuda(what, bt), res = residualt == null ? null : l.cuda(what, residualt);
        Launch.apart(what, out, x, "x");
        if (epi == LinearV2.Epilogue.RESIDUAL) {
            check(res != null && res.shape().equals(out.shape()), what + " (residual)");
            Launch.sameOrApart(what, out, res, "the residual");
        }
        long m = Launch.leading(xs);
        check(m < Integer.MAX_VALUE, what);
        Tactics.Version version;
        try {
            boolean aligned = AttentionV2.aligned(x.ptr(), w.ptr(), Launch.ptr(b), Launch.ptr(res), out.ptr());
            version = l.version(Tactics.Family.LINEAR, aligned,
                    () -> tactics.linear(precision, l.library().computeCapability(), in, aligned, l.context().emulated()));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(what + ": " + e.getMessage(), e);
        }
        if (version == Tactics.LINEAR_CUBLASLT) {
            if (epi != LinearV2.Epilogue.BIAS && epi != LinearV2.Epilogue.RESIDUAL) {
                return false;   // SiLU and GEGLU are not cuBLASLt epilogues: linear(), then their own kernel
            }
            if (m > 0 && outF > 0) {
                lt().linear(precision == CudaBackend.Precision.FP16, x.ptr(), w.ptr(), Launch.ptr(b), Launch.ptr(res),
                        out.ptr(), (int) m, outF, in);
            }
            return true;
        }
        if (version != Tactics.LINEAR_V2) {
            return false;
        }
        if (m > 0 && outF > 0) {
            v2.launch(epi, x.ptr(), w.ptr(), Launch.ptr(b), Launch.ptr(res), out.ptr(), (int) m, outF, in);
        }
        return true;
    }

    /**
     * A self-attention's three projections as one GEMM over the three weights (v2 where
     * {@link Tactics} picks it and C is a multiple of 8, else {@code linear_qkv_*}): out [3, ..., C].
     */
    public void qkv(Tensor xt, Tensor wqt, Tensor wkt, Tensor wvt, Tensor bqt, Tensor bkt, Tensor bvt, Tensor outt) {
        String what = OpChecks.linearQkv(xt, wqt, wkt, wvt, bqt, bkt, bvt, outt);
        Shape ws = wqt.shape();
        int in = ws.dim(1), c = ws.dim(0);
        CudaTensor x = l.cuda(what, xt), wq = l.cuda(what, wqt), wk = l.cuda(what, wkt), wv = l.cuda(what, wvt);
        CudaTensor out = l.cuda(what, outt);
        CudaTensor bq = bqt == null ? null : l.cuda(what, bqt), bk = bkt == null ? null : l.cuda(what, bkt),
                bv = bvt == null ? null : l.cuda(what, bvt);
        Launch.apart(what, out, x, "x");
        long m = Launch.leading(xt.shape());
        check(m < Integer.MAX_VALUE && 3L * c < Integer.MAX_VALUE, what);
        if (m == 0 || c == 0) {
            return;
        }
        Tactics.Version version;
        try {
            version = tactics.linear(precision, l.library().computeCapability(), in, AttentionV2.aligned(x.ptr(),
                    wq.ptr(), wk.ptr(), wv.ptr(), Launch.ptr(bq), Launch.ptr(bk), Launch.ptr(bv), out.ptr()));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(what + ": " + e.getMessage(), e);
        }
        if (version == Tactics.LINEAR_V2 && c % 8 == 0) {
            v2.launchQkv(x.ptr(), wq.ptr(), wk.ptr(), wv.ptr(), Launch.ptr(bq), Launch.ptr(bk), Launch.ptr(bv),
                    out.ptr(), (int) m, c, in);
            return;
        }
        l.kernel(FILE, "linear_qkv").launch(Launch.blocks(m, TILE_M), Launch.blocks(3L * c, TILE_N), 1, THREADS, 1, 1,
                0, new KernelArgs().ptr(x.ptr()).ptr(wq.ptr()).ptr(wk.ptr()).ptr(wv.ptr()).ptr(Launch.ptr(bq))
                        .ptr(Launch.ptr(bk)).ptr(Launch.ptr(bv)).ptr(out.ptr()).i32((int) m).i32(c).i32(in));
    }

    /** One launch of {@code linear_*}: a block per output tile, tensor cores (mma.sync) for fp16, FMA for fp32. */
    public void linear(Tensor xt, Tensor wt, Tensor bt, Tensor outt) {
        linear(xt, wt, bt, null, outt);
    }

    /** As {@link #linear(Tensor, Tensor, Tensor, Tensor)} with {@code rt} (nullable, may be out) added in the epilogue. */
    public void linear(Tensor xt, Tensor wt, Tensor bt, Tensor rt, Tensor outt) {
        Shape xs = xt.shape(), ws = wt.shape();
        String what = rt == null ? OpChecks.linear(xt, wt, bt, outt) : OpChecks.linearResidual(xt, wt, bt, rt, outt);
        int in = ws.dim(1), outF = ws.dim(0);
        CudaTensor x = l.cuda(what, xt), w = l.cuda(what, wt), out = l.cuda(what, outt);
        CudaTensor b = bt == null ? null : l.cuda(what, bt), res = rt == null ? null : l.cuda(what, rt);
        Launch.apart(what, out, x, "x");
        if (res != null) {
            Launch.sameOrApart(what, out, res, "the residual");
        }
        long m = Launch.leading(xs);
        check(m < Integer.MAX_VALUE, what);
        if (m == 0 || outF == 0) {
            return;
        }
        if (tactics.forced(Tactics.Family.LINEAR) == Tactics.LINEAR_CUBLASLT) {
            try {
                tactics.linear(precision, l.library().computeCapability(), in, true, l.context().emulated());
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(what + ": " + e.getMessage(), e);
            }
            lt().linear(precision == CudaBackend.Precision.FP16, x.ptr(), w.ptr(), Launch.ptr(b), 0, out.ptr(), (int) m,
                    outF, in);
            return;
        }
        l.kernel(FILE, "linear").launch(Launch.blocks(m, TILE_M), Launch.blocks(outF, TILE_N), 1, THREADS, 1, 1, 0,
                new KernelArgs().ptr(x.ptr()).ptr(w.ptr()).ptr(Launch.ptr(b)).ptr(Launch.ptr(res)).ptr(out.ptr())
                        .i32((int) m).i32(outF)
                        .i32(in));
    }

    /** cuBLASLt's handle and workspace, made now: outside the CUDA graph the step is captured into. */
    void reserveLibrary() {
        lt();
    }

    private CublasLt lt() {
        if (lt == null) {
            lt = new CublasLt(l.context());
        }
        return lt;
    }

    @Override
    public void close() {
        if (lt != null) {
            lt.close();
            lt = null;
        }
    }
}
