package dev.latte.tests.safety;

import dev.latte.model.UNetModel;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Predicate;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static dev.latte.tests.safety.Models.WEIGHTS;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * kill -9 at several points of a large model write ({@code latte export-random}, ~70 MB, over a
 * folder holding an older export) in a child JVM: afterwards the folder holds the old model or the
 * new one, whole and loadable, and nothing else; beside it there is nothing but temporaries the
 * next write recognises and removes. Before the fix, a killed quantize/prune left config.json and a
 * .tmp (the old weights were deleted before writing began).
 */
@Timeout(900)
class OutputKillTest {
    private static final String CONFIG = """
            {"_class_name": "UNet2DConditionModel", "attention_head_dim": 8, "block_out_channels": [64, 128, 192, 192],
             "cross_attention_dim": 192, "layers_per_block": 2, "norm_num_groups": 32, "sample_size": 32,
             "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
             "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}
            """;

    /** What a killed write may leave beside the folder: its staging folder, or the old one moved aside. */
    private static final Pattern TEMPORARY = Pattern.compile("\\.model\\.latte-(tmp|old)\\.\\d+\\.\\d+");

    @TempDir
    Path tmp;

    private record Point(String name, Predicate<State> when) {
    }

    /** What the parent sees of the child's write while polling: new bytes on disk, and whether the folder changed. */
    private record State(long stagedBytes, boolean swapped) {
    }

    @Test
    void killedWritesLeaveTheOldModelOrTheNewOneWhole() throws Exception {
        Path cfg = Files.writeString(Files.createDirectories(tmp.resolve("cfg")).resolve("config.json"), CONFIG);
        Path refs = Files.createDirectories(tmp.resolve("refs"));
        Path oldRef = refs.resolve("old"), newRef = refs.resolve("new");
        assertEquals(0, export(cfg, oldRef, 1).waitFor());
        assertEquals(0, export(cfg, newRef, 2).waitFor());
        long size = Files.size(newRef.resolve(WEIGHTS));
        assertTrue(size > 50_000_000, "a large write: " + size);

        List<Point> points = List.of(
                new Point("writing begun", s -> s.stagedBytes() > 0),
                new Point("25% written", s -> s.stagedBytes() >= size / 4),
                new Point("50% written", s -> s.stagedBytes() >= size / 2),
                new Point("90% written", s -> s.stagedBytes() >= size * 9 / 10),
                new Point("all written, syncing or swapping", s -> s.stagedBytes() >= size),
                new Point("swapped, old being deleted", State::swapped));
        Path work = Files.createDirectories(tmp.resolve("work"));
        Path out = work.resolve("model");
        int killedMidWrite = 0;
        List<String> outcomes = new ArrayList<>();
        for (Point p : points) {
            deleteTree(out);
            copyTree(oldRef, out);
            Object oldKey = key(out.resolve(WEIGHTS));
            Set<Object> oldKeys = new HashSet<>(Arrays.asList(oldKey, key(out.resolve("config.json"))));
            Process child = export(cfg, out, 2);
            boolean killed = false;
            while (child.isAlive()) {
                if (p.when().test(state(work, out, oldKeys, oldKey))) {
                    child.destroyForcibly(); // SIGKILL: no shutdown hook, no finally
                    killed = true;
                    break;
                }
                Thread.onSpinWait();
            }
            child.waitFor();
            killedMidWrite += killed ? 1 : 0;

            // the folder: exactly config.json and one weights file, byte for byte the old or the new
            assertEquals(Set.of("config.json", WEIGHTS), OutputSafetyTest.names(out), p.name());
            boolean isOld = Files.mismatch(out.resolve(WEIGHTS), oldRef.resolve(WEIGHTS)) == -1;
            boolean isNew = Files.mismatch(out.resolve(WEIGHTS), newRef.resolve(WEIGHTS)) == -1;
            assertTrue(isOld || isNew, p.name() + ": weights are neither the old nor the new model");
            try (UNetModel m = UNetModel.load(out)) {
                assertEquals(4, m.config().levels());
            }
            // beside it: only temporaries of the killed write, which the next write removes
            for (String n : OutputSafetyTest.names(work)) {
                assertTrue(n.equals("model") || TEMPORARY.matcher(n).matches(), p.name() + ": left '" + n + "'");
            }
            assertEquals(0, export(cfg, out, 2).waitFor());
            assertEquals(Set.of("model"), OutputSafetyTest.names(work), p.name() + ": the next write left temporaries");
            assertEquals(-1, Files.mismatch(out.resolve(WEIGHTS), newRef.resolve(WEIGHTS)));
            String outcome = (killed ? "killed" : "finished before the point") + ", left the " + (isOld ? "old" : "new")
                    + " model";
            outcomes.add(p.name() + ": " + outcome);
            System.out.println("KILL-TEST " + p.name() + ": " + outcome);
        }
        assertTrue(killedMidWrite >= 4, "too few kills landed mid-write: " + outcomes);
    }

    /**
     * New bytes anywhere under {@code work} (every file but the old model's, wherever the writer
     * puts its temporaries), and whether the folder's weights are another file than the old ones.
     */
    private State state(Path work, Path out, Set<Object> oldKeys, Object oldWeights) {
        long written = 0;
        try (Stream<Path> s = Files.walk(work)) {
            for (Path p : s.toList()) {
                Object k = key(p);
                if (k != null && Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS) && !oldKeys.contains(k)) {
                    written += Files.size(p);
                }
            }
        } catch (IOException | UncheckedIOException e) {
            // a file renamed or deleted while walked: the next poll sees the new state
        }
        Object now = key(out.resolve(WEIGHTS));
        return new State(written, now != null && !now.equals(oldWeights));
    }

    private static Object key(Path p) {
        try {
            return Files.readAttributes(p, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
        } catch (IOException e) {
            return null;
        }
    }

    private static Process export(Path cfg, Path out, long seed) throws IOException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        return new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-Xmx2g", "-cp",
                System.getProperty("java.class.path"), "dev.latte.cli.Main", "export-random", "--config", cfg.toString(),
                "--out", out.toString(), "--seed", Long.toString(seed), "--dtype", "fp32")
                .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectError(ProcessBuilder.Redirect.INHERIT)
                .start();
    }

    private static void copyTree(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        try (Stream<Path> s = Files.list(from)) {
            for (Path f : s.toList()) {
                Files.copy(f, to.resolve(f.getFileName()));
            }
        }
    }

    private static void deleteTree(Path p) throws IOException {
        if (Files.exists(p)) {
            try (Stream<Path> s = Files.walk(p)) {
                s.sorted((a, b) -> b.getNameCount() - a.getNameCount()).map(Path::toFile).forEach(File::delete);
            }
        }
    }
}
