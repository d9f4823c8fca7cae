package dev.latte.tests.ops;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latte.core.Backend;
import dev.latte.core.Compare;
import dev.latte.core.Conv2dParams;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cpu.CpuBackend;
import dev.latte.ref.ReferenceBackend;
import dev.latte.tests.Resources;
import dev.latte.weights.SafeTensorsFile;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Every op against PyTorch's output in {@code golden/ops/}: one case per file, gated at 110 dB
 * PSNR, run on the reference backend (the goldens are what make the reference trusted) and on the
 * fast CPU backend (which the op-case table also checks against the reference).
 */
class OpsGoldenTest {
    static final double MIN_PSNR = 110;
    private static final List<Backend> BACKENDS = List.of(new ReferenceBackend(), new CpuBackend());

    @AfterAll
    static void close() {
        BACKENDS.forEach(Backend::close);
    }

    /** Runs the op of one golden file on a backend and returns its result, laid out like {@code y}. */
    interface OpCase {
        float[] run(Golden g, Backend be);
    }

    record Case(String file, OpCase op) {
    }

    static List<Case> cases() {
        return List.of(
                new Case("conv2d_1x1", (g, be) -> conv(g, be, "weight", "bias", Conv2dParams.of(1, 0))),
                new Case("conv2d_3x3_s1", (g, be) -> conv(g, be, "weight", "bias", Conv2dParams.of(1, 1))),
                new Case("conv2d_3x3_s2", (g, be) -> conv(g, be, "weight", "bias", Conv2dParams.of(2, 1))),
                new Case("group_norm_32", (g, be) -> {
                    Tensor x = g.tensor(be, "x"), y = be.allocate(x.shape());
                    be.groupNorm(x, g.tensor(be, "weight"), g.tensor(be, "bias"), 32, 1e-5f, false, y);
                    return be.download(y);
                }),
                new Case("silu", (g, be) -> {
                    Tensor x = g.tensor(be, "x"), y = be.allocate(x.shape());
                    be.silu(x, y);
                    return be.download(y);
                }),
                new Case("conv_gn_silu", (g, be) -> be.download(convGnSilu(g, be))),
                new Case("conv_gn_silu_skip", (g, be) -> {
                    Tensor h = convGnSilu(g, be);
                    be.add(g.tensor(be, "x"), h, h);
                    return be.download(h);
                }),
                new Case("linear", (g, be) -> {
                    Tensor x = g.tensor(be, "x"), w = g.tensor(be, "weight");
                    Tensor y = be.allocate(Shape.of(x.shape().dim(0), x.shape().dim(1), w.shape().dim(0)));
                    be.linear(x, w, g.tensor(be, "bias"), y);
                    return be.download(y);
                }),
                new Case("layer_norm", (g, be) -> {
                    Tensor x = g.tensor(be, "x"), y = be.allocate(x.shape());
                    be.layerNorm(x, g.tensor(be, "weight"), g.tensor(be, "bias"), 1e-5f, y);
                    return be.download(y);
                }),
                new Case("geglu", (g, be) -> {
                    Tensor x = g.tensor(be, "x"), w = g.tensor(be, "proj_weight");
                    int b = x.shape().dim(0), s = x.shape().dim(1), f2 = w.shape().dim(0);
                    Tensor proj = be.allocate(Shape.of(b, s, f2)), y = be.allocate(Shape.of(b, s, f2 / 2));
                    be.linear(x, w, g.tensor(be, "proj_bias"), proj);
                    be.geglu(proj, y);
                    return be.download(y);
                }),
                new Case("gelu", (g, be) -> {
                    Tensor x = g.tensor(be, "x"), y = be.allocate(x.shape());
                    be.gelu(x, y);
                    return be.download(y);
                }),
                new Case("attention_self_h8_d40_s1024", OpsGoldenTest::attention),
                new Case("attention_cross_h8_d40_s1024_k77", OpsGoldenTest::attention),
                new Case("timestep_embedding_320", (g, be) -> {
                    long[] ts = g.file.toLongArray("timesteps");
                    float[] t = new float[ts.length];
                    for (int i = 0; i < t.length; i++) {
                        t[i] = ts[i]; // diffusers: timesteps[:, None].float()
                    }
                    Tensor y = be.allocate(Shape.of(t.length, 320));
                    be.timestepEmbedding(be.upload(Shape.of(t.length), t), true, 0f, y);
                    return be.download(y);
                }),
                new Case("upsample_nearest_2x", (g, be) -> {
                    Tensor x = g.tensor(be, "x");
                    Shape s = x.shape();
                    Tensor y = be.allocate(Shape.of(s.dim(0), s.dim(1), 2 * s.dim(2), 2 * s.dim(3)));
                    be.upsampleNearest(x, y);
                    return be.download(y);
                }));
    }

