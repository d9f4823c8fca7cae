package dev.latte.exec;

import dev.latte.core.Backend;
import dev.latte.core.Tensor;
import dev.latte.graph.Graph;
import dev.latte.graph.Value;
import dev.latte.plan.MemoryPlan;

import java.util.Map;

/** The default step: the planned executor over one {@link PlannedArena}, op by op every run. */
public final class PlannedStep implements ArenaStep {
    private final Backend backend;
    private final Graph graph;
    private final Map<String, Tensor> params;
    private final PlannedArena arena;

    public PlannedStep(Backend backend, Graph graph, MemoryPlan plan, Map<String, Tensor> params) {
        this(backend, graph, plan, params, Map.of());
    }

    /** A step whose plan keeps {@code external} values (by input or output name) in the caller's tensors. */
    public PlannedStep(Backend backend, Graph graph, MemoryPlan plan, Map<String, Tensor> params,
                       Map<String, Tensor> external) {
        this.backend = backend;
        this.graph = graph;
        this.params = Map.copyOf(params);
        this.arena = PlannedArena.bind(backend, graph, plan, external);
    }

    @Override
    public void write(String name, float[] values) {
        backend.write(arena.input(name), values);
    }

    @Override
    public void run() {
        Executor.run(graph, backend, arena, params, false);
    }

    @Override
    public void runCheckingEachOp() {
        Executor.run(graph, backend, arena, params, true);
    }

    @Override
    public float[] read(String name) {
        return backend.download(output(name));
    }

    @Override
    public Tensor output(String name) {
        Value v = graph.outputs().get(name);
        if (v == null || !arena.plan().keptOutputs().contains(name)) {
            throw new IllegalArgumentException("the step keeps no output '" + name + "'; it keeps "
                    + arena.plan().keptOutputs());
        }
        return arena.view(v.id());
    }

    @Override
    public PlannedArena arena() {
        return arena;
    }

    @Override
    public void close() {
        arena.close();
    }
}
