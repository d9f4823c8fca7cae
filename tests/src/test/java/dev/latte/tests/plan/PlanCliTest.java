package dev.latte.tests.plan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.latte.tests.Resources;
import dev.latte.tests.cli.Cli.Result;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static dev.latte.tests.cli.Cli.assertBadInput;
import static dev.latte.tests.cli.Cli.latte;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code latte plan}: the summary, the JSON, re-checked here from the JSON alone, and bad input. */
class PlanCliTest {
    @TempDir
    Path tmp;

    @Test
    void sd15PlanPrintsTotalsAndWritesACheckableJson() throws Exception {
        Path json = tmp.resolve("plan.json");
        Result r = latte("plan", "--config", "sd15", "--height", "512", "--width", "512", "--batch", "2",
                "--dtype", "fp16", "--json", json.toString());
        System.out.print(r.out());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("latent 64x64"), r.out());
        assertTrue(r.out().contains("lower bound") && r.out().contains("naive") && r.out().contains("largest tensors"));
        assertTrue(r.out().contains("GREEDY_BY_SIZE") && r.out().contains("SEARCH"));

        JsonNode plan = new ObjectMapper().readTree(Files.readString(json));
        long arena = plan.get("arena_bytes").asLong(), bound = plan.get("lower_bound_bytes").asLong();
        long naive = plan.get("naive_bytes").asLong();
        assertTrue(bound <= arena && arena <= 1.05 * bound && arena <= 0.25 * naive);
        assertEquals(2, plan.get("element_bytes").asInt());
        // re-check from the JSON alone: live-overlapping activations never share bytes unless in place
        JsonNode acts = plan.get("activations");
        long sum = 0;
        for (JsonNode a : acts) {
            sum += a.get("bytes").asLong();
            assertEquals(0, a.get("offset").asLong() % 256);
            assertTrue(a.get("offset").asLong() + a.get("bytes").asLong() <= arena);
        }
        assertEquals(naive, sum);
        for (int i = 0; i < acts.size(); i++) {
            JsonNode a = acts.get(i);
            for (int j = i + 1; j < acts.size(); j++) {
                JsonNode b = acts.get(j);
                boolean time = a.get("first_op").asInt() <= b.get("last_op").asInt()
                        && b.get("first_op").asInt() <= a.get("last_op").asInt();
                long ao = a.get("offset").asLong(), bo = b.get("offset").asLong();
                boolean bytes = ao < bo + b.get("bytes").asLong() && bo < ao + a.get("bytes").asLong();
                if (time && bytes) {
                    boolean inPlace = b.has("in_place_of") && b.get("in_place_of").asText().equals(a.get("name").asText())
                            && ao == bo && a.get("last_op").asInt() == b.get("first_op").asInt();
                    assertTrue(inPlace, a + " and " + b + " overlap");
                }
            }
        }
    }

    @Test
    void modelFolderConfigAndBadInput() {
        Result r = latte("plan", "--config", Resources.unetTiny().toString(), "--height", "128", "--width", "128",
                "--dtype", "fp32", "--keep", "all");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("every named output"), r.out());

        assertEquals(2, latte("plan", "--config", "sd99").code());
        assertEquals(2, latte("plan", "--config", "sd15", "--height", "500").code());
        assertEquals(2, latte("plan", "--config", "sd15", "--dtype", "int3").code());
        Result bad = latte("plan", "--config", "sd15", "--keep", "some");
        assertEquals(2, bad.code());
        assertTrue(bad.err().startsWith("latte: plan:"), bad.err());
    }

    @Test
    void unwritableJsonIsOneLine() throws Exception {
        Path file = Files.writeString(tmp.resolve("a-file"), "x");
        Path json = file.resolve("plan.json"); // its parent is a file: cannot be created
        Result r = latte("plan", "--config", "sd15", "--height", "64", "--width", "64", "--batch", "1",
                "--json", json.toString());
        assertBadInput(r, json.toString(), "cannot write");
    }
}
