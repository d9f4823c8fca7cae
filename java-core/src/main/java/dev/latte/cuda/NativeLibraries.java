package dev.latte.cuda;

import java.io.File;
import java.io.IOException;
import java.lang.invoke.MethodHandle;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;

/**
 * Finds the CUDA driver ({@code libcuda.so.1}) and NVRTC ({@code libnvrtc.so.13}, then {@code .12})
 * by soname at run time, so one jar runs on CUDA 12 and 13 systems. Places tried, in order: every
 * directory of {@code LATTE_CUDA_LIB_DIR} (a path list), {@code $CUDA_HOME/lib64},
 * {@code /usr/local/cuda/lib64}, the dynamic loader's own search (LD_LIBRARY_PATH, ld.so.cache),
 * then, for the driver, {@code /usr/local/nvidia/lib64} and {@code /usr/lib/wsl/lib}. Where NVRTC
 * is taken from a directory, the {@code libnvrtc-builtins} beside it is loaded first (NVRTC finds
 * it by soname and would not look in that directory). Libraries stay loaded for the life of the
 * process; the result, or the failure, is cached.
 * <p>
 * The optional libraries of the library tactics, cuBLASLt ({@code libcublasLt.so.13}, then
 * {@code .12}) and cuDNN 9 ({@code libcudnn.so.9}), are searched in the same places (no last-resort
 * directories). Where cuDNN is taken from a directory, its sub-libraries beside it
 * ({@code libcudnn_graph.so.9}, {@code libcudnn_ops.so.9}, {@code libcudnn_cnn.so.9}, the engines)
 * are loaded first: the shim opens them by soname and would not look in that directory. Neither is
 * ever required: {@link #unavailableReason} says in one line why one is absent.
 */
@SuppressWarnings("restricted")   // binding native code is this class's job
public final class NativeLibraries {
    private NativeLibraries() {
    }

    /**
     * What to look for: sonames in order of preference, whether NVRTC's builtins come first, and
     * the sonames of companion libraries loaded first from the same directory where present.
     */
    record Spec(List<String> sonames, boolean nvrtcBuiltins, List<String> lastResortDirs, List<String> companions) {
        Spec(List<String> sonames, boolean nvrtcBuiltins, List<String> lastResortDirs) {
            this(sonames, nvrtcBuiltins, lastResortDirs, List.of());
        }
    }

    /** A loaded library and where it came from. */
    record Loaded(SymbolLookup lookup, String location) {
    }

    static final Spec CUDA = new Spec(List.of("libcuda.so.1"), false,
            List.of("/usr/local/nvidia/lib64", "/usr/lib/wsl/lib"));
    static final Spec NVRTC = new Spec(List.of("libnvrtc.so.13", "libnvrtc.so.12"), true, List.of());
    static final Spec CUBLAS = new Spec(List.of("libcublas.so.13", "libcublas.so.12"), false, List.of());
    static final Spec CUBLASLT = new Spec(List.of("libcublasLt.so.13", "libcublasLt.so.12"), false, List.of());
    /** In dependency order: each is opened before the ones that need it. */
    static final Spec CUDNN = new Spec(List.of("libcudnn.so.9"), false, List.of(), List.of("libcudnn_graph.so.9",
            "libcudnn_engines_precompiled.so.9", "libcudnn_engines_runtime_compiled.so.9", "libcudnn_heuristic.so.9",
            "libcudnn_ops.so.9", "libcudnn_cnn.so.9", "libcudnn_adv.so.9"));
    static final String DEFAULT_CUDA_HOME = "/usr/local/cuda";
    private static Object cublas; // Loaded or CudaUnavailableException
    private static final Map<Spec, Object> OPTIONAL = new HashMap<>(); // Loaded or the exception

    /** The library tactics' optional libraries. */
    public enum OptionalLibrary {
        CUBLASLT("cuBLASLt", NativeLibraries.CUBLASLT), CUDNN("cuDNN", NativeLibraries.CUDNN);

