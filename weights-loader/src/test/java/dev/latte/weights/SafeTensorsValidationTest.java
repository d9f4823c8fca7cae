package dev.latte.weights;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Each malformed input must fail with one line that starts with the file name and names the culprit. */
class SafeTensorsValidationTest {
    @TempDir
    Path dir;

    @Test
    void fileShorterThan8Bytes() throws IOException {
        Path f = dir.resolve("tiny.safetensors");
        Files.write(f, new byte[5]);
        assertRejected(f, "5 bytes is too short");
    }

    @Test
    void headerLengthLargerThanFile() throws IOException {
        assertRejected(raw("long.safetensors", 1000, new byte[100]), "header length 1000", "108-byte file");
    }

    @Test
    void headerLengthAbsurd() throws IOException {
        assertRejected(raw("huge.safetensors", 200_000_000, new byte[16]), "header length 200000000", "outside");
        assertRejected(raw("neg.safetensors", -1, new byte[16]), "header length 18446744073709551615");
        assertRejected(raw("zero.safetensors", 0, new byte[16]), "header length 0");
    }

    @Test
    void headerNotJson() throws IOException {
        assertRejected(file("nojson.safetensors", "this is not json", 0), "header is not valid JSON");
        assertRejected(file("array.safetensors", "[1, 2]", 0), "header is not a JSON object");
        assertRejected(file("trailing.safetensors", "{} {}", 0), "header is not valid JSON");
        byte[] latin1 = "{\"caf\u00e9\":1}".getBytes(StandardCharsets.ISO_8859_1);
        assertRejected(raw("latin1.safetensors", latin1.length, latin1), "not valid UTF-8");
    }

