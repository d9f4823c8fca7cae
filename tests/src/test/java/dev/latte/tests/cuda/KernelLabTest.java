package dev.latte.tests.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latte.core.Compare;
import dev.latte.core.Conv2dParams;
import dev.latte.core.NormAct;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.CudaBackend.Precision;
import dev.latte.cuda.backend.CudaTensor;
import dev.latte.cuda.backend.Tactics;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * The kernel lab's attention, linear and conv versions side by side, each forced by name, on small shapes that reach
 * every code path (the emulated device is slow): SD1.5's head dims 40/80/160 and 64, 77-token cross
 * attention, key and query counts that leave partial tiles, several key tiles (the cp.async double
 * buffer), the causal mask, and head dims that are padded. Each result is held to the CPU reference
 * (a double-precision host loop for the causal mask) by PSNR
 * and by a bound on every element, with sentinel bytes around the output.
 */
class KernelLabTest extends CudaVsCpuFixture {
    /** Bytes of sentinel on each side of the output: a stray write changes one. */
    static final int GUARD = 4096;
    static final byte SENTINEL = 0x5A;

    record Att(int batch, int heads, int d, int sq, int sk, boolean causal) {
        @Override
        public String toString() {
            return String.format(Locale.ROOT, "b%d h%d d%d sq%d sk%d%s", batch, heads, d, sq, sk, causal ? " causal" : "");
        }
    }

    static final List<Att> CASES = List.of(
            new Att(2, 2, 40, 100, 77, false),   // SD 64² cross attention's head dim, 77 keys: a partial tile
            new Att(1, 2, 40, 130, 130, false),  // self: three query blocks, three key tiles
            new Att(1, 3, 64, 64, 200, false),   // four key tiles through the double buffer
            new Att(1, 2, 80, 70, 77, false),
            new Att(2, 1, 160, 65, 77, false),   // 32-key stages: three tiles
            new Att(1, 2, 24, 33, 9, false),     // padded to 32, fewer keys than a tile
            new Att(1, 1, 128, 17, 40, false),
            new Att(1, 2, 64, 77, 77, true),     // the text encoder's causal self-attention
            new Att(1, 1, 40, 150, 150, true));  // causal across query blocks and key tiles

