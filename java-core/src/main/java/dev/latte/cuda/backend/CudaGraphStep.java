package dev.latte.cuda.backend;

import dev.latte.core.Tensor;
import dev.latte.cuda.CudaContext;
import dev.latte.cuda.CudaGraph;
import dev.latte.exec.ArenaStep;
import dev.latte.exec.PlannedArena;
import dev.latte.exec.PlannedStep;

/**
 * A planned step on the CUDA backend replayed as one CUDA graph: binding the plan reserved the
 * backend's scratch and tables ({@code Backend.reserve}), so the first run is captured as it is
 * and every run is one {@code cuGraphLaunch} instead of hundreds of launches. The arena's addresses never move, so the captured kernel arguments stay valid;
 * inputs are copied into their places before each run, outside the graph.
 */
final class CudaGraphStep implements ArenaStep {
    private final CudaContext ctx;
    private final PlannedStep planned;
    private CudaGraph graph;

    CudaGraphStep(CudaContext ctx, PlannedStep planned) {
        this.ctx = ctx;
        this.planned = planned;
    }

    @Override
    public void write(String name, float[] values) {
        planned.write(name, values);
    }

    @Override
    public void run() {
        if (graph == null) {
            ctx.beginCapture();
            try {
                planned.run();
            } catch (RuntimeException e) {
                try {
                    ctx.endCapture().close();
                } catch (RuntimeException suppressed) {
                    e.addSuppressed(suppressed);
                }
                throw e;
            }
            graph = ctx.endCapture();
        }
        graph.launch();
    }

    /** Whether runs now replay a captured graph. */
    boolean captured() {
        return graph != null;
    }

    @Override
    public void runCheckingEachOp() {
        planned.runCheckingEachOp();
    }

    @Override
    public float[] read(String name) {
        return planned.read(name);
    }

    @Override
    public Tensor output(String name) {
        return planned.output(name);
    }

    @Override
    public java.util.List<String> tactics() {
        return planned.tactics();
    }

    @Override
    public PlannedArena arena() {
        return planned.arena();
    }

    @Override
    public void close() {
        try {
            if (graph != null) {
                graph.close();
            }
        } finally {
            planned.close();
        }
    }
}
