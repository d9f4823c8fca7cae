package dev.latte.tests.compression;

import dev.latte.core.Int8Mode;
import dev.latte.cpu.CpuBackend;
import dev.latte.model.GoldenCase;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.prune.Pruner;
import dev.latte.quant.Quantizer;
import dev.latte.tests.Resources;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.WeightsException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** unet-tiny pruned: ratio 0 changes nothing, a real ratio gives consistent shapes that run. */
class PrunedModelTest {
    @TempDir
    static Path tmp;
    static CpuBackend backend;
    static final Path CASE = Resources.golden("unet-tiny/case-0.safetensors");

    @BeforeAll
    static void open() {
        backend = new CpuBackend();
    }

    @AfterAll
    static void close() {
        backend.close();
    }

    static Pruner.Result prune(double ratio, Path out, SafeTensorsFile grads) {
        try (UNetModel model = UNetModel.load(Resources.unetTiny())) {
            return Pruner.prune(model, ratio, grads, out);
        }
    }

    static float[] out(Path dir, Int8Mode mode) {
        try (UNetModel m = UNetModel.load(dir); UNetRunner r = new UNetRunner(m, backend, mode)) {
            var dims = new UNetRunner.Dims(2, 16, 16, 77);
            try (SafeTensorsFile c = SafeTensorsFile.open(CASE)) {
                return r.forward(dims, c.toFloatArray("sample"), c.toFloatArray("timestep"),
                        c.toFloatArray("encoder_hidden_states"), Set.of("out")).get("out");
            }
        }
    }

    @Test
    void ratioZeroReproducesTheOriginalBitForBit() throws IOException {
        Path dir = tmp.resolve("r0");
        Pruner.Result r = prune(0, dir, null);
        assertEquals(r.paramsBefore(), r.paramsAfter());
        assertTrue(r.modules().stream().allMatch(m -> m.after() == m.before()));
        assertTrue(Files.readString(dir.resolve("config.json")).contains("\"latte_pruned\""));
        try (SafeTensorsFile a = SafeTensorsFile.open(Resources.unetTiny().resolve("diffusion_pytorch_model.safetensors"));
             SafeTensorsFile b = SafeTensorsFile.open(dir.resolve("diffusion_pytorch_model.safetensors"))) {
            assertEquals(a.tensors().size(), b.tensors().size());
            for (TensorInfo t : a.tensors()) {
                assertEquals(t.dtype(), b.info(t.name()).dtype());
                assertArrayEquals(t.shape(), b.info(t.name()).shape());
                assertArrayEquals(a.data(t.name()).toArray(ValueLayout.JAVA_BYTE),
                        b.data(t.name()).toArray(ValueLayout.JAVA_BYTE), t.name());
            }
        }
        assertArrayEquals(out(Resources.unetTiny(), Int8Mode.W8A16), out(dir, Int8Mode.W8A16), "output, bit for bit");
    }

