package dev.latte.weights;

import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Writes outputs the way a database does: into a temporary in the destination folder, synced,
 * then renamed over the target in one step, so a crash or a kill at any moment leaves the old
 * output or the new one, whole. A model folder is replaced whole: the new folder is written and
 * synced beside the old one, then the two are exchanged atomically ({@code renameat2}
 * {@code RENAME_EXCHANGE} on Linux; elsewhere two renames, with the old folder restored on the
 * next write should a kill fall between them).
 *
 * <p>Temporaries are named {@code .NAME.latte-tmp.PID.N} (and {@code .NAME.latte-old.PID.N} for a
 * folder moved aside), so the next write into the same folder recognises those of processes that
 * are gone and removes them (or, for a folder moved aside whose target is missing, puts it back).
 * The names Latte's earlier writers used ({@code .NAME.PID.NANOS.tmp}, {@code .NAME.PID.tmp}) are
 * recognised too.
 */
public final class AtomicFiles {
    /** Writes a file's bytes to an open channel. */
    public interface ChannelBody {
        void write(FileChannel ch) throws IOException;
    }

    /** Writes a file's bytes to a stream (for writers such as ImageIO that want one). */
    public interface StreamBody {
        void write(OutputStream out) throws IOException;
    }

    /** Fills a new, empty folder. */
    public interface FolderBody {
        void fill(Path folder) throws IOException;
    }

    private static final Pattern TEMP = Pattern.compile("\\.(.+)\\.latte-(tmp|old)\\.(\\d+)\\.\\d+");
    private static final Pattern LEGACY = Pattern.compile("\\..+\\.(?:safetensors|png|json)\\.(\\d+)(\\.\\d+)?\\.tmp");
    private static final AtomicLong SEQ = new AtomicLong();

    private AtomicFiles() {
    }

    /** Replaces (or creates) {@code target} with what {@code body} writes; the parent folder is made if missing. */
    public static void write(Path target, ChannelBody body) {
        Path t = target.toAbsolutePath();
        Path tmp = null;
        try {
            Files.createDirectories(t.getParent());
            removeStale(t.getParent());
            tmp = temp(t, "tmp");
            // not Files.createTempFile: that makes the file owner-only, and the rename would keep it so
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                body.write(ch);
                ch.force(true);
            }
            Files.move(tmp, t, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            tmp = null;
            syncFolder(t.getParent());
        } catch (IOException e) {
            throw cannotWrite(t, e);
        } finally {
            if (tmp != null) {
                deleteQuietly(tmp);
            }
        }
    }

    public static void writeStream(Path target, StreamBody body) {
        write(target, (ChannelBody) ch -> {
            OutputStream out = Channels.newOutputStream(ch);
            body.write(out);
            out.flush();
        });
    }

    public static void writeString(Path target, String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        writeStream(target, out -> out.write(bytes));
    }

    /**
     * Replaces the folder {@code target} (or creates it) with one that {@code body} fills: the
     * new folder is complete and synced before it takes {@code target}'s place, and the old one
     * is deleted after. Whatever {@code target} held is gone afterwards, so callers check first
     * that it holds nothing but what they replace ({@link OutputGuard#checkModelFolder}).
     */
    public static void replaceFolder(Path target, FolderBody body) {
        Path t = target.toAbsolutePath();
        Path staging = null;
        try {
            Files.createDirectories(t.getParent());
            removeStale(t.getParent());
            if (Files.exists(t, LinkOption.NOFOLLOW_LINKS) && !Files.isDirectory(t, LinkOption.NOFOLLOW_LINKS)) {
                throw new WeightsException(Text.quote(t.toString()) + ": exists and is not a folder");
            }
            staging = temp(t, "tmp");
            Files.createDirectory(staging);
            removeStaleIn(t);
            body.fill(staging);
            syncTree(staging);
            if (Files.isDirectory(t, LinkOption.NOFOLLOW_LINKS)) {
                if (!exchange(staging, t)) {
                    Path old = temp(t, "old");
                    Files.move(t, old, StandardCopyOption.ATOMIC_MOVE);
                    // a kill here leaves no target: the next write's removeStale moves `old` back
                    Files.move(staging, t, StandardCopyOption.ATOMIC_MOVE);
                    staging = old;
                }
                syncFolder(t.getParent());
                deleteTree(staging); // now the old folder
            } else {
                Files.move(staging, t, StandardCopyOption.ATOMIC_MOVE);
                syncFolder(t.getParent());
            }
            staging = null;
        } catch (IOException e) {
            throw cannotWrite(t, e);
        } finally {
            if (staging != null) {
                try {
                    deleteTree(staging);
                } catch (IOException ignored) {
                    // the write's own failure is the one to report; the next write removes it
                }
            }
        }
    }

