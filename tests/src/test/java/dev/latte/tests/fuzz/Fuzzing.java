package dev.latte.tests.fuzz;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Shared by the fuzz targets: a scratch file per target, and what a rejection must look like. */
final class Fuzzing {
    private Fuzzing() {
    }

    /** A file in a fresh temporary folder, removed when the JVM exits. */
    static Path scratch(String name) {
        try {
            Path dir = Files.createTempDirectory("latte-fuzz");
            dir.toFile().deleteOnExit();
            Path f = dir.resolve(name);
            f.toFile().deleteOnExit();
            return f;
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** One printable line (no control characters) that starts with {@code source}, when given. */
    static void assertOneLine(Exception e, String source) {
        String m = e.getMessage();
        assertTrue(m != null && !m.isEmpty(), () -> "no message: " + e);
        for (int i = 0; i < m.length(); i++) {
            char c = m.charAt(i);
            boolean control = c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == '\u2028' || c == '\u2029';
            int at = i;
            assertTrue(!control, () -> "control character U+" + Integer.toHexString(c) + " at " + at + " in: " + m);
        }
        assertTrue(source == null || m.startsWith(source), () -> "does not start with '" + source + "': " + m);
    }
}
