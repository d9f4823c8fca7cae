package dev.latte.tests.cli;

import dev.latte.cli.Main;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

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
     * {@code latte args...} in a child JVM that sees no CUDA device, whatever this one sees:
     * {@code CUDA_VISIBLE_DEVICES} empty (a real driver's cuInit then finds none) and
     * {@code CUEMU_NO_DEVICE} (the emulated device's). So "no device" paths run on the emulator too.
     */
    public static Result latteWithoutDevice(String... args) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                Main.class.getName()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().put("CUDA_VISIBLE_DEVICES", "");
        pb.environment().put("CUEMU_NO_DEVICE", "1");
        try {
            Process p = pb.start();
            CompletableFuture<byte[]> err = CompletableFuture.supplyAsync(() -> readAll(p.getErrorStream()));
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            int code = p.waitFor();
            return new Result(code, out, new String(err.join(), StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private static byte[] readAll(InputStream in) {
        try {
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
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
