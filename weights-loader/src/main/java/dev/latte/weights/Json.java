package dev.latte.weights;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;

/** Shared Jackson setup and the helpers that keep error messages on one line. */
final class Json {
    /**
     * Strict: a duplicated key would silently shadow a tensor or config entry, and trailing
     * garbage means the header length is lying. Python's json writes NaN/Infinity, so allow them.
     */
    static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .build();

    private Json() {}

    static JsonNode readObject(String text, String source, String what) {
        JsonNode root;
        try {
            root = MAPPER.readTree(text);
        } catch (JsonProcessingException e) {
            throw new WeightsException(oneLine(source + ": " + what + " is not valid JSON: " + e.getOriginalMessage()));
        }
        if (root == null || !root.isObject()) {
            throw new WeightsException(source + ": " + what + " is not a JSON object but " + show(root));
        }
        return root;
    }

    /** A short, single-line rendering of a JSON value for an error message. */
    static String show(JsonNode node) {
        if (node == null || node.isMissingNode()) {
            return "nothing";
        }
        String s = Text.oneLine(node.toString());
        return s.length() > 60 ? s.substring(0, 57) + "..." : s;
    }

    /** An I/O failure in words a user acts on, not an exception class name. */
    static String describe(java.io.IOException e) {
        if (e instanceof java.nio.file.NoSuchFileException) {
            return "no such file";
        }
        if (e instanceof java.nio.file.AccessDeniedException) {
            return "permission denied";
        }
        if (e instanceof java.nio.file.FileSystemException f && f.getReason() != null) {
            return f.getReason();
        }
        return e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    }

    static String oneLine(String message) {
        return Text.oneLine(message);
    }
}
