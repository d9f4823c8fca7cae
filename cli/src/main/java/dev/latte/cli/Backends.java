package dev.latte.cli;

import dev.latte.core.Backend;
import dev.latte.cpu.CpuBackend;
import dev.latte.cuda.CudaContext;
import dev.latte.cuda.CudaUnavailableException;
import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.Tactics;
import dev.latte.ref.ReferenceBackend;

import java.util.ArrayList;
import java.util.List;

/**
 * Opens a backend by name and dtype: the one place the command line (validate, sample, bench
 * unet, bench kernels, ...) turns {@code --backend}/{@code --dtype}/{@code --threads} into a
 * {@link Backend}. Errors are one line naming what is wrong ({@link IllegalArgumentException},
 * which the CLI prints and exits 2 on).
 */
public final class Backends {
    /** The backends this build has, in the order {@code --backend} lists them. */
    public static final List<String> NAMES = List.of("cpu", "cuda", "ref");

    /**
     * A backend, the activation dtype it runs at and, for cuda, the kernel versions it is forced to
     * ({@link Tactics#parse}; empty: the default tactic table).
     */
    public record Spec(String name, String dtype, String kernels) {
        public Spec(String name, String dtype) {
            this(name, dtype, "");
        }

        /** The kernel family whose versions this spec forces, or null for none (every op runs). */
        public Tactics.Family family() {
            Tactics t = kernels.isEmpty() ? Tactics.defaults() : Tactics.parse(kernels);
            for (Tactics.Family f : Tactics.Family.values()) {
                if (t.forced(f) != null) {
                    return f;
                }
            }
            return null;
        }

        @Override
        public String toString() {
            return name + " " + dtype + (kernels.isEmpty() ? "" : " " + kernels);
        }
    }

    /**
     * Every backend and dtype this build can run ops at, the reference last: the op-case test
     * checks each of the others against it, so a backend gets every op test by being listed here.
     * Then the kernel lab: each CUDA kernel version forced by name at each dtype it has kernels for,
     * and each library tactic ({@code linear=cublaslt}, {@code conv=cudnn}), which the op-case test
     * runs on its family's ops (skipped, saying why, where the library or a real GPU is absent).
     */
    public static final List<Spec> SPECS = specs();

    private static List<Spec> specs() {
        List<Spec> s = new ArrayList<>(List.of(new Spec("cpu", "fp32"), new Spec("cuda", "fp32"),
                new Spec("cuda", "fp16")));
        for (String dtype : List.of("fp32", "fp16")) {
            for (Tactics.Family f : Tactics.Family.values()) {
                List<Tactics.Version> vs = Tactics.versions(f).stream()
                        .filter(v -> dtype.equals("fp32") ? v.fp32() : v.fp16()).toList();
                // a family with one kernel version at a dtype is what "cuda DTYPE" runs already;
                // a library tactic always has its own spec
                boolean several = vs.stream().filter(v -> v.library() == null).count() > 1;
                vs.stream().filter(v -> several || v.library() != null)
                        .forEach(v -> s.add(new Spec("cuda", dtype, v.id())));
            }
        }
        s.add(new Spec("ref", "fp32"));
        return List.copyOf(s);
    }

    private Backends() {
    }

    /** A backend that exists in this build but cannot be opened here (no driver, no device). */
    public static final class Unavailable extends IllegalArgumentException {
        private final String reason;

        Unavailable(String backend, String reason) {
            super(backend + " backend unavailable: " + reason);
            this.reason = reason;
        }

        /** A library tactic forced by name whose library is absent: {@code message} says which and why. */
        private Unavailable(String message) {
            super(message);
            this.reason = message;
        }

        public String reason() {
            return reason;
        }
    }

    /**
     * @param name    {@code cpu}, {@code cuda} or {@code ref} (the naive reference the others are tested against)
     * @param dtype   the activations' precision: {@code fp32}, {@code fp16} (cuda only) or
     *                {@code int8} (int8 weights over the backend's own float: fp32 on cpu, fp16 on cuda)
     * @param threads worker threads of a CPU backend, at least 1
     */
    public static Backend open(String name, String dtype, int threads) {
        return open(name, dtype, threads, "");
    }

    /**
     * As {@link #open(String, String, int)}, with {@code kernels} the CUDA kernel versions to force
     * ({@code attention=v1,...}, see {@link Tactics}; empty for the default tactic table).
     */
    public static Backend open(String name, String dtype, int threads, String kernels) {
        Tactics tactics = Tactics.parse(kernels);
        if (!name.equals("cuda") && tactics != Tactics.defaults()) {
            throw new IllegalArgumentException("kernel versions (" + kernels + ") apply to the cuda backend, not " + name);
        }
        if (threads < 1) {
            throw new IllegalArgumentException("--threads must be at least 1");
        }
        if (!List.of("fp32", "fp16", "int8").contains(dtype)) {
            throw new IllegalArgumentException("--dtype must be fp16 or fp32 (int8: int8 weights), not '" + dtype
                    + "'");
        }
        switch (name) {
            case "cpu" -> {
                if (dtype.equals("fp16")) {
                    throw new IllegalArgumentException("the cpu backend computes fp32 (or int8); --dtype fp16 needs"
                            + " --backend cuda");
                }
                return new CpuBackend(threads);
            }
            case "cuda" -> {
                String missing = missingLibrary(tactics);
                if (missing != null) {
                    throw new Unavailable(missing);
                }
                String reason = CudaContext.unavailableReason();
                if (reason != null) {
                    throw new Unavailable("cuda", reason);
                }
                try {
                    return CudaBackend.open(0, dtype.equals("fp32") ? CudaBackend.Precision.FP32
                            : CudaBackend.Precision.FP16, tactics);
                } catch (CudaUnavailableException e) {
                    throw new Unavailable("cuda", e.getMessage());
                }
            }
            case "ref" -> {
                if (dtype.equals("fp16")) {
                    throw new IllegalArgumentException("the ref backend computes fp32 (or int8); --dtype fp16 needs"
                            + " --backend cuda");
                }
                return new ReferenceBackend();
            }
            default -> throw new IllegalArgumentException("unknown backend '" + name + "' (this build has: "
                    + String.join(", ", NAMES) + ")");
        }
    }

    /**
     * Null if every library tactic {@code tactics} forces can be loaded; else one line naming the
     * tactic, the library and every place searched (a forced tactic never falls back silently).
     */
    public static String missingLibrary(Tactics tactics) {
        for (Tactics.Family f : Tactics.Family.values()) {
            Tactics.Version v = tactics.forced(f);
            if (v != null && v.library() != null) {
                String r = v.unavailable(false);
                if (r != null) {
                    return r;
                }
            }
        }
        return null;
    }

    /** {@link #open} from {@code --backend} (default cpu), {@code --dtype} and {@code --threads} (default: all cores). */
    static Backend open(Args a, String defaultDtype) {
        return open(a.get("backend", "cpu"), a.get("dtype", defaultDtype), a.threads());
    }
}
