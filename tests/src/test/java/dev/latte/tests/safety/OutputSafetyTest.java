package dev.latte.tests.safety;

import dev.latte.model.UNetModel;
import dev.latte.tests.cli.Cli.Result;
import dev.latte.tests.sampling.TinyLora;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.TensorInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

import static dev.latte.tests.cli.Cli.latte;
import static dev.latte.tests.safety.Models.FP16;
import static dev.latte.tests.safety.Models.WEIGHTS;
import static dev.latte.tests.safety.Models.assertRefused;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 11's findings on output: no command writes over what it reads, a model folder holds one
 * weights file after any write, and temporaries of killed writes are removed by the next one.
 * Each of these wrote over the user's file and exited 0.
 */
@Timeout(300)
class OutputSafetyTest {
    private static final String CTX = Path.of("..", "examples", "tiny-context.safetensors").toString();

    @TempDir
    Path tmp;

    @Test
    void sampleRefusesAnOutputThatIsTheModelsWeights() throws IOException {
        Path m = Models.copy(tmp.resolve("m"));
        byte[] before = Files.readAllBytes(m.resolve(WEIGHTS));
        String out = m.resolve("diffusion_pytorch_model").toString(); // sample derives OUT.safetensors
        assertRefused(latte("sample", "--model", m.toString(), "--context", CTX, "--out", out, "--steps", "1"),
                "--out", "would replace the input");
        assertArrayEquals(before, Files.readAllBytes(m.resolve(WEIGHTS)));
        // through a symbolic link and a hard link too
        Path link = Files.createSymbolicLink(tmp.resolve("link.safetensors"), m.resolve(WEIGHTS));
        assertRefused(latte("sample", "--model", m.toString(), "--context", CTX, "--out", link.toString(),
                "--steps", "1"), "would replace the input");
        Path hard = Files.createLink(tmp.resolve("hard.safetensors"), m.resolve(WEIGHTS));
        assertRefused(latte("sample", "--model", m.toString(), "--context", CTX, "--out", hard.toString(),
                "--steps", "1"), "would replace the input");
        assertArrayEquals(before, Files.readAllBytes(m.resolve(WEIGHTS)));
    }

    @Test
    void sampleRefusesAnOutputThatIsItsContext() throws IOException {
        Path ctx = tmp.resolve("ctx.safetensors");
        Files.copy(Path.of(CTX), ctx);
        byte[] before = Files.readAllBytes(ctx);
        assertRefused(latte("sample", "--model", Models.tiny(), "--context", ctx.toString(), "--out",
                tmp.resolve("ctx").toString(), "--steps", "1"), "would replace the input");
        assertArrayEquals(before, Files.readAllBytes(ctx));
        Path png = tmp.resolve("init.png");
        Files.writeString(png, "not the output");
        assertRefused(latte("sample", "--model", Models.tiny(), "--context", CTX, "--out", tmp.resolve("init").toString(),
                "--steps", "1", "--init-latents", png.toString()), "would replace the input");
    }

    @Test
    void exportRandomRefusesItsConfigFolder() throws IOException {
        Path m = Models.copy(tmp.resolve("m"));
        byte[] before = Files.readAllBytes(m.resolve(WEIGHTS));
        assertRefused(latte("export-random", "--config", m.toString(), "--out", m.toString(), "--dtype", "fp32"),
                "--out", "input");
        assertRefused(latte("export-random", "--config", m.resolve("config.json").toString(), "--out", m.toString()),
                "--out", "input");
        assertArrayEquals(before, Files.readAllBytes(m.resolve(WEIGHTS)));
    }

    @Test
    void jsonOutputsRefuseInputs() throws IOException {
        Path m = Models.copy(tmp.resolve("m"));
        byte[] cfg = Files.readAllBytes(m.resolve("config.json"));
        assertRefused(latte("plan", "--config", m.toString(), "--height", "64", "--width", "64", "--json",
                m.resolve("config.json").toString()), "--json", "would replace the input");
        assertArrayEquals(cfg, Files.readAllBytes(m.resolve("config.json")));
    }

    @Test
    void aFolderOfOtherFilesIsNeverReplaced() throws IOException {
        Path docs = Files.createDirectories(tmp.resolve("docs"));
        Files.writeString(docs.resolve("thesis.tex"), "years of work");
        assertRefused(latte("quantize", "--model", Models.tiny(), "--out", docs.toString()), "thesis.tex",
                "not a model's");
        assertEquals("years of work", Files.readString(docs.resolve("thesis.tex")));
        // an output folder that holds an input
        Path lora = TinyLora.write(SafeTensorsFile.open(Path.of(Models.tiny(), WEIGHTS)), docs.resolve("l.safetensors"), 1);
        assertRefused(latte("lora-merge", "--model", Models.tiny(), "--lora", lora.toString(), "--out",
                docs.toString()), "holds the input");
    }

