package dev.latte.clip;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.latte.weights.WeightsException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * CLIP's byte-level BPE tokenizer (OpenAI's {@code simple_tokenizer.py}, which transformers'
 * {@code CLIPTokenizer} follows) read from a diffusers {@code tokenizer/} folder: {@code vocab.json}
 * (token → id), {@code merges.txt} (rank = line order after the {@code #version} line), and the
 * optional {@code tokenizer_config.json} / {@code special_tokens_map.json} for the special tokens
 * and {@code model_max_length}. {@link #encode} gives the pipeline's ids: bos, at most
 * {@code maxLength − 2} BPE ids, eos, then padding to {@code maxLength} with the pad token, as
 * diffusers' {@code tokenizer(prompt, padding="max_length", truncation=True)}.
 */
public final class ClipTokenizer {
    public static final String BOS = "<|startoftext|>";
    public static final String EOS = "<|endoftext|>";
    private static final String END_OF_WORD = "</w>";

    /** OpenAI's split, applied to cleaned (lower-case) text; IGNORECASE as there. */
    private static final Pattern SPLIT = Pattern.compile(
            "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+",
            Pattern.CASE_INSENSITIVE | Pattern.UNICODE_CASE | Pattern.UNICODE_CHARACTER_CLASS);

    /** GPT-2's reversible byte → printable character map, in its order. */
    private static final char[] BYTE_CHAR = bytesToUnicode();

    private final Path dir;
    private final Map<String, Integer> vocab;
    private final Map<String, Integer> ranks;
    private final int bos;
    private final int eos;
    private final int pad;
    private final int maxLength;

    /** One prompt's ids: {@code ids} has {@code maxLength} entries; {@code bpeLength} counts BPE ids before truncation. */
    public record Encoding(int[] ids, int bpeLength, boolean truncated, List<String> tokens) {
    }

    private ClipTokenizer(Path dir, Map<String, Integer> vocab, Map<String, Integer> ranks, int bos, int eos,
                          int pad, int maxLength) {
        this.dir = dir;
        this.vocab = vocab;
        this.ranks = ranks;
        this.bos = bos;
        this.eos = eos;
        this.pad = pad;
        this.maxLength = maxLength;
    }

    public static ClipTokenizer load(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new WeightsException(dir + ": not a directory (expected a tokenizer folder with vocab.json and "
                    + "merges.txt)");
        }
        ObjectMapper mapper = new ObjectMapper();
        Path vocabFile = dir.resolve("vocab.json");
        JsonNode vocabJson = readJson(mapper, vocabFile, true);
        Map<String, Integer> vocab = new HashMap<>(vocabJson.size() * 2);
        var fields = vocabJson.properties().iterator();
        while (fields.hasNext()) {
            var e = fields.next();
            if (!e.getValue().isIntegralNumber() || !e.getValue().canConvertToInt() || e.getValue().intValue() < 0) {
                throw new WeightsException(vocabFile + ": token '" + e.getKey() + "' maps to " + e.getValue()
                        + ", not a token id");
            }
            vocab.put(e.getKey(), e.getValue().intValue());
        }
        for (char c : BYTE_CHAR) {
            for (String t : new String[] {String.valueOf(c), c + END_OF_WORD}) {
                if (!vocab.containsKey(t)) {
                    throw new WeightsException(vocabFile + ": no token '" + t + "'; this is not CLIP's byte-level "
                            + "BPE vocabulary (every byte symbol and its '</w>' form must be there)");
                }
            }
        }
        Map<String, Integer> ranks = readMerges(dir.resolve("merges.txt"), vocab);

        JsonNode config = readJson(mapper, dir.resolve("tokenizer_config.json"), false);
        JsonNode special = readJson(mapper, dir.resolve("special_tokens_map.json"), false);
        String source = dir.resolve("tokenizer_config.json").toString();
        if (config != null && config.has("tokenizer_class")) {
            String cls = config.get("tokenizer_class").asText();
            if (!cls.equals("CLIPTokenizer") && !cls.equals("CLIPTokenizerFast")) {
                throw new WeightsException(source + ": tokenizer_class is '" + cls
                        + "'; Latte reads CLIPTokenizer folders only");
            }
        }
        int maxLength = 77;
        if (config != null && config.has("model_max_length")) {
            JsonNode m = config.get("model_max_length");
            if (!m.canConvertToInt() || m.intValue() < 2 || m.intValue() > 4096) {
                throw new WeightsException(source + ": model_max_length " + m + " is not a length between 2 and 4096");
            }
            maxLength = m.intValue();
        }
        int bos = specialId(vocab, vocabFile, "bos_token", BOS, special, config);
        int eos = specialId(vocab, vocabFile, "eos_token", EOS, special, config);
        int pad = specialId(vocab, vocabFile, "pad_token", EOS, special, config);
        return new ClipTokenizer(dir, Map.copyOf(vocab), ranks, bos, eos, pad, maxLength);
    }

    private static JsonNode readJson(ObjectMapper mapper, Path file, boolean required) {
        if (!Files.isRegularFile(file)) {
            if (required) {
                throw new WeightsException(file.getParent() + ": no " + file.getFileName()
                        + " (a CLIP tokenizer folder has vocab.json and merges.txt)");
            }
            return null;
        }
        JsonNode n;
        try {
            n = mapper.readTree(Files.readAllBytes(file));
        } catch (IOException e) {
            throw new WeightsException((file + ": not valid JSON: " + e.getMessage()).replaceAll("\\R", " "));
        }
        if (n == null || !n.isObject()) {
            throw new WeightsException(file + ": not a JSON object");
        }
        return n;
    }

    /** A special token from special_tokens_map.json or tokenizer_config.json (string or AddedToken), else CLIP's. */
    private static int specialId(Map<String, Integer> vocab, Path vocabFile, String key, String dflt,
                                 JsonNode... sources) {
        String token = dflt;
        for (JsonNode s : sources) {
            if (s != null && s.has(key)) {
                JsonNode n = s.get(key);
                token = n.isTextual() ? n.textValue() : n.path("content").asText(dflt);
                break;
            }
        }
        Integer id = vocab.get(token);
        if (id == null) {
            throw new WeightsException(vocabFile + ": the " + key + " '" + token + "' is not in the vocabulary");
        }
        return id;
    }

    private static Map<String, Integer> readMerges(Path file, Map<String, Integer> vocab) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new WeightsException(file.getParent() + ": no merges.txt (a CLIP tokenizer folder has vocab.json "
                    + "and merges.txt)");
        } catch (IOException e) {
            throw new WeightsException(file + ": cannot read: " + e.getMessage());
        }
        String text = decodeUtf8(bytes, file.toString());
        String[] lines = text.split("\n", -1);
        if (lines.length == 0 || !lines[0].startsWith("#version")) {
            throw new WeightsException(file + ": first line is not '#version: ...'; this is not a BPE merges file");
        }
        Map<String, Integer> ranks = new HashMap<>(lines.length * 2);
        for (int i = 1; i < lines.length; i++) {
            String line = lines[i].endsWith("\r") ? lines[i].substring(0, lines[i].length() - 1) : lines[i];
            if (line.isEmpty()) {
                continue;
            }
            String[] pair = line.split(" ");
            if (pair.length != 2) {
                throw new WeightsException(file + ": line " + (i + 1) + " is not a merge 'a b': '" + line + "'");
            }
            if (!vocab.containsKey(pair[0] + pair[1])) {
                throw new WeightsException(file + ": line " + (i + 1) + " merges to '" + pair[0] + pair[1]
                        + "', which vocab.json lacks (merges and vocabulary do not belong together)");
            }
            ranks.putIfAbsent(pair[0] + " " + pair[1], ranks.size());
        }
        if (ranks.isEmpty()) {
            throw new WeightsException(file + ": no merges");
        }
        return Map.copyOf(ranks);
    }

    /** Strict UTF-8: a prompt or file that is not UTF-8 is an error, never silently replaced. */
    public static String decodeUtf8(byte[] bytes, String source) {
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new WeightsException(source + ": not valid UTF-8 text");
        }
    }

    public Path dir() {
        return dir;
    }

    public int maxLength() {
        return maxLength;
    }

    public int bosId() {
        return bos;
    }

    public int eosId() {
        return eos;
    }

    public int padId() {
        return pad;
    }

    public int vocabSize() {
        return vocab.size();
    }

    /** The BPE token strings of a prompt, no special tokens, no truncation. */
    public List<String> bpeTokens(String prompt) {
        List<String> tokens = new ArrayList<>();
        Matcher m = SPLIT.matcher(TextCleaner.clean(prompt));
        while (m.find()) {
            byte[] utf8 = m.group().getBytes(StandardCharsets.UTF_8);
            StringBuilder sb = new StringBuilder(utf8.length);
            for (byte b : utf8) {
                sb.append(BYTE_CHAR[b & 0xff]);
            }
            tokens.addAll(bpe(sb.toString()));
        }
        return tokens;
    }

    /** The pipeline's {@code maxLength} ids for a prompt. */
    public Encoding encode(String prompt) {
        List<String> tokens = bpeTokens(prompt);
        int keep = Math.min(tokens.size(), maxLength - 2);
        int[] ids = new int[maxLength];
        Arrays.fill(ids, pad);
        ids[0] = bos;
        for (int i = 0; i < keep; i++) {
            ids[i + 1] = vocab.get(tokens.get(i));
        }
        ids[keep + 1] = eos;
        return new Encoding(ids, tokens.size(), keep < tokens.size(), List.copyOf(tokens.subList(0, keep)));
    }

    /** One pre-token (byte symbols) merged by rank: every occurrence of the lowest-ranked pair, left to right. */
    private List<String> bpe(String word) {
        List<String> parts = new ArrayList<>(word.length());
        for (int i = 0; i < word.length(); i++) {
            parts.add(String.valueOf(word.charAt(i)));
        }
        parts.set(parts.size() - 1, parts.getLast() + END_OF_WORD);
        while (parts.size() > 1) {
            int best = Integer.MAX_VALUE;
            String first = null, second = null;
            for (int i = 0; i + 1 < parts.size(); i++) {
                Integer r = ranks.get(parts.get(i) + " " + parts.get(i + 1));
                if (r != null && r < best) {
                    best = r;
                    first = parts.get(i);
                    second = parts.get(i + 1);
                }
            }
            if (first == null) {
                break;
            }
            List<String> merged = new ArrayList<>(parts.size());
            for (int i = 0; i < parts.size(); i++) {
                if (i + 1 < parts.size() && parts.get(i).equals(first) && parts.get(i + 1).equals(second)) {
                    merged.add(first + second);
                    i++;
                } else {
                    merged.add(parts.get(i));
                }
            }
            parts = merged;
        }
        for (String p : parts) {
            if (!vocab.containsKey(p)) {
                throw new WeightsException(dir.resolve("vocab.json") + ": no token '" + p
                        + "' although merges.txt makes it");
            }
        }
        return parts;
    }

    /** The id of a BPE token string, or -1. */
    public int id(String token) {
        return vocab.getOrDefault(token, -1);
    }

    private static char[] bytesToUnicode() {
        char[] map = new char[256];
        boolean[] printable = new boolean[256];
        for (int b = '!'; b <= '~'; b++) {
            printable[b] = true;
        }
        for (int b = 0xa1; b <= 0xac; b++) {
            printable[b] = true;
        }
        for (int b = 0xae; b <= 0xff; b++) {
            printable[b] = true;
        }
        int n = 0;
        for (int b = 0; b < 256; b++) {
            if (printable[b]) {
                map[b] = (char) b;
            } else {
                map[b] = (char) (256 + n++);
            }
        }
        return map;
    }
}
