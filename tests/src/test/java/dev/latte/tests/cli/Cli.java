package dev.latte.tests.cli;

import dev.latte.cli.Main;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The command line run in-process, as the CLI tests drive it, and what they check of bad input. */
public final class Cli {
    private Cli() {
    }

    /** A run's exit code, stdout and stderr. */
    public record Result(int code, String out, String err) {
    }

    /** {@code latte args...}, in this JVM, its output captured. */
    public static Result latte(String... args) {
        var out = new ByteArrayOutputStream();
        var err = new ByteArrayOutputStream();
        int code = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    /**
     * Exit code 2; stderr holds progress lines and one error line, all starting "latte: ", no
     * stack trace; the error line contains every fragment.
     */
    public static void assertBadInput(Result r, String... fragments) {
        assertEquals(2, r.code(), r.err());
        List<String> lines = r.err().strip().lines().toList();
        assertTrue(lines.stream().allMatch(l -> l.startsWith("latte: ")), r.err());
        assertFalse(r.err().contains("Exception") || r.err().contains("\tat "), r.err());
        String err = lines.getLast();
        for (String f : fragments) {
            assertTrue(err.contains(f), "'" + f + "' not in: " + err);
        }
    }
}