    @Test
    void quantizeReplacesAModelFolderWholeAndCleansStaleTemporaries() throws IOException {
        Path out = tmp.resolve("q");
        assertEquals(0, latte("quantize", "--model", Models.tiny(), "--out", out.toString()).code());
        // what killed writes used to leave behind, forever: a dead pid's temporaries, and a twin file
        Path stale = out.resolve(".diffusion_pytorch_model.safetensors.999999999.123456789.tmp");
        Files.write(stale, new byte[1000]);
        Path staleFolder = Files.createDirectories(tmp.resolve(".q.latte-tmp.999999999.1"));
        Files.write(staleFolder.resolve(WEIGHTS), new byte[10]);
        Files.copy(Path.of(Models.tiny(), WEIGHTS), out.resolve(FP16));
        Result r = latte("quantize", "--model", Models.tiny(), "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertEquals(Set.of("config.json", WEIGHTS), names(out));
        assertFalse(Files.exists(staleFolder));
        assertEquals(List.of("q"), names(tmp).stream().filter(n -> n.startsWith(".") || n.equals("q")).toList());
    }

    /** An .fp16-only model merged into a folder holding a stale fp32 file: loading picked the stale file. */
    @Test
    void loraMergeLeavesOneModelFilePerFolder() throws IOException {
        Path src = Models.fp16Copy(tmp.resolve("src"));
        Path out = Models.copy(tmp.resolve("out")); // a stale diffusion_pytorch_model.safetensors
        Path lora;
        try (SafeTensorsFile w = SafeTensorsFile.open(src.resolve(FP16))) {
            lora = TinyLora.write(w, tmp.resolve("lora.safetensors"), 3);
        }
        Result r = latte("lora-merge", "--model", src.toString(), "--lora", lora.toString(), "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertEquals(Set.of("config.json", FP16), names(out));
        String target = TinyLora.MODULES.getFirst() + ".weight";
        try (UNetModel merged = UNetModel.load(out); SafeTensorsFile orig = SafeTensorsFile.open(src.resolve(FP16))) {
            assertEquals(FP16, merged.weights().path().getFileName().toString());
            assertFalse(java.util.Arrays.equals(orig.toFloatArray(target), merged.weights().toFloatArray(target)),
                    "the LoRA is not in the loaded weights");
        }
    }

    /** A LoRA of 1e30 values: lora-merge wrote Inf weights and exited 0 (sample --lora refused it). */
    @Test
    void loraMergeRefusesAnOverflowingLora() throws IOException {
        String module = TinyLora.MODULES.getFirst();
        long[] shape;
        try (SafeTensorsFile f = SafeTensorsFile.open(Path.of(Models.tiny(), WEIGHTS))) {
            shape = f.info(module + ".weight").shape();
        }
        String key = "lora_unet_" + module.replace('.', '_');
        float[] down = new float[(int) shape[1]], up = new float[(int) shape[0]];
        java.util.Arrays.fill(down, 1e30f);
        java.util.Arrays.fill(up, 1e30f);
        Path lora = tmp.resolve("huge.safetensors");
        new SafeTensorsWriter().addF32(key + ".lora_down.weight", new long[] {1, shape[1]}, down)
                .addF32(key + ".lora_up.weight", new long[] {shape[0], 1}, up).write(lora);
        Path out = tmp.resolve("merged");
        assertRefused(latte("lora-merge", "--model", Models.tiny(), "--lora", lora.toString(), "--out", out.toString()),
                "huge.safetensors", "'" + module + ".weight' holds", "NaN/Inf");
        assertFalse(Files.exists(out));
    }

    @Test
    void writesLeaveNoTemporaries() throws IOException {
        Path out = tmp.resolve("samples/run");
        Result r = latte("sample", "--model", Models.tiny(), "--context", CTX, "--out", out.toString(), "--steps", "1",
                "--scheduler", "lcm");
        assertEquals(0, r.code(), r.err());
        assertEquals(Set.of("run.safetensors", "run.png"), names(out.getParent()));
        try (SafeTensorsFile f = SafeTensorsFile.open(out.resolveSibling("run.safetensors"))) {
            assertNotEquals(0, f.tensors().size());
            for (TensorInfo t : f.tensors()) {
                assertTrue(t.numel() > 0);
            }
        }
    }

    static Set<String> names(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return new java.util.TreeSet<>(s.map(p -> p.getFileName().toString()).toList());
        }
    }
}
