package dev.latte.cuda.backend;

import dev.latte.core.OpChecks;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cuda.KernelArgs;

import static dev.latte.cuda.backend.Launch.check;

/** {@code gemm.cu} (and the tile every GEMM of {@code common.cuh} shares, the convolution's too). */
final class GemmLauncher {
    static final String FILE = "gemm.cu";
    /** The output tile of one block (rows × columns) and its threads, as {@code common.cuh} defines them. */
    static final int TILE_M = KernelLibrary.define("common.cuh", "GEMM_BM"),
            TILE_N = KernelLibrary.define("common.cuh", "GEMM_BN"),
            THREADS = KernelLibrary.define("common.cuh", "GEMM_THREADS");

    private final Launch l;

    public GemmLauncher(Launch launch) {
        this.l = launch;
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
