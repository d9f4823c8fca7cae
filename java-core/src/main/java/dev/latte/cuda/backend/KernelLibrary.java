package dev.latte.cuda.backend;

import dev.latte.cuda.CudaContext;
import dev.latte.cuda.CudaKernel;
import dev.latte.cuda.CudaModule;
import dev.latte.cuda.KernelCache;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Every kernel file of {@code latte-kernels}, compiled once for the context's architecture (through
 * the on-disk {@link KernelCache}: a warm start compiles nothing) and loaded as one module per
 * file; hands out {@link CudaKernel} handles by file and name.
 */
public final class KernelLibrary implements AutoCloseable {
    /** Where the sources live on the classpath. */
    public static final String RESOURCE_DIR = "/dev/latte/kernels/";
    /** The kernel files, one per op family: the one list of them. */
    public static final List<String> FILES = List.of(
            "conv.cu", "gemm.cu", "norm.cu", "attention.cu", "elementwise.cu", "int8_gemm.cu");
    /** Headers the files include, handed to NVRTC in memory. */
    public static final List<String> HEADERS = List.of("common.cuh");
    /** NVRTC options beyond the defaults: none; in particular no fast math (fp32 is a 100 dB path). */
    static final List<String> OPTIONS = List.of();

    private final CudaContext ctx;
    private final Map<String, CudaModule> modules = new LinkedHashMap<>();
    private final Map<String, CudaKernel> kernels = new HashMap<>();

    public KernelLibrary(CudaContext ctx) {
        this(ctx, KernelCache.defaultCache());
    }

    public KernelLibrary(CudaContext ctx, KernelCache cache) {
        this.ctx = ctx;
        Map<String, String> headers = new LinkedHashMap<>();
        for (String h : HEADERS) {
            headers.put(h, source(h));
        }
        try {
            for (String f : FILES) {
                byte[] image = cache.cubin(f, source(f), ctx.arch(), OPTIONS, headers);
                modules.put(f, ctx.loadModule(image));
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** The text of one kernel source or header from the classpath. */
    public static String source(String file) {
        try (InputStream in = KernelLibrary.class.getResourceAsStream(RESOURCE_DIR + file)) {
            if (in == null) {
                throw new IllegalStateException("kernel source " + RESOURCE_DIR + file
                        + " is not on the classpath (is latte-kernels a dependency?)");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + RESOURCE_DIR + file, e);
        }
    }

    /**
     * The integer a kernel source defines as {@code name} ({@code #define NAME 64}): launch
     * constants (tile sizes, threads a block) are read from the kernel they launch, so the Java
     * side never restates them.
     */
    public static int define(String file, String name) {
        for (String line : source(file).split("\n")) {
            String[] t = line.trim().split("\\s+");
            if (t.length >= 3 && t[0].equals("#define") && t[1].equals(name)) {
                try {
                    return Integer.parseInt(t[2]);
                } catch (NumberFormatException e) {
                    throw new IllegalStateException(file + ": #define " + name + " is '" + t[2] + "', not an integer");
                }
            }
        }
        throw new IllegalStateException(file + " defines no " + name);
    }

    public CudaContext context() {
        return ctx;
    }

    /** The kernel {@code name} of {@code file}, looked up once. */
    public synchronized CudaKernel kernel(String file, String name) {
        return kernels.computeIfAbsent(file + ":" + name, k -> {
            CudaModule m = modules.get(file);
            if (m == null) {
                throw new IllegalArgumentException("no kernel file " + file + " (have " + modules.keySet() + ")");
            }
            return m.kernel(name);
        });
    }

    @Override
    public synchronized void close() {
        List<RuntimeException> errors = new ArrayList<>();
        for (CudaModule m : modules.values()) {
            try {
                m.close();
            } catch (RuntimeException e) {
                errors.add(e);
            }
        }
        modules.clear();
        kernels.clear();
        if (!errors.isEmpty()) {
            errors.subList(1, errors.size()).forEach(errors.get(0)::addSuppressed);
            throw errors.get(0);
        }
    }
}