    @Test
    void halfPrunedModelHasConsistentShapesAndRuns() {
        Path dir = tmp.resolve("r50");
        Pruner.Result r = prune(0.5, dir, null);
        assertTrue(r.paramsAfter() < r.paramsBefore() * 0.8, r.paramsAfter() + " of " + r.paramsBefore());
        try (UNetModel m = UNetModel.load(dir)) {
            assertTrue(m.isPruned());
            assertEquals("fp32, pruned", m.mode());
            var w = m.weights();
            int checked = 0;
            for (TensorInfo t : w.tensors()) {
                String n = t.name();
                if (n.endsWith(".conv1.weight")) {
                    String p = n.substring(0, n.length() - ".conv1.weight".length());
                    long inner = t.shape()[0], out = w.info(p + ".conv2.weight").shape()[0];
                    long perGroup = out / m.config().normNumGroups();
                    assertEquals(0, inner % 4, n);
                    assertEquals(0, inner % perGroup, n + ": whole GroupNorm groups");
                    assertTrue(inner < out, n + " pruned");
                    assertEquals(inner, w.info(p + ".conv2.weight").shape()[1]);
                    assertEquals(inner, w.info(p + ".time_emb_proj.weight").shape()[0]);
                    assertEquals(inner, w.info(p + ".norm2.weight").numel());
                    checked++;
                } else if (n.endsWith(".to_q.weight")) {
                    String p = n.substring(0, n.length() - ".to_q.weight".length());
                    long inner = t.shape()[0];
                    assertEquals(0, inner % 8, n + ": 8 heads of equal head_dim");
                    assertEquals(inner, w.info(p + ".to_k.weight").shape()[0]);
                    assertEquals(inner, w.info(p + ".to_v.weight").shape()[0]);
                    assertEquals(inner, w.info(p + ".to_out.0.weight").shape()[1]);
                    assertEquals(t.shape()[1], w.info(p + ".to_out.0.weight").shape()[0], "block interface kept");
                    checked++;
                } else if (n.endsWith(".ff.net.0.proj.weight")) {
                    String p = n.substring(0, n.length() - ".ff.net.0.proj.weight".length());
                    assertEquals(t.shape()[0], 2 * w.info(p + ".ff.net.2.weight").shape()[1], n);
                    assertEquals(0, w.info(p + ".ff.net.2.weight").shape()[1] % 4, n);
                    checked++;
                }
            }
            assertEquals(r.modules().size(), checked);
        }
        float[] y = out(dir, Int8Mode.W8A16);
        assertEquals(2 * 4 * 16 * 16, y.length);
        assertTrue(Arrays.stream(toDouble(y)).allMatch(Double::isFinite));
        try (UNetModel m = UNetModel.load(dir); UNetRunner run = new UNetRunner(m, backend)) {
            var c = GoldenCase.validate(run, CASE).stream().filter(row -> row.name().equals("out")).findFirst()
                    .orElseThrow().compare();
            System.out.printf("unet-tiny pruned 0.5 case-0 out: PSNR %.2f dB (random weights: expect it low)%n", c.psnr());
        }
        // and pruned + int8 loads and runs in both modes
        Path both = tmp.resolve("r50-int8");
        try (UNetModel m = UNetModel.load(dir)) {
            Quantizer.quantize(m, both);
        }
        for (Int8Mode mode : Int8Mode.values()) {
            assertTrue(Arrays.stream(toDouble(out(both, mode))).allMatch(Double::isFinite), mode.toString());
        }
    }

