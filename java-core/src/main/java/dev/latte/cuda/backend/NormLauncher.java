package dev.latte.cuda.backend;

import dev.latte.core.OpChecks;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cuda.KernelArgs;

import static dev.latte.cuda.backend.Launch.check;

/** {@code norm.cu}: GroupNorm statistics and apply, LayerNorm. */
final class NormLauncher {
    static final String FILE = "norm.cu";
    /** Threads a block of the statistics and LayerNorm kernels. */
    static final int THREADS = KernelLibrary.define(FILE, "NORM_THREADS");

    private final Launch l;

    public NormLauncher(Launch launch) {
        this.l = launch;
    }

    /** The statistics scratch of a GroupNorm over n images in {@code groups}: {mean, rstd} fp32 each. */
    static long statsBytes(int n, int groups) {
        return 8L * n * groups;
    }

    /** Queues groupnorm_stats into scratch: {mean, rstd} per (n, group), fp32. Returns its pointer. */
    long groupNormStats(CudaTensor x, int n, int groups, long groupLen, float eps) {
        check(groupLen < Integer.MAX_VALUE, "groupNorm: group of " + groupLen + " elements");
        long stats = l.scratch(statsBytes(n, groups));
        l.kernel(FILE, "groupnorm_stats").launch(n * groups, 1, 1, THREADS, 1, 1, 0,
                new KernelArgs().ptr(x.ptr()).ptr(stats).i32((int) groupLen).f32(eps));
        return stats;
    }

    /** Statistics, then one elementwise pass normalising (and SiLU); out may be x. */
    public void groupNorm(Tensor xt, Tensor gt, Tensor bt, int groups, float eps, boolean silu, Tensor outt) {
        Shape xs = xt.shape();
        String what = OpChecks.groupNorm(xt, gt, bt, groups, outt);
        int n = xs.dim(0), c = xs.dim(1);
        CudaTensor x = l.cuda(what, xt), gamma = l.cuda(what, gt), beta = l.cuda(what, bt), out = l.cuda(what, outt);
        Launch.sameOrApart(what, out, x, "x");
        long total = xs.numel();
        if (total == 0) {
            return;
        }
        long hw = total / ((long) n * c);
        check(hw < Integer.MAX_VALUE, what);
        long stats = groupNormStats(x, n, groups, (c / groups) * hw, eps);
        l.elementwise(FILE, "groupnorm_apply", total, new KernelArgs().ptr(x.ptr()).ptr(stats).ptr(gamma.ptr())
                .ptr(beta.ptr()).ptr(out.ptr()).i32(c).i32((int) hw).i32(c / groups).i32(groups).i32(silu ? 1 : 0)
                .i64(total));
    }

    /** A block per row; out may be x. */
    public void layerNorm(Tensor xt, Tensor gt, Tensor bt, float eps, Tensor outt) {
        Shape xs = xt.shape();
        String what = OpChecks.layerNorm(xt, gt, bt, outt);
        int d = xs.dim(-1);
        CudaTensor x = l.cuda(what, xt), gamma = l.cuda(what, gt), beta = l.cuda(what, bt), out = l.cuda(what, outt);
        Launch.sameOrApart(what, out, x, "x");
        long rows = Launch.leading(xs);
        check(rows < Integer.MAX_VALUE, what);
        if (rows == 0 || d == 0) {
            return;
        }
        l.kernel(FILE, "layernorm").launch((int) rows, 1, 1, THREADS, 1, 1, 0,
                new KernelArgs().ptr(x.ptr()).ptr(gamma.ptr()).ptr(beta.ptr()).ptr(out.ptr()).i32(d).f32(eps));
    }
}
