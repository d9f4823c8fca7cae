package dev.latte.cuda.backend;

import dev.latte.cuda.KernelArgs;

/**
 * Launcher for {@code conv_v2.cu} (implicit GEMM on 128×128 tensor-core tiles, fp16, sm_80+) on raw
 * device pointers. Owns its launch constants: 128 output pixels × 128 output channels and 256
 * threads per block, 41,216 bytes of dynamic shared memory (two stages of both operands and the
 * R·S tap table); GroupNorm as one FMA per element from per-(n, c) {scale, shift} that
 * {@code groupnorm_scale_shift_f16} derives from the statistics pass.
 */
final class ConvV2 {
    static final int TILE = 128, THREADS = 256, MAX_TAPS = 64;
    static final int SHARED = 2 * 2 * TILE * (32 + 8) * 2 + 4 * MAX_TAPS;

    private final KernelLibrary lib;

    ConvV2(KernelLibrary lib) {
        this.lib = lib;
    }

    /** Why v2 cannot run this convolution, or null if it can. */
    static String unsupported(int c, int r, int s, boolean resized, boolean aligned) {
        if ((long) c * r * s % 8 != 0) {
            return "conv=v2 needs C·R·S a multiple of 8, not " + (long) c * r * s;
        }
        if (r * s > MAX_TAPS) {
            return "conv=v2 takes kernels up to " + MAX_TAPS + " taps, not " + r + "x" + s;
        }
        if (resized) {
            return "conv=v2 has no nearest-resize on load (Upsample2D)";
        }
        if (!aligned) {
            return "conv=v2 needs the weights 16-byte aligned";
        }
        return null;
    }

    /** {scale, shift} per (n, c) into ss (8·n·c bytes) from groupnorm_stats' {mean, rstd}. */
    void scaleShift(long stats, long gamma, long beta, long ss, int n, int c, int groups) {
        lib.kernel("conv_v2.cu", "groupnorm_scale_shift_f16").launch((n * c + 255) / 256, 1, 1, 256, 1, 1, 0,
                new KernelArgs().ptr(stats).ptr(gamma).ptr(beta).ptr(ss).i32(n).i32(c).i32(groups));
    }

    /** As {@link #scaleShift}, merging the split statistics' parts ({@code NormLauncher.partials}) as it goes. */
    void scaleShiftParts(long partial, long gamma, long beta, long ss, int n, int c, int groups, int len, int parts,
                         float eps) {
        lib.kernel("conv_v2.cu", "groupnorm_scale_shift_parts_f16").launch((n * c + 255) / 256, 1, 1, 256, 1, 1, 0,
                new KernelArgs().ptr(partial).ptr(gamma).ptr(beta).ptr(ss).i32(n).i32(c).i32(groups).i32(len)
                        .i32(parts).f32(eps));
    }

    /** ss = 0: no normalisation. */
    void launch(long x, long w, long bias, long res, long out, long ss, boolean silu, int n, int c, int h, int wd,
                int k, int r, int s, int p, int q, int sh, int sw, int pt, int pl) {
        long m = (long) n * p * q;
        lib.kernel("conv_v2.cu", ss != 0 ? "conv2d_v2_norm_f16" : "conv2d_v2_f16").launch(
                (int) ((m + TILE - 1) / TILE), (k + TILE - 1) / TILE, 1, THREADS, 1, 1, SHARED,
                new KernelArgs().ptr(x).ptr(w).ptr(bias).ptr(res).ptr(out).ptr(ss).i32(n).i32(c).i32(h).i32(wd)
                        .i32(k).i32(r).i32(s).i32(p).i32(q).i32(sh).i32(sw).i32(pt).i32(pl).i32(silu ? 1 : 0));
    }
}
