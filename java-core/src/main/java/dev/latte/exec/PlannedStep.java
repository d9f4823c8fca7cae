package dev.latte.exec;

import dev.latte.core.Backend;
import dev.latte.core.Tensor;
import dev.latte.graph.Graph;
import dev.latte.graph.Value;
import dev.latte.plan.MemoryPlan;

import java.util.List;
import java.util.Map;

/** The default step: the planned executor over one {@link PlannedArena}, op by op every run. */
public final class PlannedStep implements ArenaStep {
    private final Backend backend;
    private final Graph graph;
    private final Map<String, Tensor> params;
    private final PlannedArena arena;
    private final OpScope scope;
    private final List<String> tactics;

    public PlannedStep(Backend backend, Graph graph, MemoryPlan plan, Map<String, Tensor> params) {
        this(backend, graph, plan, params, Map.of());
    }

    /** A step whose plan keeps {@code external} values (by input or output name) in the caller's tensors. */
    public PlannedStep(Backend backend, Graph graph, MemoryPlan plan, Map<String, Tensor> params,
                       Map<String, Tensor> external) {
        this(backend, graph, plan, params, external, null, OpScope.NONE, List.of());
    }

    /**
     * As above, in {@code sharedArena} where not null (see {@link Steps.Options#arena}), running each
     * op inside {@code scope}, and reporting {@code tactics} (the backend's kernel choices for this
     * step, made as it prepared it) from {@link #tactics()}.
     */
    public PlannedStep(Backend backend, Graph graph, MemoryPlan plan, Map<String, Tensor> params,
                       Map<String, Tensor> external, Tensor sharedArena, OpScope scope, List<String> tactics) {
        this.backend = backend;
        this.graph = graph;
        this.params = Map.copyOf(params);
        this.scope = scope;
        this.tactics = List.copyOf(tactics);
        this.arena = PlannedArena.bind(backend, graph, plan, external, sharedArena);
    }

    @Override
    public void write(String name, float[] values) {
        backend.write(arena.input(name), values);
    }

    @Override
    public void run() {
        Executor.run(graph, backend, arena, params, false, scope);
    }

    @Override
    public void runCheckingEachOp() {
        Executor.run(graph, backend, arena, params, true, scope);
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
    public List<String> tactics() {
        return tactics;
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
