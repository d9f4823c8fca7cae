package dev.latte.tests.unet;

import dev.latte.core.Compare;
import dev.latte.cpu.CpuBackend;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Configs and shapes no golden covers, checked by identities diffusers' UNet must satisfy: batch
 * items are independent, duplicated context tokens change nothing, transposing the latent (and
 * every kernel) transposes the output, and a linear projection equals the 1×1 conv it reshapes.
 */
class UNetConfigsTest {
    static final double SAME = 110; // dB: equal up to fp32 summation order
    static CpuBackend backend;
    @TempDir
    static Path tmp;

    @BeforeAll
    static void start() {
        backend = new CpuBackend();
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    static float[] run(Path dir, int b, int h, int w, int l, float[] x, float[] t, float[] ctx) {
        try (UNetModel m = UNetModel.load(dir); UNetRunner r = new UNetRunner(m, backend)) {
            return r.forward(new UNetRunner.Dims(b, h, w, l), x, t, ctx, Set.of(UNetRunner.OUT)).get(UNetRunner.OUT);
        }
    }

    static void assertSame(float[] expected, float[] actual, String what) {
        Compare c = Compare.of(expected, actual);
        System.out.printf("%s: PSNR %.2f dB%n", what, c.psnr());
        assertTrue(c.psnr() >= SAME, what + ": PSNR " + c.psnr());
    }

    @Test
    void batchItemsAreIndependent() throws IOException {
        Path dir = RandomModels.write(tmp.resolve("batch"), RandomModels.tinyConfig(""), 1);
        Random rnd = new Random(2);
        int n = 4 * 16 * 12, nc = 7 * 32;
        float[] x = RandomModels.gaussian(rnd, 2 * n), ctx = RandomModels.gaussian(rnd, 2 * nc);
        float[] both = run(dir, 2, 16, 12, 7, x, new float[] {999, 17}, ctx);
        float[] first = run(dir, 1, 16, 12, 7, Arrays.copyOf(x, n), new float[] {999}, Arrays.copyOf(ctx, nc));
        float[] second = run(dir, 1, 16, 12, 7, Arrays.copyOfRange(x, n, 2 * n), new float[] {17},
                Arrays.copyOfRange(ctx, nc, 2 * nc));
        assertSame(first, Arrays.copyOf(both, n), "batch item 0");
        assertSame(second, Arrays.copyOfRange(both, n, 2 * n), "batch item 1");
    }

    @Test
    void duplicatedContextTokensChangeNothing() throws IOException {
        Path dir = RandomModels.write(tmp.resolve("ctx"), RandomModels.tinyConfig(""), 3);
        Random rnd = new Random(4);
        float[] x = RandomModels.gaussian(rnd, 4 * 8 * 8), ctx = RandomModels.gaussian(rnd, 5 * 32);
        float[] twice = new float[10 * 32];
        for (int i = 0; i < 5; i++) {
            System.arraycopy(ctx, i * 32, twice, 2 * i * 32, 32);
            System.arraycopy(ctx, i * 32, twice, (2 * i + 1) * 32, 32);
        }
        assertSame(run(dir, 1, 8, 8, 5, x, new float[] {250}, ctx), run(dir, 1, 8, 8, 10, x, new float[] {250}, twice),
                "context tokens duplicated");
    }

    @ParameterizedTest(name = "downsample_padding {0}")
    @ValueSource(ints = {1, 0})
    void transposingTheLatentTransposesTheOutput(int downsamplePadding) throws IOException {
        String cfg = RandomModels.tinyConfig("\"downsample_padding\": " + downsamplePadding);
        Path a = RandomModels.write(tmp.resolve("t" + downsamplePadding), cfg, 5);
        // the same weights with every k×k kernel transposed
        Path b = RandomModels.write(tmp.resolve("tt" + downsamplePadding), cfg, 5, (name, v) -> transposeKernels(name, v));
        Random rnd = new Random(6);
        int h = 16, w = 24;
        float[] x = RandomModels.gaussian(rnd, 4 * h * w), ctx = RandomModels.gaussian(rnd, 3 * 32);
        float[] out = run(a, 1, h, w, 3, x, new float[] {600}, ctx);
        float[] outT = run(b, 1, w, h, 3, transpose(x, 4, h, w), new float[] {600}, ctx);
        assertSame(transpose(out, 4, h, w), outT, "transposed " + h + "x" + w);
    }

    private static float[] transposeKernels(String name, float[] v) {
        if (!name.endsWith("conv1.weight") && !name.endsWith("conv2.weight") && !name.endsWith("conv.weight")
                && !name.equals("conv_in.weight") && !name.equals("conv_out.weight")) {
            return v;
        }
        return transpose(v, v.length / 9, 3, 3);
    }

    /** [planes, h, w] → [planes, w, h]. */
    static float[] transpose(float[] v, int planes, int h, int w) {
        float[] t = new float[v.length];
        for (int p = 0; p < planes; p++) {
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    t[p * h * w + x * h + y] = v[p * h * w + y * w + x];
                }
            }
        }
        return t;
    }

    @Test
    void linearProjectionEqualsConvProjection() throws IOException {
        Path conv = RandomModels.write(tmp.resolve("conv"), RandomModels.tinyConfig(""), 7);
        Path linear = RandomModels.write(tmp.resolve("lin"), RandomModels.tinyConfig("\"use_linear_projection\": true"), 7);
        Random rnd = new Random(8);
        float[] x = RandomModels.gaussian(rnd, 2 * 4 * 8 * 8), ctx = RandomModels.gaussian(rnd, 2 * 4 * 32);
        // same seed, same parameter order, same element counts: identical values, only shapes differ
        assertSame(run(conv, 2, 8, 8, 4, x, new float[] {1}, ctx), run(linear, 2, 8, 8, 4, x, new float[] {1}, ctx),
                "linear vs conv proj");
    }

    @ParameterizedTest
    @ValueSource(strings = {
            "\"attention_head_dim\": [2, 4, 8]",
            "\"layers_per_block\": [1, 2, 1], \"transformer_layers_per_block\": [1, 2, 1]",
            "\"only_cross_attention\": true, \"mid_block_scale_factor\": 2.0",
            "\"mid_block_type\": null, \"conv_in_kernel\": 1, \"conv_out_kernel\": 5",
            "\"block_out_channels\": [32, 64], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
                    + " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"]",
            "\"block_out_channels\": [16, 32, 32, 48], \"norm_num_groups\": 4, \"down_block_types\":"
                    + " [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
                    + " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\","
                    + " \"CrossAttnUpBlock2D\"], \"time_embedding_dim\": 40"})
    void variantConfigsRun(String extra) throws IOException {
        Path dir = RandomModels.write(tmp.resolve("v" + Integer.toHexString(extra.hashCode())),
                RandomModels.tinyConfig(extra), 9);
        Random rnd = new Random(10);
        float[] x = RandomModels.gaussian(rnd, 3 * 4 * 12 * 20), ctx = RandomModels.gaussian(rnd, 3 * 6 * 32);
        float[] out = run(dir, 3, 12, 20, 6, x, new float[] {300}, ctx);
        assertEquals(3 * 4 * 12 * 20, out.length);
        assertTrue(Arrays.stream(toDouble(out)).allMatch(Double::isFinite));
        assertTrue(Arrays.stream(toDouble(out)).map(Math::abs).max().orElseThrow() > 0, "all-zero output");
    }

    private static double[] toDouble(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            d[i] = v[i];
        }
        return d;
    }

    @Test
    void oneTimestepBroadcastsToTheBatch() throws IOException {
        Path dir = RandomModels.write(tmp.resolve("bcast"), RandomModels.tinyConfig(""), 11);
        Random rnd = new Random(12);
        float[] x = RandomModels.gaussian(rnd, 2 * 4 * 8 * 8), ctx = RandomModels.gaussian(rnd, 2 * 3 * 32);
        assertArrayEquals(run(dir, 2, 8, 8, 3, x, new float[] {42, 42}, ctx), run(dir, 2, 8, 8, 3, x, new float[] {42}, ctx));
    }
}
