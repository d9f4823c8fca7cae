package dev.latte.cuda.backend;

import dev.latte.core.OpChecks;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cuda.KernelArgs;

import static dev.latte.cuda.backend.Launch.check;

/** {@code norm.cu}: GroupNorm statistics (one block a group, or split and merged) and apply, LayerNorm. */
final class NormLauncher {
    static final String FILE = "norm.cu";
    /** Threads a block of the statistics and LayerNorm kernels. */
    static final int THREADS = KernelLibrary.define(FILE, "NORM_THREADS");

    private final Launch l;

    public NormLauncher(Launch launch) {
        this.l = launch;
    }

    /** Values a statistics block reduces at least, and the most blocks one group is split across. */
    static final int PART_VALUES = 4096, MAX_PARTS = 32;

    /**
     * Blocks the statistics of one group of {@code groupLen} values take: one up to 2·{@link #PART_VALUES}
     * values, else a block per {@link #PART_VALUES} (at most {@link #MAX_PARTS}), merged by a second
     * pass. SD1.5's 64² groups (40,960 values) take 10; its 8² ones one.
     */
    static int parts(long groupLen) {
        return (int) Math.max(1, Math.min(MAX_PARTS, groupLen / PART_VALUES));
    }

    /**
     * The statistics scratch of a GroupNorm over n images in {@code groups} of {@code groupLen}
     * values: {mean, rstd} fp32 per group (padded to 16 bytes), then the split groups' partial
     * {mean, M2} fp64 per part.
     */
    static long statsBytes(int n, int groups, long groupLen) {
        long stats = (8L * n * groups + 15) / 16 * 16;
        int parts = parts(groupLen);
        return parts == 1 ? stats : stats + 16L * n * groups * parts;
    }

    /**
     * Queues the statistics into scratch: {mean, rstd} per (n, group), fp32, at the scratch's start
     * (returned). One block per group, or {@link #parts} blocks per group and a merge pass.
     */
    long groupNormStats(CudaTensor x, int n, int groups, long groupLen, float eps) {
        check(groupLen < Integer.MAX_VALUE, "groupNorm: group of " + groupLen + " elements");
        long stats = l.scratch(statsBytes(n, groups, groupLen));
        int parts = parts(groupLen), total = n * groups;
        if (parts == 1) {
            l.kernel(FILE, "groupnorm_stats").launch(total, 1, 1, THREADS, 1, 1, 0,
                    new KernelArgs().ptr(x.ptr()).ptr(stats).i32((int) groupLen).f32(eps));
            return stats;
        }
        long partial = partials(x, n, groups, groupLen);
        l.library().kernel(FILE, "groupnorm_merge").launch((total + 255) / 256, 1, 1, 256, 1, 1, 0,
                new KernelArgs().ptr(partial).ptr(stats).i32(total).i32((int) groupLen).i32(parts).f32(eps));
        return stats;
    }

    /**
     * For a group split in {@link #parts} &gt; 1: queues only the partial {mean, M2} per part, after
     * the statistics' place in scratch, and returns their pointer; a consumer merges them itself
     * (conv v2's scale/shift pass).
     */
    long partials(CudaTensor x, int n, int groups, long groupLen) {
        check(groupLen < Integer.MAX_VALUE && parts(groupLen) > 1, "groupNorm: partials of a group of " + groupLen);
        long partial = l.scratch(statsBytes(n, groups, groupLen)) + statsBytes(n, groups, 0);
        l.kernel(FILE, "groupnorm_partials").launch(n * groups, parts(groupLen), 1, THREADS, 1, 1, 0,
                new KernelArgs().ptr(x.ptr()).ptr(partial).i32((int) groupLen).i32(parts(groupLen)));
        return partial;
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
