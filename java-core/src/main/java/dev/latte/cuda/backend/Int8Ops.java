package dev.latte.cuda.backend;

import dev.latte.core.Conv2dParams;
import dev.latte.core.Int8Mode;
import dev.latte.core.OpChecks;
import dev.latte.core.Shape;
import dev.latte.core.StorageType;
import dev.latte.core.Tensor;
import dev.latte.cuda.KernelArgs;

import static dev.latte.cuda.backend.Launch.blocks;
import static dev.latte.cuda.backend.Launch.check;
import static dev.latte.cuda.backend.Launch.leading;
import static dev.latte.cuda.backend.Launch.ptr;

/**
 * Launchers of {@link CudaBackend#linearInt8} and {@link CudaBackend#conv2dInt8} ({@code int8_ops.cu}
 * and the s8 GEMM of {@link Int8Gemm}), matching the CPU reference {@code CpuInt8Ops} op for op.
 * W8A16: one launch of the float GEMM that dequantises the s8 weight in its main loop. W8A8: one
 * launch quantising each activation row (token, or conv output pixel's input patch) into the
 * backend's scratch, one s8 GEMM (mma.sync m16n8k32 on sm_80+, dp4a before) whose epilogue
 * applies a_scale·w_scale + bias, and for a conv a transpose of its [N, P·Q, K] result to NCHW.
 * What W8A8 puts in scratch is {@link #linearScratch} / {@link #convScratch} bytes, reserved with
 * the plan like every other scratch.
 */
final class Int8Ops {
    private static final int GEMM_TILE = 64, GEMM_THREADS = 128, QUANT_THREADS = 256;
    private static final long ALIGN = 256;

    private final Launch l;
    private final ElementwiseLauncher elementwise;
    private Int8Gemm gemm;

    Int8Ops(Launch launch, ElementwiseLauncher elementwise) {
        this.l = launch;
        this.elementwise = elementwise;
    }

    /** W8A8 linear scratch: s8 activations [M, K], their fp32 scales [M], fp32 weight scales and bias [N]. */
    static long linearScratch(long m, int k, int n) {
        return align(m * k) + align(4 * m) + 2 * align(4L * n);
    }

    /** W8A8 conv scratch: s8 patches [M, C·R·S], scales [M], fp32 weight scales and bias [K], the [M, K] result. */
    static long convScratch(long m, int crs, int k, int elementBytes) {
        return linearScratch(m, crs, k) + align(m * k * elementBytes);
    }

    void linear(Tensor xt, Tensor wt, Tensor st, Tensor bt, Int8Mode mode, Tensor outt) {
        String what = "linearInt8 " + mode + ": " + OpChecks.linear(xt, wt, bt, outt).substring("linear: ".length())
                + ", scale " + st.shape();
        int outF = wt.shape().dim(0), in = wt.shape().dim(1);
        CudaTensor x = l.cuda(what, xt), q = int8(what, l.cuda(what, wt)), scale = l.cuda(what, st);
        CudaTensor out = l.cuda(what, outt), bias = bt == null ? null : l.cuda(what, bt);
        check(scale.shape().equals(Shape.of(outF)), what);
        Launch.apart(what, out, x, "x");
        long m = leading(xt.shape());
        check(m < Integer.MAX_VALUE, what);
        if (m == 0 || outF == 0) {
            return;
        }
        if (mode == Int8Mode.W8A16) {
            l.kernel("int8_ops.cu", "linear_w8").launch(blocks(m, GEMM_TILE), blocks(outF, GEMM_TILE), 1,
                    GEMM_THREADS, 1, 1, 0, new KernelArgs().ptr(x.ptr()).ptr(q.ptr()).ptr(scale.ptr())
                            .ptr(ptr(bias)).ptr(out.ptr()).i32((int) m).i32(outF).i32(in));
            return;
        }
        long base = l.scratch(linearScratch(m, in, outF));
        long xq = base, sa = xq + align(m * in), sb = sa + align(4 * m), b32 = sb + align(4L * outF);
        l.kernel("int8_ops.cu", "quantize_rows").launch((int) m, 1, 1, QUANT_THREADS, 1, 1, 0,
                new KernelArgs().ptr(x.ptr()).ptr(xq).ptr(sa).i32(in));
        scaled(xq, q.ptr(), out.ptr(), sa, sb, b32, scale, bias, (int) m, outF, in);
    }

