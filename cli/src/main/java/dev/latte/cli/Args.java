package dev.latte.cli;

import dev.latte.weights.OutputGuard;
import dev.latte.weights.Text;

import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/** {@code --key value} options of one command, checked against the options it knows. */
final class Args {
    private final String command;
    private final Map<String, String> values = new HashMap<>();

    Args(String command, List<String> args, Set<String> known) {
        this(command, args, known, Set.of());
    }

    /** {@code flags} are options that take no value ({@code --trace}); {@link #flag} tells whether one was given. */
    Args(String command, List<String> args, Set<String> known, Set<String> flags) {
        this.command = command;
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (a.startsWith("--") && flags.contains(a.substring(2))) {
                values.put(a.substring(2), "true");
                continue;
            }
            if (!a.startsWith("--") || !known.contains(a.substring(2))) {
                var all = new TreeSet<>(known);
                all.addAll(flags);
                throw new UsageException(command + ": unknown option '" + a + "' (known: --"
                        + String.join(", --", all) + ")");
            }
            if (i + 1 >= args.size()) {
                throw new UsageException(command + ": option " + a + " needs a value");
            }
            values.put(a.substring(2), args.get(++i));
        }
    }

    String required(String key) {
        String v = values.get(key);
        if (v == null) {
            throw new UsageException(command + ": --" + key + " is required");
        }
        return v;
    }

    boolean flag(String key) {
        return values.containsKey(key);
    }

    String get(String key, String fallback) {
        return values.getOrDefault(key, fallback);
    }

    int getInt(String key, int fallback) {
        String v = values.get(key);
        try {
            return v == null ? fallback : Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new UsageException(command + ": --" + key + " needs an integer, got '" + Text.quote(v) + "'");
        }
    }

    /** An integer option within [lo, hi]. */
    int getInt(String key, int fallback, int lo, int hi) {
        int v = getInt(key, fallback);
        if (v < lo || v > hi) {
            throw new UsageException(command + ": --" + key + " must be in " + lo + ".." + hi + ", got " + v);
        }
        return v;
    }

    /** No option means anything by NaN or infinity (NaN guidance would quietly turn guidance off). */
    double getDouble(String key, double fallback) {
        String v = values.get(key);
        double d;
        try {
            d = v == null ? fallback : Double.parseDouble(v);
        } catch (NumberFormatException e) {
            throw new UsageException(command + ": --" + key + " needs a number, got '" + Text.quote(v) + "'");
        }
        if (v != null && !Double.isFinite(d)) {
            throw new UsageException(command + ": --" + key + " needs a finite number, got '" + Text.quote(v) + "'");
        }
        return d;
    }

    /** Largest image side in pixels (--height/--width of plan and bench --config): SD at 8192² is far past any use. */
    static final int MAX_IMAGE_SIDE = 8192;
    /** Largest latent side (image / 8). */
    static final int MAX_LATENT_SIDE = MAX_IMAGE_SIDE / 8;
    static final int MAX_BATCH = 64;
    static final int MAX_CONTEXT = 4096;

    /** An image side in pixels: a multiple of 8 (the VAE's factor) in 8..{@link #MAX_IMAGE_SIDE}. */
    int imageSide(String key, int fallback) {
        int v = getInt(key, fallback, 8, MAX_IMAGE_SIDE);
        if (v % 8 != 0) {
            throw new UsageException(command + ": --" + key + " must be a multiple of 8 (image pixels), got " + v);
        }
        return v;
    }

    /** A latent side in 1..{@link #MAX_LATENT_SIDE}. */
    int latentSide(String key, int fallback) {
        return getInt(key, fallback, 1, MAX_LATENT_SIDE);
    }

    int batch() {
        return getInt("batch", 2, 1, MAX_BATCH);
    }

    int context() {
        return getInt("context", 77, 1, MAX_CONTEXT);
    }

    /** --threads in 1..4 × the cores: more threads than that only add hand-offs (32767 made validate 100× slower). */
    int threads() {
        int cores = Runtime.getRuntime().availableProcessors();
        return getInt("threads", cores, 1, 4 * cores);
    }

    /**
     * The command's inputs: every option value, but the outputs named, that is an existing file
     * or folder. An output is checked against them before any work, so that no command writes
     * over what it reads.
     */
    OutputGuard inputs(String... outputs) {
        Set<String> skip = Set.of(outputs);
        OutputGuard g = new OutputGuard();
        values.forEach((k, v) -> {
            if (!skip.contains(k) && !v.isEmpty()) {
                try {
                    g.input(Path.of(v));
                } catch (InvalidPathException e) {
                    // not a path, so not an input file
                }
            }
        });
        return g;
    }

    /** The file named by option {@code key} (null if absent), refused if it is or would replace an input. */
    Path outputFile(String key) {
        String v = values.get(key);
        if (v == null) {
            return null;
        }
        Path p = path(key, v);
        inputs(key).checkFile(p, command + ": --" + key);
        return p;
    }

    /** The required model folder {@code key}, refused if it is, holds or would delete an input or a user's file. */
    Path outputModelFolder(String key) {
        Path p = path(key, required(key));
        inputs(key).checkModelFolder(p, command + ": --" + key);
        return p;
    }

    Path path(String key, String v) {
        try {
            return Path.of(v);
        } catch (InvalidPathException e) {
            throw new UsageException(command + ": --" + key + " is not a usable path: " + e.getReason());
        }
    }

    /** Bad command-line use: printed as one line, exit code 2. */
    static final class UsageException extends RuntimeException {
        UsageException(String message) {
            super(message);
        }
    }
}
