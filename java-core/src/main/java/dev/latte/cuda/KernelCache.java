package dev.latte.cuda;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Compiled kernels on disk, so a warm start compiles nothing. The key is SHA-256 over the source
 * (and in-memory headers), the file name, the effective NVRTC options (include directory
 * included), the architecture and NVRTC's identity (version, library path, size and modification
 * time: {@link Nvrtc#identity()}); the file is {@code <name>-<arch>-<key>.cubin}
 * ({@code .ptx} for {@code compute_XX}). Files are written to a temporary name and renamed, so a
 * reader never sees half a file; concurrent compiles of one key just race to the same bytes. A
 * directory that cannot be written costs a recompile, never a failure, and so does an image the
 * driver refuses to load ({@link #module}). Thread-safe.
 * <p>
 * Default directory: {@code $LATTE_KERNEL_CACHE}, else {@code $XDG_CACHE_HOME/latte/kernels},
 * else {@code ~/.cache/latte/kernels}.
 */
public final class KernelCache {
    private static final System.Logger LOG = System.getLogger(KernelCache.class.getName());
    private static final int FORMAT = 2;   // bump when the key's make-up changes
    private static KernelCache defaultCache;

    private final Path dir;
    private final AtomicLong compilations = new AtomicLong();
    private final AtomicLong hits = new AtomicLong();
    private final AtomicLong refused = new AtomicLong();

    public KernelCache(Path dir) {
        this.dir = dir;
    }

    public static synchronized KernelCache defaultCache() {
        if (defaultCache == null) {
            defaultCache = new KernelCache(defaultDirectory());
        }
        return defaultCache;
    }

    static Path defaultDirectory() {
        String env = System.getenv("LATTE_KERNEL_CACHE");
        if (env != null && !env.isBlank()) {
            return Path.of(env);
        }
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
        return base.resolve("latte").resolve("kernels");
    }

    public Path directory() {
        return dir;
    }

    /** The image for {@code source} compiled for {@code arch}: from disk if present, else by NVRTC. */
    public byte[] cubin(String name, String source, String arch, List<String> options) {
        return cubin(name, source, arch, options, Map.of());
    }

    /** As above, with in-memory headers (include name → contents), which are part of the key. */
    public byte[] cubin(String name, String source, String arch, List<String> options, Map<String, String> headers) {
        Path file = file(name, source, arch, options, headers);
        byte[] cached = read(file, arch);
        if (cached != null) {
            hits.incrementAndGet();
            return cached;
        }
        return compile(file, name, source, arch, options, headers);
    }

    /**
     * The loaded module for {@code source} on {@code ctx}'s architecture. A cached image the driver
     * refuses (made for another driver, or damaged in a way the ELF check cannot see) is compiled
     * again and replaced; only a freshly compiled image that fails to load is an error.
     */
    public CudaModule module(CudaContext ctx, String name, String source, List<String> options,
                             Map<String, String> headers) {
        return module(ctx, name, source, ctx.arch(), options, headers);
    }

    /** As above, compiled for {@code arch} (one the device runs, e.g. an older {@code sm_XX}). */
    public CudaModule module(CudaContext ctx, String name, String source, String arch, List<String> options,
                             Map<String, String> headers) {
        Path file = file(name, source, arch, options, headers);
        byte[] cached = read(file, arch);
        if (cached != null) {
            try {
                CudaModule m = ctx.loadModule(cached);
                hits.incrementAndGet();
                return m;
            } catch (CudaException e) {
                refused.incrementAndGet();
                LOG.log(System.Logger.Level.WARNING, "kernel cache entry " + file + " refused by the driver ("
                        + e.getMessage() + "); compiling it again");
            }
        }
        return ctx.loadModule(compile(file, name, source, arch, options, headers));
    }

    private Path file(String name, String source, String arch, List<String> options, Map<String, String> headers) {
        List<String> effective = Nvrtc.effectiveOptions(arch, options);
        String key = key(name, source, arch, effective, headers, Nvrtc.identity());
        return dir.resolve(fileName(name) + "-" + arch + "-" + key + (arch.startsWith("sm_") ? ".cubin" : ".ptx"));
    }

    private byte[] compile(Path file, String name, String source, String arch, List<String> options,
                           Map<String, String> headers) {
        compilations.incrementAndGet();
        byte[] image = Nvrtc.compile(name, source, arch, options, headers).image();
        write(file, image);
        return image;
    }

    /** How many cached images the driver refused (each then compiled again). */
    public long refused() {
        return refused.get();
    }

    /** How many compiles this instance ran (a warm start runs none). */
    public long compilations() {
        return compilations.get();
    }

    /** How many images this instance read from disk. */
    public long hits() {
        return hits.get();
    }

    static String key(String name, String source, String arch, List<String> effectiveOptions,
                      Map<String, String> headers, String nvrtcIdentity) {
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        field(sha, "latte-kernel-cache-" + FORMAT);
        field(sha, nvrtcIdentity);
        field(sha, arch);
        field(sha, name);
        sha.update(intBytes(effectiveOptions.size()));
        effectiveOptions.forEach(o -> field(sha, o));
        TreeMap<String, String> sorted = new TreeMap<>(headers);
        sha.update(intBytes(sorted.size()));
        sorted.forEach((k, v) -> {
            field(sha, k);
            field(sha, v);
        });
        field(sha, source);
        return HexFormat.of().formatHex(sha.digest());
    }

    /** Length-prefixed, so ("ab","c") and ("a","bc") differ. */
    private static void field(MessageDigest sha, String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        sha.update(intBytes(b.length));
        sha.update(b);
    }

    private static byte[] intBytes(int v) {
        return new byte[] {(byte) (v >>> 24), (byte) (v >>> 16), (byte) (v >>> 8), (byte) v};
    }

    private static String fileName(String name) {
        return name.replaceAll("[^A-Za-z0-9._-]", "_");
    }

    /** The cached image, or null if absent or unusable (empty, or a CUBIN without ELF magic). */
    private static byte[] read(Path file, String arch) {
        try {
            byte[] b = Files.readAllBytes(file);
            boolean ok = arch.startsWith("sm_") ? isElf(b) : b.length > 0;
            if (!ok) {
                LOG.log(System.Logger.Level.WARNING, "ignoring corrupt kernel cache entry " + file);
            }
            return ok ? b : null;
        } catch (IOException e) {
            return null;
        }
    }

    static boolean isElf(byte[] b) {
        return b.length > 4 && b[0] == 0x7f && b[1] == 'E' && b[2] == 'L' && b[3] == 'F';
    }

    private void write(Path file, byte[] image) {
        Path tmp = null;
        try {
            Files.createDirectories(dir);
            tmp = Files.createTempFile(dir, ".tmp-", ".part");
            Files.write(tmp, image);
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            LOG.log(System.Logger.Level.WARNING, "cannot write kernel cache entry " + file + ": " + e);
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // nothing more to do
                }
            }
        }
    }
}