    @TestFactory
    Stream<DynamicTest> attentionVersionsAgainstTheReference() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Tactics.Version v : Tactics.versions(Tactics.Family.ATTENTION)) {
            for (Precision p : Precision.values()) {
                for (Att a : CASES) {
                    if (v.unsupported(p, ctx.computeCapability()) != null) {
                        continue;
                    }
                    tests.add(DynamicTest.dynamicTest(v.id() + " " + p + " " + a, () -> check(v, p, a)));
                }
            }
        }
        return tests.stream();
    }

    private static void check(Tactics.Version v, Precision p, Att a) {
        boolean fp16 = p == Precision.FP16;
        int c = a.heads() * a.d();
        Random rnd = new Random(a.toString().hashCode());
        float[] q = draw(rnd, a.batch() * a.sq() * c, fp16), k = draw(rnd, a.batch() * a.sk() * c, fp16),
                vv = draw(rnd, a.batch() * a.sk() * c, fp16);
        float scale = (float) (1 / Math.sqrt(a.d()));
        Shape qs = Shape.of(a.batch(), a.sq(), c), ks = Shape.of(a.batch(), a.sk(), c);
        float[] ref = a.causal() ? causalReference(q, k, vv, a, scale) : cpuAttention(q, k, vv, qs, ks, a.heads(), scale);
        float[] got;
        try (CudaBackend gpu = new CudaBackend(ctx, p, Tactics.parse(v.id()))) {
            Tensor tq = gpu.upload(qs, q), tk = gpu.upload(ks, k), tv = gpu.upload(ks, vv);
            long bytes = qs.numel() * gpu.activationBytes();
            CudaTensor arena = (CudaTensor) gpu.arena(bytes + 2L * GUARD);
            ctx.memsetD8(arena.ptr(), SENTINEL, arena.bytes());
            Tensor out = gpu.view(arena, GUARD, qs);
            gpu.attention(tq, tk, tv, a.heads(), scale, a.causal(), out);
            got = gpu.download(out);
            byte[] head = new byte[GUARD], tail = new byte[GUARD];
            ctx.copyDtoH(MemorySegment.ofArray(head), arena.ptr(), GUARD);
            ctx.copyDtoH(MemorySegment.ofArray(tail), arena.ptr() + GUARD + bytes, GUARD);
            for (int i = 0; i < GUARD; i++) {
                assertEquals(SENTINEL, head[i], "write before the output");
                assertEquals(SENTINEL, tail[i], "write past the output");
            }
        }
        // fp16: the output's own rounding (2^-11 relative) plus P rounded to fp16 before P·V
        double atol = fp16 ? 4e-3 : 2e-5, rtol = fp16 ? 4e-3 : 2e-5;
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < ref.length; i++) {
            double excess = Math.abs((double) got[i] - ref[i]) - (atol + rtol * Math.abs(ref[i]));
            if (!(excess <= worstExcess)) {
                worstExcess = excess;
                worst = i;
            }
        }
        Compare cmp = Compare.of(ref, got);
        System.out.printf(Locale.ROOT, "lab %s %s %-28s PSNR %7.2f dB, max |err| %.3e%n", v.id(), p, a, cmp.psnr(),
                cmp.maxAbsError());
        assertEquals(0, cmp.nonFinite(), "non-finite values");
        int w = worst;
        assertTrue(worst < 0, () -> String.format(Locale.ROOT, "element %d (batch %d, query %d, channel %d): %g vs %g",
                w, w / (a.sq() * c), w / c % a.sq(), w % c, got[w], ref[w]));
        assertTrue(cmp.psnr() >= (fp16 ? 55 : 100), "PSNR " + cmp.psnr());
    }

    private static float[] draw(Random rnd, int n, boolean fp16) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
            if (fp16) {
                v[i] = Float.float16ToFloat(Float.floatToFloat16(v[i]));
            }
        }
        return v;
    }

    private static float[] cpuAttention(float[] q, float[] k, float[] v, Shape qs, Shape ks, int heads, float scale) {
        Tensor tq = cpu.upload(qs, q), tk = cpu.upload(ks, k), tv = cpu.upload(ks, v), out = cpu.allocate(qs);
        try {
            cpu.attention(tq, tk, tv, heads, scale, out);
            return cpu.download(out);
        } finally {
            for (Tensor t : new Tensor[] {tq, tk, tv, out}) {
                cpu.release(t);
            }
        }
    }

    /** softmax over keys j ≤ i only, in double. */
    static float[] causalReference(float[] q, float[] k, float[] v, Att a, float scale) {
        int c = a.heads() * a.d();
        float[] out = new float[a.batch() * a.sq() * c];
        for (int b = 0; b < a.batch(); b++) {
            for (int h = 0; h < a.heads(); h++) {
                for (int i = 0; i < a.sq(); i++) {
                    int keys = Math.min(a.sk(), i + 1);
                    double[] s = new double[keys];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < keys; j++) {
                        double dot = 0;
                        for (int e = 0; e < a.d(); e++) {
                            dot += (double) q[(b * a.sq() + i) * c + h * a.d() + e] * k[(b * a.sk() + j) * c + h * a.d() + e];
                        }
                        s[j] = dot * scale;
                        max = Math.max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < keys; j++) {
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                    for (int e = 0; e < a.d(); e++) {
                        double o = 0;
                        for (int j = 0; j < keys; j++) {
                            o += s[j] * v[(b * a.sk() + j) * c + h * a.d() + e];
                        }
                        out[(b * a.sq() + i) * c + h * a.d() + e] = (float) (o / sum);
                    }
                }
            }
        }
        return out;
    }

    // ---------------------------------------------------------------- linear and its epilogues

    record Lin(int m, int n, int k) {
        @Override
        public String toString() {
            return "m" + m + " n" + n + " k" + k;
        }
    }

    /** Partial tiles in M and N, K shorter than one 32-wide slice, K over several pipeline stages. */
    static final List<Lin> LINEARS = List.of(new Lin(200, 136, 72), new Lin(77, 320, 200), new Lin(5, 24, 8),
            new Lin(130, 66, 40), new Lin(64, 128, 256));

    enum Epi { BIAS, NO_BIAS, RESIDUAL, RESIDUAL_IN_PLACE, SILU, GEGLU }

    @TestFactory
    Stream<DynamicTest> linearVersionsAndEpilogues() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Tactics.Version v : Tactics.versions(Tactics.Family.LINEAR)) {
            for (Precision p : Precision.values()) {
                // library tactics run NVIDIA's SASS: the op-case table checks them on a GPU
                if (v.library() != null || v.unsupported(p, ctx.computeCapability()) != null) {
                    continue;
                }
                for (Lin l : LINEARS) {
                    for (Epi e : Epi.values()) {
                        tests.add(DynamicTest.dynamicTest(v.id() + " " + p + " " + l + " " + e, () -> checkLinear(v, p, l, e)));
                    }
                }
            }
        }
        return tests.stream();
    }

    private static void checkLinear(Tactics.Version v, Precision p, Lin l, Epi e) {
        boolean fp16 = p == Precision.FP16, geglu = e == Epi.GEGLU;
        int wRows = geglu ? 2 * l.n() : l.n();
        Random rnd = new Random((v.id() + l + e).hashCode());
        float[] x = draw(rnd, l.m() * l.k(), fp16), w = draw(rnd, wRows * l.k(), fp16), b = draw(rnd, wRows, fp16),
                r = draw(rnd, l.m() * l.n(), fp16);
        float ws = (float) (1 / Math.sqrt(l.k()));
        for (int i = 0; i < w.length; i++) {
            w[i] = fp16 ? Float.float16ToFloat(Float.floatToFloat16(w[i] * ws)) : w[i] * ws;
        }
        Shape xs = Shape.of(l.m(), l.k()), wsh = Shape.of(wRows, l.k()), os = Shape.of(l.m(), l.n());
        // the reference: the CPU backend's linear, then the epilogue in double
        float[] ref;
        {
            Tensor tx = cpu.upload(xs, x), tw = cpu.upload(wsh, w), tb = cpu.upload(Shape.of(wRows), b);
            Tensor to = cpu.allocate(Shape.of(l.m(), wRows));
            cpu.linear(tx, tw, e == Epi.NO_BIAS ? null : tb, to);
            float[] lin = cpu.download(to);
            for (Tensor t : new Tensor[] {tx, tw, tb, to}) {
                cpu.release(t);
            }
            ref = new float[l.m() * l.n()];
            for (int i = 0; i < l.m(); i++) {
                for (int j = 0; j < l.n(); j++) {
                    double a = lin[i * wRows + j];
                    ref[i * l.n() + j] = (float) switch (e) {
                        case BIAS, NO_BIAS -> a;
                        case RESIDUAL, RESIDUAL_IN_PLACE -> a + r[i * l.n() + j];
                        case SILU -> a / (1 + Math.exp(-a));
                        case GEGLU -> {
                            double g = lin[i * wRows + l.n() + j];
                            yield a * 0.5 * g * (1 + erf(g / Math.sqrt(2)));
                        }
                    };
                }
            }
        }
        float[] got;
        try (CudaBackend gpu = new CudaBackend(ctx, p, Tactics.parse(v.id()))) {
            Tensor tx = gpu.upload(xs, x), tw = gpu.upload(wsh, w), tb = gpu.upload(Shape.of(wRows), b),
                    tr = gpu.upload(os, r);
            long bytes = os.numel() * gpu.activationBytes();
            CudaTensor arena = (CudaTensor) gpu.arena(bytes + 2L * GUARD);
            ctx.memsetD8(arena.ptr(), SENTINEL, arena.bytes());
            Tensor out = gpu.view(arena, GUARD, os);
            switch (e) {
                case BIAS -> gpu.linear(tx, tw, tb, out);
                case NO_BIAS -> gpu.linear(tx, tw, null, out);
                case RESIDUAL -> gpu.linearResidual(tx, tw, tb, tr, out);
                case RESIDUAL_IN_PLACE -> {
                    gpu.write(out, r);
                    gpu.linearResidual(tx, tw, tb, out, out);
                }
                case SILU -> gpu.linearSilu(tx, tw, tb, out);
                case GEGLU -> gpu.linearGeglu(tx, tw, tb, out);
            }
            got = gpu.download(out);
            byte[] head = new byte[GUARD], tail = new byte[GUARD];
            ctx.copyDtoH(MemorySegment.ofArray(head), arena.ptr(), GUARD);
            ctx.copyDtoH(MemorySegment.ofArray(tail), arena.ptr() + GUARD + bytes, GUARD);
            for (int i = 0; i < GUARD; i++) {
                assertEquals(SENTINEL, head[i], "write before the output");
                assertEquals(SENTINEL, tail[i], "write past the output");
            }
        }
        double atol = fp16 ? 1e-2 : 1e-4, rtol = fp16 ? 1e-2 : 1e-4;
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < ref.length; i++) {
            double excess = Math.abs((double) got[i] - ref[i]) - (atol + rtol * Math.abs(ref[i]));
            if (!(excess <= worstExcess)) {
                worstExcess = excess;
                worst = i;
            }
        }
        Compare cmp = Compare.of(ref, got);
        System.out.printf(Locale.ROOT, "lab %s %s %-16s %-17s PSNR %7.2f dB, max |err| %.3e%n", v.id(), p, l, e,
                cmp.psnr(), cmp.maxAbsError());
        assertEquals(0, cmp.nonFinite(), "non-finite values");
        int w0 = worst;
        assertTrue(worst < 0, () -> String.format(Locale.ROOT, "element [%d, %d]: %g vs %g", w0 / l.n(), w0 % l.n(),
                got[w0], ref[w0]));
        assertTrue(cmp.psnr() >= (fp16 ? 55 : 100), "PSNR " + cmp.psnr());
    }

    /** erf to double precision (Abramowitz-Stegun 7.1.26 is too coarse here): by its series and continued fraction. */
    static double erf(double x) {
        double ax = Math.abs(x);
        double r;
        if (ax < 2.5) {
            double term = ax, sum = ax, x2 = ax * ax;
            for (int n = 1; n < 60; n++) {
                term *= -x2 / n;
                sum += term / (2 * n + 1);
            }
            r = 2 / Math.sqrt(Math.PI) * sum;
        } else {
            double f = 0;
            for (int n = 60; n >= 1; n--) {
                f = n / 2.0 / (ax + f);
            }
            r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
        }
        return Math.copySign(r, x);
    }

    // ---------------------------------------------------------------- convolution

    /** x [n, c, h, w], k output channels, r×s kernel, stride, pads (top, left, bottom, right), GroupNorm groups (0: none). */
    record Cv(int n, int c, int h, int w, int k, int r, int s, Conv2dParams p, int groups, boolean silu, boolean residual,
              boolean inPlace) {
        @Override
        public String toString() {
            return String.format(Locale.ROOT, "%dx%dx%dx%d->%d %dx%d s%d%s%s%s", n, c, h, w, k, r, s, p.strideH(),
                    groups > 0 ? " GN" + groups + (silu ? "+SiLU" : "") : "", residual ? " +res" : "",
                    inPlace ? " in place" : "");
        }
    }

    static final List<Cv> CONVS = List.of(
            new Cv(2, 16, 11, 13, 24, 3, 3, Conv2dParams.of(1, 1), 0, false, false, false),   // 286 pixels: 3 row tiles
            new Cv(1, 48, 9, 7, 136, 3, 3, Conv2dParams.of(1, 1), 8, true, true, false),     // K past one 128 tile
            new Cv(2, 40, 6, 6, 40, 3, 3, Conv2dParams.of(1, 1), 8, true, true, true),       // the skip-add in place
            new Cv(2, 72, 5, 7, 40, 1, 1, Conv2dParams.of(1, 0), 8, false, false, false),    // 1x1 with GN, no SiLU
            new Cv(1, 24, 13, 11, 24, 3, 3, new Conv2dParams(2, 2, 0, 0, 1, 1), 0, false, false, false),  // downsample
            new Cv(1, 8, 10, 10, 16, 3, 3, Conv2dParams.of(2, 1), 0, false, false, false),   // C·R·S = 72
            new Cv(1, 8, 48, 48, 8, 1, 1, Conv2dParams.of(1, 0), 2, true, false, false));    // GN statistics in 2 blocks a group

    @TestFactory
    Stream<DynamicTest> convVersionsAgainstTheReference() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Tactics.Version v : Tactics.versions(Tactics.Family.CONV)) {
            for (Precision p : Precision.values()) {
                // library tactics run NVIDIA's SASS: the op-case table checks them on a GPU
                if (v.library() != null || v.unsupported(p, ctx.computeCapability()) != null) {
                    continue;
                }
                for (Cv cv : CONVS) {
                    tests.add(DynamicTest.dynamicTest(v.id() + " " + p + " " + cv, () -> checkConv(v, p, cv)));
                }
            }
        }
        return tests.stream();
    }

    private static void checkConv(Tactics.Version v, Precision p, Cv cv) {
        boolean fp16 = p == Precision.FP16;
        Random rnd = new Random((v.id() + cv).hashCode());
        int po = cv.p().outHeight(cv.h(), cv.r()), qo = cv.p().outWidth(cv.w(), cv.s());
        Shape xs = Shape.of(cv.n(), cv.c(), cv.h(), cv.w()), wsh = Shape.of(cv.k(), cv.c(), cv.r(), cv.s()),
                os = Shape.of(cv.n(), cv.k(), po, qo);
        float[] x = draw(rnd, (int) xs.numel(), fp16), w = draw(rnd, (int) wsh.numel(), fp16),
                b = draw(rnd, cv.k(), fp16), res = draw(rnd, (int) os.numel(), fp16),
                gamma = draw(rnd, cv.c(), fp16), beta = draw(rnd, cv.c(), fp16);
        float ws = (float) (1 / Math.sqrt(cv.c() * cv.r() * cv.s()));
        for (int i = 0; i < w.length; i++) {
            w[i] = fp16 ? Float.float16ToFloat(Float.floatToFloat16(w[i] * ws)) : w[i] * ws;
        }
        float[] ref = runConv(cpu, cv, xs, wsh, os, x, w, b, res, gamma, beta);
        float[] got;
        try (CudaBackend gpu = new CudaBackend(ctx, p, Tactics.parse(v.id()))) {
            got = runConv(gpu, cv, xs, wsh, os, x, w, b, res, gamma, beta);
        }
        double atol = fp16 ? 1e-2 : 1e-4, rtol = fp16 ? 1e-2 : 1e-4;
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < ref.length; i++) {
            double excess = Math.abs((double) got[i] - ref[i]) - (atol + rtol * Math.abs(ref[i]));
            if (!(excess <= worstExcess)) {
                worstExcess = excess;
                worst = i;
            }
        }
        Compare cmp = Compare.of(ref, got);
        System.out.printf(Locale.ROOT, "lab %s %s %-40s PSNR %7.2f dB, max |err| %.3e%n", v.id(), p, cv, cmp.psnr(),
                cmp.maxAbsError());
        assertEquals(0, cmp.nonFinite(), "non-finite values");
        int w0 = worst;
        assertTrue(worst < 0, () -> String.format(Locale.ROOT, "element %d: %g vs %g", w0, got[w0], ref[w0]));
        assertTrue(cmp.psnr() >= (fp16 ? 55 : 100), "PSNR " + cmp.psnr());
    }

    private static float[] runConv(dev.latte.core.Backend be, Cv cv, Shape xs, Shape wsh, Shape os, float[] x, float[] w,
                                   float[] b, float[] res, float[] gamma, float[] beta) {
        Tensor tx = be.upload(xs, x), tw = be.upload(wsh, w), tb = be.upload(Shape.of(cv.k()), b),
                tg = be.upload(Shape.of(cv.c()), gamma), tbe = be.upload(Shape.of(cv.c()), beta);
        Tensor tr = cv.residual() ? be.upload(os, res) : null;
        Tensor out = cv.inPlace() ? tr : be.allocate(os);
        NormAct norm = cv.groups() > 0 ? new NormAct(tg, tbe, cv.groups(), 1e-5f, cv.silu()) : null;
        be.conv2dFused(tx, norm, tw, tb, cv.p(), tr, out);
        float[] r = be.download(out);
        for (Tensor t : new Tensor[] {tx, tw, tb, tg, tbe, tr, cv.inPlace() ? null : out}) {
            if (t != null) {
                be.release(t);
            }
        }
        return r;
    }

    /**
     * GroupNorm statistics of groups large enough to be split across blocks and merged (Chan's
     * update), on an offset mean that punishes cancellation: 16,384 values in 4 parts, and 17,015
     * in 4 uneven parts; one small group for the one-block path. fp32 to 1e-5 of every element.
     */
    @TestFactory
    Stream<DynamicTest> groupNormStatisticsSplitAcrossBlocks() {
        List<DynamicTest> tests = new ArrayList<>();
        Shape[] shapes = {Shape.of(2, 8, 64, 64), Shape.of(1, 5, 41, 83), Shape.of(2, 4, 9, 7)};
        int[] groups = {2, 1, 2};
        for (Precision p : Precision.values()) {
            for (int i = 0; i < shapes.length; i++) {
                Shape xs = shapes[i];
                int g = groups[i];
                tests.add(DynamicTest.dynamicTest(p + " " + xs + " groups " + g, () -> checkGroupNorm(p, xs, g)));
            }
        }
        return tests.stream();
    }

    private static void checkGroupNorm(Precision p, Shape xs, int groups) {
        boolean fp16 = p == Precision.FP16;
        Random rnd = new Random(xs.hashCode() + groups);
        float[] x = draw(rnd, (int) xs.numel(), false);
        for (int i = 0; i < x.length; i++) {
            x[i] = fp16 ? Float.float16ToFloat(Float.floatToFloat16(3 + x[i])) : 3 + x[i];
        }
        int c = xs.dim(1);
        float[] gamma = draw(rnd, c, fp16), beta = draw(rnd, c, fp16);
        float[] ref = runGroupNorm(cpu, xs, groups, x, gamma, beta);
        float[] got;
        try (CudaBackend gpu = new CudaBackend(ctx, p)) {
            got = runGroupNorm(gpu, xs, groups, x, gamma, beta);
        }
        double atol = fp16 ? 1e-2 : 1e-5, rtol = fp16 ? 1e-2 : 1e-5;
        Compare cmp = Compare.of(ref, got);
        System.out.printf(Locale.ROOT, "lab groupNorm %s %s groups %d (%d blocks a group) PSNR %7.2f dB, max |err| %.3e%n",
                p, xs, groups, Math.max(1, Math.min(32, xs.numel() / xs.dim(0) / groups / 4096)), cmp.psnr(),
                cmp.maxAbsError());
        assertEquals(0, cmp.nonFinite(), "non-finite values");
        for (int i = 0; i < ref.length; i++) {
            int at = i;
            assertTrue(Math.abs((double) got[i] - ref[i]) <= atol + rtol * Math.abs(ref[i]),
                    () -> String.format(Locale.ROOT, "element %d: %g vs %g", at, got[at], ref[at]));
        }
        assertTrue(cmp.psnr() >= (fp16 ? 55 : 100), "PSNR " + cmp.psnr());
    }

    private static float[] runGroupNorm(dev.latte.core.Backend be, Shape xs, int groups, float[] x, float[] gamma,
                                        float[] beta) {
        Tensor tx = be.upload(xs, x), tg = be.upload(Shape.of(xs.dim(1)), gamma), tb = be.upload(Shape.of(xs.dim(1)), beta);
        Tensor out = be.allocate(xs);
        be.groupNorm(tx, tg, tb, groups, 1e-5f, true, out);
        float[] r = be.download(out);
        for (Tensor t : new Tensor[] {tx, tg, tb, out}) {
            be.release(t);
        }
        return r;
    }

    /** A version forced where it cannot run is a one-line error naming it, never a silent fallback. */
    @Test
    void forcedVersionThatCannotRunIsNamed() {
        Shape s = Shape.of(1, 8, 2 * 44);
        try (CudaBackend fp32 = new CudaBackend(ctx, Precision.FP32, Tactics.parse("attention=v2"));
             CudaBackend fp16 = new CudaBackend(ctx, Precision.FP16, Tactics.parse("attention=v2"))) {
            Tensor x = fp32.allocate(s), o = fp32.allocate(s);
            var e = assertThrows(IllegalArgumentException.class, () -> fp32.attention(x, x, x, 2, 1f, o));
            assertTrue(e.getMessage().contains("attention=v2 has no fp32 kernels"), e.getMessage());
            Tensor y = fp16.allocate(s), p = fp16.allocate(s);
            e = assertThrows(IllegalArgumentException.class, () -> fp16.attention(y, y, y, 2, 1f, p));
            assertTrue(e.getMessage().contains("multiples of 8 up to 160, not 44"), e.getMessage());
            Tensor qz = fp16.allocate(Shape.of(1, 8, 64)), kz = fp16.allocate(Shape.of(1, 16, 64)),
                    r = fp16.allocate(Shape.of(1, 8, 64));
            e = assertThrows(IllegalArgumentException.class, () -> fp16.attention(qz, kz, kz, 1, 1f, true, r));
            assertTrue(e.getMessage().contains("attention=v2 masks causally only as many keys as queries"),
                    e.getMessage());
        }
    }
}
