package dev.latte.tests.safety;

import dev.latte.tests.Resources;
import dev.latte.tests.cli.Cli;
import dev.latte.weights.DType;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.TensorInfo;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.BiFunction;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** unet-tiny copies to break, and what every refusal must look like. */
final class Models {
    static final String WEIGHTS = "diffusion_pytorch_model.safetensors";
    static final String FP16 = "diffusion_pytorch_model.fp16.safetensors";

    private Models() {
    }

    static String tiny() {
        return Resources.unetTiny().toString();
    }

    static String case0() {
        return Resources.golden("unet-tiny/case-0.safetensors").toString();
    }

    static Path copy(Path dir) throws IOException {
        Files.createDirectories(dir);
        for (String f : new String[] {"config.json", WEIGHTS}) {
            Files.copy(Resources.unetTiny().resolve(f), dir.resolve(f));
        }
        return dir;
    }

    /** A copy whose config.json has {@code key}'s value replaced by the JSON text {@code value}. */
    static Path withConfig(Path dir, String key, String value) throws IOException {
        copy(dir);
        Path cfg = dir.resolve("config.json");
        String json = Files.readString(cfg);
        String edited = json.replaceFirst("\"" + key + "\"\\s*:\\s*(\\[[^]]*]|\"[^\"]*\"|[^,}\\n]+)",
                "\"" + key + "\": " + value);
        if (edited.equals(json)) {
            edited = json.replaceFirst("\\{", "{\"" + key + "\": " + value + ",");
        }
        Files.writeString(cfg, edited);
        return dir;
    }

    /** Rewrites {@code file} with every tensor passed through {@code f} (name, floats → floats), as F32. */
    static void rewrite(Path file, Path out, BiFunction<String, float[], float[]> f) {
        try (SafeTensorsFile in = SafeTensorsFile.open(file)) {
            SafeTensorsWriter w = new SafeTensorsWriter();
            for (TensorInfo t : in.tensors()) {
                w.addF32(t.name(), t.shape(), f.apply(t.name(), in.toFloatArray(t.name())));
            }
            w.write(out);
        }
    }

    /** {@code v} as F16 little-endian bytes. */
    static MemorySegment f16(float[] v) {
        MemorySegment s = MemorySegment.ofArray(new byte[2 * v.length]);
        for (int i = 0; i < v.length; i++) {
            s.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i,
                    Float.floatToFloat16(v[i]));
        }
        return s;
    }

    /** The model at {@code src} with its weights stored as F16 under the .fp16 name only. */
    static Path fp16Copy(Path dir) throws IOException {
        Files.createDirectories(dir);
        Files.copy(Resources.unetTiny().resolve("config.json"), dir.resolve("config.json"));
        try (SafeTensorsFile in = SafeTensorsFile.open(Resources.unetTiny().resolve(WEIGHTS))) {
            SafeTensorsWriter w = new SafeTensorsWriter();
            for (TensorInfo t : in.tensors()) {
                w.add(t.name(), DType.F16, t.shape(), f16(in.toFloatArray(t.name())));
            }
            w.write(dir.resolve(FP16));
        }
        return dir;
    }

    /**
     * Exit code 2 and exactly one line on stderr: "latte: ", printable (no raw newline or escape
     * from a file reaches the terminal), no stack trace, holding every fragment.
     */
    static void assertRefused(Cli.Result r, String... fragments) {
        assertEquals(2, r.code(), r.out() + r.err());
        String err = r.err();
        assertTrue(err.endsWith("\n"), err);
        String line = err.substring(0, err.length() - 1);
        assertFalse(line.contains("\n") || line.contains("\r"), "more than one line:\n" + err);
        assertTrue(line.startsWith("latte: "), err);
        assertFalse(line.contains("Exception") || line.contains("\tat "), err);
        assertTrue(line.chars().noneMatch(c -> c < 0x20 || c == 0x7f), "control character in: " + line);
        for (String f : fragments) {
            assertTrue(line.contains(f), "'" + f + "' not in: " + line);
        }
    }
}
