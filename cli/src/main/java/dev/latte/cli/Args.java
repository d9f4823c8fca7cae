package dev.latte.cli;

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
            throw new UsageException(command + ": --" + key + " needs an integer, got '" + v + "'");
        }
    }

    double getDouble(String key, double fallback) {
        String v = values.get(key);
        try {
            return v == null ? fallback : Double.parseDouble(v);
        } catch (NumberFormatException e) {
            throw new UsageException(command + ": --" + key + " needs a number, got '" + v + "'");
        }
    }

    /** Bad command-line use: printed as one line, exit code 2. */
    static final class UsageException extends RuntimeException {
        UsageException(String message) {
            super(message);
        }
    }
}
