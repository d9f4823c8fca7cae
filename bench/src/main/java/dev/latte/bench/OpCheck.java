package dev.latte.bench;

import dev.latte.core.Backend;
import dev.latte.core.Compare;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.graph.Graph;
import dev.latte.graph.Op;
import dev.latte.graph.Value;
import dev.latte.quant.Int8;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Runs one {@link OpCase} on a backend and judges it against the reference backend's result on
 * the same inputs: the output sits between sentinel guards in one arena (a write outside it is
 * named), starts as NaN (an element never written shows as non-finite), and must then be finite,
 * reach the PSNR gate and keep every element within {@code |d| ≤ atol + rtol·|ref|} (llm.c's
 * {@code validate_result}; the worst element is named). An fp16 backend gets fp16-rounded inputs,
 * and so does the reference it is compared with, so the gate measures the kernel rather than the
 * rounding of its inputs.
 */
public final class OpCheck {
    /** Bytes of sentinel on each side of the output. */
    static final int GUARD_BYTES = 4096;
    /** Exact in fp16 and fp32, and no op's plausible output. */
    static final float SENTINEL = -6144f;

    private OpCheck() {
    }

    /** A gate: PSNR floor and per-element bound {@code |d| ≤ atol + rtol·|ref|}. */
    public record Tolerance(double minPsnr, double atol, double rtol) {
        /** fp32 storage: ≥ 100 dB (DESIGN.md's CUDA fp32 and fast-CPU gate), elements within 1e-4 + 1e-4·|ref|. */
        public static final Tolerance FP32 = new Tolerance(100, 1e-4, 1e-4);
        /** fp16 storage, fp32 arithmetic: ≥ 50 dB, elements within 1e-2 + 1e-2·|ref| (one wrong row of ~1 fails). */
        public static final Tolerance FP16 = new Tolerance(50, 1e-2, 1e-2);

        public static Tolerance of(Backend b) {
            return b.activationBytes() == 2 ? FP16 : FP32;
        }
    }

    /** Every input the op reads, drawn once per case (seeded by its name): floats, or int8 rows for int8 weights. */
    public record Inputs(Map<Integer, float[]> floats, Map<Integer, byte[]> int8) {
        /**
         * The same inputs rounded to fp16 where an fp16 backend stores them: int8 weights, their
         * scales and values of fixed storage (token ids in fp32) are kept.
         */
        public Inputs fp16(Graph g, Op op) {
            Map<Integer, float[]> r = new HashMap<>();
            floats.forEach((id, v) -> {
                float[] c = v.clone();
                if (id != op.int8Scale() && g.value(id).storage() == null) {
                    for (int i = 0; i < c.length; i++) {
                        c[i] = Float.float16ToFloat(Float.floatToFloat16(c[i]));
                    }
                }
                r.put(id, c);
            });
            return new Inputs(r, int8);
        }
    }

    /** The verdict on one run. */
    public record Result(String backend, double psnr, double maxAbsError, long nonFinite, String worst,
                         double worstRatio, String guardViolation, Tolerance tolerance) {
        public boolean passed() {
            return guardViolation == null && nonFinite == 0 && psnr >= tolerance.minPsnr() && worstRatio <= 1;
        }

        /** One line: what passed or what failed, with the worst element. */
        public String summary() {
            return String.format(Locale.ROOT, "%s: PSNR %.2f dB (gate %.0f), max |err| %.3e, worst %s (%.2f of its bound"
                            + " %.0e + %.0e·|ref|)%s%s", backend, psnr, tolerance.minPsnr(), maxAbsError, worst,
                    worstRatio, tolerance.atol(), tolerance.rtol(), nonFinite > 0 ? ", " + nonFinite + " non-finite" : "",
                    guardViolation == null ? "" : ", " + guardViolation);
        }
    }

    /** Draws the case's inputs: N(0, 1) activations, N(0, 1/fan_in) weights, 1 + 0.1·N(0, 1) norm scales, timesteps in [0, 1000). */
    public static Inputs draw(OpCase c) {
        Graph g = c.graph();
        Op op = c.op();
        SplittableRandom rnd = new SplittableRandom(c.name().hashCode());
        Map<Integer, float[]> floats = new HashMap<>();
        Map<Integer, byte[]> int8 = new HashMap<>();
        for (int id : op.inputs()) {
            if (id < 0 || floats.containsKey(id) || int8.containsKey(id) || id == op.int8Scale()) {
                continue;
            }
            Value v = g.value(id);
            Shape s = v.shape();
            float[] x = new float[s.size()];
            boolean param = v.kind() == Value.Kind.PARAM;
            boolean weight = param && s.rank() >= 2, gamma = param && s.rank() == 1 && v.name().contains("norm")
                    && v.name().endsWith("weight");
            double fanIn = weight ? (double) s.numel() / s.dim(0) : 1;
            for (int i = 0; i < x.length; i++) {
                x[i] = op instanceof Op.TimestepEmbedding ? rnd.nextInt(1000)
                        : op instanceof Op.Embedding e && id == e.ids() ? rnd.nextInt(g.value(e.table()).shape().dim(0))
                        : gamma ? (float) (1 + 0.1 * gaussian(rnd))
                        : (float) (gaussian(rnd) / Math.sqrt(fanIn));
            }
            if (id == op.int8Weight()) {
                Int8.Rows q = Int8.quantizeRows(x, s.dim(0));
                int8.put(id, q.q());
                floats.put(op.int8Scale(), q.scale());
            } else {
                floats.put(id, x);
            }
        }
        return new Inputs(floats, int8);
    }

