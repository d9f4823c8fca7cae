package dev.latte.tests.compression;

import dev.latte.core.Int8Mode;
import dev.latte.cpu.CpuBackend;
import dev.latte.graph.Graph;
import dev.latte.graph.Op;
import dev.latte.model.GoldenCase;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.quant.Quantizer;
import dev.latte.tests.Resources;
import dev.latte.weights.DType;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.WeightsException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.function.BiConsumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** unet-tiny quantised to int8: what is written, that it loads and runs in both modes, and bad files. */
class QuantizedModelTest {
    @TempDir
    static Path tmp;
    static Path int8;
    static CpuBackend backend;

    @BeforeAll
    static void quantize() {
        backend = new CpuBackend();
        int8 = tmp.resolve("int8");
        try (UNetModel model = UNetModel.load(Resources.unetTiny())) {
            Quantizer.Summary s = Quantizer.quantize(model, int8);
            assertEquals(Quantizer.quantizableWeights(model).size(), s.quantized());
            assertTrue(s.bytesAfter() * 3 < s.bytesBefore(), s.toString());
        }
    }

    @AfterAll
    static void close() {
        backend.close();
    }

    @Test
    void everyConvAndLinearWeightIsInt8WithItsScale() throws IOException {
        assertTrue(Files.readString(int8.resolve("config.json")).contains("\"latte_quantization\" : \"int8-per-channel\""));
        try (UNetModel m = UNetModel.load(int8)) {
            assertEquals("int8-per-channel", m.config().latteQuantization());
            assertTrue(m.isQuantized());
            assertEquals("int8-per-channel", m.mode());
            try (UNetModel fp32 = UNetModel.load(Resources.unetTiny())) {
                assertEquals(fp32.parameterCount(), m.parameterCount(), "scales are not parameters");
            }
            Graph g = m.graph(1, 16, 16, 77);
            long int8Ops = g.ops().stream().filter(o -> o instanceof Op.LinearInt8 || o instanceof Op.Conv2dInt8).count();
            long floatOps = g.ops().stream().filter(o -> o instanceof Op.Linear || o instanceof Op.Conv2d).count();
            assertEquals(0, floatOps, "float conv/linear ops left");
            long i8 = m.weights().tensors().stream().filter(t -> t.dtype() == DType.I8).count();
            assertEquals(i8, int8Ops);
            for (TensorInfo t : m.weights().tensors()) {
                if (t.dtype() == DType.I8) {
                    TensorInfo s = m.weights().info(t.name() + "_scale");
                    assertEquals(DType.F32, s.dtype());
                    assertEquals(t.shape()[0], s.numel(), t.name());
                }
            }
            assertTrue(m.graph(1, 16, 16, 77, Int8Mode.W8A8).ops().stream()
                    .anyMatch(o -> o instanceof Op.LinearInt8 l && l.mode() == Int8Mode.W8A8));
        }
    }

    @Test
    void runsInBothModesCloseToTheFp32Golden() {
        Path golden = Resources.golden("unet-tiny/case-0.safetensors");
        double[] floor = {35, 25}; // measured: see bench/results/compression.json
        for (Int8Mode mode : Int8Mode.values()) {
            try (UNetModel m = UNetModel.load(int8); UNetRunner r = new UNetRunner(m, backend, mode)) {
                var out = GoldenCase.validate(r, golden).stream().filter(row -> row.name().equals("out")).findFirst()
                        .orElseThrow().compare();
                System.out.printf("unet-tiny int8 %s case-0 out: PSNR %.2f dB%n", mode, out.psnr());
                assertEquals(0, out.nonFinite());
                assertTrue(out.psnr() >= floor[mode.ordinal()], mode + ": " + out.psnr() + " dB");
                assertTrue(out.psnr() < 110, mode + ": int8 cannot match fp32 to 110 dB; is it really int8?");
            }
        }
    }

