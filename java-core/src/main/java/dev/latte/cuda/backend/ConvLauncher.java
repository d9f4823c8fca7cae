package dev.latte.cuda.backend;

import dev.latte.core.Conv2dParams;
import dev.latte.core.NormAct;
import dev.latte.core.OpChecks;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cuda.KernelArgs;

import static dev.latte.cuda.backend.Launch.check;

/**
 * {@code conv.cu}: the implicit-GEMM convolution on {@code common.cuh}'s tile (tensor cores for
 * fp16), with GroupNorm+SiLU applied on load (statistics from a read-only pass,
 * {@link NormLauncher#groupNormStats}), the nearest upsample in the load, bias and residual in the
 * epilogue.
 */
final class ConvLauncher {
    static final String FILE = "conv.cu";

    private final Launch l;
    private final NormLauncher norms;
    private final Tactics tactics;
    private final CudaBackend.Precision precision;
    private final ConvV2 v2;

    public ConvLauncher(Launch launch, NormLauncher norms, Tactics tactics, CudaBackend.Precision precision) {
        this.l = launch;
        this.norms = norms;
        this.tactics = tactics;
        this.precision = precision;
        this.v2 = new ConvV2(launch.library());
    }

    /**
     * conv(norm(x resized to h × w)) + bias (+ residual): one launch after the statistics pass.
     * out may be the residual's very bytes (each element reads its residual before writing).
     */
    public void conv(Tensor xt, int h, int w, NormAct norm, Tensor wt, Tensor bt, Conv2dParams p, Tensor residualt,
                     Tensor outt) {
        Shape xs = xt.shape(), ws = wt.shape(), os = outt.shape();
        String what = OpChecks.conv2d(xt, h, w, wt, bt, p, outt, (norm == null ? "" : ", norm groups " + norm.groups())
                + (residualt == null ? "" : ", residual " + residualt.shape()));
        int n = xs.dim(0), c = xs.dim(1);
        int k = ws.dim(0), r = ws.dim(2), s = ws.dim(3);
        int pOut = p.outHeight(h, r), qOut = p.outWidth(w, s);
        check(residualt == null || residualt.shape().equals(os), what);
        CudaTensor x = l.cuda(what, xt), wgt = l.cuda(what, wt), out = l.cuda(what, outt);
        CudaTensor b = bt == null ? null : l.cuda(what, bt), res = residualt == null ? null : l.cuda(what, residualt);
        Launch.apart(what, out, x, "x");
        if (res != null) {
            Launch.sameOrApart(what, out, res, "the residual");
        }
        long m = (long) n * pOut * qOut;
        check(m < Integer.MAX_VALUE && (long) c * r * s < Integer.MAX_VALUE, what + " (too large)");
        if (m == 0 || k == 0) {
            return;
        }
        Tactics.Version version;
        try {
            boolean aligned = (wgt.ptr() & 15) == 0;
            version = l.version(Tactics.Family.CONV, aligned, () -> tactics.conv(precision,
                    l.library().computeCapability(), c, r, s, h != xs.dim(2) || w != xs.dim(3), aligned));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(what + ": " + e.getMessage(), e);
        }
        if (version == Tactics.CONV_V2) {
            long ss = 0;
            if (norm != null) {
                int groups = norm.groups();
                check(groups > 0 && c % groups == 0 && norm.gamma().shape().equals(Shape.of(c))
                        && norm.beta().shape().equals(Shape.of(c)), what);
                long statsBytes = (8L * n * groups + 15) / 16 * 16;
                long base = l.scratch(statsBytes + 8L * n * c);  // sized first: the statistics pass reuses it
                long stats = norms.groupNormStats(x, n, groups, (long) (c / groups) * h * w, norm.eps());
                check(stats == base, what);
                ss = base + statsBytes;
                v2.scaleShift(stats, l.cuda(what, norm.gamma()).ptr(), l.cuda(what, norm.beta()).ptr(), ss, n, c, groups);
            }
            v2.launch(x.ptr(), wgt.ptr(), Launch.ptr(b), Launch.ptr(res), out.ptr(), ss, norm != null && norm.silu(), n, c,
                    h, w, k, r, s, pOut, qOut, p.strideH(), p.strideW(), p.padTop(), p.padLeft());
            return;
        }
        long stats = 0;
        int groups = 0, silu = 0;
        CudaTensor gamma = null, beta = null;
        if (norm != null) {
            groups = norm.groups();
            check(groups > 0 && c % groups == 0 && norm.gamma().shape().equals(Shape.of(c))
                    && norm.beta().shape().equals(Shape.of(c)), what);
            gamma = l.cuda(what, norm.gamma());
            beta = l.cuda(what, norm.beta());
            silu = norm.silu() ? 1 : 0;
            stats = norms.groupNormStats(x, n, groups, (long) (c / groups) * h * w, norm.eps());
        }
        KernelArgs a = new KernelArgs().ptr(x.ptr()).ptr(wgt.ptr()).ptr(Launch.ptr(b)).ptr(Launch.ptr(res))
                .ptr(out.ptr()).ptr(stats).ptr(Launch.ptr(gamma)).ptr(Launch.ptr(beta))
                .i32(n).i32(c).i32(h).i32(w).i32(k).i32(r).i32(s).i32(pOut).i32(qOut)
                .i32(p.strideH()).i32(p.strideW()).i32(p.padTop()).i32(p.padLeft()).i32(groups).i32(silu)
                .i32(xs.dim(2)).i32(xs.dim(3));
        l.kernel(FILE, "conv2d").launch(Launch.blocks(m, GemmLauncher.TILE_M), Launch.blocks(k, GemmLauncher.TILE_N),
                1, GemmLauncher.THREADS, 1, 1, 0, a);
    }
}