        final String label;
        final Spec spec;

        OptionalLibrary(String label, Spec spec) {
            this.label = label;
            this.spec = spec;
        }

        public String label() {
            return label;
        }
    }

    /** {@code lib}, loaded once; throws {@link CudaUnavailableException} listing every path tried. */
    public static SymbolLookup optional(OptionalLibrary lib) {
        return optionalLoaded(lib).lookup();
    }

    /** Where {@code lib} was loaded from. */
    public static String optionalLocation(OptionalLibrary lib) {
        return optionalLoaded(lib).location();
    }

    /** Null if {@code lib} loads; else one line saying why not (every path tried). */
    public static String unavailableReason(OptionalLibrary lib) {
        return unavailableReason(lib, () -> null);
    }

    /** Null if {@code lib} loads and {@code bind} (its functions looked up) succeeds; else one line saying why not. */
    static String unavailableReason(OptionalLibrary lib, Supplier<?> bind) {
        try {
            optionalLoaded(lib);
            bind.get();
            return null;
        } catch (CudaUnavailableException e) {
            return e.getMessage();
        }
    }

    /** Calls an optional library's destroy function, ignoring its status: at teardown the first error matters more. */
    static void destroy(MethodHandle destroy, MemorySegment obj) {
        try {
            int ignored = (int) destroy.invokeExact(obj);
        } catch (Throwable t) {
            throw CublasLt.rethrow(t);
        }
    }

    private static synchronized Loaded optionalLoaded(OptionalLibrary lib) {
        Object o = OPTIONAL.get(lib.spec);
        if (o == null) {
            try {
                o = load(lib.spec, System::getenv, true);
            } catch (CudaUnavailableException e) {
                o = e;
            }
            OPTIONAL.put(lib.spec, o);
        }
        if (o instanceof CudaUnavailableException e) {
            throw new CudaUnavailableException(e.getMessage());
        }
        return (Loaded) o;
    }

    /** cuBLAS (for benchmark baselines); throws {@link CudaUnavailableException} listing every path tried. */
    public static synchronized SymbolLookup cublas() {
        if (cublas == null) {
            try {
                cublas = load(CUBLAS, System::getenv, true);
            } catch (CudaUnavailableException e) {
                cublas = e;
            }
        }
        if (cublas instanceof CudaUnavailableException e) {
            throw new CudaUnavailableException(e.getMessage());
        }
        return ((Loaded) cublas).lookup();
    }

    /** Where cuBLAS was loaded from. */
    public static synchronized String cublasLocation() {
        cublas();
        return ((Loaded) cublas).location();
    }

    private static Object cuda;   // Loaded or CudaUnavailableException
    private static Object nvrtc;

    /** The driver API library; throws {@link CudaUnavailableException} listing every path tried. */
    public static SymbolLookup cuda() {
        return loaded(true).lookup();
    }

    /** NVRTC; throws {@link CudaUnavailableException} listing every path tried. */
    public static SymbolLookup nvrtc() {
        return loaded(false).lookup();
    }

    /** Where the driver library was loaded from (a path, or a soname found by the loader). */
    public static String cudaLocation() {
        return loaded(true).location();
    }

    /** Where NVRTC was loaded from. */
    public static String nvrtcLocation() {
        return loaded(false).location();
    }

    private static synchronized Loaded loaded(boolean driver) {
        Object o = driver ? cuda : nvrtc;
        if (o == null) {
            try {
                o = load(driver ? CUDA : NVRTC, System::getenv, true);
            } catch (CudaUnavailableException e) {
                o = e;
            }
            if (driver) {
                cuda = o;
            } else {
                nvrtc = o;
            }
        }
        if (o instanceof CudaUnavailableException e) {
            throw new CudaUnavailableException(e.getMessage());   // fresh stack trace, same one-line message
        }
        return (Loaded) o;
    }

