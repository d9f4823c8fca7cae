package dev.latte.cpu;

import dev.latte.core.Conv2dParams;
import dev.latte.core.Int8Mode;
import dev.latte.core.NormAct;
import dev.latte.cpu.gemm.ConvGemm;
import dev.latte.cpu.gemm.FlashAttention;
import dev.latte.cpu.gemm.Gemm;
import dev.latte.cpu.gemm.Int8Packed;
import dev.latte.cpu.gemm.LinearGemm;
import dev.latte.cpu.gemm.Packed;
import java.util.function.IntConsumer;

/**
 * The ops {@link CpuBackend} runs on the Vector API micro-kernels ({@code dev.latte.cpu.gemm}):
 * conv (all fused forms), linear and attention, in fp32 with fp32 accumulation, and the int8
 * conv and linear (W8A16 the same; W8A8 summed exactly). Only this class
 * touches {@code jdk.incubator.vector} types, so that where the JVM runs without that module the
 * backend still loads and takes its scalar paths. Weights that came from {@code upload} are packed
 * for the kernels on first use and the pack kept on the tensor.
 */
final class FastPaths implements Gemm.Parallel {
    private final CpuBackend be;
    private final ScratchPool scratch;

    FastPaths(CpuBackend be, ScratchPool scratch) {
        this.be = be;
        this.scratch = scratch;
    }

    /** Whether the JVM was started with {@code --add-modules jdk.incubator.vector}. */
    static boolean available() {
        return ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
    }

    @Override
    public int threads() {
        return be.threads();
    }

    @Override
    public void forEach(int tasks, IntConsumer body) {
        be.parallelFor(tasks, body);
    }

    void conv(CpuTensor xc, int h, int w, CpuTensor wc, CpuTensor bc, Conv2dParams p, NormAct norm, CpuTensor rc,
              CpuTensor oc) {
        int n = xc.shape().dim(0), c = xc.shape().dim(1), hs = xc.shape().dim(2), ws = xc.shape().dim(3);
        int k = wc.shape().dim(0), r = wc.shape().dim(2), s = wc.shape().dim(3);
        ConvGemm conv = new ConvGemm(n, c, hs, ws, h, w, k, r, s, p.strideH(), p.strideW(), p.padTop(), p.padLeft(),
                p.padBottom(), p.padRight(), norm != null);
        Packed wA = packed(wc, true, k, c * r * s);
        float[][] fold = null;
        if (norm != null) {
            CpuTensor.Read g = CpuBackend.cpu("conv2dFused", norm.gamma()).read();
            CpuTensor.Read b = CpuBackend.cpu("conv2dFused", norm.beta()).read();
            fold = ConvGemm.groupNormFold(this, xc.array(), xc.offset(), n, c, hs * ws, g.array(), g.offset(),
                    b.array(), b.offset(), norm.groups(), norm.eps());
        }
        CpuTensor.Read bias = bc == null ? null : bc.read();
        int gather = conv.gatherFloats();
        float[] xp = gather == 0 ? null : scratch.take(gather);
        try {
            conv.run(this, xc.array(), xc.offset(), fold, norm != null && norm.silu(), wA,
                    bias == null ? null : bias.array(), bias == null ? 0 : bias.offset(),
                    rc == null ? null : rc.array(), rc == null ? 0 : rc.offset(), oc.array(), oc.offset(), xp);
        } finally {
            if (xp != null) {
                scratch.give(xp);
            }
        }
    }

    void linear(CpuTensor xc, int m, int in, CpuTensor wc, int outF, CpuTensor bc, CpuTensor oc) {
        linear(xc, m, in, wc, outF, bc, null, oc);
    }

    /** rc (nullable, may be oc): a residual added as each output row is stored. */
    void linear(CpuTensor xc, int m, int in, CpuTensor wc, int outF, CpuTensor bc, CpuTensor rc, CpuTensor oc) {
        CpuTensor.Read bias = bc == null ? null : bc.read();
        LinearGemm.run(this, xc.array(), xc.offset(), m, in, packed(wc, false, outF, in),
                bias == null ? null : bias.array(), bias == null ? 0 : bias.offset(), rc == null ? null : rc.array(),
                rc == null ? 0 : rc.offset(), oc.array(), oc.offset());
    }

    void attention(CpuTensor qc, CpuTensor kc, CpuTensor vc, int b, int heads, int sq, int sk, int d, float scale,
                   CpuTensor oc) {
        long need = FlashAttention.packFloats(b, heads, sk, d);
        if (need > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("attention: packed K and V of " + need + " floats exceed one array");
        }
        float[] kv = scratch.take((int) need);
        try {
            FlashAttention.run(this, qc.array(), qc.offset(), kc.array(), kc.offset(), vc.array(), vc.offset(), b,
                    heads, sq, sk, d, scale, oc.array(), oc.offset(), kv);
        } finally {
            scratch.give(kv);
        }
    }

