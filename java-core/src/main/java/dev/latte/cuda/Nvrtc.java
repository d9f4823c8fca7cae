package dev.latte.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.UnaryOperator;
import java.util.regex.Pattern;

/**
 * NVRTC: CUDA C++ source to CUBIN ({@code sm_XX}) or PTX ({@code compute_XX}) in process, no GPU
 * needed. Every compile gets {@code --gpu-architecture=<arch>}, {@code -std=c++17} (unless the
 * options name a standard) and {@code -I<CUDA include dir>} (NVRTC has no {@code cuda_fp16.h} of
 * its own); {@code --use_fast_math} is not a default. The include directory is the first of
 * {@code $LATTE_CUDA_INCLUDE}, {@code $CUDA_HOME/include}, {@code /usr/local/cuda/include} that
 * holds {@code cuda_fp16.h}. Where none does, sources that include no toolkit header (Latte's
 * kernels) still compile; a failing compile then says which directories were tried.
 */
@SuppressWarnings("restricted")   // binding native code is this class's job
public final class Nvrtc {
    private Nvrtc() {
    }

    static final int NVRTC_SUCCESS = 0;
    private static final Pattern ARCH = Pattern.compile("(sm|compute)_[0-9]+[af]?");

    /** A compiled image and NVRTC's log (warnings; empty when there are none). */
    public record Output(byte[] image, String log) {
    }

    private static int[] version;

    /** The NVRTC library's {major, minor}. */
    public static synchronized int[] version() {
        if (version == null) {
            NativeLibraries.nvrtc();
            version = Api.version();
        }
        return version.clone();
    }

    private static String identity;

    /**
     * Which NVRTC build this is: its version, and the library file's real path, size and
     * modification time, so two builds of one version (or a library replaced in place) never
     * share kernel cache entries.
     */
    public static synchronized String identity() {
        if (identity == null) {
            int[] v = version();
            String location = NativeLibraries.nvrtcLocation();
            Path lib = libraryFile(location);
            String file = location;
            if (lib != null) {
                try {
                    Path real = lib.toRealPath();
                    file = real + " " + Files.size(real) + " " + Files.getLastModifiedTime(real).toMillis();
                } catch (IOException e) {
                    // the location alone still names it
                }
            }
            identity = "nvrtc " + v[0] + "." + v[1] + " " + file;
        }
        return identity;
    }

    /** The file NVRTC was loaded from: the location itself, or for the loader's search, from /proc/self/maps. */
    private static Path libraryFile(String location) {
        if (location.startsWith("/")) {
            return Path.of(location);
        }
        String soname = location.split(" ", 2)[0];
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/maps"))) {
                int slash = line.indexOf('/');
                if (slash >= 0 && line.endsWith("/" + soname)) {
                    return Path.of(line.substring(slash));
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux, or unreadable: the soname stands in
        }
        return null;
    }

    /** Null if NVRTC can be loaded; else why not (listing the places tried). */
    public static String unavailableReason() {
        try {
            NativeLibraries.nvrtc();
            return null;
        } catch (CudaUnavailableException e) {
            return e.getMessage();
        }
    }

    /**
     * Compiles one translation unit; {@code name} is the file name used in diagnostics
     * ({@code "conv.cu"}). Returns CUBIN when {@code arch} is {@code "sm_XX"}, PTX (NUL-terminated,
     * as {@code cuModuleLoadData} wants it) when {@code "compute_XX"}. Throws
     * {@link NvrtcException} with the full log (file:line) on failure.
     */
    public static byte[] compile(String name, String source, String arch, List<String> options) {
        return compile(name, source, arch, options, Map.of()).image();
    }

    /**
     * As {@link #compile(String, String, String, List)}, with in-memory headers: include name
     * (as written in {@code #include "..."}) → contents.
     */
    public static Output compile(String name, String source, String arch, List<String> options,
                                 Map<String, String> headers) {
        List<String> all = effectiveOptions(arch, options);
        NativeLibraries.nvrtc();
        try {
            return Api.compile(name, source, arch.startsWith("sm_"), all, headers);
        } catch (NvrtcException e) {
            Object inc = includeDirOrFailure();
            if (inc instanceof CudaUnavailableException missing && !e.log().isEmpty()) {
                throw new NvrtcException(e.call(), e.result(), e.errorName(),
                        e.log().strip() + "\n(" + missing.getMessage() + ")");
            }
            throw e;
        }
    }