    @Test
    void unknownDtype() throws IOException {
        Path f = file("dt.safetensors", "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
        assertRejected(f, "tensor 'w'", "unsupported dtype 'F8_E4M3'");
    }

    @Test
    void negativeShape() throws IOException {
        Path f = file("neg.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1,2],\"data_offsets\":[0,8]}}", 8);
        assertRejected(f, "tensor 'w'", "shape must be an array of non-negative integers", "[-1,2]");
    }

    @Test
    void malformedEntries() throws IOException {
        assertRejected(file("a.safetensors", "{\"w\":3}", 0), "tensor 'w'", "entry must be an object");
        assertRejected(file("b.safetensors", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                "tensor 'w'", "dtype must be a string");
        assertRejected(file("c.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8),
                "tensor 'w'", "data_offsets must have 2 entries");
        assertRejected(file("d.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4),
                "tensor 'w'", "shape must be an array");
        assertRejected(file("e.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "Duplicate field 'w'");
        assertRejected(file("f.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                + "\"data_offsets\":[0,4]}}", 4), "tensor 'w'", "overflows");
    }

    @Test
    void offsetsBeyondDataMeansTruncated() throws IOException {
        Path f = dir.resolve("model.safetensors");
        new SafeTensorsWriter()
                .addF32("conv_in.bias", new long[] {4}, new float[4])
                .addF32("conv_in.weight", new long[] {32, 4, 3, 3}, new float[1152])
                .write(f);
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
            ch.truncate(ch.size() - 3);
        }
        assertRejected(f, "tensor 'conv_in.weight'", "data_offsets [16, 4624] end beyond the 4621-byte data section",
                "(file truncated?)");
    }

    @Test
    void dtypeTimesShapeDisagreesWithByteLength() throws IOException {
        Path f = file("len.safetensors", "{\"w\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
        assertRejected(f, "tensor 'w'", "F16 [3] needs 6 bytes but data_offsets [0, 8] span 8");
    }

    @Test
    void overlappingTensors() throws IOException {
        Path f = file("ovl.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16);
        assertRejected(f, "tensor 'b'", "overlap tensor 'a' [0, 12]");
    }

    @Test
    void beginAfterEnd() throws IOException {
        Path f = file("rev.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4);
        assertRejected(f, "tensor 'w'", "data_offsets [4, 0] begin is after end");
    }

    @Test
    void metadataMustBeStringToString() throws IOException {
        assertRejected(file("m1.safetensors", "{\"__metadata__\":{\"epoch\":3}}", 0),
                "__metadata__ key 'epoch' must map to a string, got 3");
        assertRejected(file("m2.safetensors", "{\"__metadata__\":[\"x\"]}", 0),
                "__metadata__ must be an object of strings");
    }

    @Test
    void nameWithNewlineStillGivesOneLine() throws IOException {
        Path f = file("nl.safetensors", "{\"a\\nb\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}", 0);
        assertRejected(f, "tensor 'a\\nb'"); // escaped, so the name cannot forge a line
    }

    @Test
    void missingFile() {
        assertRejected(dir.resolve("absent.safetensors"), "cannot read: no such file");
    }

    @Test
    void missingTensorLookupSuggestsNearest() {
        Path f = dir.resolve("unet.safetensors");
        new SafeTensorsWriter()
                .addF32("conv_in.weight", new long[] {1}, new float[1])
                .addF32("conv_in.bias", new long[] {1}, new float[1])
                .addF32("time_embedding.linear_1.weight", new long[] {1}, new float[1])
                .write(f);
        try (SafeTensorsFile st = SafeTensorsFile.open(f)) {
            assertFalse(st.contains("conv_in.weigth"));
            WeightsException e = assertThrows(WeightsException.class, () -> st.info("conv_in.weigth"));
            assertEquals("unet.safetensors: no tensor 'conv_in.weigth'; nearest: 'conv_in.weight', 'conv_in.bias',"
                    + " 'time_embedding.linear_1.weight'", e.getMessage());
            assertThrows(WeightsException.class, () -> st.data("nope"));
            assertThrows(WeightsException.class, () -> st.toFloatArray("nope"));
        }
    }

    @Test
    void failedOpenUnmapsTheFile() throws IOException {
        Path maps = Path.of("/proc/self/maps");
        assumeTrue(Files.isReadable(maps), "needs Linux /proc");
        Path good = dir.resolve("mapped-good.safetensors");
        new SafeTensorsWriter().addF32("w", new long[] {1}, new float[1]).write(good);
        try (SafeTensorsFile st = SafeTensorsFile.open(good)) {
            assertTrue(st.contains("w"));
            assertTrue(Files.readString(maps).contains(good.toString()), "control: open file is mapped");
        }
        assertFalse(Files.readString(maps).contains(good.toString()), "close() must unmap");

        Path bad = file("mapped-bad.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[9],\"data_offsets\":[0,36]}}", 4);
        assertRejected(bad, "tensor 'w'");
        assertFalse(Files.readString(maps).contains(bad.toString()), "failed open leaked its mapping");
    }

    // --- helpers ---

    /** A file with {@code header} (unpadded) and {@code dataBytes} zero bytes of data. */
    private Path file(String name, String header, int dataBytes) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        byte[] rest = new byte[h.length + dataBytes];
        System.arraycopy(h, 0, rest, 0, h.length);
        return raw(name, h.length, rest);
    }

    /** A file whose length field says {@code headerLength}, followed by {@code rest} verbatim. */
    private Path raw(String name, long headerLength, byte[] rest) throws IOException {
        Path f = dir.resolve(name);
        ByteBuffer buf = ByteBuffer.allocate(8 + rest.length).order(ByteOrder.LITTLE_ENDIAN);
        buf.putLong(headerLength).put(rest);
        Files.write(f, buf.array());
        return f;
    }

    private static void assertRejected(Path f, String... fragments) {
        WeightsException e = assertThrows(WeightsException.class, () -> SafeTensorsFile.open(f).close());
        String msg = e.getMessage();
        assertTrue(msg.startsWith(f.getFileName() + ": "), msg);
        assertFalse(msg.contains("\n") || msg.contains("\r"), "not one line: " + msg);
        for (String fragment : fragments) {
            assertTrue(msg.contains(fragment), "expected '" + fragment + "' in: " + msg);
        }
    }
}