    /**
     * Removes the temporaries that processes no longer alive left in {@code dir}, and puts back a
     * folder moved aside whose target is missing. Returns what it removed or restored.
     */
    public static List<Path> removeStale(Path dir) throws IOException {
        List<Path> done = new ArrayList<>();
        if (!Files.isDirectory(dir)) {
            return done;
        }
        List<Path> entries = new ArrayList<>();
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir, ".*")) {
            s.forEach(entries::add);
        }
        for (Path p : entries) {
            String name = p.getFileName().toString();
            Matcher m = TEMP.matcher(name);
            long pid;
            if (m.matches()) {
                pid = Long.parseLong(m.group(3));
            } else {
                Matcher legacy = LEGACY.matcher(name);
                if (!legacy.matches()) {
                    continue;
                }
                pid = Long.parseLong(legacy.group(1));
            }
            if (pid == ProcessHandle.current().pid() || ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
                continue; // a write in progress
            }
            if (m.matches() && m.group(2).equals("old") && !Files.exists(dir.resolve(m.group(1)),
                    LinkOption.NOFOLLOW_LINKS)) {
                Files.move(p, dir.resolve(m.group(1)), StandardCopyOption.ATOMIC_MOVE);
            } else {
                deleteTree(p);
            }
            done.add(p);
        }
        return done;
    }

    /** Whether {@code name} is one of the temporaries this class (or Latte's earlier writers) makes. */
    public static boolean isTemporary(String name) {
        return TEMP.matcher(name).matches() || LEGACY.matcher(name).matches();
    }

    private static void removeStaleIn(Path dir) throws IOException {
        if (Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) {
            removeStale(dir);
        }
    }

    private static Path temp(Path target, String kind) {
        return target.resolveSibling("." + target.getFileName() + ".latte-" + kind + "."
                + ProcessHandle.current().pid() + "." + SEQ.incrementAndGet());
    }

    private static WeightsException cannotWrite(Path t, IOException e) {
        return new WeightsException(Text.quote(String.valueOf(t.getFileName())) + ": cannot write "
                + Text.quote(t.toString()) + ": " + Json.describe(e), e);
    }

    private static void syncTree(Path root) throws IOException {
        try (Stream<Path> s = Files.walk(root)) {
            for (Path p : s.toList()) {
                if (Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) {
                    try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
                        ch.force(true);
                    }
                }
            }
        }
        try (Stream<Path> s = Files.walk(root)) {
            for (Path p : s.filter(Files::isDirectory).toList()) {
                syncFolder(p);
            }
        }
    }

    /** A rename is durable once its folder is synced; where folders cannot be opened, nothing more can be done. */
    private static void syncFolder(Path dir) {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException | UnsupportedOperationException ignored) {
            // not every file system (or OS) lets a folder be opened for fsync
        }
    }

    static void deleteTree(Path root) throws IOException {
        if (!Files.exists(root, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        Files.walkFileTree(root, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                Files.deleteIfExists(file);
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path dir, IOException e) throws IOException {
                if (e != null && !(e instanceof NoSuchFileException)) {
                    throw e;
                }
                Files.deleteIfExists(dir);
                return FileVisitResult.CONTINUE;
            }
        });
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // the original failure is the one worth reporting; removeStale takes it next time
        }
    }

    // ---- renameat2(RENAME_EXCHANGE): two folders trade places in one step ----------------------

    private static final int AT_FDCWD = -100;
    private static final int RENAME_EXCHANGE = 2;
    private static final Optional<MethodHandle> RENAMEAT2 = renameat2();

    private static Optional<MethodHandle> renameat2() {
        if (!System.getProperty("os.name", "").toLowerCase().contains("linux")) {
            return Optional.empty();
        }
        try {
            Linker linker = Linker.nativeLinker();
            return linker.defaultLookup().find("renameat2").map(f -> linker.downcallHandle(f,
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS,
                            ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT)));
        } catch (RuntimeException | LinkageError e) {
            return Optional.empty(); // no native access: fall back to two renames
        }
    }

    /** Swaps two existing paths atomically; false where the OS or file system cannot (then nothing changed). */
    private static boolean exchange(Path a, Path b) {
        if (RENAMEAT2.isEmpty()) {
            return false;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pa = arena.allocateFrom(a.toString());
            MemorySegment pb = arena.allocateFrom(b.toString());
            return (int) RENAMEAT2.get().invokeExact(AT_FDCWD, pa, AT_FDCWD, pb, RENAME_EXCHANGE) == 0;
        } catch (Throwable e) {
            return false;
        }
    }
}