    /** The options NVRTC is given: the defaults above, then {@code options}. */
    public static List<String> effectiveOptions(String arch, List<String> options) {
        if (!ARCH.matcher(arch).matches()) {
            throw new IllegalArgumentException("arch must be sm_XX (CUBIN) or compute_XX (PTX), not '" + arch + "'");
        }
        List<String> all = new ArrayList<>();
        all.add("--gpu-architecture=" + arch);
        boolean std = false;
        for (String o : options) {
            if (o.startsWith("--gpu-architecture") || o.startsWith("-arch")) {
                throw new IllegalArgumentException("pass the architecture as arch, not as option " + o);
            }
            std |= o.startsWith("-std") || o.startsWith("--std");
        }
        if (!std) {
            all.add("-std=c++17");
        }
        if (includeDirOrFailure() instanceof Path inc) {
            all.add("-I" + inc);
        }
        all.addAll(options);
        return all;
    }

    private static Object includeDir;   // Path or CudaUnavailableException

    /** The CUDA include directory given to NVRTC; CudaUnavailableException listing the tried places. */
    public static Path includeDir() {
        Object inc = includeDirOrFailure();
        if (inc instanceof CudaUnavailableException e) {
            throw new CudaUnavailableException(e.getMessage());
        }
        return (Path) inc;
    }

    private static synchronized Object includeDirOrFailure() {
        if (includeDir == null) {
            try {
                includeDir = findIncludeDir(System::getenv, Path.of(NativeLibraries.DEFAULT_CUDA_HOME, "include"));
            } catch (CudaUnavailableException e) {
                includeDir = e;
            }
        }
        return includeDir;
    }

    static Path findIncludeDir(UnaryOperator<String> env, Path fallback) {
        Set<Path> candidates = new LinkedHashSet<>();
        for (String var : new String[] {"LATTE_CUDA_INCLUDE", "CUDA_HOME"}) {
            String v = env.apply(var);
            if (v != null && !v.isBlank()) {
                candidates.add(var.equals("CUDA_HOME") ? Path.of(v, "include") : Path.of(v));
            }
        }
        candidates.add(fallback);
        List<String> tried = new ArrayList<>();
        for (Path dir : candidates) {
            if (Files.isRegularFile(dir.resolve("cuda_fp16.h"))) {
                return dir;
            }
            tried.add(dir.toString());
        }
        throw new CudaUnavailableException("no CUDA headers (cuda_fp16.h) for NVRTC; set LATTE_CUDA_INCLUDE (tried: "
                + String.join(", ", tried) + ")");
    }

    /** The bindings; initialised only after {@link NativeLibraries#nvrtc()} succeeded. */
    private static final class Api {
        private static final Linker LINKER = Linker.nativeLinker();
        private static final SymbolLookup LIB = NativeLibraries.nvrtc();

        private static MethodHandle fn(String symbol, MemoryLayout result, MemoryLayout... args) {
            MemorySegment addr = LIB.find(symbol).orElseThrow(() -> new CudaUnavailableException(
                    NativeLibraries.nvrtcLocation() + " has no " + symbol));
            return LINKER.downcallHandle(addr, FunctionDescriptor.of(result, args));
        }

        private static final MethodHandle nvrtcGetErrorString = fn("nvrtcGetErrorString", ADDRESS, JAVA_INT);
        private static final MethodHandle nvrtcVersion = fn("nvrtcVersion", JAVA_INT, ADDRESS, ADDRESS);
        private static final MethodHandle nvrtcCreateProgram = fn("nvrtcCreateProgram", JAVA_INT,
                ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS);
        private static final MethodHandle nvrtcDestroyProgram = fn("nvrtcDestroyProgram", JAVA_INT, ADDRESS);
        private static final MethodHandle nvrtcCompileProgram = fn("nvrtcCompileProgram", JAVA_INT,
                ADDRESS, JAVA_INT, ADDRESS);
        private static final MethodHandle nvrtcGetProgramLogSize = fn("nvrtcGetProgramLogSize", JAVA_INT, ADDRESS, ADDRESS);
        private static final MethodHandle nvrtcGetProgramLog = fn("nvrtcGetProgramLog", JAVA_INT, ADDRESS, ADDRESS);
        private static final MethodHandle nvrtcGetPTXSize = fn("nvrtcGetPTXSize", JAVA_INT, ADDRESS, ADDRESS);
        private static final MethodHandle nvrtcGetPTX = fn("nvrtcGetPTX", JAVA_INT, ADDRESS, ADDRESS);
        private static final MethodHandle nvrtcGetCUBINSize = fn("nvrtcGetCUBINSize", JAVA_INT, ADDRESS, ADDRESS);
        private static final MethodHandle nvrtcGetCUBIN = fn("nvrtcGetCUBIN", JAVA_INT, ADDRESS, ADDRESS);

