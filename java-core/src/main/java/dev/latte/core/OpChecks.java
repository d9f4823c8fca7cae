package dev.latte.core;

/**
 * The shape checks every {@link Backend} makes before an op, in one place so that the backends
 * accept and reject the same calls with the same messages. Each method throws
 * {@link IllegalArgumentException} with the op's description when a shape does not fit, and
 * returns that description ({@code "op: x [..], .., out [..]"}) for the backend's own checks
 * (tensor type, aliasing, size limits), which it words as {@code what + " (reason)"}.
 */
public final class OpChecks {
    private OpChecks() {
    }

    /**
     * conv2d of x nearest-resized to height × width (x's own size for a plain conv): 4-d x and w
     * with w's input channels x's, a resize that does not shrink, positive strides and
     * non-negative padding, out [N, K, P, Q] with P, Q > 0, bias [K] or none. {@code detail} is
     * appended to the description (the CUDA backend names its fused norm and residual there).
     * The residual, where there is one, each backend checks itself.
     */
    public static String conv2d(Tensor x, int height, int width, Tensor w, Tensor bias, Conv2dParams p, Tensor out,
                                String detail) {
        Shape xs = x.shape(), ws = w.shape(), os = out.shape();
        String what = "conv2d: x " + xs
                + (height == xs.dim(-2) && width == xs.dim(-1) ? "" : " upsampled to " + height + "x" + width)
                + ", w " + ws + ", bias " + (bias == null ? "none" : bias.shape()) + ", " + p + ", out " + os + detail;
        check(xs.rank() == 4 && ws.rank() == 4 && ws.dim(1) == xs.dim(1) && height >= xs.dim(2)
                && width >= xs.dim(3), what);
        check(p.strideH() > 0 && p.strideW() > 0 && p.padTop() >= 0 && p.padLeft() >= 0
                && p.padBottom() >= 0 && p.padRight() >= 0, what);
        int n = xs.dim(0), k = ws.dim(0), r = ws.dim(2), s = ws.dim(3);
        int pOut = p.outHeight(height, r), qOut = p.outWidth(width, s);
        check(pOut > 0 && qOut > 0 && os.equals(Shape.of(n, k, pOut, qOut)), what);
        check(bias == null || bias.shape().equals(Shape.of(k)), what);
        return what;
    }

    /** groupNorm: x of rank ≥ 2 whose channels (dim 1) split into groups > 0, out x's shape, gamma and beta [C]. */
    public static String groupNorm(Tensor x, Tensor gamma, Tensor beta, int groups, Tensor out) {
        Shape xs = x.shape();
        String what = "groupNorm: x " + xs + ", gamma " + gamma.shape() + ", beta " + beta.shape() + ", groups "
                + groups + ", out " + out.shape();
        check(xs.rank() >= 2 && groups > 0 && xs.dim(1) % groups == 0 && out.shape().equals(xs), what);
        int c = xs.dim(1);
        check(gamma.shape().equals(Shape.of(c)) && beta.shape().equals(Shape.of(c)), what);
        return what;
    }

    /** layerNorm over the last dimension D: x of rank ≥ 1, out x's shape, gamma and beta [D]. */
    public static String layerNorm(Tensor x, Tensor gamma, Tensor beta, Tensor out) {
        Shape xs = x.shape();
        String what = "layerNorm: x " + xs + ", gamma " + gamma.shape() + ", beta " + beta.shape() + ", out "
                + out.shape();
        check(xs.rank() >= 1 && out.shape().equals(xs), what);
        int d = xs.dim(-1);
        check(gamma.shape().equals(Shape.of(d)) && beta.shape().equals(Shape.of(d)), what);
        return what;
    }

    /** linear: x [.., in], w [outF, in], bias [outF] or none, out [.., outF]. */
    public static String linear(Tensor x, Tensor w, Tensor bias, Tensor out) {
        Shape xs = x.shape(), ws = w.shape(), os = out.shape();
        String what = "linear: x " + xs + ", w " + ws + ", bias " + (bias == null ? "none" : bias.shape())
                + ", out " + os;
        check(xs.rank() >= 1 && ws.rank() == 2 && xs.dim(-1) == ws.dim(1), what);
        int outF = ws.dim(0);
        int[] od = xs.dims();
        od[od.length - 1] = outF;
        check(os.equals(Shape.of(od)) && (bias == null || bias.shape().equals(Shape.of(outF))), what);
        return what;
    }

    /** linearResidual: linear's shapes, residual out's shape. */
    public static String linearResidual(Tensor x, Tensor w, Tensor bias, Tensor residual, Tensor out) {
        String what = linear(x, w, bias, out) + ", residual " + (residual == null ? "none" : residual.shape());
        check(residual != null && residual.shape().equals(out.shape()), what);
        return what;
    }