    void conv(Tensor xt, Tensor wt, Tensor st, Tensor bt, Conv2dParams p, Int8Mode mode, Tensor outt) {
        Shape xs = xt.shape(), ws = wt.shape();
        String what = "conv2dInt8 " + mode + ": " + OpChecks.conv2d(xt, xs.dim(-2), xs.dim(-1), wt, bt, p, outt, "")
                .substring("conv2d: ".length()) + ", scale " + st.shape();
        int n = xs.dim(0), c = xs.dim(1), h = xs.dim(2), w = xs.dim(3);
        int k = ws.dim(0), r = ws.dim(2), s = ws.dim(3);
        int pOut = p.outHeight(h, r), qOut = p.outWidth(w, s);
        CudaTensor x = l.cuda(what, xt), q = int8(what, l.cuda(what, wt)), scale = l.cuda(what, st);
        CudaTensor out = l.cuda(what, outt), bias = bt == null ? null : l.cuda(what, bt);
        check(scale.shape().equals(Shape.of(k)), what);
        Launch.apart(what, out, x, "x");
        long m = (long) n * pOut * qOut, crs = (long) c * r * s;
        check(m < Integer.MAX_VALUE && crs < Integer.MAX_VALUE, what + " (too large)");
        if (m == 0 || k == 0) {
            return;
        }
        if (mode == Int8Mode.W8A16) {
            l.kernel("int8_ops.cu", "conv2d_w8").launch(blocks(m, GEMM_TILE), blocks(k, GEMM_TILE), 1, GEMM_THREADS,
                    1, 1, 0, new KernelArgs().ptr(x.ptr()).ptr(q.ptr()).ptr(scale.ptr()).ptr(ptr(bias)).ptr(out.ptr())
                            .i32(n).i32(c).i32(h).i32(w).i32(k).i32(r).i32(s).i32(pOut).i32(qOut)
                            .i32(p.strideH()).i32(p.strideW()).i32(p.padTop()).i32(p.padLeft()));
            return;
        }
        int elementBytes = l.dtype().bytes();
        long base = l.scratch(convScratch(m, (int) crs, k, elementBytes));
        long xq = base, sa = xq + align(m * crs), sb = sa + align(4 * m), b32 = sb + align(4L * k);
        long tokens = b32 + align(4L * k);
        l.kernel("int8_ops.cu", "quantize_patches").launch((int) m, 1, 1, QUANT_THREADS, 1, 1, 0, new KernelArgs()
                .ptr(x.ptr()).ptr(xq).ptr(sa).i32(c).i32(h).i32(w).i32(r).i32(s).i32(pOut).i32(qOut)
                .i32(p.strideH()).i32(p.strideW()).i32(p.padTop()).i32(p.padLeft()));
        scaled(xq, q.ptr(), tokens, sa, sb, b32, scale, bias, (int) m, k, (int) crs);
        elementwise.transpose(what, tokens, out.ptr(), n, pOut * qOut, k);   // [N, P·Q, K] → [N, K, P, Q]
    }

    /** out [m, n] = (xq·qᵀ)·sa[m]·scale[n] + bias[n], in the backend's float type. */
    private void scaled(long xq, long q, long out, long sa, long sb, long b32, CudaTensor scale, CudaTensor bias,
                        int m, int n, int k) {
        boolean fp16 = l.dtype() == StorageType.F16;
        long sbPtr = scale.ptr(), biasPtr = ptr(bias);
        if (fp16) {   // the s8 GEMM's epilogue reads fp32 scales and bias
            toF32(scale.ptr(), sb, n);
            sbPtr = sb;
            if (bias != null) {
                toF32(bias.ptr(), b32, n);
                biasPtr = b32;
            }
        }
        if (gemm == null) {
            gemm = new Int8Gemm(l.library());
        }
        gemm.gemmScaled(xq, q, out, fp16, sa, sbPtr, biasPtr, m, n, k, Int8Gemm.Algo.AUTO);
    }

    private void toF32(long src, long dst, int n) {
        l.kernel("int8_ops.cu", "to_f32").launch(blocks(n, 256), 1, 1, 256, 1, 1, 0,
                new KernelArgs().ptr(src).ptr(dst).i32(n));
    }

    private static CudaTensor int8(String what, CudaTensor t) {
        check(t.dtype() == StorageType.I8, what + " (weight " + t + " is not an int8 tensor: uploadInt8)");
        return t;
    }

    private static long align(long bytes) {
        return (bytes + ALIGN - 1) / ALIGN * ALIGN;
    }
}
