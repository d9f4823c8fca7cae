package dev.latte.core;

/**
 * One planned graph made ready to run on a backend, again and again: write the inputs, run,
 * read the outputs. Preparing it (a backend's {@code prepare}, {@code dev.latte.exec.Steps})
 * allocates everything the step needs (one activation arena, any scratch), so {@link #run}
 * allocates nothing; a CUDA step captures its launches once into a CUDA graph and replays it.
 * Inputs that die during a run are overwritten: write every input before each run. Closing frees
 * the step's memory (not the parameters, which the caller owns).
 */
public interface Step extends AutoCloseable {
    /** Copies host fp32 values into graph input {@code name}. */
    void write(String name, float[] values);

    /** Runs the whole graph once on the inputs last written. */
    void run();

    /**
     * Runs the graph op by op, reading every op's output back and stopping at the first that
     * holds NaN/Inf with a {@code NonFiniteException} naming it: the slow diagnostic path,
     * never captured.
     */
    void runCheckingEachOp();

    /** The host fp32 values of kept output {@code name} after the last run. */
    float[] read(String name);

    /** The backend tensor of kept output {@code name} (valid until the next run or close). */
    Tensor output(String name);

    /**
     * The kernel versions this step runs, chosen once as it was prepared: one line per distinct
     * op kind, shape and version, e.g. {@code "linear in [2,77,320] -> [2,77,320]: linear=v2 (x4)"};
     * empty where the backend has one kernel per op.
     */
    default java.util.List<String> tactics() {
        return java.util.List.of();
    }

    @Override
    void close();
}
