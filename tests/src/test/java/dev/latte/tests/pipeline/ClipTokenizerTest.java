package dev.latte.tests.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.latte.clip.ClipTokenizer;
import dev.latte.tests.Resources;
import dev.latte.weights.WeightsException;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every prompt of tokenizer-cases.json (made by OpenAI's SimpleTokenizer with ftfy) gives its 77 ids exactly. */
class ClipTokenizerTest {
    static Path dir() {
        return Resources.golden("pipeline/tokenizer");
    }

    @TempDir
    Path tmp;

    @TestFactory
    List<DynamicTest> everyGoldenCase() throws IOException {
        ClipTokenizer tok = ClipTokenizer.load(dir());
        JsonNode root = new ObjectMapper().readTree(dir().resolve("tokenizer-cases.json").toFile());
        assertEquals(root.get("bos_token_id").intValue(), tok.bosId());
        assertEquals(root.get("eos_token_id").intValue(), tok.eosId());
        assertEquals(root.get("pad_token_id").intValue(), tok.padId());
        assertEquals(root.get("max_length").intValue(), tok.maxLength());
        List<DynamicTest> tests = new ArrayList<>();
        int i = 0;
        for (JsonNode c : root.get("cases")) {
            String prompt = c.get("prompt").textValue();
            int[] expected = new int[c.get("input_ids").size()];
            for (int k = 0; k < expected.length; k++) {
                expected[k] = c.get("input_ids").get(k).intValue();
            }
            List<String> tokens = new ArrayList<>();
            c.get("tokens").forEach(t -> tokens.add(t.textValue()));
            String label = "case " + i++ + ": " + (prompt.length() > 40 ? prompt.substring(0, 40) + "…" : prompt);
            tests.add(DynamicTest.dynamicTest(label, () -> {
                ClipTokenizer.Encoding e = tok.encode(prompt);
                assertEquals(tokens, e.tokens(), "BPE tokens of " + prompt);
                assertArrayEquals(expected, e.ids(), "ids of " + prompt + ": " + Arrays.toString(e.ids()));
                assertEquals(c.get("bpe_length").intValue(), e.bpeLength());
                assertEquals(c.get("truncated").booleanValue(), e.truncated());
            }));
        }
        assertEquals(44, tests.size());
        return tests;
    }

    @Test
    void knownIds() {
        ClipTokenizer tok = ClipTokenizer.load(dir());
        int[] ids = tok.encode("a photo of a cat").ids();
        assertArrayEquals(new int[] {49406, 320, 1125, 539, 320, 2368, 49407, 49407}, Arrays.copyOf(ids, 8));
    }

    private Path copy() throws IOException {
        Path d = Files.createTempDirectory(tmp, "tokenizer");
        for (String f : new String[] {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"}) {
            Files.copy(dir().resolve(f), d.resolve(f));
        }
        return d;
    }

    @Test
    void aTokenizerThatIsNotClipsIsNamed() throws IOException {
        Path d = copy();
        Files.writeString(d.resolve("vocab.json"), "{\"hello\": 0, \"world\": 1}");
        WeightsException e = assertThrows(WeightsException.class, () -> ClipTokenizer.load(d));
        assertTrue(e.getMessage().contains("vocab.json") && e.getMessage().contains("not CLIP's"), e.getMessage());

        Path d2 = Files.createDirectories(tmp.resolve("t2"));
        Files.copy(dir().resolve("vocab.json"), d2.resolve("vocab.json"));
        Files.writeString(d2.resolve("merges.txt"), "#version: 0.2\nq u x\n");
        e = assertThrows(WeightsException.class, () -> ClipTokenizer.load(d2));
        assertTrue(e.getMessage().contains("merges.txt: line 2"), e.getMessage());

        Files.writeString(d2.resolve("merges.txt"), "a b\n");
        e = assertThrows(WeightsException.class, () -> ClipTokenizer.load(d2));
        assertTrue(e.getMessage().contains("#version"), e.getMessage());

        Path d3 = copy();
        Files.writeString(d3.resolve("tokenizer_config.json"), "{\"tokenizer_class\": \"T5Tokenizer\"}");
        e = assertThrows(WeightsException.class, () -> ClipTokenizer.load(d3));
        assertTrue(e.getMessage().contains("T5Tokenizer"), e.getMessage());

        Path d4 = Files.createDirectories(tmp.resolve("t4"));
        Files.copy(dir().resolve("vocab.json"), d4.resolve("vocab.json"));
        e = assertThrows(WeightsException.class, () -> ClipTokenizer.load(d4));
        assertTrue(e.getMessage().contains("no merges.txt"), e.getMessage());
    }

    @Test
    void nonUtf8IsAnError() {
        byte[] latin1 = "caf\u00e9".getBytes(StandardCharsets.ISO_8859_1);
        WeightsException e = assertThrows(WeightsException.class, () -> ClipTokenizer.decodeUtf8(latin1, "prompt"));
        assertTrue(e.getMessage().contains("not valid UTF-8"), e.getMessage());
    }
}