    private static double gaussian(SplittableRandom rnd) {
        double u = 1 - rnd.nextDouble(), v = rnd.nextDouble();
        return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    }

    /** The op's output on {@code b}, read back, after checking the guards around it; null guard means intact. */
    public record Output(float[] values, String guardViolation) {
    }

    /** Runs the case once on {@code b} with {@code in}; the output lives in a guarded arena. */
    public static Output run(Backend b, OpCase c, Inputs in) {
        Graph g = c.graph();
        Op op = c.op();
        Shape outShape = g.value(op.out()).shape();
        int eb = b.activationBytes();
        long guard = GUARD_BYTES, body = Math.ceilDiv(outShape.numel() * eb, 256) * 256;
        int guardElems = (int) (guard / eb), totalElems = (int) ((2 * guard + body) / eb);
        Tensor[] env = new Tensor[g.values().size()];
        List<Tensor> owned = new ArrayList<>();
        Tensor arena = b.arena(2 * guard + body);
        try {
            Tensor whole = b.view(arena, 0, Shape.of(totalElems));
            float[] fill = new float[totalElems];
            Arrays.fill(fill, SENTINEL);
            Arrays.fill(fill, guardElems, guardElems + outShape.size(), Float.NaN);
            b.write(whole, fill);
            Tensor out = b.view(arena, guard, outShape);
            for (var e : in.floats().entrySet()) {
                if (e.getKey() == c.inPlace()) {
                    b.write(out, e.getValue());
                    env[e.getKey()] = out;
                } else {
                    Value v = g.value(e.getKey());
                    env[e.getKey()] = b.upload(v.shape(), e.getValue(), v.storage());
                    owned.add(env[e.getKey()]);
                }
            }
            for (var e : in.int8().entrySet()) {
                env[e.getKey()] = b.uploadInt8(g.value(e.getKey()).shape(), e.getValue());
                owned.add(env[e.getKey()]);
            }
            env[op.out()] = out;
            op.run(b, env);
            float[] all = b.download(whole);
            return new Output(Arrays.copyOfRange(all, guardElems, guardElems + outShape.size()),
                    guards(all, guardElems, outShape.size(), eb));
        } finally {
            owned.forEach(b::release);
            b.release(arena);
        }
    }

    /** Where a write landed outside the output, or null. */
    private static String guards(float[] all, int start, int n, int eb) {
        for (int i = start - 1; i >= 0; i--) {
            if (Float.floatToRawIntBits(all[i]) != Float.floatToRawIntBits(SENTINEL)) {
                return "a write " + (long) (start - i) * eb + " bytes before the output";
            }
        }
        for (int i = start + n; i < all.length; i++) {
            // the bytes between the output's end and the next 256 belong to no one: any write there is stray
            if (Float.floatToRawIntBits(all[i]) != Float.floatToRawIntBits(SENTINEL)) {
                return "a write " + (long) (i - start - n) * eb + " bytes past the end of the output";
            }
        }
        return null;
    }

    /** Judges {@code got} against {@code ref} (laid out as the op's output) under {@code tol}. */
    public static Result judge(String backend, OpCase c, float[] ref, Output got, Tolerance tol) {
        Shape s = c.graph().value(c.op().out()).shape();
        float[] v = got.values();
        Compare cmp = Compare.of(ref, v);
        Compare.Bound bound = Compare.bound(ref, v, tol.atol(), tol.rtol());
        String where = bound.worst() < 0 ? "none" : String.format(Locale.ROOT, "%s = %.6g vs ref %.6g",
                index(s, bound.worst()), bound.result(), bound.reference());
        return new Result(backend, cmp.psnr(), cmp.maxAbsError(), cmp.nonFinite(), where, bound.ratio(),
                got.guardViolation(), tol);
    }

    /** Flat index as coordinates of shape {@code s}, e.g. {@code [1, 3, 0, 7]}. */
    static String index(Shape s, int flat) {
        int[] at = new int[s.rank()];
        for (int d = s.rank() - 1; d >= 0; d--) {
            at[d] = flat % Math.max(1, s.dim(d));
            flat /= Math.max(1, s.dim(d));
        }
        return Arrays.toString(at);
    }
}
