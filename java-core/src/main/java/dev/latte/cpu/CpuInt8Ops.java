package dev.latte.cpu;

import dev.latte.core.Conv2dParams;
import dev.latte.core.Int8Mode;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.quant.Int8;

/**
 * The CPU int8 ops ({@link CpuBackend#linearInt8}, {@link CpuBackend#conv2dInt8}). With the Vector
 * API they run on the GEMM engine ({@link FastPaths#linearInt8}, {@link FastPaths#convInt8}: the
 * weight packed once as int8 panels, widened per block; W8A8 summed exactly), otherwise on the
 * scalar loops below; both compute the same thing. W8A16: the weights are dequantised ({@code q · scale} in fp32, what a GPU kernel does in its
 * main loop) and the fp32 op runs on them. W8A8: each activation row (a token; for a conv, the
 * C·R·S input patch of one output pixel, zero padding included) gets its own scale and is
 * quantised, the s8×s8 products are summed exactly in int32, and the epilogue computes
 * {@code acc · a_scale · w_scale + bias} in double, rounded once to fp32. Float operands are read
 * and results written through the backend's own download/scale, so any CpuTensor storage works.
 */
final class CpuInt8Ops {
    /** Output pixels (W8A8 conv) or tokens (W8A8 linear) one task quantises and multiplies. */
    private static final int ROW_BLOCK = 32;

    /** Activation rows (tokens, pixels) that share each pass over a weight row. */
    private static final int DOT_ROWS = 4;

    private CpuInt8Ops() {
    }

    /** acc[r] = a[ao + r·lda ..]·b[bo ..] over n for r < rows. */
    private static void dots(byte[] a, int ao, int lda, int rows, byte[] b, int bo, int n, int[] acc) {
        for (int r = 0; r < rows; r++) {
            acc[r] = Int8.dot(a, ao + r * lda, b, bo, n);
        }
    }

    static void linear(CpuBackend be, Tensor xt, Tensor wt, Tensor st, Tensor bt, Int8Mode mode, Tensor outt) {
        Shape xs = xt.shape(), ws = wt.shape(), os = outt.shape();
        String what = "linearInt8: x " + xs + ", w " + ws + ", scale " + st.shape() + ", bias "
                + (bt == null ? "none" : bt.shape()) + ", out " + os;
        check(ws.rank() == 2 && xs.rank() >= 1 && xs.dim(-1) == ws.dim(1), what);
        int outF = ws.dim(0), in = ws.dim(1);
        check(st.shape().equals(Shape.of(outF)) && (bt == null || bt.shape().equals(Shape.of(outF))), what);
        int[] od = xs.dims();
        od[od.length - 1] = outF;
        check(os.equals(Shape.of(od)), what);
        float[] scale = be.download(st);
        if (be.fast != null) {
            CpuTensor xc = CpuBackend.cpu("linearInt8", xt), oc = CpuBackend.cpu("linearInt8", outt);
            check(!oc.overlaps(xc), what + " (out aliases x)");
            oc.dropPack();
            be.fast.linearInt8(xc, in == 0 ? 0 : xs.size() / in, in, int8Tensor(what, wt), outF, scale,
                    bt == null ? null : CpuBackend.cpu("linearInt8", bt), mode, oc);
            return;
        }
        byte[] q = int8(what, wt);
        if (mode == Int8Mode.W8A16) {
            be.linear(xt, new CpuTensor(ws, Int8.dequantize(q, scale)), bt, outt);
            return;
        }
        float[] x = be.download(xt), out = new float[os.size()];
        float[] bias = bt == null ? null : be.download(bt);
        int m = in == 0 ? 0 : x.length / in;
        be.parallelFor(Math.ceilDiv(m, ROW_BLOCK), task -> {
            int r0 = task * ROW_BLOCK, r1 = Math.min(m, r0 + ROW_BLOCK);
            byte[] xq = new byte[(r1 - r0) * in];
            float[] as = new float[r1 - r0];
            int[] acc = new int[DOT_ROWS];
            for (int r = r0; r < r1; r++) {
                as[r - r0] = Int8.scale(x, r * in, in);
                Int8.quantize(x, r * in, in, as[r - r0], xq, (r - r0) * in);
            }
            for (int j = 0; j < outF; j++) {
                for (int r = r0; r < r1; r += DOT_ROWS) {
                    int rows = Math.min(DOT_ROWS, r1 - r);
                    dots(xq, (r - r0) * in, in, rows, q, j * in, in, acc);
                    for (int i = 0; i < rows; i++) {
                        out[(r + i) * outF + j] = (float) ((double) acc[i] * as[r + i - r0] * scale[j]
                                + (bias == null ? 0.0 : bias[j]));
                    }
                }
            }
        });
        store(be, out, outt);
    }

