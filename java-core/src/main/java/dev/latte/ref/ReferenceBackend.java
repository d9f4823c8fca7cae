package dev.latte.ref;

import dev.latte.core.Backend;
import dev.latte.core.Conv2dParams;
import dev.latte.core.Int8Mode;
import dev.latte.core.NormAct;
import dev.latte.core.OpChecks;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.math.Erf;
import dev.latte.math.SleefExp;
import dev.latte.quant.Int8;

import java.util.Arrays;
import java.util.function.DoubleUnaryOperator;

/**
 * The trust anchor: every op written the way its formula reads, one output element at a time,
 * with every sum in double and one rounding to fp32 per element (as a PyTorch fp32 op rounds).
 * No blocking, no threads, no scratch reuse, no tricks: what it computes can be checked by reading
 * it. The goldens test this backend; every other backend (the fast CPU one included) is tested
 * against it. Each op computes its result into a fresh array and only then stores it, so any
 * output may alias any input. Slow on purpose; for tests and {@code latte validate --backend ref}.
 */
public final class ReferenceBackend implements Backend {

    /** fp32 values: {@code shape.numel()} floats of {@code array} from {@code offset} (an own array or an arena's). */
    static final class RefTensor implements Tensor {
        final Shape shape;
        final float[] array;
        final int offset;
        final boolean view;

        RefTensor(Shape shape, float[] array, int offset, boolean view) {
            if (offset < 0 || (long) offset + shape.numel() > array.length) {
                throw new IllegalArgumentException("ref: " + shape + " at float " + offset + " runs past its "
                        + array.length + "-float storage");
            }
            this.shape = shape;
            this.array = array;
            this.offset = offset;
            this.view = view;
        }

        public Shape shape() {
            return shape;
        }

        float[] values() {
            return Arrays.copyOfRange(array, offset, offset + shape.size());
        }

        public String toString() {
            return "RefTensor" + shape;
        }
    }

    /** int8 weights. */
    static final class RefInt8Tensor implements Tensor {
        final Shape shape;
        final byte[] data;

        RefInt8Tensor(Shape shape, byte[] data) {
            this.shape = shape;
            this.data = data;
        }

        public Shape shape() {
            return shape;
        }
    }

    @Override
    public String name() {
        return "ref";
    }

    @Override
    public Tensor allocate(Shape shape) {
        return new RefTensor(shape, new float[shape.size()], 0, false);
    }

    @Override
    public Tensor upload(Shape shape, float[] values) {
        OpChecks.valueCount("upload", values.length, shape);
        return new RefTensor(shape, values.clone(), 0, false);
    }

    @Override
    public float[] download(Tensor t) {
        if (t instanceof RefInt8Tensor q) {
            return Int8.widen(q.data);
        }
        return ref(t).values();
    }

    @Override
    public void release(Tensor t) {
        // garbage-collected storage
    }

    @Override
    public boolean supportsArena() {
        return true;
    }

    @Override
    public Tensor arena(long bytes) {
        int n = OpChecks.hostArenaFloats(bytes);
        return new RefTensor(Shape.of(n), new float[n], 0, false);
    }

    @Override
    public Tensor view(Tensor arena, long byteOffset, Shape shape) {
        RefTensor a = ref(arena);
        if (a.view || byteOffset % Float.BYTES != 0) {
            throw new IllegalArgumentException("view: " + shape + " at byte " + byteOffset + " of " + arena);
        }
        return new RefTensor(shape, a.array, Math.toIntExact(byteOffset / Float.BYTES), true);
    }

    @Override
    public void write(Tensor t, float[] values) {
        store(t, values.clone());
    }

    @Override
    public Tensor part(Tensor t, int index) {
        RefTensor r = ref(t);
        Shape s = r.shape;
        check(s.rank() >= 2 && index >= 0 && index < s.dim(0), "part " + index + " of " + s);
        int[] d = Arrays.copyOfRange(s.dims(), 1, s.rank());
        Shape p = Shape.of(d);
        return new RefTensor(p, r.array, r.offset + index * p.size(), true);
    }

    @Override
    public boolean supports(String op) {
        return true;
    }

    @Override
    public Tensor uploadInt8(Shape shape, byte[] values) {
        OpChecks.valueCount("uploadInt8", values.length, shape);
        return new RefInt8Tensor(shape, values.clone());
    }

    @Override
    public void close() {
    }

