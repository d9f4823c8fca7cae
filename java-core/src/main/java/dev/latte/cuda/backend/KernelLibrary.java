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
 * Every kernel file of {@code latte-kernels} that the target architecture can run, compiled once for
 * it (through the on-disk {@link KernelCache}: a warm start compiles nothing) and loaded as one
 * module per file; hands out {@link CudaKernel} handles by file and name. The per-architecture list
 * ({@link #KERNEL_FILES}) keeps tensor-core-only files off pre-Ampere devices, where they would not
 * compile, so sm_75 still gets the fp32 kernels, fp16 on CUDA cores and the dp4a int8 path; inside
 * shared files, {@code __CUDA_ARCH__ >= 800} guards do the same per kernel.
 */
public final class KernelLibrary implements AutoCloseable {
    /** Where the sources live on the classpath. */
    public static final String RESOURCE_DIR = "/dev/latte/kernels/";
    /** A kernel file and the lowest compute capability (10·major + minor) it is built for. */
    public record KernelFile(String name, int minCc) {
    }

    /** The kernel files, one per op family and version: the one list of them. */
    public static final List<KernelFile> KERNEL_FILES = List.of(
            new KernelFile("conv.cu", 0), new KernelFile("gemm.cu", 0), new KernelFile("norm.cu", 0),
            new KernelFile("attention.cu", 0), new KernelFile("elementwise.cu", 0), new KernelFile("int8_gemm.cu", 0),
            new KernelFile("int8_ops.cu", 0),
            new KernelFile("attention_v2.cu", 80), new KernelFile("gemm_v2.cu", 80),
            new KernelFile("conv_v2.cu", 80));
    /** The names of {@link #KERNEL_FILES}. */
    public static final List<String> FILES = KERNEL_FILES.stream().map(KernelFile::name).toList();
    /** Headers the files include, handed to NVRTC in memory. */
    public static final List<String> HEADERS = List.of("common.cuh", "pipeline.cuh");
    /** NVRTC options beyond the defaults: none; in particular no fast math (fp32 is a 100 dB path). */
    static final List<String> OPTIONS = List.of();

    private final CudaContext ctx;
    private final int cc;
    private final Map<String, CudaModule> modules = new LinkedHashMap<>();
    private final Map<String, CudaKernel> kernels = new HashMap<>();

    public KernelLibrary(CudaContext ctx) {
        this(ctx, KernelCache.defaultCache());
    }

    public KernelLibrary(CudaContext ctx, KernelCache cache) {
        this(ctx, cache, ctx.computeCapability());
    }

    /**
     * The files for compute capability {@code cc} (at most the device's), compiled for it: on a
     * newer device, or the emulated one, this runs exactly what an sm_{@code cc} GPU would.
     */
    public KernelLibrary(CudaContext ctx, KernelCache cache, int cc) {
        if (cc > ctx.computeCapability() || cc < 50) {
            throw new IllegalArgumentException("kernels for sm_" + cc + " on " + ctx.deviceName() + " (sm_"
                    + ctx.computeCapability() + ")");
        }
        this.ctx = ctx;
        this.cc = cc;
        Map<String, String> headers = new LinkedHashMap<>();
        for (String h : HEADERS) {
            headers.put(h, source(h));
        }
        try {
            for (KernelFile f : filesFor(cc)) {
                modules.put(f.name(), cache.module(ctx, f.name(), source(f.name()), "sm_" + cc, OPTIONS, headers));
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

    /** The files a device of compute capability {@code cc} compiles. */
    public static List<KernelFile> filesFor(int cc) {
        return KERNEL_FILES.stream().filter(f -> f.minCc() <= cc).toList();
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

    /** The compute capability the kernels were compiled for (the device's unless asked otherwise). */
    public int computeCapability() {
        return cc;
    }

    /** The kernel {@code name} of {@code file}, looked up once. */
    public synchronized CudaKernel kernel(String file, String name) {
        return kernels.computeIfAbsent(file + ":" + name, k -> {
            CudaModule m = modules.get(file);
            if (m == null) {
                KernelFile known = KERNEL_FILES.stream().filter(f -> f.name().equals(file)).findFirst().orElse(null);
                throw new IllegalArgumentException(known != null
                        ? "kernel file " + file + " needs sm_" + known.minCc() + "+, kernels are built for sm_" + cc
                        : "no kernel file " + file + " (have " + modules.keySet() + ")");
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