        static int[] version() {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment major = a.allocate(JAVA_INT);
                MemorySegment minor = a.allocate(JAVA_INT);
                check("nvrtcVersion", (int) nvrtcVersion.invokeExact(major, minor), "");
                return new int[] {major.get(JAVA_INT, 0), minor.get(JAVA_INT, 0)};
            } catch (Throwable t) {
                throw rethrow(t);
            }
        }

        static Output compile(String name, String source, boolean cubin, List<String> options,
                              Map<String, String> headers) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment progOut = a.allocate(ADDRESS);
                MemorySegment headerSources = strings(a, headers.values().stream().toList());
                MemorySegment headerNames = strings(a, headers.keySet().stream().toList());
                check("nvrtcCreateProgram(" + name + ")", (int) nvrtcCreateProgram.invokeExact(progOut,
                        a.allocateFrom(source), a.allocateFrom(name), headers.size(), headerSources, headerNames), "");
                MemorySegment prog = progOut.get(ADDRESS, 0);
                try {
                    int rc = (int) nvrtcCompileProgram.invokeExact(prog, options.size(), strings(a, options));
                    String log = log(a, prog);
                    check("nvrtcCompileProgram(" + name + ", " + String.join(" ", options) + ")", rc, log);
                    MemorySegment size = a.allocate(JAVA_LONG);
                    check(cubin ? "nvrtcGetCUBINSize" : "nvrtcGetPTXSize", cubin
                            ? (int) nvrtcGetCUBINSize.invokeExact(prog, size)
                            : (int) nvrtcGetPTXSize.invokeExact(prog, size), "");
                    MemorySegment image = a.allocate(Math.max(1, size.get(JAVA_LONG, 0)));
                    check(cubin ? "nvrtcGetCUBIN" : "nvrtcGetPTX", cubin
                            ? (int) nvrtcGetCUBIN.invokeExact(prog, image)
                            : (int) nvrtcGetPTX.invokeExact(prog, image), "");
                    return new Output(image.asSlice(0, size.get(JAVA_LONG, 0)).toArray(JAVA_BYTE), log);
                } finally {
                    int ignored = (int) nvrtcDestroyProgram.invokeExact(progOut);   // never masks the real error
                }
            } catch (Throwable t) {
                throw rethrow(t);
            }
        }

        private static String log(Arena a, MemorySegment prog) throws Throwable {
            MemorySegment size = a.allocate(JAVA_LONG);
            check("nvrtcGetProgramLogSize", (int) nvrtcGetProgramLogSize.invokeExact(prog, size), "");
            long n = size.get(JAVA_LONG, 0);
            if (n <= 1) {
                return "";
            }
            MemorySegment buf = a.allocate(n);
            check("nvrtcGetProgramLog", (int) nvrtcGetProgramLog.invokeExact(prog, buf), "");
            return buf.getString(0);
        }

        private static MemorySegment strings(Arena a, List<String> values) {
            if (values.isEmpty()) {
                return MemorySegment.NULL;
            }
            MemorySegment array = a.allocate(ADDRESS, values.size());
            for (int i = 0; i < values.size(); i++) {
                array.setAtIndex(ADDRESS, i, a.allocateFrom(values.get(i)));
            }
            return array;
        }

        private static void check(String call, int result, String log) throws Throwable {
            if (result != NVRTC_SUCCESS) {
                MemorySegment s = (MemorySegment) nvrtcGetErrorString.invokeExact(result);
                String name = s.equals(MemorySegment.NULL) ? "nvrtcResult " + result : s.reinterpret(4096).getString(0);
                throw new NvrtcException(call, result, name, log);
            }
        }

        private static RuntimeException rethrow(Throwable t) {
            if (t instanceof RuntimeException r) {
                return r;
            }
            if (t instanceof Error e) {
                throw e;
            }
            return new IllegalStateException(t);
        }
    }
}