    // ---------------------------------------------------------------- convolution

    @Override
    public void conv2d(Tensor x, Tensor w, Tensor bias, Conv2dParams p, Tensor out) {
        OpChecks.conv2d(x, x.shape().dim(-2), x.shape().dim(-1), w, bias, p, out, "");
        store(out, conv(values(x), x.shape(), x.shape().dim(2), x.shape().dim(3), values(w), w.shape(),
                values(bias), p, null));
    }

    @Override
    public void conv2dFused(Tensor x, NormAct norm, Tensor w, Tensor bias, Conv2dParams p, Tensor residual,
                            Tensor out) {
        String what = OpChecks.conv2d(x, x.shape().dim(-2), x.shape().dim(-1), w, bias, p, out, "");
        check(residual == null || residual.shape().equals(out.shape()), what + ", residual " + residual);
        float[] in = values(x);
        if (norm != null) {
            OpChecks.groupNorm(x, norm.gamma(), norm.beta(), norm.groups(), x);
            in = groupNorm(in, x.shape(), values(norm.gamma()), values(norm.beta()), norm.groups(), norm.eps(),
                    norm.silu());
        }
        store(out, conv(in, x.shape(), x.shape().dim(2), x.shape().dim(3), values(w), w.shape(), values(bias), p,
                residual == null ? null : values(residual)));
    }

    @Override
    public void conv2dUpsampled(Tensor x, int height, int width, Tensor w, Tensor bias, Conv2dParams p, Tensor out) {
        OpChecks.conv2d(x, height, width, w, bias, p, out, "");
        store(out, conv(values(x), x.shape(), height, width, values(w), w.shape(), values(bias), p, null));
    }

    /**
     * out[n,k,i,j] = bias[k] + Σ_{c,r,s} up(x)[n, c, i·sh − pt + r, j·sw − pl + s] · w[k,c,r,s], zero
     * outside, where up(x) is x nearest-resized to h × w (x itself at its own size); then
     * out = residual + (fp32) out where a residual is given, the fp32 add PyTorch does.
     */
    private static float[] conv(float[] x, Shape xs, int h, int wd, float[] w, Shape ws, float[] bias, Conv2dParams p,
                                float[] residual) {
        int n = xs.dim(0), c = xs.dim(1), hIn = xs.dim(2), wIn = xs.dim(3);
        int k = ws.dim(0), r = ws.dim(2), s = ws.dim(3);
        int pOut = p.outHeight(h, r), qOut = p.outWidth(wd, s);
        float[] out = new float[n * k * pOut * qOut];
        for (int ni = 0; ni < n; ni++) {
            for (int ki = 0; ki < k; ki++) {
                for (int i = 0; i < pOut; i++) {
                    for (int j = 0; j < qOut; j++) {
                        double acc = bias == null ? 0 : bias[ki];
                        for (int ci = 0; ci < c; ci++) {
                            for (int ri = 0; ri < r; ri++) {
                                int ih = i * p.strideH() - p.padTop() + ri;
                                if (ih < 0 || ih >= h) {
                                    continue;
                                }
                                for (int si = 0; si < s; si++) {
                                    int iw = j * p.strideW() - p.padLeft() + si;
                                    if (iw < 0 || iw >= wd) {
                                        continue;
                                    }
                                    int srcH = (int) ((long) ih * hIn / h), srcW = (int) ((long) iw * wIn / wd);
                                    acc += (double) x[((ni * c + ci) * hIn + srcH) * wIn + srcW]
                                            * w[((ki * c + ci) * r + ri) * s + si];
                                }
                            }
                        }
                        int o = ((ni * k + ki) * pOut + i) * qOut + j;
                        out[o] = residual == null ? (float) acc : residual[o] + (float) acc;
                    }
                }
            }
        }
        return out;
    }

    // ---------------------------------------------------------------- normalisation

    @Override
    public void groupNorm(Tensor x, Tensor gamma, Tensor beta, int groups, float eps, boolean silu, Tensor out) {
        OpChecks.groupNorm(x, gamma, beta, groups, out);
        store(out, groupNorm(values(x), x.shape(), values(gamma), values(beta), groups, eps, silu));
    }