    /** linearGeglu: x [..., in], w [2F, in], bias [2F] or null, out [..., F]. */
    public static String linearGeglu(Tensor x, Tensor w, Tensor bias, Tensor out) {
        Shape xs = x.shape(), ws = w.shape(), os = out.shape();
        String what = "linearGeglu: x " + xs + ", w " + ws + ", bias " + (bias == null ? "none" : bias.shape())
                + ", out " + os;
        check(xs.rank() >= 1 && ws.rank() == 2 && xs.dim(-1) == ws.dim(1) && ws.dim(0) % 2 == 0, what);
        int[] od = xs.dims();
        od[od.length - 1] = ws.dim(0) / 2;
        check(os.equals(Shape.of(od)) && (bias == null || bias.shape().equals(Shape.of(ws.dim(0)))), what);
        return what;
    }

    /**
     * linearQkv: x [..., in], three weights [C, in], biases [C] all or none, out [3, ..., C]
     * (the q, k and v projections one after the other).
     */
    public static String linearQkv(Tensor x, Tensor wq, Tensor wk, Tensor wv, Tensor bq, Tensor bk, Tensor bv,
                                   Tensor out) {
        Shape xs = x.shape(), ws = wq.shape(), os = out.shape();
        String what = "linearQkv: x " + xs + ", w " + ws + " " + wk.shape() + " " + wv.shape() + ", bias "
                + (bq == null ? "none" : bq.shape()) + ", out " + os;
        check(xs.rank() >= 1 && ws.rank() == 2 && xs.dim(-1) == ws.dim(1) && wk.shape().equals(ws)
                && wv.shape().equals(ws), what);
        boolean biased = bq != null;
        check((bk != null) == biased && (bv != null) == biased, what + " (biases all or none)");
        Shape b = Shape.of(ws.dim(0));
        check(!biased || (bq.shape().equals(b) && bk.shape().equals(b) && bv.shape().equals(b)), what);
        int[] od = new int[xs.rank() + 1];
        od[0] = 3;
        for (int i = 0; i < xs.rank(); i++) {
            od[i + 1] = xs.dim(i);
        }
        od[od.length - 1] = ws.dim(0);
        check(os.equals(Shape.of(od)), what);
        return what;
    }

    /** attentionQkv: qkv [3, B, S, C] (q, k, v blocks), C a multiple of heads > 0, out [B, S, C]. */
    public static String attentionQkv(Tensor qkv, int heads, Tensor out) {
        Shape s = qkv.shape(), os = out.shape();
        String what = "attentionQkv: qkv " + s + ", heads " + heads + ", out " + os;
        check(s.rank() == 4 && s.dim(0) == 3 && os.equals(Shape.of(s.dim(1), s.dim(2), s.dim(3))), what);
        check(heads > 0 && s.dim(3) % heads == 0, what);
        return what;
    }

    /**
     * attention: q [B, Sq, C], k and v [B, Sk, C] with C a multiple of heads > 0, out q's shape,
     * and at least one key unless there are no queries.
     */
    public static String attention(Tensor q, Tensor k, Tensor v, int heads, Tensor out) {
        Shape qs = q.shape(), ks = k.shape(), vs = v.shape();
        String what = "attention: q " + qs + ", k " + ks + ", v " + vs + ", heads " + heads + ", out " + out.shape();
        check(qs.rank() == 3 && ks.rank() == 3 && ks.equals(vs) && out.shape().equals(qs), what);
        check(qs.dim(0) == ks.dim(0) && qs.dim(2) == ks.dim(2) && heads > 0 && qs.dim(2) % heads == 0, what);
        check(ks.dim(1) > 0 || qs.dim(1) == 0, what + " (no keys)");
        return what;
    }

    /** embedding: ids [B, L], table [V, D], positions [P ≥ L, D] or none, out [B, L, D]. */
    public static String embedding(Tensor ids, Tensor table, Tensor positions, Tensor out) {
        Shape is = ids.shape(), ts = table.shape(), os = out.shape();
        String what = "embedding: ids " + is + ", table " + ts + ", positions "
                + (positions == null ? "none" : positions.shape()) + ", out " + os;
        check(is.rank() == 2 && ts.rank() == 2 && os.equals(Shape.of(is.dim(0), is.dim(1), ts.dim(1))), what);
        check(positions == null || (positions.shape().rank() == 2 && positions.shape().dim(1) == ts.dim(1)
                && positions.shape().dim(0) >= is.dim(1)), what);
        return what;
    }

    /** geglu: x [.., 2F], out [.., F]. */
    public static String geglu(Tensor x, Tensor out) {
        Shape xs = x.shape(), os = out.shape();
        String what = "geglu: x " + xs + ", out " + os;
        check(xs.rank() >= 1 && xs.dim(-1) % 2 == 0, what);
        int[] od = xs.dims();
        od[od.length - 1] = xs.dim(-1) / 2;
        check(os.equals(Shape.of(od)), what);
        return what;
    }

