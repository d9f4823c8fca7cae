package dev.latte.weights;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.function.BiFunction;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * Typed access to a config JSON object. Absent keys yield the caller's default; a key present with
 * the wrong JSON type is an error naming the source and key, because silently defaulting it would
 * build a different network than the checkpoint was trained as.
 */
final class ConfigReader {

    /**
     * Reads {@code configJson} (a directory is taken to mean its {@code config.json}) and parses it
     * with {@code parse(text, sourceName)}; a missing or unreadable file is one line naming it.
     */
    static <T> T load(Path configJson, BiFunction<String, String, T> parse) {
        Path file = Files.isDirectory(configJson) ? configJson.resolve("config.json") : configJson;
        String text;
        try {
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new WeightsException(file.toAbsolutePath().getParent() + ": no " + file.getFileName());
        } catch (IOException e) {
            throw new WeightsException(Json.oneLine(file + ": cannot read: " + Json.describe(e)), e);
        }
        return parse.apply(text, file.toString());
    }
    private final JsonNode root;
    private final String source;

    ConfigReader(JsonNode root, String source) {
        this.root = root;
        this.source = source;
    }

    JsonNode node(String key) {
        return root.get(key);
    }

    WeightsException fail(String key, String problem) {
        return new WeightsException(Json.oneLine(source + ": '" + Text.quote(key) + "' " + problem));
    }

    void checkLevels(String key, int size, int levels) {
        if (size != levels) {
            throw fail(key, "has " + size + " entries but down_block_types has " + levels);
        }
    }

    int integer(String key, int dflt) {
        return required(key, dflt, ConfigReader::isInt, JsonNode::intValue, "an integer");
    }

    Integer optInt(String key, Integer dflt) {
        return optional(key, dflt, ConfigReader::isInt, JsonNode::intValue, "an integer");
    }

    boolean bool(String key, boolean dflt) {
        return required(key, dflt, JsonNode::isBoolean, JsonNode::booleanValue, "a boolean");
    }

    Boolean optBool(String key, Boolean dflt) {
        return optional(key, dflt, JsonNode::isBoolean, JsonNode::booleanValue, "a boolean");
    }

    double number(String key, double dflt) {
        return required(key, dflt, JsonNode::isNumber, JsonNode::doubleValue, "a number");
    }

    String string(String key, String dflt) {
        return required(key, dflt, JsonNode::isTextual, JsonNode::textValue, "a string");
    }

    String optString(String key, String dflt) {
        return optional(key, dflt, JsonNode::isTextual, JsonNode::textValue, "a string");
    }

    List<String> strings(String key, List<String> dflt) {
        JsonNode n = root.get(key);
        return n == null ? dflt : list(key, n, JsonNode::isTextual, JsonNode::textValue, "a list of strings");
    }

    List<Integer> ints(String key, List<Integer> dflt) {
        JsonNode n = root.get(key);
        return n == null ? dflt : list(key, n, ConfigReader::isInt, JsonNode::intValue, "a list of integers");
    }

    /** An int, or a list with one int per level; a list of lists (per-layer values) is not supported. */
    List<Integer> perLevelInts(String key, int dflt, int levels) {
        JsonNode n = root.get(key);
        return n == null ? Collections.nCopies(levels, dflt) : perLevel(key, n, levels, ConfigReader::isInt,
                JsonNode::intValue, "an integer or a list of integers");
    }

    /** Like {@link #perLevelInts} but absent or null gives null, for keys whose absence means something. */
    List<Integer> optPerLevelInts(String key, int levels) {
        JsonNode n = root.get(key);
        return n == null || n.isNull() ? null : perLevel(key, n, levels, ConfigReader::isInt,
                JsonNode::intValue, "an integer or a list of integers");
    }

    List<Boolean> perLevelBools(String key, boolean dflt, int levels) {
        JsonNode n = root.get(key);
        return n == null ? Collections.nCopies(levels, dflt) : perLevel(key, n, levels, JsonNode::isBoolean,
                JsonNode::booleanValue, "a boolean or a list of booleans");
    }

    private <T> List<T> perLevel(String key, JsonNode n, int levels, Predicate<JsonNode> is,
                                 Function<JsonNode, T> get, String expected) {
        if (is.test(n)) {
            return Collections.nCopies(levels, get.apply(n));
        }
        if (n.isArray()) {
            for (JsonNode e : n) {
                if (e.isArray()) {
                    throw fail(key, "as a list of lists (per-layer values) is unsupported, got " + Json.show(n));
                }
            }
        }
        List<T> values = list(key, n, is, get, expected);
        checkLevels(key, values.size(), levels);
        return values;
    }

    private <T> List<T> list(String key, JsonNode n, Predicate<JsonNode> is, Function<JsonNode, T> get,
                             String expected) {
        if (!n.isArray()) {
            throw mistyped(key, expected, n);
        }
        List<T> values = new ArrayList<>(n.size());
        for (JsonNode e : n) {
            if (!is.test(e)) {
                throw mistyped(key, expected, n);
            }
            values.add(get.apply(e));
        }
        return List.copyOf(values);
    }

    private <T> T required(String key, T dflt, Predicate<JsonNode> is, Function<JsonNode, T> get, String expected) {
        JsonNode n = root.get(key);
        if (n == null) {
            return dflt;
        }
        if (!is.test(n)) {
            throw mistyped(key, expected, n);
        }
        return get.apply(n);
    }

    private <T> T optional(String key, T dflt, Predicate<JsonNode> is, Function<JsonNode, T> get, String expected) {
        JsonNode n = root.get(key);
        return n != null && n.isNull() ? null : required(key, dflt, is, get, expected + " or null");
    }

    private WeightsException mistyped(String key, String expected, JsonNode got) {
        return fail(key, "must be " + expected + ", got " + Json.show(got));
    }

    private static boolean isInt(JsonNode n) {
        return n.isIntegralNumber() && n.canConvertToInt();
    }
}