    /** Per (n, group): mean and biased variance in double, y = (x − mean)/√(var + eps)·γ + β, then SiLU. */
    private static float[] groupNorm(float[] x, Shape xs, float[] gamma, float[] beta, int groups, float eps,
                                     boolean silu) {
        int n = xs.dim(0), c = xs.dim(1), hw = n * c == 0 ? 0 : xs.size() / (n * c), cpg = c / groups;
        float[] out = new float[x.length];
        for (int ni = 0; ni < n; ni++) {
            for (int g = 0; g < groups; g++) {
                int base = (ni * c + g * cpg) * hw, len = cpg * hw;
                double[] stats = meanAndRstd(x, base, len, eps);
                for (int i = 0; i < len; i++) {
                    int ch = g * cpg + i / hw;
                    float y = (float) ((x[base + i] - stats[0]) * stats[1] * gamma[ch] + beta[ch]);
                    out[base + i] = silu ? silu(y) : y;
                }
            }
        }
        return out;
    }

    @Override
    public void layerNorm(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor out) {
        OpChecks.layerNorm(x, gamma, beta, out);
        float[] v = values(x), g = values(gamma), b = values(beta), o = new float[v.length];
        int d = x.shape().dim(-1);
        for (int row = 0; d > 0 && row < v.length / d; row++) {
            double[] stats = meanAndRstd(v, row * d, d, eps);
            for (int i = 0; i < d; i++) {
                o[row * d + i] = (float) ((v[row * d + i] - stats[0]) * stats[1] * g[i] + b[i]);
            }
        }
        store(out, o);
    }

    /** {mean, 1/√(biased variance + eps)}, two passes in double. */
    private static double[] meanAndRstd(float[] x, int base, int len, float eps) {
        double sum = 0;
        for (int i = 0; i < len; i++) {
            sum += x[base + i];
        }
        double mean = sum / len, sq = 0;
        for (int i = 0; i < len; i++) {
            sq += (x[base + i] - mean) * (x[base + i] - mean);
        }
        return new double[] {mean, 1 / Math.sqrt(sq / len + eps)};
    }

    // ---------------------------------------------------------------- linear and attention

    @Override
    public void linear(Tensor x, Tensor w, Tensor bias, Tensor out) {
        OpChecks.linear(x, w, bias, out);
        store(out, linear(values(x), values(w), values(bias), w.shape().dim(0), w.shape().dim(1)));
    }

    /** out[m, j] = bias[j] + Σ_i x[m, i]·w[j, i]. */
    private static float[] linear(float[] x, float[] w, float[] bias, int outF, int in) {
        int m = in == 0 ? 0 : x.length / in;
        float[] out = new float[m * outF];
        for (int mi = 0; mi < m; mi++) {
            for (int j = 0; j < outF; j++) {
                double acc = bias == null ? 0 : bias[j];
                for (int i = 0; i < in; i++) {
                    acc += (double) x[mi * in + i] * w[j * in + i];
                }
                out[mi * outF + j] = (float) acc;
            }
        }
        return out;
    }

    /** Per (batch, head, query): scores = scale·q·kᵀ, softmax over keys, out = Σ p·v, all in double. */
    @Override
    public void attention(Tensor qt, Tensor kt, Tensor vt, int heads, float scale, Tensor out) {
        attention(qt, kt, vt, heads, scale, false, out);
    }

