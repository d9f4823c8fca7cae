package dev.latte.weights;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * The parsed and validated JSON header of a safetensors file. Checks follow the safetensors
 * crate's {@code validate()}, so a file accepted here is one that Python would load too; the one
 * leniency is that gaps between tensors (or trailing bytes) are tolerated, since they cannot make
 * a read go wrong.
 */
record SafeTensorsHeader(Map<String, String> metadata, SortedMap<String, TensorInfo> tensors) {

    static final String METADATA_KEY = "__metadata__";

    static SafeTensorsHeader parse(byte[] header, long dataSize, String file) {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(header)).toString();
        } catch (CharacterCodingException e) {
            throw fail(file + ": header is not valid UTF-8");
        }
        JsonNode root = Json.readObject(text, file, "header");

        Map<String, String> metadata = new LinkedHashMap<>();
        SortedMap<String, TensorInfo> tensors = new TreeMap<>();
        for (Map.Entry<String, JsonNode> e : root.properties()) {
            if (e.getKey().equals(METADATA_KEY)) {
                readMetadata(e.getValue(), file, metadata);
            } else {
                TensorInfo t = readTensor(e.getKey(), e.getValue(), dataSize, file);
                tensors.put(t.name(), t);
            }
        }
        checkNoOverlap(tensors, file);
        return new SafeTensorsHeader(Map.copyOf(metadata), tensors);
    }

    private static void readMetadata(JsonNode node, String file, Map<String, String> out) {
        if (node.isNull()) {
            return; // the crate serializes an absent map as null
        }
        if (!node.isObject()) {
            throw fail(file + ": " + METADATA_KEY + " must be an object of strings, got " + Json.show(node));
        }
        for (Map.Entry<String, JsonNode> e : node.properties()) {
            if (!e.getValue().isTextual()) {
                throw fail(file + ": " + METADATA_KEY + " key '" + Text.quote(e.getKey()) + "' must map to a string, got "
                        + Json.show(e.getValue()));
            }
            out.put(e.getKey(), e.getValue().textValue());
        }
    }

    private static TensorInfo readTensor(String name, JsonNode node, long dataSize, String file) {
        String where = file + ": tensor '" + Text.quote(name) + "': ";
        if (!node.isObject()) {
            throw fail(where + "entry must be an object, got " + Json.show(node));
        }
        JsonNode dtypeNode = node.path("dtype");
        if (!dtypeNode.isTextual()) {
            throw fail(where + "dtype must be a string, got " + Json.show(dtypeNode));
        }
        DType dtype = DType.fromSafetensorsName(dtypeNode.textValue());
        if (dtype == null) {
            throw fail(where + "unsupported dtype '" + dtypeNode.textValue() + "'");
        }
        long[] shape = naturals(node.path("shape"), where + "shape");
        long[] offsets = naturals(node.path("data_offsets"), where + "data_offsets");
        if (offsets.length != 2) {
            throw fail(where + "data_offsets must have 2 entries, got " + Json.show(node.get("data_offsets")));
        }
        long begin = offsets[0];
        long end = offsets[1];
        String range = "data_offsets [" + begin + ", " + end + "]";
        if (begin > end) {
            throw fail(where + range + " begin is after end");
        }
        if (end > dataSize) {
            throw fail(where + range + " end beyond the " + dataSize + "-byte data section (file truncated?)");
        }
        long bytes;
        try {
            long numel = 1;
            for (long d : shape) {
                numel = Math.multiplyExact(numel, d);
            }
            bytes = Math.multiplyExact(numel, dtype.byteSize());
        } catch (ArithmeticException overflow) {
            throw fail(where + "shape " + Json.show(node.get("shape")) + " overflows a 64-bit byte count");
        }
        if (bytes != end - begin) {
            throw fail(where + dtype + " " + Json.show(node.get("shape")) + " needs " + bytes + " bytes but "
                    + range + " span " + (end - begin));
        }
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    /** An array of non-negative integers that fit a long; anything else names {@code what}. */
    private static long[] naturals(JsonNode node, String what) {
        if (!node.isArray()) {
            throw fail(what + " must be an array of non-negative integers, got " + Json.show(node));
        }
        long[] values = new long[node.size()];
        for (int i = 0; i < values.length; i++) {
            JsonNode v = node.get(i);
            if (!v.isIntegralNumber() || !v.canConvertToLong() || v.longValue() < 0) {
                throw fail(what + " must be an array of non-negative integers, got " + Json.show(node));
            }
            values[i] = v.longValue();
        }
        return values;
    }

    private static void checkNoOverlap(SortedMap<String, TensorInfo> tensors, String file) {
        List<TensorInfo> byOffset = new ArrayList<>(tensors.values());
        byOffset.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        TensorInfo prev = null;
        for (TensorInfo t : byOffset) {
            // Empty tensors occupy no bytes, so they cannot collide with anything.
            if (t.begin() == t.end()) {
                continue;
            }
            if (prev != null && t.begin() < prev.end()) {
                throw fail(file + ": tensor '" + Text.quote(t.name()) + "': data_offsets [" + t.begin() + ", " + t.end()
                        + "] overlap tensor '" + Text.quote(prev.name()) + "' [" + prev.begin() + ", " + prev.end() + "]");
            }
            prev = t;
        }
    }

    private static WeightsException fail(String message) {
        return new WeightsException(Json.oneLine(message));
    }
}