    /**
     * The CPU int8 ops accept arena views (they read operands and write results through the
     * backend), so an int8 graph may run from a memory plan: bit-identical to allocating per op.
     */
    @Test
    void int8OpsRunFromAPlannedArenaBitForBit() {
        try (UNetModel m = UNetModel.load(int8); UNetRunner r = new UNetRunner(m, backend, Int8Mode.W8A8);
             dev.latte.weights.SafeTensorsFile c = dev.latte.weights.SafeTensorsFile.open(
                     Resources.golden("unet-tiny/case-2.safetensors"))) {
            var dims = new UNetRunner.Dims(2, 16, 16, 77);
            Graph g = r.graph(dims);
            float[] t = {c.toFloatArray("timestep")[0], c.toFloatArray("timestep")[0]};
            java.util.Map<String, float[]> host = java.util.Map.of("sample", c.toFloatArray("sample"), "timestep", t,
                    "encoder_hidden_states", c.toFloatArray("encoder_hidden_states"));
            float[] unplanned = r.forward(dims, host.get("sample"), t, host.get("encoder_hidden_states"),
                    Set.of("out")).get("out");
            java.util.Map<String, dev.latte.core.Tensor> params = new java.util.HashMap<>();
            for (var e : g.params().entrySet()) {
                TensorInfo ti = m.weights().info(e.getKey());
                params.put(e.getKey(), ti.dtype() == DType.I8
                        ? backend.uploadInt8(e.getValue().shape(), m.weights().data(e.getKey())
                                .toArray(java.lang.foreign.ValueLayout.JAVA_BYTE))
                        : backend.upload(e.getValue().shape(), m.weights().toFloatArray(e.getKey())));
            }
            var plan = dev.latte.plan.MemoryPlanner.plan(g, backend.activationBytes(), Set.of("out"));
            var arena = dev.latte.exec.PlannedArena.bind(backend, g, plan);
            try {
                for (var e : g.inputs().entrySet()) {
                    backend.write(arena.input(e.getKey()), host.get(e.getKey()));
                }
                var outs = dev.latte.exec.Executor.run(g, backend, arena, params, false);
                org.junit.jupiter.api.Assertions.assertArrayEquals(unplanned, backend.download(outs.get("out")));
            } finally {
                arena.close();
                params.values().forEach(backend::release);
            }
        }
    }

    /** Rewrites the int8 model's weights with {@code edit} applied to a writer that gets every other tensor. */
    static Path broken(String name, Set<String> drop, BiConsumer<SafeTensorsFile, SafeTensorsWriter> edit)
            throws IOException {
        Path dir = tmp.resolve(name);
        Files.createDirectories(dir);
        Files.copy(int8.resolve("config.json"), dir.resolve("config.json"));
        try (SafeTensorsFile f = SafeTensorsFile.open(int8.resolve("diffusion_pytorch_model.safetensors"))) {
            SafeTensorsWriter w = new SafeTensorsWriter();
            for (TensorInfo t : f.tensors()) {
                if (!drop.contains(t.name())) {
                    w.add(t.name(), t.dtype(), t.shape(), f.data(t.name()));
                }
            }
            edit.accept(f, w);
            w.write(dir.resolve("diffusion_pytorch_model.safetensors"));
        }
        return dir;
    }

    static final String W = "down_blocks.0.resnets.0.conv1.weight";

    @Test
    void int8WeightWithoutScaleIsNamed() throws IOException {
        Path dir = broken("no-scale", Set.of(W + "_scale"), (f, w) -> { });
        var e = assertThrows(WeightsException.class, () -> UNetModel.load(dir));
        assertEquals("diffusion_pytorch_model.safetensors: tensor '" + W + "' is I8 but has no '" + W
                + "_scale' (int8 conv/linear weights need per-output-channel scales)", e.getMessage());
    }

    @Test
    void scaleOfTheWrongLengthIsNamed() throws IOException {
        Path dir = broken("short-scale", Set.of(W + "_scale"),
                (f, w) -> w.addF32(W + "_scale", new long[] {31}, new float[31]));
        var e = assertThrows(WeightsException.class, () -> UNetModel.load(dir));
        assertTrue(e.getMessage().startsWith("diffusion_pytorch_model.safetensors: tensor '" + W + "_scale' is "),
                e.getMessage());
        assertTrue(e.getMessage().contains("[32]"), e.getMessage());
    }

    @Test
    void floatWeightWithAScaleIsNamed() throws IOException {
        Path dir = broken("float-with-scale", Set.of(W),
                (f, w) -> w.addF32(W, f.info(W).shape(), f.toFloatArray(W)));
        var e = assertThrows(WeightsException.class, () -> UNetModel.load(dir));
        assertEquals("diffusion_pytorch_model.safetensors: tensor '" + W + "' has a '" + W
                + "_scale' but dtype F32; quantised weights must be I8", e.getMessage());
    }

    @Test
    void quantisingTwiceIsRefused() {
        try (UNetModel m = UNetModel.load(int8)) {
            var e = assertThrows(WeightsException.class, () -> Quantizer.quantize(m, tmp.resolve("twice")));
            assertTrue(e.getMessage().contains("already quantised"), e.getMessage());
        }
    }
}
