package dev.latte.weights;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafeTensorsRoundTripTest {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    @TempDir
    Path dir;

    @Test
    void everyDtypeRoundTripsWithMetadata() {
        Path file = dir.resolve("all.safetensors");
        short[] halves = {Float.floatToFloat16(1.5f), Float.floatToFloat16(-2f)};
        short[] bhalves = {(short) (Float.floatToIntBits(1.5f) >>> 16), (short) (Float.floatToIntBits(-2f) >>> 16)};
        new SafeTensorsWriter()
                .metadata("format", "pt")
                .metadata("note", "ünïcode")
                .addF32("f32", new long[] {2, 2}, new float[] {1, -2, 3.5f, 1e-7f})
                .add("f64", DType.F64, new long[] {2}, doubles(0.25, -1e300))
                .add("f16", DType.F16, new long[] {2}, shorts(halves))
                .add("bf16", DType.BF16, new long[] {2}, shorts(bhalves))
                .addI64("i64", new long[] {3}, new long[] {Long.MIN_VALUE, -1, 1L << 40})
                .addI32("i32", new long[] {2}, new int[] {Integer.MAX_VALUE, -7})
                .addI8("i8", new long[] {3}, new byte[] {-128, 0, 127})
                .add("u8", DType.U8, new long[] {2}, MemorySegment.ofArray(new byte[] {(byte) 255, 1}))
                .add("bool", DType.BOOL, new long[] {3}, MemorySegment.ofArray(new byte[] {1, 0, 1}))
                .addF32("scalar", new long[] {}, new float[] {42})
                .addF32("empty", new long[] {0, 5}, new float[0])
                .write(file);

        try (SafeTensorsFile st = SafeTensorsFile.open(file)) {
            assertEquals(Map.of("format", "pt", "note", "ünïcode"), st.metadata());
            List<String> names = st.tensors().stream().map(TensorInfo::name).toList();
            assertEquals(names.stream().sorted().toList(), names);
            assertEquals(11, names.size());

            assertEquals(new TensorInfo("f32", DType.F32, new long[] {2, 2}, 0, 16), st.info("f32"));
            assertArrayEquals(new float[] {1, -2, 3.5f, 1e-7f}, st.toFloatArray("f32"));
            assertArrayEquals(new float[] {0.25f, Float.NEGATIVE_INFINITY}, st.toFloatArray("f64"));
            assertArrayEquals(new float[] {1.5f, -2f}, st.toFloatArray("f16"));
            assertArrayEquals(new float[] {1.5f, -2f}, st.toFloatArray("bf16"));
            assertArrayEquals(new long[] {Long.MIN_VALUE, -1, 1L << 40}, st.toLongArray("i64"));
            assertArrayEquals(new float[] {Long.MIN_VALUE, -1, 1L << 40}, st.toFloatArray("i64"));
            assertArrayEquals(new long[] {Integer.MAX_VALUE, -7}, st.toLongArray("i32"));
            assertArrayEquals(new float[] {Integer.MAX_VALUE, -7}, st.toFloatArray("i32"));
            assertArrayEquals(new long[] {-128, 0, 127}, st.toLongArray("i8"));
            assertArrayEquals(new float[] {-128, 0, 127}, st.toFloatArray("i8"));
            assertArrayEquals(new long[] {255, 1}, st.toLongArray("u8"));
            assertArrayEquals(new float[] {255, 1}, st.toFloatArray("u8"));
            assertArrayEquals(new long[] {1, 0, 1}, st.toLongArray("bool"));
            assertArrayEquals(new float[] {1, 0, 1}, st.toFloatArray("bool"));
            assertArrayEquals(new float[] {42}, st.toFloatArray("scalar"));
            assertEquals(1, st.info("scalar").numel());
            assertEquals(0, st.toFloatArray("empty").length);
            assertEquals(0, st.info("empty").byteSize());
        }
    }

    @Test
    void halfPrecisionConversionCoversSpecialValues() {
        Path file = dir.resolve("half.safetensors");
        // F16: 1, -2, max finite, smallest subnormal, +inf, NaN
        short[] f16 = {0x3C00, (short) 0xC000, 0x7BFF, 0x0001, 0x7C00, 0x7E00};
        // BF16: 1, -3.140625, +inf, -0, smallest normal
        short[] bf16 = {0x3F80, (short) 0xC049, 0x7F80, (short) 0x8000, 0x0080};
        new SafeTensorsWriter()
                .add("h", DType.F16, new long[] {6}, shorts(f16))
                .add("b", DType.BF16, new long[] {5}, shorts(bf16))
                .write(file);
        try (SafeTensorsFile st = SafeTensorsFile.open(file)) {
            assertArrayEquals(new float[] {1f, -2f, 65504f, 0x1p-24f, Float.POSITIVE_INFINITY, Float.NaN},
                    st.toFloatArray("h"));
            assertArrayEquals(new float[] {1f, -3.140625f, Float.POSITIVE_INFINITY, -0f, 0x1p-126f},
                    st.toFloatArray("b"));
        }
    }

    @Test
    void headerIsSpacePaddedToMultipleOf8() throws IOException {
        for (int len = 1; len <= 8; len++) {
            Path file = dir.resolve("pad" + len + ".safetensors");
            new SafeTensorsWriter().addI8("x".repeat(len), new long[] {1}, new byte[] {7}).write(file);
            byte[] bytes = Files.readAllBytes(file);
            long n = ByteBuffer.wrap(bytes).order(LE).getLong(0);
            assertEquals(0, n % 8, "header length " + n);
            assertEquals(8 + n + 1, bytes.length);
            String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
            assertTrue(header.stripTrailing().endsWith("}"), header);
            assertTrue(header.substring(header.lastIndexOf('}') + 1).isBlank(), header);
            try (SafeTensorsFile st = SafeTensorsFile.open(file)) {
                assertArrayEquals(new long[] {7}, st.toLongArray("x".repeat(len)));
            }
        }
    }

    @Test
    void dataIsAReadOnlyViewOfTheMapping() {
        Path file = dir.resolve("view.safetensors");
        new SafeTensorsWriter().addF32("w", new long[] {2}, new float[] {1, 2}).write(file);
        SafeTensorsFile st = SafeTensorsFile.open(file);
        MemorySegment w = st.data("w");
        assertTrue(w.isMapped());
        assertTrue(w.isReadOnly());
        assertEquals(8, w.byteSize());
        st.close();
        st.close(); // idempotent
        assertFalse(w.scope().isAlive());
        assertThrows(IllegalStateException.class, () -> w.get(JAVA_BYTE, 0));
    }

    @Test
    void toLongArrayRefusesFloats() {
        Path file = dir.resolve("f.safetensors");
        new SafeTensorsWriter().addF32("w", new long[] {1}, new float[] {1}).write(file);
        try (SafeTensorsFile st = SafeTensorsFile.open(file)) {
            WeightsException e = assertThrows(WeightsException.class, () -> st.toLongArray("w"));
            assertEquals("f.safetensors: tensor 'w' is F32, not an integer type", e.getMessage());
        }
    }

    @Test
    void overwriteReplacesAndFailedWriteKeepsOldFile() throws IOException {
        Path file = dir.resolve("model.safetensors");
        new SafeTensorsWriter().addF32("old", new long[] {1}, new float[] {1}).write(file);
        new SafeTensorsWriter().addF32("new", new long[] {1}, new float[] {2}).write(file);
        byte[] good = Files.readAllBytes(file);

        SafeTensorsWriter failing = new SafeTensorsWriter();
        try (Arena arena = Arena.ofConfined()) {
            failing.add("gone", DType.F32, new long[] {1}, arena.allocate(4));
        }
        assertThrows(IllegalStateException.class, () -> failing.write(file));

        assertArrayEquals(good, Files.readAllBytes(file));
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(file), files.toList(), "temp file left behind");
        }
        try (SafeTensorsFile st = SafeTensorsFile.open(file)) {
            assertArrayEquals(new float[] {2}, st.toFloatArray("new"));
        }
    }

    @Test
    void writerRejectsMisuse() {
        SafeTensorsWriter w = new SafeTensorsWriter().addF32("a", new long[] {2}, new float[] {1, 2});
        assertThrows(IllegalArgumentException.class, () -> w.addF32("a", new long[] {1}, new float[] {1}));
        assertThrows(IllegalArgumentException.class, () -> w.addF32("b", new long[] {3}, new float[] {1, 2}));
        assertThrows(IllegalArgumentException.class, () -> w.addF32("c", new long[] {-1}, new float[0]));
        assertThrows(IllegalArgumentException.class,
                () -> w.addF32("__metadata__", new long[] {1}, new float[] {1}));
        assertThrows(IllegalArgumentException.class,
                () -> w.add("d", DType.I64, new long[] {1L << 62, 4}, MemorySegment.ofArray(new byte[8])));
    }

    @Test
    void tensorInfoHelpers() {
        TensorInfo t = new TensorInfo("conv_in.weight", DType.F32, new long[] {32, 4, 3, 3}, 0, 4608);
        assertEquals("conv_in.weight F32[32, 4, 3, 3]", t.toString());
        assertEquals(1152, t.numel());
        assertEquals(4608, t.byteSize());
        assertArrayEquals(new int[] {32, 4, 3, 3}, t.intShape());
        t.shape()[0] = 99;
        assertEquals(32, t.shape()[0], "shape must not be mutable through the accessor");

        TensorInfo huge = new TensorInfo("big", DType.I8, new long[] {1L << 31}, 0, 1L << 31);
        WeightsException e = assertThrows(WeightsException.class, huge::intShape);
        assertTrue(e.getMessage().contains("'big'"), e.getMessage());
    }

    static MemorySegment shorts(short[] values) {
        MemorySegment s = MemorySegment.ofArray(new byte[values.length * 2]);
        MemorySegment.copy(values, 0, s, JAVA_SHORT_UNALIGNED.withOrder(LE), 0, values.length);
        return s;
    }

    static MemorySegment doubles(double... values) {
        MemorySegment s = MemorySegment.ofArray(new byte[values.length * 8]);
        MemorySegment.copy(values, 0, s, JAVA_DOUBLE_UNALIGNED.withOrder(LE), 0, values.length);
        return s;
    }
}
