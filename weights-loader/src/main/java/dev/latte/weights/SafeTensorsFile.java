package dev.latte.weights;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.FileChannel.MapMode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.stream.Collectors;

/**
 * A safetensors file, memory-mapped read-only. Tensor data is never copied until a caller asks for
 * a Java array, so multi-gigabyte checkpoints cost address space, not heap.
 *
 * <p>The mapping lives in a shared arena owned by this object: slices from {@link #data} may be
 * read from any thread, and become unusable once {@link #close()} runs.
 */
public final class SafeTensorsFile implements AutoCloseable {
    /** The safetensors crate's own cap; a larger header means a corrupt length field. */
    static final long MAX_HEADER_SIZE = 100_000_000;

    private static final ValueLayout.OfShort I16 = JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32 = JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64 = JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path path;
    private final String fileName;
    private final Arena arena;
    private final MemorySegment dataSection;
    private final Map<String, String> metadata;
    private final SortedMap<String, TensorInfo> tensors;
    private final List<TensorInfo> tensorList;

    private SafeTensorsFile(Path path, Arena arena, MemorySegment dataSection, SafeTensorsHeader header) {
        this.path = path;
        this.fileName = fileName(path);
        this.arena = arena;
        this.dataSection = dataSection;
        this.metadata = header.metadata();
        this.tensors = header.tensors();
        this.tensorList = List.copyOf(tensors.values());
    }

    /** Maps and validates {@code path}; every problem, I/O included, is a {@link WeightsException}. */
    public static SafeTensorsFile open(Path path) {
        String name = fileName(path);
        if (Files.isDirectory(path)) {
            throw new WeightsException(name + ": is a folder, not a safetensors file");
        }
        Arena arena = Arena.ofShared();
        try {
            MemorySegment file;
            try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
                long size = ch.size();
                if (size < 8) {
                    throw new WeightsException(name + ": " + size
                            + " bytes is too short for a safetensors file (needs at least 8)");
                }
                // The mapping outlives the channel; only the arena's closing unmaps it.
                file = ch.map(MapMode.READ_ONLY, 0, size, arena);
            }
            long n = file.get(I64, 0);
            long size = file.byteSize();
            if (n <= 0 || n > MAX_HEADER_SIZE) {
                throw new WeightsException(name + ": header length " + Long.toUnsignedString(n)
                        + " is outside 1.." + MAX_HEADER_SIZE + " (not a safetensors file?)");
            }
            if (8 + n > size) {
                throw new WeightsException(name + ": header length " + n + " runs past the end of the "
                        + size + "-byte file (file truncated?)");
            }
            byte[] headerBytes = file.asSlice(8, n).toArray(JAVA_BYTE);
            MemorySegment data = file.asSlice(8 + n);
            SafeTensorsHeader header = SafeTensorsHeader.parse(headerBytes, data.byteSize(), name);
            return new SafeTensorsFile(path, arena, data, header);
        } catch (IOException e) {
            arena.close();
            throw new WeightsException(Json.oneLine(name + ": cannot read: " + Json.describe(e)), e);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    public Path path() {
        return path;
    }

    /** The free-form {@code __metadata__} strings; empty when the file has none. */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** All tensors, sorted by name. */
    public List<TensorInfo> tensors() {
        return tensorList;
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    public TensorInfo info(String name) {
        TensorInfo t = tensors.get(name);
        if (t == null) {
            throw new WeightsException(Json.oneLine(fileName + ": no tensor '" + Text.quote(name) + "'" + nearestHint(name)));
        }
        return t;
    }

    /** The tensor's raw little-endian bytes: a read-only view of the mapping, not a copy. */
    public MemorySegment data(String name) {
        return slice(info(name));
    }

    /** Copies any dtype out as floats (integers and booleans are converted by value). */
    public float[] toFloatArray(String name) {
        TensorInfo t = info(name);
        float[] out = new float[arrayLength(t)];
        toFloats(slice(t), t.dtype(), 0, out, 0, out.length);
        return out;
    }

    /**
     * Widens {@code n} elements of {@code bytes} (a tensor's little-endian data, as {@link #data}
     * gives it) from element {@code from} on into {@code dst[dstOff..]}: any dtype as floats,
     * integers and booleans by value. Reading a chunk at a time lets a caller widen fp16/bf16
     * weights on the fly without ever holding the whole tensor as floats.
     */
    public static void toFloats(MemorySegment bytes, DType dtype, long from, float[] dst, int dstOff, int n) {
        switch (dtype) {
            case F32 -> MemorySegment.copy(bytes, F32, from * 4, dst, dstOff, n);
            case F16 -> {
                for (int i = 0; i < n; i++) dst[dstOff + i] = Float.float16ToFloat(bytes.getAtIndex(I16, from + i));
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) dst[dstOff + i] = Float.intBitsToFloat(bytes.getAtIndex(I16, from + i) << 16);
            }
            case F64 -> {
                for (int i = 0; i < n; i++) dst[dstOff + i] = (float) bytes.getAtIndex(F64, from + i);
            }
            case I64 -> {
                for (int i = 0; i < n; i++) dst[dstOff + i] = bytes.getAtIndex(I64, from + i);
            }
            case I32 -> {
                for (int i = 0; i < n; i++) dst[dstOff + i] = bytes.getAtIndex(I32, from + i);
            }
            case I8 -> {
                for (int i = 0; i < n; i++) dst[dstOff + i] = bytes.get(JAVA_BYTE, from + i);
            }
            case U8 -> {
                for (int i = 0; i < n; i++) dst[dstOff + i] = Byte.toUnsignedInt(bytes.get(JAVA_BYTE, from + i));
            }
            case BOOL -> {
                for (int i = 0; i < n; i++) dst[dstOff + i] = bytes.get(JAVA_BYTE, from + i) != 0 ? 1f : 0f;
            }
        }
    }

    /** Copies an integer (or BOOL, as 0/1) tensor out as longs; floating-point tensors are refused. */
    public long[] toLongArray(String name) {
        TensorInfo t = info(name);
        if (t.dtype().isFloatingPoint()) {
            throw new WeightsException(fileName + ": tensor '" + Text.quote(name) + "' is " + t.dtype() + ", not an integer type");
        }
        MemorySegment s = slice(t);
        long[] out = new long[arrayLength(t)];
        switch (t.dtype()) {
            case I64 -> MemorySegment.copy(s, I64, 0, out, 0, out.length);
            case I32 -> {
                for (int i = 0; i < out.length; i++) out[i] = s.getAtIndex(I32, i);
            }
            case I8 -> {
                for (int i = 0; i < out.length; i++) out[i] = s.get(JAVA_BYTE, i);
            }
            case U8 -> {
                for (int i = 0; i < out.length; i++) out[i] = Byte.toUnsignedInt(s.get(JAVA_BYTE, i));
            }
            case BOOL -> {
                for (int i = 0; i < out.length; i++) out[i] = s.get(JAVA_BYTE, i) != 0 ? 1 : 0;
            }
            default -> throw new AssertionError(t.dtype());
        }
        return out;
    }

    /**
     * How many NaN/Inf values a floating-point tensor holds (0 for other dtypes), read from the
     * mapping in place: a scan, not a copy. The pages read are then handed back ({@code unload}),
     * so checking a multi-gigabyte file does not leave it all counted as resident; they stay in
     * the page cache and come back on the next read.
     */
    public long nonFiniteCount(String name) {
        TensorInfo t = info(name);
        MemorySegment s = slice(t);
        long n = t.numel(), bad = 0;
        switch (t.dtype()) {
            case F32 -> {
                for (long i = 0; i < n; i++) {
                    bad += (s.getAtIndex(I32, i) & 0x7f800000) == 0x7f800000 ? 1 : 0;
                }
            }
            case F16 -> {
                for (long i = 0; i < n; i++) {
                    bad += (s.getAtIndex(I16, i) & 0x7c00) == 0x7c00 ? 1 : 0;
                }
            }
            case BF16 -> {
                for (long i = 0; i < n; i++) {
                    bad += (s.getAtIndex(I16, i) & 0x7f80) == 0x7f80 ? 1 : 0;
                }
            }
            case F64 -> {
                for (long i = 0; i < n; i++) {
                    bad += Double.isFinite(s.getAtIndex(F64, i)) ? 0 : 1;
                }
            }
            default -> {
            }
        }
        s.unload();
        return bad;
    }

    /** Unmaps the file. Idempotent; segments handed out earlier become inaccessible. */
    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }

    @Override
    public String toString() {
        return "SafeTensorsFile[" + path + ", " + tensors.size() + " tensors]";
    }

    private MemorySegment slice(TensorInfo t) {
        return dataSection.asSlice(t.begin(), t.byteSize()).asReadOnly();
    }

    private int arrayLength(TensorInfo t) {
        long n = t.numel();
        if (n > Integer.MAX_VALUE - 8) {
            throw new WeightsException(fileName + ": tensor '" + Text.quote(t.name()) + "' has " + n
                    + " elements, too many for a Java array");
        }
        return (int) n;
    }

    /** Typos in long dotted names are the common case, so suggest the closest few by edit distance. */
    private String nearestHint(String name) {
        if (tensors.isEmpty()) {
            return " (the file has no tensors)";
        }
        record Scored(String key, int distance) {}
        return tensors.keySet().stream()
                .map(k -> new Scored(k, editDistance(name, k)))
                .sorted(Comparator.comparingInt(Scored::distance))
                .limit(3)
                .map(Scored::key)
                .collect(Collectors.joining("', '", "; nearest: '", "'"));
    }

    private static int editDistance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) prev[j] = j;
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int subst = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(subst, Math.min(prev[j], cur[j - 1]) + 1);
            }
            int[] tmp = prev;
            prev = cur;
            cur = tmp;
        }
        return prev[b.length()];
    }

    private static String fileName(Path path) {
        Path f = path.getFileName();
        return Text.quote(f == null ? path.toString() : f.toString());
    }
}