    /**
     * The weight packed as a conv's A operand or a linear's B operand; kept on uploaded tensors.
     * A weight read from its mapped file is packed from the file bytes a panel at a time (fp16 and
     * bf16 widened on the way), so no row-major fp32 copy of it is ever made.
     */
    private Packed packed(CpuTensor wc, boolean convA, int rows, int k) {
        int width = convA ? Gemm.MR : Gemm.NR;
        if (wc.uploaded && wc.pack() instanceof Packed pk && pk.rows() == rows && pk.k() == k && pk.width() == width) {
            return pk;
        }
        Packed pk = wc.mapped() != null
                ? Packed.ofRows((r0, nr, dst) -> wc.readInto(r0 * k, dst, 0, nr * k), rows, k, width)
                : convA ? ConvGemm.packWeight(wc.array(), wc.offset(), rows, k)
                : LinearGemm.packWeight(wc.array(), wc.offset(), rows, k);
        if (wc.uploaded) {
            wc.pack(pk);
            be.packed(wc);
        }
        return pk;
    }

    /** linearInt8: x [m, in] → out [m, outF]; {@code scale} per output feature. */
    void linearInt8(CpuTensor xc, int m, int in, CpuInt8Tensor wq, int outF, float[] scale, CpuTensor bc,
                    Int8Mode mode, CpuTensor oc) {
        Int8Packed w = int8Packed(wq, false, outF, in);
        float[] bias = bc == null ? null : bc.array();
        int bo = bc == null ? 0 : bc.offset();
        if (mode == Int8Mode.W8A16) {
            LinearGemm.runW8A16(this, xc.array(), xc.offset(), m, in, w, scale, bias, bo, oc.array(), oc.offset());
        } else {
            LinearGemm.runW8A8(this, xc.array(), xc.offset(), m, in, w, scale, bias, bo, oc.array(), oc.offset());
        }
    }

    /** conv2dInt8 on the implicit GEMM; {@code scale} per output channel. */
    void convInt8(CpuTensor xc, CpuInt8Tensor wq, float[] scale, CpuTensor bc, Conv2dParams p, Int8Mode mode,
                  CpuTensor oc) {
        int n = xc.shape().dim(0), c = xc.shape().dim(1), h = xc.shape().dim(2), w = xc.shape().dim(3);
        int k = wq.shape().dim(0), r = wq.shape().dim(2), s = wq.shape().dim(3);
        boolean w8a8 = mode == Int8Mode.W8A8;
        ConvGemm conv = new ConvGemm(n, c, h, w, h, w, k, r, s, p.strideH(), p.strideW(), p.padTop(), p.padLeft(),
                p.padBottom(), p.padRight(), w8a8);
        Int8Packed wA = int8Packed(wq, true, k, c * r * s);
        float[] bias = bc == null ? null : bc.array();
        int bo = bc == null ? 0 : bc.offset();
        int gather = conv.gatherFloats();
        float[] xp = gather == 0 ? null : scratch.take(gather);
        try {
            if (w8a8) {
                conv.runW8A8(this, xc.array(), xc.offset(), wA, scale, bias, bo, oc.array(), oc.offset(), xp);
            } else {
                conv.runW8A16(this, xc.array(), xc.offset(), wA, scale, bias, bo, oc.array(), oc.offset(), xp);
            }
        } finally {
            if (xp != null) {
                scratch.give(xp);
            }
        }
    }

    /** The int8 weight packed as a conv's A operand or a linear's B operand, kept as the tensor's only copy. */
    private static Int8Packed int8Packed(CpuInt8Tensor wq, boolean convA, int rows, int k) {
        int width = convA ? Gemm.MR : Gemm.NR;
        return (Int8Packed) wq.pack(q -> Int8Packed.ofRows(q, rows, k, width),
                o -> o instanceof Int8Packed pk && pk.rows() == rows && pk.k() == k && pk.width() == width);
    }

    /** The row-major values of an int8 pack. */
    static byte[] unpackInt8(Object pack, int length) {
        byte[] v = ((Int8Packed) pack).unpack();
        if (v.length != length) {
            throw new IllegalStateException("a packed int8 weight of " + v.length + " values for a tensor of " + length);
        }
        return v;
    }

    /** The row-major values a pack was made from. */
    static float[] unpack(Object pack, int length) {
        float[] v = ((Packed) pack).unpack();
        if (v.length != length) {
            throw new IllegalStateException("a packed weight of " + v.length + " values for a tensor of " + length);
        }
        return v;
    }

    /** Floats held by the packed copy of a weight, 0 if it has none. */
    static long packedFloats(CpuTensor t) {
        return t.pack() instanceof Packed pk ? pk.floats() : 0;
    }
}