    static void conv2d(CpuBackend be, Tensor xt, Tensor wt, Tensor st, Tensor bt, Conv2dParams p, Int8Mode mode,
                       Tensor outt) {
        Shape xs = xt.shape(), ws = wt.shape(), os = outt.shape();
        String what = "conv2dInt8: x " + xs + ", w " + ws + ", scale " + st.shape() + ", bias "
                + (bt == null ? "none" : bt.shape()) + ", " + p + ", out " + os;
        check(xs.rank() == 4 && ws.rank() == 4 && ws.dim(1) == xs.dim(1), what);
        int k = ws.dim(0);
        check(st.shape().equals(Shape.of(k)), what);
        int n = xs.dim(0), c = xs.dim(1), h = xs.dim(2), w = xs.dim(3), r = ws.dim(2), s = ws.dim(3);
        int pOut = p.outHeight(h, r), qOut = p.outWidth(w, s), pixels = pOut * qOut, crs = c * r * s;
        check(pOut > 0 && qOut > 0 && os.equals(Shape.of(n, k, pOut, qOut)), what);
        check(bt == null || bt.shape().equals(Shape.of(k)), what);
        float[] scale = be.download(st);
        if (be.fast != null) {
            CpuTensor xc = CpuBackend.cpu("conv2dInt8", xt), oc = CpuBackend.cpu("conv2dInt8", outt);
            check(!oc.overlaps(xc), what + " (out aliases x)");
            oc.dropPack();
            be.fast.convInt8(xc, int8Tensor(what, wt), scale, bt == null ? null : CpuBackend.cpu("conv2dInt8", bt), p,
                    mode, oc);
            return;
        }
        byte[] q = int8(what, wt);
        if (mode == Int8Mode.W8A16) {
            be.conv2d(xt, new CpuTensor(ws, Int8.dequantize(q, scale)), bt, p, outt);
            return;
        }
        float[] x = be.download(xt), out = new float[os.size()];
        float[] bias = bt == null ? null : be.download(bt);
        int blocks = Math.ceilDiv(pixels, ROW_BLOCK);
        be.parallelFor(n * blocks, task -> {
            int ni = task / blocks, px0 = (task % blocks) * ROW_BLOCK, px1 = Math.min(pixels, px0 + ROW_BLOCK);
            float[] patch = new float[crs], as = new float[px1 - px0];
            byte[] pq = new byte[(px1 - px0) * crs];
            int[] acc = new int[DOT_ROWS];
            for (int px = px0; px < px1; px++) {
                int oh = px / qOut, ow = px % qOut;
                // the implicit-GEMM row of this output pixel: x[ni, ci, oh·sh − pt + ri, ow·sw − pl + si]
                for (int ci = 0; ci < c; ci++) {
                    for (int ri = 0; ri < r; ri++) {
                        int ih = oh * p.strideH() - p.padTop() + ri;
                        for (int si = 0; si < s; si++) {
                            int iw = ow * p.strideW() - p.padLeft() + si;
                            patch[(ci * r + ri) * s + si] = ih >= 0 && ih < h && iw >= 0 && iw < w
                                    ? x[((ni * c + ci) * h + ih) * w + iw] : 0f;
                        }
                    }
                }
                as[px - px0] = Int8.scale(patch, 0, crs);
                Int8.quantize(patch, 0, crs, as[px - px0], pq, (px - px0) * crs);
            }
            for (int ki = 0; ki < k; ki++) {
                for (int px = px0; px < px1; px += DOT_ROWS) {
                    int rows = Math.min(DOT_ROWS, px1 - px);
                    dots(pq, (px - px0) * crs, crs, rows, q, ki * crs, crs, acc);
                    for (int i = 0; i < rows; i++) {
                        out[(ni * k + ki) * pixels + px + i] = (float) ((double) acc[i] * as[px + i - px0] * scale[ki]
                                + (bias == null ? 0.0 : bias[ki]));
                    }
                }
            }
        });
        store(be, out, outt);
    }

    /** Copies host results into {@code outt} through the backend, whatever storage (own array, arena view) it has. */
    private static void store(CpuBackend be, float[] values, Tensor outt) {
        be.scale(new CpuTensor(outt.shape(), values), 1f, outt); // ×1 is exact
    }

    private static byte[] int8(String what, Tensor t) {
        return int8Tensor(what, t).data();
    }

    private static CpuInt8Tensor int8Tensor(String what, Tensor t) {
        if (t instanceof CpuInt8Tensor q) {
            return q;
        }
        throw new IllegalArgumentException(what + ": weight " + t + " is not an int8 CPU tensor");
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new IllegalArgumentException(what);
        }
    }
}