    @Test
    void prunedWeightsWithoutTheConfigMarkerAreRefused() throws IOException {
        Path dir = tmp.resolve("unmarked");
        prune(0.5, dir, null);
        Files.copy(Resources.unetTiny().resolve("config.json"), dir.resolve("config.json"),
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        var e = assertThrows(WeightsException.class, () -> UNetModel.load(dir));
        assertTrue(e.getMessage().contains("config and weights disagree"), e.getMessage());
    }

    @Test
    void gradientImportanceDecidesWhatStays() throws IOException {
        // zero gradients everywhere but the last GroupNorm group of one resnet's conv1: that group must stay
        String name = "down_blocks.0.resnets.0.conv1.weight";
        Path grads = tmp.resolve("grads.safetensors");
        float[] w;
        long[] shape;
        try (SafeTensorsFile f = SafeTensorsFile.open(Resources.unetTiny().resolve("diffusion_pytorch_model.safetensors"))) {
            w = f.toFloatArray(name);
            shape = f.info(name).shape();
        }
        float[] g = new float[w.length];
        int rowLen = w.length / 32;
        Arrays.fill(g, 28 * rowLen, 32 * rowLen, 1f);
        new SafeTensorsWriter().addF32(name, shape, g).write(grads);
        Path dir = tmp.resolve("grad");
        try (SafeTensorsFile gf = SafeTensorsFile.open(grads)) {
            prune(0.5, dir, gf);
        }
        try (SafeTensorsFile p = SafeTensorsFile.open(dir.resolve("diffusion_pytorch_model.safetensors"))) {
            float[] kept = p.toFloatArray(name);
            assertEquals(20 * rowLen, kept.length); // 16.8 -> 20 channels: 5 groups of 4
            // ties (all-zero importance) keep the lowest groups: 0..3, then the one with gradient, 7
            float[] expected = new float[20 * rowLen];
            System.arraycopy(w, 0, expected, 0, 16 * rowLen);
            System.arraycopy(w, 28 * rowLen, expected, 16 * rowLen, 4 * rowLen);
            assertArrayEquals(expected, kept);
        }
        assertFalse(Files.readString(dir.resolve("config.json")).isEmpty());
    }

    /**
     * Pruning is exact where the pruned channels are dead: zero, in unet-tiny, exactly the channels
     * a 0.5 pruning removes (producer rows and biases, consumer columns), then prune. The output
     * must not change — which also checks that to_q carries the attention scale of the old head_dim.
     */
    @Test
    void pruningDeadChannelsChangesNothing() throws IOException {
        double ratio = 0.5;
        Path dead = tmp.resolve("dead");
        Files.createDirectories(dead);
        Files.copy(Resources.unetTiny().resolve("config.json"), dead.resolve("config.json"));
        try (SafeTensorsFile f = SafeTensorsFile.open(Resources.unetTiny().resolve("diffusion_pytorch_model.safetensors"))) {
            java.util.Map<String, float[]> v = new java.util.TreeMap<>();
            for (TensorInfo t : f.tensors()) {
                v.put(t.name(), f.toFloatArray(t.name()));
            }
            for (TensorInfo t : f.tensors()) {
                String n = t.name();
                if (n.endsWith(".conv1.weight")) {
                    String p = n.substring(0, n.length() - ".conv1.weight".length());
                    int c = (int) t.shape()[0], keep = Pruner.keptWidth(c, ratio, c / 8); // groups of c/8
                    for (int ch = keep; ch < c; ch++) {
                        zeroRow(v, f, p + ".conv1.weight", ch);
                        zeroRow(v, f, p + ".conv1.bias", ch);
                        zeroRow(v, f, p + ".time_emb_proj.weight", ch);
                        zeroRow(v, f, p + ".time_emb_proj.bias", ch);
                        zeroColumn(v, f, p + ".conv2.weight", ch);
                    }
                } else if (n.endsWith(".to_q.weight")) {
                    String p = n.substring(0, n.length() - ".to_q.weight".length());
                    int inner = (int) t.shape()[0], d = inner / 8, keep = Pruner.keptWidth(d, ratio, 1);
                    for (int h = 0; h < 8; h++) {
                        for (int i = keep; i < d; i++) {
                            for (String w : new String[] {".to_q.weight", ".to_k.weight", ".to_v.weight"}) {
                                zeroRow(v, f, p + w, h * d + i);
                            }
                            zeroColumn(v, f, p + ".to_out.0.weight", h * d + i);
                        }
                    }
                } else if (n.endsWith(".ff.net.0.proj.weight")) {
                    String p = n.substring(0, n.length() - ".ff.net.0.proj.weight".length());
                    int ff = (int) t.shape()[0] / 2, keep = Pruner.keptWidth(ff, ratio, 4);
                    for (int j = keep; j < ff; j++) {
                        for (int row : new int[] {j, ff + j}) {
                            zeroRow(v, f, p + ".ff.net.0.proj.weight", row);
                            zeroRow(v, f, p + ".ff.net.0.proj.bias", row);
                        }
                        zeroColumn(v, f, p + ".ff.net.2.weight", j);
                    }
                }
            }
            SafeTensorsWriter w = new SafeTensorsWriter();
            v.forEach((name, values) -> w.addF32(name, f.info(name).shape(), values));
            w.write(dead.resolve("diffusion_pytorch_model.safetensors"));
        }
        Path pruned = tmp.resolve("dead-pruned");
        Pruner.Result r;
        try (UNetModel m = UNetModel.load(dead)) {
            r = Pruner.prune(m, ratio, null, pruned);
        }
        assertTrue(r.modules().stream().allMatch(m -> m.after() < m.before()), r.modules().toString());
        var c = dev.latte.core.Compare.of(out(dead, Int8Mode.W8A16), out(pruned, Int8Mode.W8A16));
        System.out.printf("unet-tiny with dead channels, pruned 0.5 vs unpruned: PSNR %.2f dB (%d -> %d parameters)%n",
                c.psnr(), r.paramsBefore(), r.paramsAfter());
        assertTrue(c.psnr() >= 110, "pruning dead channels changed the output: " + c.psnr() + " dB");
    }

    private static void zeroRow(java.util.Map<String, float[]> v, SafeTensorsFile f, String name, int row) {
        float[] a = v.get(name);
        int len = a.length / (int) f.info(name).shape()[0];
        Arrays.fill(a, row * len, (row + 1) * len, 0f);
    }

    private static void zeroColumn(java.util.Map<String, float[]> v, SafeTensorsFile f, String name, int col) {
        float[] a = v.get(name);
        long[] s = f.info(name).shape();
        int inner = a.length / (int) (s[0] * s[1]);
        for (int o = 0; o < s[0]; o++) {
            Arrays.fill(a, (int) ((o * s[1] + col) * inner), (int) ((o * s[1] + col + 1) * inner), 0f);
        }
    }

    static double[] toDouble(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            d[i] = v[i];
        }
        return d;
    }
}
