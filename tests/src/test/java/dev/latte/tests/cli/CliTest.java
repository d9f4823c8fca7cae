package dev.latte.tests.cli;

import dev.latte.tests.Resources;
import dev.latte.tests.cli.Cli.Result;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.TensorInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.function.Predicate;

import static dev.latte.tests.cli.Cli.assertBadInput;
import static dev.latte.tests.cli.Cli.latte;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The command line on the bundled tiny model, and every kind of bad input it must name. */
class CliTest {
    static final String WEIGHTS = "diffusion_pytorch_model.safetensors";
    @TempDir
    Path tmp;

    static String model() {
        return Resources.unetTiny().toString();
    }

    static String case0() {
        return Resources.golden("unet-tiny/case-0.safetensors").toString();
    }

    /** A copy of the tiny model folder, to break. */
    Path modelCopy() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("model"));
        for (String f : new String[] {"config.json", WEIGHTS}) {
            Files.copy(Resources.unetTiny().resolve(f), dir.resolve(f));
        }
        return dir;
    }

    @Test
    void validatePrintsATableAndPasses() {
        Result r = latte("validate", "--model", model(), "--golden", case0());
        assertEquals(0, r.code(), r.err() + r.out());
        assertTrue(r.out().contains("case-0.safetensors: 11 tensors, all >= 110.0 dB"), r.out());
        for (String name : new String[] {"time_embedding.out", "conv_in.out", "down_blocks.2.out", "mid_block.out",
                "up_blocks.0.out", "conv_act.out", "out "}) {
            assertTrue(r.out().contains(name), name + " missing from\n" + r.out());
        }
    }

    @Test
    void validateOnTheReferenceBackend() {
        Result r = latte("validate", "--model", model(), "--golden", case0(), "--backend", "ref");
        assertEquals(0, r.code(), r.err() + r.out());
        assertTrue(r.out().contains("case-0.safetensors: 11 tensors, all >= 110.0 dB") && r.out().contains("on ref)"),
                r.out());
        assertBadInput(latte("validate", "--model", model(), "--golden", case0(), "--backend", "ref", "--dtype",
                "fp16"), "the ref backend computes fp32");
    }

    @Test
    void validateFailsBelowTheThreshold() {
        Result r = latte("validate", "--model", model(), "--golden", case0(), "--min-psnr", "400");
        assertEquals(1, r.code(), r.out());
        assertTrue(r.out().contains("11 below 400.0 dB"), r.out());
    }

    @Test
    void infoPrintsConfigAndCounts() {
        Result r = latte("info", "--model", model());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("\"block_out_channels\" : [ 32, 64, 64 ]"), r.out());
        assertTrue(r.out().matches("(?s).*parameters: [0-9,]+\n.*"), r.out());
        assertTrue(r.out().contains("bytes F32: "), r.out());
    }

    @Test
    void usageErrors() {
        assertBadInput(latte("validate", "--model", model()), "--golden is required");
        assertBadInput(latte("validate", "--model", model(), "--golden", case0(), "--backend", "tpu"),
                "unknown backend 'tpu'");
        assertBadInput(latte("validate", "--modle", model()), "unknown option '--modle'");
        assertEquals(2, latte("frobnicate").code());
    }

    @Test
    void directoryWithoutConfig() throws IOException {
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        assertBadInput(latte("info", "--model", empty.toString()), empty.toString(), "no config.json");
    }

    @Test
    void truncatedWeights() throws IOException {
        Path dir = modelCopy();
        Path w = dir.resolve(WEIGHTS);
        String lastTensor;
        try (SafeTensorsFile f = SafeTensorsFile.open(w)) {
            lastTensor = f.tensors().stream().max((a, b) -> Long.compare(a.end(), b.end())).orElseThrow().name();
        }
        try (FileChannel ch = FileChannel.open(w, StandardOpenOption.WRITE)) {
            ch.truncate(ch.size() - 100);
        }
        assertBadInput(latte("validate", "--model", dir.toString(), "--golden", case0()), WEIGHTS,
                "'" + lastTensor + "'", "truncated");
    }

    @Test
    void headerThatLiesAboutAShape() throws IOException {
        Path dir = modelCopy();
        Path w = dir.resolve(WEIGHTS);
        byte[] bytes = Files.readAllBytes(w);
        String all = new String(bytes, StandardCharsets.ISO_8859_1);
        String entry = "\"conv_in.weight\":{\"dtype\":\"F32\",\"shape\":[32,4,3,3]";
        int at = all.indexOf(entry);
        assertTrue(at > 0, "header layout changed");
        bytes[at + entry.length() - 2] = (byte) '4'; // [32,4,3,3] → [32,4,3,4]: the byte length no longer fits
        Files.write(w, bytes);
        assertBadInput(latte("info", "--model", dir.toString()), WEIGHTS, "'conv_in.weight'");
    }

    @Test
    void corruptHeaderLength() throws IOException {
        Path dir = modelCopy();
        Path w = dir.resolve(WEIGHTS);
        byte[] bytes = Files.readAllBytes(w);
        bytes[6] = 0x7f; // header length ~ 2^55
        Files.write(w, bytes);
        assertBadInput(latte("info", "--model", dir.toString()), WEIGHTS, "header");
    }

    @Test
    void configThatContradictsItsWeights() throws IOException {
        Path dir = modelCopy();
        Path cfg = dir.resolve("config.json");
        String json = Files.readString(cfg);
        Files.writeString(cfg, json.replaceFirst("\"block_out_channels\": \\[\\s*32,\\s*64,\\s*64\\s*]",
                "\"block_out_channels\": [32, 64, 96]"));
        assertBadInput(latte("info", "--model", dir.toString()), WEIGHTS, "down_blocks.2.resnets.0", "config.json implies");
    }

    @Test
    void missingTensor() throws IOException {
        Path dir = modelCopy();
        rewrite(dir.resolve(WEIGHTS), t -> !t.name().equals("mid_block.attentions.0.proj_out.bias"));
        assertBadInput(latte("validate", "--model", dir.toString(), "--golden", case0()), WEIGHTS,
                "no tensor 'mid_block.attentions.0.proj_out.bias'");
    }

    @Test
    void extraTensor() throws IOException {
        Path dir = modelCopy();
        Path w = dir.resolve(WEIGHTS);
        SafeTensorsWriter out = copy(w, t -> true);
        out.addF32("down_blocks.0.resnets.9.conv1.bias", new long[] {32}, new float[32]);
        out.write(w);
        assertBadInput(latte("info", "--model", dir.toString()), WEIGHTS, "'down_blocks.0.resnets.9.conv1.bias'",
                "not used");
    }

    @Test
    void integerWeights() throws IOException {
        Path dir = modelCopy();
        Path w = dir.resolve(WEIGHTS);
        SafeTensorsWriter out = copy(w, t -> !t.name().equals("conv_out.bias"));
        out.addI64("conv_out.bias", new long[] {4}, new long[4]);
        out.write(w);
        assertBadInput(latte("info", "--model", dir.toString()), WEIGHTS, "'conv_out.bias'", "I64");
    }

    @Test
    void goldenWithWrongShapes() throws IOException {
        Path bad = tmp.resolve("bad-case.safetensors");
        SafeTensorsWriter out = copy(Path.of(case0()), t -> !t.name().equals("encoder_hidden_states"));
        out.addF32("encoder_hidden_states", new long[] {2, 77, 16}, new float[2 * 77 * 16]);
        out.write(bad);
        assertBadInput(latte("validate", "--model", model(), "--golden", bad.toString()), "bad-case.safetensors",
                "'encoder_hidden_states'", "[2, 77, 16]");

        out = copy(Path.of(case0()), t -> !t.name().equals("mid_block.out"));
        out.addF32("mid_block.out", new long[] {2, 64, 8, 8}, new float[2 * 64 * 64]);
        out.write(bad);
        assertBadInput(latte("validate", "--model", model(), "--golden", bad.toString()), "bad-case.safetensors",
                "'mid_block.out'", "[2, 64, 4, 4]");
    }

    @Test
    void nanInputsAreNamed() throws IOException {
        Path bad = tmp.resolve("nan-case.safetensors");
        SafeTensorsWriter out = copy(Path.of(case0()), t -> !t.name().equals("sample"));
        float[] sample = new float[2 * 4 * 16 * 16];
        sample[5] = Float.NaN;
        out.addF32("sample", new long[] {2, 4, 16, 16}, sample);
        out.write(bad);
        assertBadInput(latte("validate", "--model", model(), "--golden", bad.toString()), "nan-case.safetensors", "'sample'", "NaN");
    }

    @Test
    void nanWeightIsNamed() throws IOException {
        Path dir = modelCopy();
        Path w = dir.resolve(WEIGHTS);
        SafeTensorsWriter out = copy(w, t -> !t.name().equals("up_blocks.1.resnets.0.conv2.weight"));
        float[] v = new float[64 * 64 * 9];
        v[100] = Float.NaN;
        out.addF32("up_blocks.1.resnets.0.conv2.weight", new long[] {64, 64, 3, 3}, v);
        out.write(w);
        assertBadInput(latte("validate", "--model", dir.toString(), "--golden", case0()), WEIGHTS,
                "'up_blocks.1.resnets.0.conv2.weight'", "NaN");
    }

    @Test
    void overflowInsideTheUNetNamesTheOp() throws IOException {
        // finite weights whose product overflows fp32: the first op that goes non-finite is named
        Path dir = modelCopy();
        Path w = dir.resolve(WEIGHTS);
        SafeTensorsWriter out = copy(w, t -> !t.name().equals("mid_block.attentions.0.proj_in.weight"));
        float[] v = new float[64 * 64];
        Arrays.fill(v, 3e38f);
        out.addF32("mid_block.attentions.0.proj_in.weight", new long[] {64, 64, 1, 1}, v);
        out.write(w);
        assertBadInput(latte("validate", "--model", dir.toString(), "--golden", case0()),
                "op 'mid_block.attentions.0.proj_in.conv2d'", "non-finite");
    }

    @Test
    void missingGoldenFile() {
        assertBadInput(latte("validate", "--model", model(), "--golden", tmp.resolve("nope.safetensors").toString()),
                "nope.safetensors");
    }

    private static SafeTensorsWriter copy(Path file, Predicate<TensorInfo> keep) {
        SafeTensorsWriter out = new SafeTensorsWriter();
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            for (TensorInfo t : f.tensors()) {
                if (keep.test(t)) {
                    out.add(t.name(), t.dtype(), t.shape(), copyOf(f, t));
                }
            }
        }
        return out;
    }

    private static java.lang.foreign.MemorySegment copyOf(SafeTensorsFile f, TensorInfo t) {
        return java.lang.foreign.MemorySegment.ofArray(f.data(t.name()).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
    }

    private static void rewrite(Path file, Predicate<TensorInfo> keep) {
        copy(file, keep).write(file);
    }
}