    @TestFactory
    Stream<DynamicTest> matchesPytorch() {
        return BACKENDS.stream().flatMap(be -> cases().stream().map(c -> DynamicTest.dynamicTest(
                be.name() + " " + c.file(), () -> {
            try (SafeTensorsFile f = SafeTensorsFile.open(Resources.golden("ops/" + c.file() + ".safetensors"))) {
                Golden g = new Golden(f);
                float[] ref = f.toFloatArray("y");
                Compare cmp = Compare.of(ref, c.op().run(g, be));
                System.out.println(String.format(Locale.ROOT, "[ops/%s] %-34s PSNR %7.2f dB  max|err| %.3e",
                        be.name(), c.file(), cmp.psnr(), cmp.maxAbsError()));
                assertEquals(0, cmp.nonFinite(), c.file() + ": non-finite values");
                assertTrue(cmp.psnr() >= MIN_PSNR, () -> c.file() + ": PSNR " + cmp.psnr() + " dB < " + MIN_PSNR);
            }
        })));
    }

    private static float[] conv(Golden g, Backend be, String weight, String bias, Conv2dParams p) {
        return be.download(conv(g, be, g.tensor(be, "x"), weight, bias, p));
    }

    private static Tensor conv(Golden g, Backend be, Tensor x, String weight, String bias, Conv2dParams p) {
        Tensor w = g.tensor(be, weight);
        Shape xs = x.shape(), ws = w.shape();
        Tensor y = be.allocate(Shape.of(xs.dim(0), ws.dim(0), p.outHeight(xs.dim(2), ws.dim(2)), p.outWidth(xs.dim(3), ws.dim(3))));
        be.conv2d(x, w, g.tensor(be, bias), p, y);
        return y;
    }

    /** silu(group_norm(conv3x3 pad 1(x))) with the file's group count, eps 1e-5. */
    private static Tensor convGnSilu(Golden g, Backend be) {
        Tensor h = conv(g, be, g.tensor(be, "x"), "conv_weight", "conv_bias", Conv2dParams.of(1, 1));
        int groups = Math.toIntExact(g.file.toLongArray("groups")[0]);
        be.groupNorm(h, g.tensor(be, "norm_weight"), g.tensor(be, "norm_bias"), groups, 1e-5f, true, h);
        return h;
    }

    /** q, k, v and y are stored [B, H, S, D]; the backend takes [B, S, H·D]. */
    private static float[] attention(Golden g, Backend be) {
        long[] qs = g.file.info("q").shape(), ks = g.file.info("k").shape();
        int b = (int) qs[0], h = (int) qs[1], sq = (int) qs[2], d = (int) qs[3], sk = (int) ks[2];
        Tensor q = be.upload(Shape.of(b, sq, h * d), headsToTokens(g.file.toFloatArray("q"), b, h, sq, d));
        Tensor k = be.upload(Shape.of(b, sk, h * d), headsToTokens(g.file.toFloatArray("k"), b, h, sk, d));
        Tensor v = be.upload(Shape.of(b, sk, h * d), headsToTokens(g.file.toFloatArray("v"), b, h, sk, d));
        Tensor y = be.allocate(Shape.of(b, sq, h * d));
        be.attention(q, k, v, h, (float) (1 / Math.sqrt(d)), y);
        return tokensToHeads(be.download(y), b, h, sq, d);
    }

    static float[] headsToTokens(float[] x, int b, int h, int s, int d) {
        float[] out = new float[x.length];
        for (int bi = 0; bi < b; bi++) {
            for (int hi = 0; hi < h; hi++) {
                for (int si = 0; si < s; si++) {
                    System.arraycopy(x, ((bi * h + hi) * s + si) * d, out, (bi * s + si) * h * d + hi * d, d);
                }
            }
        }
        return out;
    }

    static float[] tokensToHeads(float[] x, int b, int h, int s, int d) {
        float[] out = new float[x.length];
        for (int bi = 0; bi < b; bi++) {
            for (int hi = 0; hi < h; hi++) {
                for (int si = 0; si < s; si++) {
                    System.arraycopy(x, (bi * s + si) * h * d + hi * d, out, ((bi * h + hi) * s + si) * d, d);
                }
            }
        }
        return out;
    }

    /** One golden file, handing out its float tensors as backend tensors. */
    record Golden(SafeTensorsFile file) {
        Tensor tensor(Backend be, String name) {
            return be.upload(Shape.of(file.info(name).intShape()), file.toFloatArray(name));
        }
    }
}