    /** timestepEmbedding: t [B], out [B, dim]. */
    public static String timestepEmbedding(Tensor t, Tensor out) {
        Shape ts = t.shape(), os = out.shape();
        String what = "timestepEmbedding: t " + ts + ", out " + os;
        check(ts.rank() == 1 && os.rank() == 2 && os.dim(0) == ts.dim(0), what);
        return what;
    }

    /** upsampleNearest: x [N, C, H, W], out [N, C, OH, OW], an empty x only into an empty out. */
    public static String upsampleNearest(Tensor x, Tensor out) {
        Shape xs = x.shape(), os = out.shape();
        String what = "upsampleNearest: x " + xs + ", out " + os;
        check(xs.rank() == 4 && os.rank() == 4 && xs.dim(0) == os.dim(0) && xs.dim(1) == os.dim(1), what);
        check((xs.dim(2) > 0 && xs.dim(3) > 0) || (long) os.dim(2) * os.dim(3) == 0, what);
        return what;
    }

    /** concatChannels: a [N, Ca, H, W], b [N, Cb, H, W], out [N, Ca + Cb, H, W]. */
    public static String concatChannels(Tensor a, Tensor b, Tensor out) {
        Shape as = a.shape(), bs = b.shape(), os = out.shape();
        String what = "concatChannels: a " + as + ", b " + bs + ", out " + os;
        check(as.rank() == 4 && bs.rank() == 4 && as.dim(0) == bs.dim(0) && as.dim(2) == bs.dim(2)
                && as.dim(3) == bs.dim(3), what);
        check(os.equals(Shape.of(as.dim(0), as.dim(1) + bs.dim(1), as.dim(2), as.dim(3))), what);
        return what;
    }

    /** add: a, b and out of one shape. */
    public static String add(Tensor a, Tensor b, Tensor out) {
        String what = "add: a " + a.shape() + ", b " + b.shape() + ", out " + out.shape();
        check(a.shape().equals(b.shape()) && a.shape().equals(out.shape()), what);
        return what;
    }

    /** addChannelBias: x of rank ≥ 2, v [N, C] (x's first two dimensions), out x's shape. */
    public static String addChannelBias(Tensor x, Tensor v, Tensor out) {
        Shape xs = x.shape();
        String what = "addChannelBias: x " + xs + ", v " + v.shape() + ", out " + out.shape();
        check(xs.rank() >= 2 && out.shape().equals(xs) && v.shape().equals(Shape.of(xs.dim(0), xs.dim(1))), what);
        return what;
    }

    /** An elementwise op {@code op} (silu, gelu, scale): out x's shape. */
    public static String unary(String op, Tensor x, Tensor out) {
        String what = op + ": x " + x.shape() + ", out " + out.shape();
        check(x.shape().equals(out.shape()), what);
        return what;
    }

    /** nchwToTokens: x [N, C, H, W], out [N, H·W, C]. */
    public static String nchwToTokens(Tensor x, Tensor out) {
        Shape xs = x.shape(), os = out.shape();
        String what = "nchwToTokens: x " + xs + ", out " + os;
        check(xs.rank() == 4 && os.equals(Shape.of(xs.dim(0), xs.dim(2) * xs.dim(3), xs.dim(1))), what);
        return what;
    }

    /** tokensToNchw: x [N, H·W, C], out [N, C, H, W]. */
    public static String tokensToNchw(Tensor x, Tensor out) {
        Shape xs = x.shape(), os = out.shape();
        String what = "tokensToNchw: x " + xs + ", out " + os;
        check(xs.rank() == 3 && os.rank() == 4 && os.equals(Shape.of(xs.dim(0), xs.dim(2), os.dim(2), os.dim(3)))
                && os.dim(2) * os.dim(3) == xs.dim(1), what);
        return what;
    }

    /** {@code op} (upload, write) given {@code count} host values for a tensor of {@code shape}. */
    public static void valueCount(String op, int count, Shape shape) {
        check(count == shape.numel(), op + ": " + count + " values for shape " + shape);
    }

    /** The floats of a host (Java array) arena of {@code bytes}: a whole number that fits one array. */
    public static int hostArenaFloats(long bytes) {
        check(bytes >= 0 && bytes % Float.BYTES == 0, "arena: " + bytes + " bytes is not a whole number of floats");
        // said in the user's terms: an input this large is what makes it (4096² latents did)
        check(bytes / Float.BYTES <= Integer.MAX_VALUE - 8, "these inputs need a " + (bytes >> 20)
                + " MiB activation arena, more than one Java array holds (" + ((Integer.MAX_VALUE - 8L) * 4 >> 20)
                + " MiB); use a smaller --height/--width or --batch");
        return (int) (bytes / Float.BYTES);
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new IllegalArgumentException(what);
        }
    }
}