    /** The directories searched before the loader path, in order, without duplicates. */
    static List<Path> directories(UnaryOperator<String> env) {
        Set<Path> dirs = new LinkedHashSet<>();
        String libDir = env.apply("LATTE_CUDA_LIB_DIR");
        if (libDir != null) {
            for (String d : libDir.split(File.pathSeparator)) {
                if (!d.isBlank()) {
                    dirs.add(Path.of(d));
                }
            }
        }
        String cudaHome = env.apply("CUDA_HOME");
        if (cudaHome != null && !cudaHome.isBlank()) {
            dirs.add(Path.of(cudaHome, "lib64"));
        }
        dirs.add(Path.of(DEFAULT_CUDA_HOME, "lib64"));
        return List.copyOf(dirs);
    }

    /**
     * Loads the first library {@code spec} names from the places above; package-private so tests
     * can pass their own environment. {@code loaderPath} false skips the dynamic loader's search.
     */
    static Loaded load(Spec spec, UnaryOperator<String> env, boolean loaderPath) {
        List<String> tried = new ArrayList<>();
        for (Path dir : directories(env)) {
            Loaded l = fromDirectory(spec, dir, tried);
            if (l != null) {
                return l;
            }
        }
        if (loaderPath) {
            for (String soname : spec.sonames()) {
                try {
                    return new Loaded(SymbolLookup.libraryLookup(soname, Arena.global()), soname + " (loader path)");
                } catch (IllegalArgumentException e) {
                    String ld = env.apply("LD_LIBRARY_PATH");
                    tried.add(soname + " on the loader path (LD_LIBRARY_PATH="
                            + (ld == null || ld.isEmpty() ? "unset" : ld) + ", ld.so.cache)");
                }
            }
        }
        for (String d : spec.lastResortDirs()) {
            Loaded l = fromDirectory(spec, Path.of(d), tried);
            if (l != null) {
                return l;
            }
        }
        throw new CudaUnavailableException("no " + String.join(" or ", spec.sonames())
                + " (tried: " + String.join(", ", tried) + ")");
    }

    private static Loaded fromDirectory(Spec spec, Path dir, List<String> tried) {
        for (String soname : spec.sonames()) {
            Path p = dir.resolve(soname);
            if (!Files.isRegularFile(p)) {
                tried.add(p.toString());
                continue;
            }
            try {
                if (spec.nvrtcBuiltins()) {
                    loadBuiltins(dir, soname);
                }
                loadCompanions(dir, spec.companions());
                return new Loaded(SymbolLookup.libraryLookup(p, Arena.global()), p.toString());
            } catch (IllegalArgumentException e) {
                tried.add(p + " (present but failed to load: " + e.getMessage() + ")");
            }
        }
        return null;
    }

    /** Companions present in {@code dir}, in order; one that fails to load is left to the library to report. */
    private static void loadCompanions(Path dir, List<String> companions) {
        for (String c : companions) {
            Path p = dir.resolve(c);
            if (Files.isRegularFile(p)) {
                try {
                    SymbolLookup.libraryLookup(p, Arena.global());
                } catch (IllegalArgumentException e) {
                    // the shim names the sub-library it cannot open when it needs it
                }
            }
        }
    }

    /** libnvrtc.so.13 opens libnvrtc-builtins.so.13.x by soname; have it loaded already. */
    private static void loadBuiltins(Path dir, String nvrtcSoname) {
        String prefix = nvrtcSoname.replace("libnvrtc.so.", "libnvrtc-builtins.so.") + ".";
        List<Path> builtins;
        try (Stream<Path> s = Files.list(dir)) {
            builtins = s.filter(f -> f.getFileName().toString().startsWith(prefix)).sorted().toList();
        } catch (IOException e) {
            return;   // NVRTC will say which builtins library it could not find
        }
        for (Path b : builtins) {
            try {
                SymbolLookup.libraryLookup(b, Arena.global());
            } catch (IllegalArgumentException e) {
                // same: NVRTC reports the builtins it cannot open at compile time
            }
        }
    }
}
