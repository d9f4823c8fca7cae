package dev.latte.cuda.backend;

import dev.latte.core.OpChecks;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cuda.KernelArgs;

import java.util.Locale;

import static dev.latte.cuda.backend.Launch.check;

/** {@code gemm.cu} (and the tile every GEMM of {@code common.cuh} shares, the convolution's too). */
final class GemmLauncher {
    static final String FILE = "gemm.cu";
    /** The output tile of one block (rows × columns) and its threads, as {@code common.cuh} defines them. */
    static final int TILE_M = KernelLibrary.define("common.cuh", "GEMM_BM"),
            TILE_N = KernelLibrary.define("common.cuh", "GEMM_BN"),
            THREADS = KernelLibrary.define("common.cuh", "GEMM_THREADS");

    private final Launch l;
    private final Tactics tactics;
    private final CudaBackend.Precision precision;
    private final LinearV2 v2;

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
                    () -> tactics.linear(precision, l.library().computeCapability(), in, aligned));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(what + ": " + e.getMessage(), e);
        }
        if (version != Tactics.LINEAR_V2) {
            return false;
        }
        if (m > 0 && outF > 0) {
            v2.launch(epi, x.ptr(), w.ptr(), Launch.ptr(b), Launch.ptr(res), out.ptr(), (int) m, outF, in);
        }
        return true;
    }

    /** One launch of {@code linear_*}: a block per output tile, tensor cores (mma.sync) for fp16, FMA for fp32. */
    public void linear(Tensor xt, Tensor wt, Tensor bt, Tensor outt) {
        Shape xs = xt.shape(), ws = wt.shape();
        String what = OpChecks.linear(xt, wt, bt, outt);
        int in = ws.dim(1), outF = ws.dim(0);
        CudaTensor x = l.cuda(what, xt), w = l.cuda(what, wt), out = l.cuda(what, outt);
        CudaTensor b = bt == null ? null : l.cuda(what, bt);
        Launch.apart(what, out, x, "x");
        long m = Launch.leading(xs);
        check(m < Integer.MAX_VALUE, what);
        if (m == 0 || outF == 0) {
            return;
        }
        l.kernel(FILE, "linear").launch(Launch.blocks(m, TILE_M), Launch.blocks(outF, TILE_N), 1, THREADS, 1, 1, 0,
                new KernelArgs().ptr(x.ptr()).ptr(w.ptr()).ptr(Launch.ptr(b)).ptr(out.ptr()).i32((int) m).i32(outF)
                        .i32(in));
    }
}