    /** Causal: query i sees keys j ≤ i + (Sk − Sq), the rest never enter the sums. */
    @Override
    public void attention(Tensor qt, Tensor kt, Tensor vt, int heads, float scale, boolean causal, Tensor out) {
        OpChecks.attention(qt, kt, vt, heads, out);
        float[] q = values(qt), k = values(kt), v = values(vt);
        int b = qt.shape().dim(0), sq = qt.shape().dim(1), sk = kt.shape().dim(1), ch = qt.shape().dim(2);
        int d = ch / heads;
        float[] o = new float[q.length];
        double[] p = new double[sk];
        for (int bi = 0; bi < b; bi++) {
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < sq; i++) {
                    int qo = (bi * sq + i) * ch + h * d;
                    int keys = causal ? Math.min(sk, i + 1 + sk - sq) : sk;
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < keys; j++) {
                        int ko = (bi * sk + j) * ch + h * d;
                        double dot = 0;
                        for (int di = 0; di < d; di++) {
                            dot += (double) q[qo + di] * k[ko + di];
                        }
                        p[j] = dot * scale;
                        max = Math.max(max, p[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < keys; j++) {
                        p[j] = Math.exp(p[j] - max);
                        sum += p[j];
                    }
                    for (int di = 0; di < d; di++) {
                        double acc = 0;
                        for (int j = 0; j < keys; j++) {
                            acc += p[j] * v[(bi * sk + j) * ch + h * d + di];
                        }
                        o[qo + di] = (float) (acc / sum);
                    }
                }
            }
        }
        store(out, o);
    }

    // ---------------------------------------------------------------- activations

    @Override
    public void silu(Tensor x, Tensor out) {
        map("silu", x, out, v -> silu((float) v));
    }

    @Override
    public void gelu(Tensor x, Tensor out) {
        map("gelu", x, out, v -> gelu((float) v));
    }

    /** out[i] = f(x[i]), rounded to fp32. */
    private static void map(String op, Tensor x, Tensor out, DoubleUnaryOperator f) {
        OpChecks.unary(op, x, out);
        float[] v = values(x);
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) f.applyAsDouble(v[i]);
        }
        store(out, v);
    }

    /** out[.., i] = a[.., i]·gelu(gate[.., i]) with x = [a, gate] along the last dim. */
    @Override
    public void geglu(Tensor x, Tensor out) {
        OpChecks.geglu(x, out);
        float[] v = values(x);
        int f = x.shape().dim(-1) / 2, rows = f == 0 ? 0 : v.length / (2 * f);
        float[] o = new float[rows * f];
        for (int row = 0; row < rows; row++) {
            for (int i = 0; i < f; i++) {
                o[row * f + i] = v[row * 2 * f + i] * gelu(v[row * 2 * f + f + i]);
            }
        }
        store(out, o);
    }

    /** x·sigmoid(1.702·x), CLIP's quick_gelu. */
    @Override
    public void quickGelu(Tensor x, Tensor out) {
        OpChecks.unary("quickGelu", x, out);
        float[] v = values(x);
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (v[i] / (1 + Math.exp(-1.702 * v[i])));
        }
        store(out, v);
    }

    /** out[b, l] = table[ids[b, l]] + positions[l]; an id that is not a row is an error. */
    @Override
    public void embedding(Tensor idt, Tensor tt, Tensor pt, Tensor out) {
        String what = OpChecks.embedding(idt, tt, pt, out);
        float[] ids = values(idt), table = values(tt), pos = pt == null ? null : values(pt);
        int l = idt.shape().dim(1), vocab = tt.shape().dim(0), d = tt.shape().dim(1);
        float[] o = new float[ids.length * d];
        for (int i = 0; i < ids.length; i++) {
            float id = ids[i];
            if (!(id >= 0 && id < vocab && id == Math.rint(id))) {
                throw new IllegalArgumentException(what + " (id " + id + " at [" + i / l + ", " + i % l
                        + "] is not a row of the " + vocab + "-row table)");
            }
            for (int j = 0; j < d; j++) {
                o[i * d + j] = table[(int) id * d + j] + (pos == null ? 0f : pos[(i % l) * d + j]);
            }
        }
        store(out, o);
    }

    /** x·sigmoid(x). */
    private static float silu(float x) {
        return (float) (x / (1 + Math.exp(-x)));
    }

    /** Exact GELU: x/2·(1 + erf(x/√2)). */
    private static float gelu(float x) {
        return (float) (0.5 * x * (1 + Erf.erf(x / Math.sqrt(2))));
    }

    // ---------------------------------------------------------------- embeddings and resampling

    /**
     * diffusers' {@code get_timestep_embedding} step by step in fp32, as it runs: exponent =
     * −ln(10000)·i / (half − shift), freq = exp(exponent) rounded as PyTorch's CPU exp rounds it,
     * arg = t·freq, then [sin, cos] (or [cos, sin] flipped), a zero column for odd dims.
     */
    @Override
    public void timestepEmbedding(Tensor t, boolean flipSinToCos, float downscaleFreqShift, Tensor out) {
        OpChecks.timestepEmbedding(t, out);
        float[] tv = values(t);
        int b = out.shape().dim(0), dim = out.shape().dim(1), half = dim / 2;
        float[] o = new float[b * dim];
        for (int bi = 0; bi < b; bi++) {
            for (int i = 0; i < half; i++) {
                float exponent = ((float) -Math.log(10000.0) * i) / (float) (half - (double) downscaleFreqShift);
                float arg = tv[bi] * SleefExp.expf(exponent);
                o[bi * dim + (flipSinToCos ? half : 0) + i] = (float) Math.sin(arg);
                o[bi * dim + (flipSinToCos ? 0 : half) + i] = (float) Math.cos(arg);
            }
        }
        store(out, o);
    }

    /** out[n, c, i, j] = x[n, c, ⌊i·H/OH⌋, ⌊j·W/OW⌋]. */
    @Override
    public void upsampleNearest(Tensor x, Tensor out) {
        OpChecks.upsampleNearest(x, out);
        Shape xs = x.shape(), os = out.shape();
        float[] v = values(x), o = new float[os.size()];
        int planes = xs.dim(0) * xs.dim(1), h = xs.dim(2), w = xs.dim(3), oh = os.dim(2), ow = os.dim(3);
        for (int pl = 0; pl < planes; pl++) {
            for (int i = 0; i < oh; i++) {
                for (int j = 0; j < ow; j++) {
                    o[(pl * oh + i) * ow + j] = v[(pl * h + (int) ((long) i * h / oh)) * w + (int) ((long) j * w / ow)];
                }
            }
        }
        store(out, o);
    }

    // ---------------------------------------------------------------- plumbing

    @Override
    public void concatChannels(Tensor a, Tensor b, Tensor out) {
        OpChecks.concatChannels(a, b, out);
        float[] av = values(a), bv = values(b), o = new float[av.length + bv.length];
        int n = a.shape().dim(0), aLen = n == 0 ? 0 : av.length / n, bLen = n == 0 ? 0 : bv.length / n;
        for (int ni = 0; ni < n; ni++) {
            System.arraycopy(av, ni * aLen, o, ni * (aLen + bLen), aLen);
            System.arraycopy(bv, ni * bLen, o, ni * (aLen + bLen) + aLen, bLen);
        }
        store(out, o);
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        OpChecks.add(a, b, out);
        float[] av = values(a), bv = values(b);
        for (int i = 0; i < av.length; i++) {
            av[i] += bv[i];
        }
        store(out, av);
    }

    @Override
    public void addChannelBias(Tensor x, Tensor v, Tensor out) {
        OpChecks.addChannelBias(x, v, out);
        float[] xv = values(x), vv = values(v);
        int planes = vv.length, hw = planes == 0 ? 0 : xv.length / planes;
        for (int i = 0; i < xv.length; i++) {
            xv[i] += vv[i / hw];
        }
        store(out, xv);
    }

    /** x·s: the product of two floats is exact in double, so this is fp32's own rounding. */
    @Override
    public void scale(Tensor x, float s, Tensor out) {
        map("scale", x, out, v -> v * s);
    }

    @Override
    public void nchwToTokens(Tensor x, Tensor out) {
        OpChecks.nchwToTokens(x, out);
        Shape s = x.shape();
        store(out, transpose(values(x), s.dim(0), s.dim(1), s.dim(2) * s.dim(3)));
    }

    @Override
    public void tokensToNchw(Tensor x, Tensor out) {
        OpChecks.tokensToNchw(x, out);
        Shape s = x.shape();
        store(out, transpose(values(x), s.dim(0), s.dim(1), s.dim(2)));
    }

    /** out[b, j, i] = x[b, i, j] for x [batches, rows, cols]. */
    private static float[] transpose(float[] x, int batches, int rows, int cols) {
        float[] o = new float[x.length];
        for (int b = 0; b < batches; b++) {
            for (int i = 0; i < rows; i++) {
                for (int j = 0; j < cols; j++) {
                    o[(b * cols + j) * rows + i] = x[(b * rows + i) * cols + j];
                }
            }
        }
        return o;
    }

    // ---------------------------------------------------------------- int8 weights

    /**
     * W8A16: the fp32 linear over w = q·scale. W8A8: each row of x quantised with its own scale
     * ({@link Int8}), the int8 products summed exactly, then acc·x_scale·w_scale + bias in double.
     */
    @Override
    public void linearInt8(Tensor x, Tensor wq, Tensor wScale, Tensor bias, Int8Mode mode, Tensor out) {
        Shape ws = wq.shape();
        String what = "linearInt8: x " + x.shape() + ", w " + ws + ", scale " + wScale.shape() + ", out " + out.shape();
        check(wScale.shape().equals(Shape.of(ws.dim(0))), what);
        OpChecks.linear(x, wq, bias, out);
        byte[] q = int8(what, wq);
        float[] scale = values(wScale), xv = values(x), b = values(bias);
        int outF = ws.dim(0), in = ws.dim(1);
        if (mode == Int8Mode.W8A16) {
            store(out, linear(xv, Int8.dequantize(q, scale), b, outF, in));
            return;
        }
        int m = in == 0 ? 0 : xv.length / in;
        float[] o = new float[m * outF];
        byte[] xq = new byte[in];
        for (int mi = 0; mi < m; mi++) {
            float xs = Int8.scale(xv, mi * in, in);
            Int8.quantize(xv, mi * in, in, xs, xq, 0);
            for (int j = 0; j < outF; j++) {
                long acc = 0;
                for (int i = 0; i < in; i++) {
                    acc += xq[i] * q[j * in + i];
                }
                o[mi * outF + j] = (float) (acc * (double) xs * scale[j] + (b == null ? 0 : b[j]));
            }
        }
        store(out, o);
    }

    /** As {@link #linearInt8}, a row being one output pixel's C·R·S input patch, zero padding included. */
    @Override
    public void conv2dInt8(Tensor x, Tensor wq, Tensor wScale, Tensor bias, Conv2dParams p, Int8Mode mode, Tensor out) {
        Shape xs = x.shape(), ws = wq.shape();
        String what = OpChecks.conv2d(x, xs.dim(-2), xs.dim(-1), wq, bias, p, out, "");
        check(wScale.shape().equals(Shape.of(ws.dim(0))), what + ", scale " + wScale.shape());
        byte[] q = int8(what, wq);
        float[] scale = values(wScale), xv = values(x), b = values(bias);
        if (mode == Int8Mode.W8A16) {
            store(out, conv(xv, xs, xs.dim(2), xs.dim(3), Int8.dequantize(q, scale), ws, b, p, null));
            return;
        }
        int n = xs.dim(0), c = xs.dim(1), h = xs.dim(2), w = xs.dim(3), k = ws.dim(0), r = ws.dim(2), s = ws.dim(3);
        int pOut = p.outHeight(h, r), qOut = p.outWidth(w, s), crs = c * r * s;
        float[] o = new float[n * k * pOut * qOut], patch = new float[crs];
        byte[] pq = new byte[crs];
        for (int ni = 0; ni < n; ni++) {
            for (int i = 0; i < pOut; i++) {
                for (int j = 0; j < qOut; j++) {
                    for (int ci = 0; ci < c; ci++) {
                        for (int ri = 0; ri < r; ri++) {
                            for (int si = 0; si < s; si++) {
                                int ih = i * p.strideH() - p.padTop() + ri, iw = j * p.strideW() - p.padLeft() + si;
                                patch[(ci * r + ri) * s + si] = ih >= 0 && ih < h && iw >= 0 && iw < w
                                        ? xv[((ni * c + ci) * h + ih) * w + iw] : 0f;
                            }
                        }
                    }
                    float ps = Int8.scale(patch, 0, crs);
                    Int8.quantize(patch, 0, crs, ps, pq, 0);
                    for (int ki = 0; ki < k; ki++) {
                        long acc = 0;
                        for (int t = 0; t < crs; t++) {
                            acc += pq[t] * q[ki * crs + t];
                        }
                        o[((ni * k + ki) * pOut + i) * qOut + j] = (float) (acc * (double) ps * scale[ki]
                                + (b == null ? 0 : b[ki]));
                    }
                }
            }
        }
        store(out, o);
    }

    // ---------------------------------------------------------------- helpers

    private static RefTensor ref(Tensor t) {
        if (t instanceof RefTensor r) {
            return r;
        }
        throw new IllegalArgumentException("ref: " + (t == null ? "null tensor" : t + " is not a reference tensor"));
    }

    /** A copy of the tensor's values (null for an absent optional input). */
    private static float[] values(Tensor t) {
        return t == null ? null : ref(t).values();
    }

    private static void store(Tensor out, float[] values) {
        RefTensor o = ref(out);
        check(values.length == o.shape.size(), "ref: " + values.length + " values for " + o.shape);
        System.arraycopy(values, 0, o.array, o.offset, values.length);
    }

    private static byte[] int8(String what, Tensor t) {
        if (t instanceof RefInt8Tensor q) {
            return q.data;
        }
        throw new IllegalArgumentException(what + ": weight " + t + " is not an int8 reference tensor");
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new IllegalArgumentException(what);
        }
    }
}
