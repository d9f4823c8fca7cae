package dev.latte.tests.safety;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * bin/latte's rebuild rule and lock, on a stand-in tree with a fake {@code mvn} (records each
 * build, takes a second, writes the jar only the first time, as Maven leaves an unchanged jar
 * alone) and a fake {@code java}. Before: after {@code mvn verify} every call rebuilt (test output
 * under kernels/target was newer than the jar, and the rebuild did not touch the jar), and two
 * calls could run two Mavens on one tree.
 */
@Timeout(120)
class LatteScriptTest {
    @TempDir
    Path tmp;
    Path root;
    Path log;

    @BeforeEach
    void tree() throws IOException {
        root = tmp.resolve("latte");
        Path bin = Files.createDirectories(root.resolve("bin"));
        Path repo = Path.of("..").toAbsolutePath().normalize();
        Files.copy(repo.resolve("bin/latte"), bin.resolve("latte"));
        Files.copy(repo.resolve("bin/jdk-env"), bin.resolve("jdk-env"));
        Files.writeString(root.resolve("pom.xml"), "<project/>");
        for (String m : new String[] {"cli", "kernels", "weights-loader"}) {
            Files.writeString(Files.createDirectories(root.resolve(m)).resolve("pom.xml"), "<project/>");
        }
        Files.writeString(Files.createDirectories(root.resolve("cli/src/main/java")).resolve("Main.java"), "class Main {}");
        Files.writeString(Files.createDirectories(root.resolve("kernels/src/main/resources")).resolve("conv.cu"), "//");
        log = root.resolve("mvn.log");
        Path fake = Files.createDirectories(tmp.resolve("fake/bin"));
        script(fake.resolve("mvn"), """
                #!/usr/bin/env bash
                echo "start $$" >> "%s"
                sleep 1
                mkdir -p cli/target
                [[ -f cli/target/latte-cli.jar ]] || echo jar > cli/target/latte-cli.jar
                echo "end $$" >> "%s"
                """.formatted(log, log));
        script(fake.resolve("java"), """
                #!/usr/bin/env bash
                if [[ ${1:-} == -version ]]; then echo 'openjdk version "25.0.1" 2025-10-21' >&2; else echo "ran $*"; fi
                """);
    }

    private static void script(Path p, String text) throws IOException {
        Files.writeString(p, text);
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwxr-xr-x"));
    }

    private Process latte() throws IOException {
        ProcessBuilder pb = new ProcessBuilder("bash", root.resolve("bin/latte").toString(), "info");
        pb.environment().put("JAVA_HOME", tmp.resolve("fake").toString());
        pb.environment().put("PATH", tmp.resolve("fake/bin") + ":" + System.getenv("PATH"));
        pb.redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD);
        return pb.start();
    }

    private void run() throws Exception {
        Process p = latte();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue());
    }

    private long builds() throws IOException {
        return Files.exists(log) ? Files.readAllLines(log).stream().filter(l -> l.startsWith("start")).count() : 0;
    }

    private static void touchLater(Path p) throws IOException {
        Files.setLastModifiedTime(p, FileTime.from(Instant.now())); // after the last build began
    }

    @Test
    void rebuildsOnlyWhenASourceChanged() throws Exception {
        run();
        assertEquals(1, builds(), "first use builds");
        run();
        assertEquals(1, builds(), "nothing changed");
        // what `mvn verify` leaves: test output newer than the jar; the jar itself not rewritten
        touchLater(Files.writeString(Files.createDirectories(root.resolve("kernels/target/test-classes")).resolve("x"),
                "x"));
        run();
        run();
        assertEquals(1, builds(), "build output is not a source");
        touchLater(root.resolve("kernels/src/main/resources/conv.cu"));
        run();
        assertEquals(2, builds(), "a kernel changed");
        touchLater(root.resolve("cli/src/main/java/Main.java"));
        run();
        assertEquals(3, builds(), "a source changed");
        run();
        run();
        assertEquals(3, builds(), "the stale jar's time does not matter, the stamp does");
    }

    @Test
    void concurrentCallsRunOneMaven() throws Exception {
        List<Process> calls = List.of(latte(), latte(), latte());
        for (Process p : calls) {
            assertTrue(p.waitFor(60, TimeUnit.SECONDS));
            assertEquals(0, p.exitValue());
        }
        List<String> lines = Files.readAllLines(log);
        assertEquals(2, lines.size(), "one build for three calls: " + lines);
        assertTrue(lines.get(0).startsWith("start") && lines.get(1).startsWith("end"), lines.toString());
    }
}
