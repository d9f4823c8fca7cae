package dev.latte.weights;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * A command's inputs, so that no output can be, or replace, one of them. Paths are compared by
 * real path (symbolic links and {@code ..} resolved) and by file identity (device and inode, so a
 * hard link is caught too). Build one per command with every input it reads, then check each
 * output before any work:
 *
 * <pre>
 * OutputGuard guard = new OutputGuard().input(modelDir).input(contextFile);
 * guard.checkFile(out, "--out");          // a file output, written with AtomicFiles.write
 * guard.checkModelFolder(outDir, "--out"); // a folder output, replaced with AtomicFiles.replaceFolder
 * </pre>
 *
 * Refusals are {@link OutputException}s: one line naming the option, the output and the input.
 */
public final class OutputGuard {
    /** What a model folder may hold for a write to replace it whole. */
    public static final Set<String> MODEL_FILES = Set.of("config.json", "diffusion_pytorch_model.safetensors",
            "diffusion_pytorch_model.fp16.safetensors");

    private record Input(Path given, Path real, Object key, boolean folder) {
    }

    private final List<Input> inputs = new ArrayList<>();

    /** An input file or folder (a folder's files are inputs too); a null or missing path adds nothing. */
    public OutputGuard input(Path p) {
        if (p == null || !Files.exists(p)) {
            return this;
        }
        try {
            Path real = p.toRealPath();
            boolean folder = Files.isDirectory(real);
            inputs.add(new Input(p, real, key(real), folder));
            if (folder) {
                try (DirectoryStream<Path> s = Files.newDirectoryStream(real)) {
                    for (Path f : s) {
                        if (Files.isRegularFile(f)) {
                            Path r = f.toRealPath();
                            inputs.add(new Input(f, r, key(r), false));
                        }
                    }
                }
            }
        } catch (IOException e) {
            // an input that cannot be resolved cannot be read either; its command reports that
        }
        return this;
    }

    /**
     * Refuses a file output that is an input, or that is an existing folder. {@code option} names
     * where it came from (e.g. {@code --out}) in the message.
     */
    public void checkFile(Path out, String option) {
        Path real = realOrPlanned(out);
        if (Files.isDirectory(real)) {
            throw refuse(option, out, "is a folder; give a file name");
        }
        Object key = key(real);
        for (Input in : inputs) {
            if (!in.folder() && (in.real().equals(real) || (key != null && key.equals(in.key())))) {
                throw refuse(option, out, "would replace the input " + Text.quote(in.given().toString()));
            }
        }
    }

    /**
     * Refuses a folder output that is an input folder, that holds an input (replacing it would
     * delete it), that is a file, or that exists holding anything but a model's files (it would be
     * replaced whole, and files it holds that no model write makes are the user's).
     */
    public void checkModelFolder(Path out, String option) {
        Path real = realOrPlanned(out);
        if (Files.exists(real) && !Files.isDirectory(real)) {
            throw refuse(option, out, "exists and is not a folder");
        }
        Object key = key(real);
        for (Input in : inputs) {
            if (in.real().equals(real) || (in.folder() && key != null && key.equals(in.key()))) {
                throw refuse(option, out, "is the input " + Text.quote(in.given().toString())
                        + "; write the new model to another folder");
            }
            if (in.real().startsWith(real)) {
                throw refuse(option, out, "holds the input " + Text.quote(in.given().toString())
                        + ", which replacing the folder would delete");
            }
        }
        if (Files.isDirectory(real)) {
            List<String> foreign = new ArrayList<>();
            try (DirectoryStream<Path> s = Files.newDirectoryStream(real)) {
                for (Path f : s) {
                    String name = f.getFileName().toString();
                    if (!MODEL_FILES.contains(name) && !AtomicFiles.isTemporary(name)) {
                        foreign.add(name);
                    }
                }
            } catch (IOException e) {
                throw refuse(option, out, "cannot be read: " + Json.describe(e));
            }
            if (!foreign.isEmpty()) {
                throw refuse(option, out, "holds " + foreign.size() + " file(s) that are not a model's, first '"
                        + Text.quote(foreign.getFirst()) + "'; the folder would be replaced whole, so give a new or"
                        + " empty folder (or a model folder)");
            }
        }
    }

    /** The real path of {@code p}, or of its nearest existing ancestor with the rest appended. */
    private static Path realOrPlanned(Path p) {
        Path abs = p.toAbsolutePath().normalize();
        Path existing = abs;
        Path rest = null;
        while (existing != null && !Files.exists(existing, LinkOption.NOFOLLOW_LINKS)) {
            Path name = existing.getFileName();
            rest = rest == null ? name : name.resolve(rest);
            existing = existing.getParent();
        }
        if (existing == null) {
            return abs;
        }
        try {
            Path real = existing.toRealPath();
            return rest == null ? real : real.resolve(rest);
        } catch (IOException e) {
            return abs; // a dangling link: nothing to compare against but the path itself
        }
    }

    private static Object key(Path real) {
        try {
            return Files.readAttributes(real, BasicFileAttributes.class).fileKey();
        } catch (IOException e) {
            return null;
        }
    }

    private static OutputException refuse(String option, Path out, String why) {
        return new OutputException(Objects.requireNonNull(option) + " " + Text.quote(out.toString()) + ": " + why);
    }

    /** An output that would destroy an input or a user's file: refused before any work (exit 2). */
    public static final class OutputException extends WeightsException {
        public OutputException(String message) {
            super(message);
        }
    }
}
