package dev.latte.tests.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.latte.core.Backend;
import dev.latte.core.Compare;
import dev.latte.core.Conv2dParams;
import dev.latte.core.NormAct;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cpu.CpuBackend;
import dev.latte.cuda.CudaContext;
import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.CudaBackend.Precision;
import dev.latte.cuda.backend.CudaTensor;
import dev.latte.cuda.backend.Int8Gemm;
import dev.latte.tests.Resources;
import dev.latte.weights.SafeTensorsFile;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Every CUDA op against the CPU reference on random inputs (the shape of ggml's test-backend-ops):
 * one table of cases — small, odd and tile-edge shapes by default (CI runs them on the emulated
 * device), Stable Diffusion 1.5's own shapes with {@code -Dlatte.cases=sd15} — each run on both backends in fp32
 * (≥ 100 dB) and fp16 (≥ 50 dB; the CPU then gets the same fp16-rounded inputs, so the gate
 * measures the kernel, not the input rounding), every element within a bound besides the PSNR
 * ({@link Compare#bound}), with a NaN/Inf check and sentinel bytes around every
 * CUDA output that must come back untouched (out-of-bounds writes). Skips, naming the reason,
 * where no CUDA device can be opened.
 */
class CudaOpsTest {
    static final double MIN_PSNR_FP32 = 100, MIN_PSNR_FP16 = 50;
    /**
     * Per-element bounds |d| ≤ atol + rtol·|ref| (outputs are O(1) by construction): fp32 allows a
     * long fp32 sum's rounding, fp16 the fp16 rounding of operands and output; a wrong row or
     * tile is off by O(1) and fails either.
     */
    static final double ATOL_FP32 = 5e-5, RTOL_FP32 = 1e-5, ATOL_FP16 = 5e-3, RTOL_FP16 = 5e-3;

    static CudaContext ctx;
    static CpuBackend cpu;

    @BeforeAll
    static void open() {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        ctx = CudaContext.open(0);
        cpu = new CpuBackend();
    }

    @AfterAll
    static void close() {
        if (cpu != null) {
            cpu.close();
        }
        if (ctx != null) {
            ctx.close();
        }
    }

    /** How an input is drawn. */
    enum Fill { NORMAL, WEIGHT, GAMMA, TIMESTEP }

    record In(Shape shape, Fill fill) {
    }

    static In n(int... dims) {
        return new In(Shape.of(dims), Fill.NORMAL);
    }

    /** A conv or linear weight, N(0, 1/fan_in) as the goldens' models are drawn, so outputs stay O(1). */
    static In w(int... dims) {
        return new In(Shape.of(dims), Fill.WEIGHT);
    }

    static In gamma(int c) {
        return new In(Shape.of(c), Fill.GAMMA);
    }

    /** Runs the op on one backend and returns the tensor holding its result. */
    interface Run {
        Tensor run(Backend b, Tensor[] in);
    }

    record Case(String name, List<In> inputs, Run run) {
    }

    static Case c(String name, Run run, In... inputs) {
        return new Case(name, List.of(inputs), run);
    }

    static Tensor conv(Backend b, Tensor x, NormAct norm, Tensor w, Tensor bias, Conv2dParams p, Tensor res) {
        Shape xs = x.shape(), ws = w.shape();
        Tensor out = out(b, Shape.of(xs.dim(0), ws.dim(0), p.outHeight(xs.dim(2), ws.dim(2)),
                p.outWidth(xs.dim(3), ws.dim(3))));
        b.conv2dFused(x, norm, w, bias, p, res, out);
        return out;
    }

    /** Bytes of sentinel on each side of every CUDA output (ggml's untouched-sentinel check). */
    static final int GUARD = 4096;
    static final byte SENTINEL = 0x5A;

    /** An output's arena: the view sits GUARD bytes in, sentinel bytes on both sides. */
    record Guarded(CudaTensor arena, long bytes) {
    }

    static final List<Guarded> guards = new ArrayList<>();

    /** The op's output: on CUDA a view into a sentinel-filled arena, so stray writes are caught. */
    static Tensor out(Backend b, Shape s) {
        if (b instanceof CudaBackend cb) {
            long bytes = s.numel() * cb.activationBytes();
            CudaTensor arena = (CudaTensor) cb.arena(bytes + 2L * GUARD);
            ctx.memsetD8(arena.ptr(), SENTINEL, arena.bytes());
            guards.add(new Guarded(arena, bytes));
            return cb.view(arena, GUARD, s);
        }
        return b.allocate(s);
    }

    /** Every sentinel byte is intact; releases the arenas. */
    static void checkGuards(CudaBackend b, String what) {
        try {
            for (Guarded g : guards) {
                byte[] head = new byte[GUARD], tail = new byte[GUARD];
                ctx.copyDtoH(MemorySegment.ofArray(head), g.arena().ptr(), GUARD);
                ctx.copyDtoH(MemorySegment.ofArray(tail), g.arena().ptr() + GUARD + g.bytes(), GUARD);
                for (int i = 0; i < GUARD; i++) {
                    assertEquals(SENTINEL, head[i], what + ": write " + (GUARD - i) + " bytes before the output");
                    assertEquals(SENTINEL, tail[i], what + ": write " + i + " bytes past the end of the output");
                }
            }
        } finally {
            for (Guarded g : guards) {
                b.release(g.arena());
            }
            guards.clear();
        }
    }

    /** Which table runs: {@code -Dlatte.cases=sd15} for SD1.5's shapes, else the CI table. */
    static List<Case> cases() {
        String which = System.getProperty("latte.cases", "ci");
        return switch (which) {
            case "ci" -> ciCases();
            case "sd15" -> sd15Cases();
            default -> throw new IllegalArgumentException("-Dlatte.cases=" + which + ": ci or sd15");
        };
    }

    /**
     * Small shapes that still cross every code path of every kernel: GEMM K not a multiple of the
     * 32-wide k-step, M and N below, at and just past the 64×64 tile, GroupNorm with 8 and 32
     * groups, SD's head dims 40/64/80/160 (own kernels) and 48 (generic) over self keys and 77
     * cross keys, odd spatial sizes and strides. Sized for the emulated device in CI.
     */
    static List<Case> ciCases() {
        Conv2dParams s1p1 = Conv2dParams.of(1, 1), s1p0 = Conv2dParams.of(1, 0), s2p1 = Conv2dParams.of(2, 1);
        List<Case> cs = new ArrayList<>();
        // convolutions (implicit GEMM: M = N·P·Q pixels, N = K filters, K = C·R·S)
        cs.add(c("conv_in 4→72 3x3 19x21", (b, i) -> conv(b, i[0], null, i[1], i[2], s1p1, null),
                n(2, 4, 19, 21), w(72, 4, 3, 3), n(72)));
        cs.add(c("conv 64→64 3x3 8x8 (tile edges)", (b, i) -> conv(b, i[0], null, i[1], i[2], s1p1, null),
                n(2, 64, 8, 8), w(64, 64, 3, 3), n(64)));
        cs.add(c("conv GN8+SiLU 40→72 3x3 11x13 +residual", (b, i) -> conv(b, i[0],
                new NormAct(i[1], i[2], 8, 1e-5f, true), i[3], i[4], s1p1, i[5]),
                n(2, 40, 11, 13), gamma(40), n(40), w(72, 40, 3, 3), n(72), n(2, 72, 11, 13)));
        cs.add(c("conv GN32+SiLU 96→65 3x3 9x7", (b, i) -> conv(b, i[0],
                new NormAct(i[1], i[2], 32, 1e-5f, true), i[3], i[4], s1p1, null),
                n(2, 96, 9, 7), gamma(96), n(96), w(65, 96, 3, 3), n(65)));
        cs.add(c("conv GN32 (no SiLU) 1x1 96→40 10x10", (b, i) -> conv(b, i[0],
                new NormAct(i[1], i[2], 32, 1e-6f, false), i[3], null, s1p0, null),
                n(2, 96, 10, 10), gamma(96), n(96), w(40, 96, 1, 1)));
        cs.add(c("conv shortcut 1x1 120→72 9x9 +residual", (b, i) -> conv(b, i[0], null, i[1], i[2], s1p0, i[3]),
                n(2, 120, 9, 9), w(72, 120, 1, 1), n(72), n(2, 72, 9, 9)));
        cs.add(c("downsample 48 3x3 s2 17x15", (b, i) -> conv(b, i[0], null, i[1], i[2], s2p1, null),
                n(2, 48, 17, 15), w(48, 48, 3, 3), n(48)));
        cs.add(c("downsample asymmetric pad 0,0,1,1 s2 33x31", (b, i) -> conv(b, i[0], null, i[1], i[2],
                new Conv2dParams(2, 2, 0, 0, 1, 1), null), n(1, 40, 33, 31), w(24, 40, 3, 3), n(24)));
        cs.add(c("conv_out GN32+SiLU 64→4 3x3 12x10", (b, i) -> conv(b, i[0],
                new NormAct(i[1], i[2], 32, 1e-5f, true), i[3], i[4], s1p1, null),
                n(2, 64, 12, 10), gamma(64), n(64), w(4, 64, 3, 3), n(4)));
        cs.add(c("upsample2d 48 ×2 5x6→10x12 then 3x3", (b, i) -> {
            Tensor o = out(b, Shape.of(2, 48, 10, 12));
            b.conv2dUpsampled(i[0], 10, 12, i[1], i[2], s1p1, o);
            return o;
        }, n(2, 48, 5, 6), w(48, 48, 3, 3), n(48)));
        cs.add(c("upsample2d to a skip's odd size 5x4→9x7", (b, i) -> {
            Tensor o = out(b, Shape.of(1, 24, 9, 7));
            b.conv2dUpsampled(i[0], 9, 7, i[1], i[2], s1p1, o);
            return o;
        }, n(1, 24, 5, 4), w(24, 24, 3, 3), n(24)));
        cs.add(c("conv odd 7→5 5x3 13x11", (b, i) -> conv(b, i[0], null, i[1], null,
                new Conv2dParams(1, 2, 2, 1, 2, 1), null), n(3, 7, 13, 11), w(5, 7, 5, 3)));
        // norms
        cs.add(c("groupNorm 32 +SiLU 96x13x11", (b, i) -> {
            Tensor o = out(b, i[0].shape());
            b.groupNorm(i[0], i[1], i[2], 32, 1e-5f, true, o);
            return o;
        }, n(2, 96, 13, 11), gamma(96), n(96)));
        cs.add(c("groupNorm 8 eps 1e-6 40x5x7", (b, i) -> {
            Tensor o = out(b, i[0].shape());
            b.groupNorm(i[0], i[1], i[2], 8, 1e-6f, false, o);
            return o;
        }, n(2, 40, 5, 7), gamma(40), n(40)));
        cs.add(c("layerNorm 77x200", (b, i) -> {
            Tensor o = out(b, i[0].shape());
            b.layerNorm(i[0], i[1], i[2], 1e-5f, o);
            return o;
        }, n(2, 77, 200), gamma(200), n(200)));
        cs.add(c("layerNorm 33x1280 in place", (b, i) -> {
            b.layerNorm(i[0], i[1], i[2], 1e-5f, i[0]);
            return i[0];
        }, n(2, 33, 1280), gamma(1280), n(1280)));
        // linear (M tokens × N out × K in)
        cs.add(c("linear 200→136 77 tokens +bias", (b, i) -> lin(b, i[0], i[1], i[2]),
                n(2, 77, 200), w(136, 200), n(136)));
        cs.add(c("linear 64→64 64 tokens (tile edges)", (b, i) -> lin(b, i[0], i[1], i[2]),
                n(2, 64, 64), w(64, 64), n(64)));
        cs.add(c("linear 96→65 65 tokens", (b, i) -> lin(b, i[0], i[1], null), n(1, 65, 96), w(65, 96)));
        cs.add(c("linear context 768→320 77 tokens", (b, i) -> lin(b, i[0], i[1], null),
                n(1, 77, 768), w(320, 768)));
        cs.add(c("linear FF out 1000→96 19 tokens", (b, i) -> lin(b, i[0], i[1], i[2]),
                n(1, 19, 1000), w(96, 1000), n(96)));
        cs.add(c("linear time 320→1280", (b, i) -> lin(b, i[0], i[1], i[2]), n(2, 320), w(1280, 320), n(1280)));
        // attention: each own-kernel head dim over self keys and 77 cross keys, and the generic kernel
        cs.add(c("attention self h2 d40 s100", (b, i) -> att(b, i, 2), n(2, 100, 80), n(2, 100, 80), n(2, 100, 80)));
        cs.add(c("attention cross h2 d40 s70 k77", (b, i) -> att(b, i, 2), n(2, 70, 80), n(2, 77, 80), n(2, 77, 80)));
        cs.add(c("attention self h2 d80 s65", (b, i) -> att(b, i, 2), n(1, 65, 160), n(1, 65, 160), n(1, 65, 160)));
        cs.add(c("attention cross h1 d80 s33 k77", (b, i) -> att(b, i, 1), n(2, 33, 80), n(2, 77, 80), n(2, 77, 80)));
        cs.add(c("attention self h2 d160 s40", (b, i) -> att(b, i, 2), n(1, 40, 320), n(1, 40, 320), n(1, 40, 320)));
        cs.add(c("attention cross h1 d160 s37 k77", (b, i) -> att(b, i, 1), n(2, 37, 160), n(2, 77, 160), n(2, 77, 160)));
        cs.add(c("attention h5 d64 s90 k77", (b, i) -> att(b, i, 5), n(1, 90, 320), n(1, 77, 320), n(1, 77, 320)));
        cs.add(c("attention generic h3 d48 s100 k33", (b, i) -> att(b, i, 3), n(2, 100, 144), n(2, 33, 144), n(2, 33, 144)));
        // activations and the rest
        cs.add(c("silu 40x13x11", (b, i) -> unary(b, i[0], Backend::silu), n(2, 40, 13, 11)));
        cs.add(c("gelu 77x330", (b, i) -> unary(b, i[0], Backend::gelu), n(2, 77, 330)));
        cs.add(c("geglu 77x660", (b, i) -> {
            Tensor o = out(b, Shape.of(2, 77, 330));
            b.geglu(i[0], o);
            return o;
        }, n(2, 77, 660)));
        cs.add(c("timestepEmbedding 320 flip", (b, i) -> {
            Tensor o = out(b, Shape.of(2, 320));
            b.timestepEmbedding(i[0], true, 0f, o);
            return o;
        }, new In(Shape.of(2), Fill.TIMESTEP)));
        cs.add(c("timestepEmbedding 321 shift 1", (b, i) -> {
            Tensor o = out(b, Shape.of(3, 321));
            b.timestepEmbedding(i[0], false, 1f, o);
            return o;
        }, new In(Shape.of(3), Fill.TIMESTEP)));
        cs.add(c("upsampleNearest 48 7→14", (b, i) -> {
            Tensor o = out(b, Shape.of(2, 48, 14, 14));
            b.upsampleNearest(i[0], o);
            return o;
        }, n(2, 48, 7, 7)));
        cs.add(c("upsampleNearest 3x5 → 7x11", (b, i) -> {
            Tensor o = out(b, Shape.of(2, 3, 7, 11));
            b.upsampleNearest(i[0], o);
            return o;
        }, n(2, 3, 3, 5)));
        cs.add(c("concatChannels 72+40 9x7", (b, i) -> {
            Tensor o = out(b, Shape.of(2, 112, 9, 7));
            b.concatChannels(i[0], i[1], o);
            return o;
        }, n(2, 72, 9, 7), n(2, 40, 9, 7)));
        cs.add(c("add in place 40x11x13", (b, i) -> {
            b.add(i[0], i[1], i[1]);
            return i[1];
        }, n(2, 40, 11, 13), n(2, 40, 11, 13)));
        cs.add(c("addChannelBias 72x9x7", (b, i) -> {
            Tensor o = out(b, i[0].shape());
            b.addChannelBias(i[0], i[1], o);
            return o;
        }, n(2, 72, 9, 7), n(2, 72)));
        cs.add(c("scale in place", (b, i) -> {
            b.scale(i[0], 0.18215f, i[0]);
            return i[0];
        }, n(2, 4, 19, 21)));
        cs.add(c("nchwToTokens 72x9x7 (partial 32x32 tiles)", (b, i) -> {
            Tensor o = out(b, Shape.of(2, 63, 72));
            b.nchwToTokens(i[0], o);
            return o;
        }, n(2, 72, 9, 7)));
        cs.add(c("nchwToTokens odd 5x7x9", (b, i) -> {
            Tensor o = out(b, Shape.of(3, 63, 5));
            b.nchwToTokens(i[0], o);
            return o;
        }, n(3, 5, 7, 9)));
        cs.add(c("tokensToNchw 64x64 (whole tiles)", (b, i) -> {
            Tensor o = out(b, Shape.of(2, 64, 8, 8));
            b.tokensToNchw(i[0], o);
            return o;
        }, n(2, 64, 64)));
        return cs;
    }

    /** Stable Diffusion 1.5's own shapes (-Dlatte.cases=sd15; about 25 minutes on the emulated device). */
    static List<Case> sd15Cases() {
        Conv2dParams s1p1 = Conv2dParams.of(1, 1), s1p0 = Conv2dParams.of(1, 0), s2p1 = Conv2dParams.of(2, 1);
        List<Case> cs = new ArrayList<>();
        // convolutions: conv_in, resnet convs (fused GN+SiLU, residual), shortcut 1×1, downsample, conv_out
        cs.add(c("conv_in 4→320 3x3 64x64", (b, i) -> conv(b, i[0], null, i[1], i[2], s1p1, null),
                n(2, 4, 64, 64), w(320, 4, 3, 3), n(320)));
        cs.add(c("conv 320→320 3x3 64x64", (b, i) -> conv(b, i[0], null, i[1], i[2], s1p1, null),
                n(1, 320, 64, 64), w(320, 320, 3, 3), n(320)));
        cs.add(c("conv GN32+SiLU 640→640 3x3 32x32 +residual", (b, i) -> conv(b, i[0],
                new NormAct(i[1], i[2], 32, 1e-5f, true), i[3], i[4], s1p1, i[5]),
                n(2, 640, 32, 32), gamma(640), n(640), w(640, 640, 3, 3), n(640), n(2, 640, 32, 32)));
        cs.add(c("conv GN32+SiLU 2560→1280 3x3 8x8", (b, i) -> conv(b, i[0],
                new NormAct(i[1], i[2], 32, 1e-5f, true), i[3], i[4], s1p1, null),
                n(2, 2560, 8, 8), gamma(2560), n(2560), w(1280, 2560, 3, 3), n(1280)));
        cs.add(c("conv GN32 (no SiLU) 1x1 960→640 16x16", (b, i) -> conv(b, i[0],
                new NormAct(i[1], i[2], 32, 1e-6f, false), i[3], null, s1p0, null),
                n(2, 960, 16, 16), gamma(960), n(960), w(640, 960, 1, 1)));
        cs.add(c("conv shortcut 1x1 1920→640 32x32 +residual", (b, i) -> conv(b, i[0], null, i[1], i[2], s1p0, i[3]),
                n(2, 1920, 32, 32), w(640, 1920, 1, 1), n(640), n(2, 640, 32, 32)));
        cs.add(c("downsample 320 3x3 s2 64→32", (b, i) -> conv(b, i[0], null, i[1], i[2], s2p1, null),
                n(2, 320, 64, 64), w(320, 320, 3, 3), n(320)));
        cs.add(c("downsample asymmetric pad 0,0,1,1 s2 33x31", (b, i) -> conv(b, i[0], null, i[1], i[2],
                new Conv2dParams(2, 2, 0, 0, 1, 1), null), n(1, 40, 33, 31), w(24, 40, 3, 3), n(24)));
        cs.add(c("conv_out GN32+SiLU 320→4 3x3 64x64", (b, i) -> conv(b, i[0],
                new NormAct(i[1], i[2], 32, 1e-5f, true), i[3], i[4], s1p1, null),
                n(2, 320, 64, 64), gamma(320), n(320), w(4, 320, 3, 3), n(4)));
        cs.add(c("upsample2d 1280 ×2 8→16 then 3x3", (b, i) -> {
            Tensor o = out(b, Shape.of(2, 1280, 16, 16));
            b.conv2dUpsampled(i[0], 16, 16, i[1], i[2], s1p1, o);
            return o;
        }, n(2, 1280, 8, 8), w(1280, 1280, 3, 3), n(1280)));
        cs.add(c("upsample2d to a skip's odd size 5x4→9x7", (b, i) -> {
            Tensor o = out(b, Shape.of(1, 24, 9, 7));
            b.conv2dUpsampled(i[0], 9, 7, i[1], i[2], s1p1, o);
            return o;
        }, n(1, 24, 5, 4), w(24, 24, 3, 3), n(24)));
        cs.add(c("conv odd 7→5 5x3 13x11", (b, i) -> conv(b, i[0], null, i[1], null,
                new Conv2dParams(1, 2, 2, 1, 2, 1), null), n(3, 7, 13, 11), w(5, 7, 5, 3)));
        // norms
        cs.add(c("groupNorm 32 +SiLU 320x64x64", (b, i) -> {
            Tensor o = out(b, i[0].shape());
            b.groupNorm(i[0], i[1], i[2], 32, 1e-5f, true, o);
            return o;
        }, n(2, 320, 64, 64), gamma(320), n(320)));
        cs.add(c("groupNorm 32 eps 1e-6 1920x16x16", (b, i) -> {
            Tensor o = out(b, i[0].shape());
            b.groupNorm(i[0], i[1], i[2], 32, 1e-6f, false, o);
            return o;
        }, n(2, 1920, 16, 16), gamma(1920), n(1920)));
        cs.add(c("layerNorm 4096x320", (b, i) -> {
            Tensor o = out(b, i[0].shape());
            b.layerNorm(i[0], i[1], i[2], 1e-5f, o);
            return o;
        }, n(2, 4096, 320), gamma(320), n(320)));
        cs.add(c("layerNorm 64x1280 in place", (b, i) -> {
            b.layerNorm(i[0], i[1], i[2], 1e-5f, i[0]);
            return i[0];
        }, n(2, 64, 1280), gamma(1280), n(1280)));
        // linear: attention projections, context k/v, GEGLU proj, FF out, time embedding
        cs.add(c("linear 320→320 4096 tokens +bias", (b, i) -> lin(b, i[0], i[1], i[2]),
                n(2, 4096, 320), w(320, 320), n(320)));
        cs.add(c("linear context 768→320 77 tokens", (b, i) -> lin(b, i[0], i[1], null),
                n(2, 77, 768), w(320, 768)));
        cs.add(c("linear GEGLU proj 640→5120 1024 tokens", (b, i) -> lin(b, i[0], i[1], i[2]),
                n(2, 1024, 640), w(5120, 640), n(5120)));
        cs.add(c("linear FF out 5120→1280 64 tokens", (b, i) -> lin(b, i[0], i[1], i[2]),
                n(2, 64, 5120), w(1280, 5120), n(1280)));
        cs.add(c("linear time 320→1280", (b, i) -> lin(b, i[0], i[1], i[2]), n(2, 320), w(1280, 320), n(1280)));
        // attention: SD's head dims, self and 77-token cross, and the generic kernel
        cs.add(c("attention self h8 d40 s4096", (b, i) -> att(b, i, 8), n(2, 4096, 320), n(2, 4096, 320), n(2, 4096, 320)));
        cs.add(c("attention cross h8 d40 s4096 k77", (b, i) -> att(b, i, 8), n(2, 4096, 320), n(2, 77, 320), n(2, 77, 320)));
        cs.add(c("attention self h8 d80 s1024", (b, i) -> att(b, i, 8), n(2, 1024, 640), n(2, 1024, 640), n(2, 1024, 640)));
        cs.add(c("attention cross h8 d80 s1024 k77", (b, i) -> att(b, i, 8), n(2, 1024, 640), n(2, 77, 640), n(2, 77, 640)));
        cs.add(c("attention self h8 d160 s256", (b, i) -> att(b, i, 8), n(2, 256, 1280), n(2, 256, 1280), n(2, 256, 1280)));
        cs.add(c("attention cross h8 d160 s64 k77", (b, i) -> att(b, i, 8), n(2, 64, 1280), n(2, 77, 1280), n(2, 77, 1280)));
        cs.add(c("attention h5 d64 s300 k77", (b, i) -> att(b, i, 5), n(1, 300, 320), n(1, 77, 320), n(1, 77, 320)));
        cs.add(c("attention generic h3 d48 s100 k33", (b, i) -> att(b, i, 3), n(2, 100, 144), n(2, 33, 144), n(2, 33, 144)));
        // activations and the rest
        cs.add(c("silu 320x64x64", (b, i) -> unary(b, i[0], Backend::silu), n(2, 320, 64, 64)));
        cs.add(c("gelu 1024x2560", (b, i) -> unary(b, i[0], Backend::gelu), n(2, 1024, 2560)));
        cs.add(c("geglu 1024x5120", (b, i) -> {
            Tensor o = out(b, Shape.of(2, 1024, 2560));
            b.geglu(i[0], o);
            return o;
        }, n(2, 1024, 5120)));
        cs.add(c("timestepEmbedding 320 flip", (b, i) -> {
            Tensor o = out(b, Shape.of(2, 320));
            b.timestepEmbedding(i[0], true, 0f, o);
            return o;
        }, new In(Shape.of(2), Fill.TIMESTEP)));
        cs.add(c("timestepEmbedding 321 shift 1", (b, i) -> {
            Tensor o = out(b, Shape.of(3, 321));
            b.timestepEmbedding(i[0], false, 1f, o);
            return o;
        }, new In(Shape.of(3), Fill.TIMESTEP)));
        cs.add(c("upsampleNearest 1280 8→16", (b, i) -> {
            Tensor o = out(b, Shape.of(2, 1280, 16, 16));
            b.upsampleNearest(i[0], o);
            return o;
        }, n(2, 1280, 8, 8)));
        cs.add(c("upsampleNearest 3x5 → 7x11", (b, i) -> {
            Tensor o = out(b, Shape.of(2, 3, 7, 11));
            b.upsampleNearest(i[0], o);
            return o;
        }, n(2, 3, 3, 5)));
        cs.add(c("concatChannels 1280+640 16x16", (b, i) -> {
            Tensor o = out(b, Shape.of(2, 1920, 16, 16));
            b.concatChannels(i[0], i[1], o);
            return o;
        }, n(2, 1280, 16, 16), n(2, 640, 16, 16)));
        cs.add(c("add in place 640x32x32", (b, i) -> {
            b.add(i[0], i[1], i[1]);
            return i[1];
        }, n(2, 640, 32, 32), n(2, 640, 32, 32)));
        cs.add(c("addChannelBias 1280x16x16", (b, i) -> {
            Tensor o = out(b, i[0].shape());
            b.addChannelBias(i[0], i[1], o);
            return o;
        }, n(2, 1280, 16, 16), n(2, 1280)));
        cs.add(c("scale in place", (b, i) -> {
            b.scale(i[0], 0.18215f, i[0]);
            return i[0];
        }, n(2, 4, 64, 64)));
        cs.add(c("nchwToTokens 320x64x64", (b, i) -> {
            Tensor o = out(b, Shape.of(2, 4096, 320));
            b.nchwToTokens(i[0], o);
            return o;
        }, n(2, 320, 64, 64)));
        cs.add(c("nchwToTokens odd 5x7x9", (b, i) -> {
            Tensor o = out(b, Shape.of(3, 63, 5));
            b.nchwToTokens(i[0], o);
            return o;
        }, n(3, 5, 7, 9)));
        cs.add(c("tokensToNchw 1024x640", (b, i) -> {
            Tensor o = out(b, Shape.of(2, 640, 32, 32));
            b.tokensToNchw(i[0], o);
            return o;
        }, n(2, 1024, 640)));
        return cs;
    }

    interface Unary {
        void apply(Backend b, Tensor x, Tensor out);
    }

    static Tensor unary(Backend b, Tensor x, Unary op) {
        Tensor o = out(b, x.shape());
        op.apply(b, x, o);
        return o;
    }

    static Tensor lin(Backend b, Tensor x, Tensor w, Tensor bias) {
        int[] d = x.shape().dims();
        d[d.length - 1] = w.shape().dim(0);
        Tensor o = out(b, Shape.of(d));
        b.linear(x, w, bias, o);
        return o;
    }

    static Tensor att(Backend b, Tensor[] i, int heads) {
        Tensor o = out(b, i[0].shape());
        b.attention(i[0], i[1], i[2], heads, (float) (1 / Math.sqrt(i[0].shape().dim(2) / heads)), o);
        return o;
    }

    static float[] draw(In in, Random rnd, boolean fp16) {
        float[] v = new float[in.shape().size()];
        for (int j = 0; j < v.length; j++) {
            v[j] = switch (in.fill()) {
                case NORMAL -> (float) rnd.nextGaussian();
                case WEIGHT -> (float) (rnd.nextGaussian() / Math.sqrt(in.shape().numel() / in.shape().dim(0)));
                case GAMMA -> (float) (1 + 0.1 * rnd.nextGaussian());
                case TIMESTEP -> rnd.nextInt(1000);
            };
            if (fp16) {
                v[j] = Float.float16ToFloat(Float.floatToFloat16(v[j]));
            }
        }
        return v;
    }

    @TestFactory
    Stream<DynamicTest> everyOpAgainstCpu() {
        return Stream.of(Precision.FP32, Precision.FP16).flatMap(prec -> cases().stream().map(cs ->
                DynamicTest.dynamicTest(cs.name() + " " + prec, () -> check(cs, prec))));
    }

    private static void check(Case cs, Precision prec) {
        boolean fp16 = prec == Precision.FP16;
        Random rnd = new Random(cs.name().hashCode());
        List<float[]> host = new ArrayList<>();
        for (In in : cs.inputs()) {
            float[] v = draw(in, rnd, fp16);
            host.add(v);
        }
        float[] reference = runOn(cpu, cs, host);
        float[] result;
        try (CudaBackend gpu = new CudaBackend(ctx, prec)) {
            try {
                result = runOn(gpu, cs, host);
            } finally {
                checkGuards(gpu, cs.name() + " " + prec);
            }
        }
        Compare cmp = Compare.of(reference, result);
        Compare.Bound bound = fp16 ? Compare.bound(reference, result, ATOL_FP16, RTOL_FP16)
                : Compare.bound(reference, result, ATOL_FP32, RTOL_FP32);
        double gate = fp16 ? MIN_PSNR_FP16 : MIN_PSNR_FP32;
        System.out.printf(Locale.ROOT, "cuda %s %-48s PSNR %7.2f dB, max |err| %.3e, worst element %.2f x bound%n",
                prec, cs.name(), cmp.psnr(), cmp.maxAbsError(), bound.ratio());
        assertEquals(0, cmp.nonFinite(), cs.name() + ": non-finite values");
        assertTrue(cmp.psnr() >= gate, cs.name() + " " + prec + ": PSNR " + cmp.psnr() + " dB < " + gate);
        assertTrue(bound.ok(), cs.name() + " " + prec + ": " + bound);
    }

    private static float[] runOn(Backend b, Case cs, List<float[]> host) {
        Tensor[] in = new Tensor[host.size()];
        try {
            for (int j = 0; j < in.length; j++) {
                in[j] = b.upload(cs.inputs().get(j).shape(), host.get(j));
            }
            Tensor out = cs.run().run(b, in);
            float[] r = b.download(out);
            boolean aliased = false;
            for (Tensor t : in) {
                aliased |= t == out;
            }
            if (!aliased && !(b instanceof CudaBackend)) {
                b.release(out); // CUDA outputs are views of guarded arenas, released by checkGuards
            }
            return r;
        } finally {
            for (Tensor t : in) {
                if (t != null) {
                    b.release(t);
                }
            }
        }
    }

    // ---------------------------------------------------------------- INT8 GEMM, exact

    /** The golden s8 GEMM (a [64,256] · b [256,128] = c s32) through both kernels, bit-exact. */
    @Test
    void int8GemmGolden() {
        try (SafeTensorsFile f = SafeTensorsFile.open(Resources.golden("ops/int8_gemm.safetensors"));
             CudaBackend gpu = new CudaBackend(ctx, Precision.FP32)) {
            MemorySegment a = f.data("a"), b = f.data("b"), c = f.data("c");
            int m = 64, k = 256, n = 128;
            assertEquals((long) m * k, a.byteSize());
            assertEquals((long) k * n, b.byteSize());
            int[] expected = c.toArray(ValueLayout.JAVA_INT_UNALIGNED);
            long da = ctx.malloc(a.byteSize()), db = ctx.malloc(b.byteSize()), dc = ctx.malloc(4L * m * n);
            try {
                ctx.copyHtoD(da, copy(a), a.byteSize());
                ctx.copyHtoD(db, copy(b), b.byteSize());
                Int8Gemm gemm = new Int8Gemm(gpu.library());
                for (Int8Gemm.Algo algo : List.of(Int8Gemm.Algo.MMA, Int8Gemm.Algo.DP4A)) {
                    ctx.memsetD8(dc, (byte) 0x7f, 4L * m * n);
                    gemm.gemm(da, db, dc, m, n, k, Int8Gemm.BLayout.KN, algo);
                    int[] got = new int[m * n];
                    ctx.copyDtoH(MemorySegment.ofArray(got), dc, 4L * m * n);
                    assertArrayEquals(expected, got, "int8 gemm " + algo);
                }
            } finally {
                ctx.free(da);
                ctx.free(db);
                ctx.free(dc);
            }
        }
    }

    /** Odd sizes, both B layouts and the dequantising epilogue, against a host reference. */
    @Test
    void int8GemmOddShapesAndScaledEpilogue() {
        int m = 77, n = 190, k = 333;
        Random rnd = new Random(8);
        byte[] a = new byte[m * k], bNk = new byte[n * k], bKn = new byte[k * n];
        rnd.nextBytes(a);
        rnd.nextBytes(bNk);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < k; j++) {
                bKn[j * n + i] = bNk[i * k + j];
            }
        }
        float[] sa = new float[m], sb = new float[n], bias = new float[n];
        for (int i = 0; i < m; i++) {
            sa[i] = 0.01f + rnd.nextFloat() * 0.01f;
        }
        for (int i = 0; i < n; i++) {
            sb[i] = 0.001f + rnd.nextFloat() * 0.01f;
            bias[i] = (float) rnd.nextGaussian();
        }
        int[] expected = new int[m * n];
        float[] scaled = new float[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                int s = 0;
                for (int t = 0; t < k; t++) {
                    s += a[i * k + t] * bNk[j * k + t];
                }
                expected[i * n + j] = s;
                scaled[i * n + j] = (float) s * sa[i] * sb[j] + bias[j];
            }
        }
        try (CudaBackend gpu = new CudaBackend(ctx, Precision.FP32)) {
            Int8Gemm gemm = new Int8Gemm(gpu.library());
            long da = upload(a), dkn = upload(bKn), dnk = upload(bNk), dsa = upload(sa), dsb = upload(sb),
                    dbias = upload(bias), dc = ctx.malloc(4L * m * n);
            try {
                for (Int8Gemm.Algo algo : List.of(Int8Gemm.Algo.MMA, Int8Gemm.Algo.DP4A)) {
                    for (Int8Gemm.BLayout layout : Int8Gemm.BLayout.values()) {
                        ctx.memsetD8(dc, (byte) 0x7f, 4L * m * n);
                        gemm.gemm(da, layout == Int8Gemm.BLayout.KN ? dkn : dnk, dc, m, n, k, layout, algo);
                        int[] got = new int[m * n];
                        ctx.copyDtoH(MemorySegment.ofArray(got), dc, 4L * m * n);
                        assertArrayEquals(expected, got, "int8 gemm " + algo + " " + layout);
                    }
                    gemm.gemmScaled(da, dnk, dc, false, dsa, dsb, dbias, m, n, k, algo);
                    float[] got = new float[m * n];
                    ctx.copyDtoH(MemorySegment.ofArray(got), dc, 4L * m * n);
                    Compare cmp = Compare.of(scaled, got);
                    assertTrue(cmp.psnr() >= 120, "scaled int8 gemm " + algo + ": " + cmp);
                    Compare.Bound bound = Compare.bound(scaled, got, 1e-5, 1e-5);
                    assertTrue(bound.ok(), "scaled int8 gemm " + algo + ": " + bound);
                }
            } finally {
                for (long p : new long[] {da, dkn, dnk, dsa, dsb, dbias, dc}) {
                    ctx.free(p);
                }
            }
        }
    }

    private static MemorySegment copy(MemorySegment s) {
        return MemorySegment.ofArray(s.toArray(ValueLayout.JAVA_BYTE));
    }

    private static long upload(byte[] v) {
        long p = ctx.malloc(v.length);
        ctx.copyHtoD(p, MemorySegment.ofArray(v), v.length);
        return p;
    }

    private static long upload(float[] v) {
        long p = ctx.malloc(4L * v.length);
        ctx.copyHtoD(p, MemorySegment.ofArray(v), 4L * v.length);
        return p;
    }
}
