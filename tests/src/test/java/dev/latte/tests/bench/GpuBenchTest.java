package dev.latte.tests.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.latte.cuda.CudaContext;
import dev.latte.tests.cli.Cli.Result;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static dev.latte.tests.cli.Cli.latte;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The benches on a GPU, at small shapes (skipped without one): every case runs, the graph replays the step. */
class GpuBenchTest {
    @TempDir
    Path tmp;

    Path tiny() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("tiny"));
        Files.writeString(dir.resolve("config.json"), BenchCliTest.TINY);
        return dir;
    }

    @Test
    void kernelsOfASmallConfig() throws IOException {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        try (CudaContext ctx = CudaContext.open(0)) {
            // it times: a bandwidth floor and 20 timed runs per case say nothing on an emulator
            assumeTrue(!ctx.emulated(), "needs a real GPU (timing); " + ctx.deviceName() + " is emulated");
        }
        Path json = tmp.resolve("k.json");
        Result r = latte("bench", "kernels", "--config", tiny().toString(), "--sizes", "128", "--batch", "1",
                "--json", json.toString());
        assertEquals(0, r.code(), r.out() + r.err());
        JsonNode j = new ObjectMapper().readTree(json.toFile());
        assertTrue(j.at("/device/multiprocessors").asInt() > 0, j.get("device").toString());
        assertTrue(j.at("/device/bandwidth_measured_d2d_bytes_per_s").asDouble() > 1e10);
        assertTrue(j.at("/launch_overhead/ffm_host_us_per_launch").asDouble() > 0);
        for (JsonNode c : j.get("cases")) {
            assertEquals("ok", c.get("status").asText(), c.toString());
            assertTrue(c.get("median_ms").asDouble() > 0 && c.get("raw_ms").size() == 20, c.toString());
        }
    }

    @Test
    void unetStepEagerAndAsACudaGraph() throws IOException {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        for (String graph : new String[] {"", "--graph"}) {
            Path json = tmp.resolve("u" + graph + ".json");
            var args = new java.util.ArrayList<>(java.util.List.of("bench", "unet", "--config", tiny().toString(),
                    "--backend", "cuda", "--dtype", "fp16", "--height", "64", "--width", "64", "--warmup", "1", "--iters", "2",
                    "--json", json.toString()));
            if (!graph.isEmpty()) {
                args.add(graph);
            }
            Result r = latte(args.toArray(String[]::new));
            assertEquals(0, r.code(), r.out() + r.err());
            JsonNode j = new ObjectMapper().readTree(json.toFile());
            assertTrue(j.get("kernels_per_step").asInt() > 0, j.toString());
            assertTrue(j.at("/memory/device_used_bytes").asLong() >= j.at("/memory/peak_bytes").asLong());
            assertTrue(j.at("/memory/workspace_bytes").asLong() >= 0);
            if (!graph.isEmpty()) {
                assertEquals(0.0, j.get("graph_out_max_abs_diff_vs_eager").asDouble(), 1e-3);
            }
            // the kernel version of each distinct conv, linear and attention shape, chosen as the step was prepared
            assertTrue(j.get("tactics").size() > 0, j.toString());
            for (JsonNode t : j.get("tactics")) {
                assertTrue(t.asText().matches(".+: (conv|linear|attention)=v[12]( \\(x\\d+\\))?"), t.asText());
            }
        }
    }
}
