package dev.latte.weights;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Builds a safetensors file in the layout the Python/Rust {@code safetensors} library writes:
 * tensors in insertion order, packed from offset 0, header padded with spaces to a multiple of 8.
 *
 * <p>Segments passed to {@link #add} are referenced, not copied, until {@link #write} runs, so
 * they must stay alive until then. Misuse (bad shape, wrong byte count, duplicate name) is an
 * {@link IllegalArgumentException}; failing to write is a {@link WeightsException}.
 */
public final class SafeTensorsWriter {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private record Entry(String name, DType dtype, long[] shape, MemorySegment data) {}

    private final Map<String, String> metadata = new LinkedHashMap<>();
    private final List<Entry> entries = new ArrayList<>();
    private final Set<String> names = new HashSet<>();

    public SafeTensorsWriter metadata(String key, String value) {
        metadata.put(Objects.requireNonNull(key, "key"), Objects.requireNonNull(value, "value"));
        return this;
    }

    /** Adds a tensor whose {@code data} already holds its little-endian bytes. */
    public SafeTensorsWriter add(String name, DType dtype, long[] shape, MemorySegment data) {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(dtype, "dtype");
        if (name.equals(SafeTensorsHeader.METADATA_KEY)) {
            throw new IllegalArgumentException("'" + name + "' is reserved for metadata");
        }
        if (names.contains(name)) {
            throw new IllegalArgumentException("duplicate tensor '" + name + "'");
        }
        long expected = byteCount(name, dtype, shape);
        if (data.byteSize() != expected) {
            throw new IllegalArgumentException("tensor '" + name + "': " + dtype + Arrays.toString(shape)
                    + " needs " + expected + " bytes, got " + data.byteSize());
        }
        names.add(name);
        entries.add(new Entry(name, dtype, shape.clone(), data));
        return this;
    }

    public SafeTensorsWriter addF32(String name, long[] shape, float[] values) {
        MemorySegment bytes = MemorySegment.ofArray(new byte[Math.multiplyExact(values.length, 4)]);
        MemorySegment.copy(values, 0, bytes, JAVA_FLOAT_UNALIGNED.withOrder(LE), 0, values.length);
        return add(name, DType.F32, shape, bytes);
    }

    public SafeTensorsWriter addI64(String name, long[] shape, long[] values) {
        MemorySegment bytes = MemorySegment.ofArray(new byte[Math.multiplyExact(values.length, 8)]);
        MemorySegment.copy(values, 0, bytes, JAVA_LONG_UNALIGNED.withOrder(LE), 0, values.length);
        return add(name, DType.I64, shape, bytes);
    }

    public SafeTensorsWriter addI32(String name, long[] shape, int[] values) {
        MemorySegment bytes = MemorySegment.ofArray(new byte[Math.multiplyExact(values.length, 4)]);
        MemorySegment.copy(values, 0, bytes, JAVA_INT_UNALIGNED.withOrder(LE), 0, values.length);
        return add(name, DType.I32, shape, bytes);
    }

    public SafeTensorsWriter addI8(String name, long[] shape, byte[] values) {
        return add(name, DType.I8, shape, MemorySegment.ofArray(values.clone()));
    }

    /**
     * Writes the file atomically ({@link AtomicFiles#write}): a failure or a kill part-way never
     * leaves a truncated file where a good one used to be.
     */
    public void write(Path path) {
        AtomicFiles.write(path, this::writeTo);
    }

    /** Writes the whole file (length, header, data) at the channel's position. */
    public void writeTo(FileChannel ch) throws IOException {
        byte[] header = header();
        writeFully(ch, ByteBuffer.allocate(8).order(LE).putLong(0, header.length));
        writeFully(ch, ByteBuffer.wrap(header));
        for (Entry e : entries) {
            writeSegment(ch, e.data());
        }
    }

    private byte[] header() {
        ObjectNode root = Json.MAPPER.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = root.putObject(SafeTensorsHeader.METADATA_KEY);
            metadata.forEach(meta::put);
        }
        long offset = 0;
        for (Entry e : entries) {
            ObjectNode t = root.putObject(e.name());
            t.put("dtype", e.dtype().name());
            Arrays.stream(e.shape()).forEach(t.putArray("shape")::add);
            long end = offset + e.data().byteSize();
            t.putArray("data_offsets").add(offset).add(end);
            offset = end;
        }
        byte[] json;
        try {
            json = Json.MAPPER.writeValueAsBytes(root);
        } catch (JsonProcessingException e) {
            throw new UncheckedIOException(e); // a tree of strings and numbers always serializes
        }
        int padded = (json.length + 7) / 8 * 8;
        byte[] header = Arrays.copyOf(json, padded);
        Arrays.fill(header, json.length, padded, (byte) ' ');
        return header;
    }

    private static long byteCount(String name, DType dtype, long[] shape) {
        String what = "tensor '" + name + "': shape " + Arrays.toString(shape);
        long n = dtype.byteSize();
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException(what + " has a negative dimension");
            }
            try {
                n = Math.multiplyExact(n, d);
            } catch (ArithmeticException overflow) {
                throw new IllegalArgumentException(what + " overflows a 64-bit byte count");
            }
        }
        return n;
    }

    /** ByteBuffers are int-indexed, so feed large segments through in chunks. */
    private static void writeSegment(FileChannel ch, MemorySegment data) throws IOException {
        final long chunk = 1 << 30;
        for (long pos = 0; pos < data.byteSize(); pos += chunk) {
            writeFully(ch, data.asSlice(pos, Math.min(chunk, data.byteSize() - pos)).asByteBuffer());
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            ch.write(buf);
        }
    }
}
