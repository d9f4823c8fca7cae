package dev.latte.exec;

import dev.latte.core.Backend;
import dev.latte.core.Tensor;
import dev.latte.graph.Graph;
import dev.latte.graph.Value;
import dev.latte.plan.MemoryPlan;

import java.util.Map;

/**
 * A {@link MemoryPlan} made real on a backend: one arena allocation of the plan's size, and a
 * view into it for every planned activation, made once, with the backend's scratch and tables
 * for the graph ({@link Backend#reserve}). A step run from it
 * ({@code Executor.run(graph, backend, arena, params, ...)}) allocates nothing; graph inputs are
 * written into their views ({@link #input}) before each step, kept outputs read from theirs
 * after. Closing releases the arena.
 */
public final class PlannedArena implements AutoCloseable {
    private final Backend backend;
    private final Graph graph;
    private final MemoryPlan plan;
    private final Tensor arena;
    private final Tensor[] env;
    private final boolean ownsArena;

    private PlannedArena(Backend backend, Graph graph, MemoryPlan plan, Tensor arena, Tensor[] env, boolean ownsArena) {
        this.backend = backend;
        this.graph = graph;
        this.plan = plan;
        this.arena = arena;
        this.env = env;
        this.ownsArena = ownsArena;
    }

    /** Allocates {@code plan}'s arena on {@code backend} and the views of {@code graph}'s activations. */
    public static PlannedArena bind(Backend backend, Graph graph, MemoryPlan plan) {
        return bind(backend, graph, plan, Map.of());
    }

    /**
     * As {@link #bind(Backend, Graph, MemoryPlan)}, with the plan's {@link MemoryPlan#external}
     * values bound to the caller's tensors (by input or output name), which outlive the arena.
     */
    public static PlannedArena bind(Backend backend, Graph graph, MemoryPlan plan, Map<String, Tensor> external) {
        return bind(backend, graph, plan, external, null);
    }

    /**
     * As above, in {@code shared} (an arena of at least the plan's bytes, which the caller keeps
     * and frees) where not null: steps that never run at the same time can share one allocation.
     */
    public static PlannedArena bind(Backend backend, Graph graph, MemoryPlan plan, Map<String, Tensor> external,
                                    Tensor shared) {
        if (!backend.supportsArena()) {
            throw new UnsupportedOperationException(backend.name() + " backend cannot run from a planned arena");
        }
        if (plan.opCount() != graph.ops().size()) {
            throw new IllegalArgumentException("plan for " + plan.opCount() + " ops given a graph of "
                    + graph.ops().size());
        }
        Tensor[] env = new Tensor[graph.values().size()];
        backend.reserve(graph);
        if (shared != null && shared.shape().numel() * backend.activationBytes() < plan.arenaBytes()) {
            throw new IllegalArgumentException("a shared arena of " + shared.shape().numel() * backend.activationBytes()
                    + " bytes for a plan of " + plan.arenaBytes());
        }
        Tensor arena = shared != null ? shared : backend.arena(plan.arenaBytes());
        try {
            for (MemoryPlan.Activation a : plan.activations()) {
                Value v = graph.value(a.valueId());
                if (!v.shape().equals(a.shape())) {
                    throw new IllegalArgumentException("plan has " + a.name() + " as " + a.shape() + ", the graph's value "
                            + v.id() + " ('" + v.name() + "') is " + v.shape());
                }
                env[a.valueId()] = backend.view(arena, a.offset(), a.shape(), v.storage());
            }
            for (MemoryPlan.Activation a : plan.external()) {
                Tensor t = external.get(a.name());
                if (t == null || !t.shape().equals(a.shape())) {
                    throw new IllegalArgumentException("the plan keeps '" + a.name() + "' " + a.shape()
                            + " outside the arena; " + (t == null ? "no tensor was given for it" : "got " + t.shape()));
                }
                env[a.valueId()] = t;
            }
            for (int i = 0; i < graph.ops().size(); i++) {
                int out = graph.ops().get(i).out();
                if (env[out] == null) {
                    throw new IllegalArgumentException("plan has no place for the output of op " + i + " '"
                            + graph.ops().get(i).name() + "'");
                }
            }
        } catch (RuntimeException e) {
            if (shared == null) {
                backend.release(arena);
            }
            throw e;
        }
        return new PlannedArena(backend, graph, plan, arena, env, shared == null);
    }

    public MemoryPlan plan() {
        return plan;
    }

    public Graph graph() {
        return graph;
    }

    public Backend backend() {
        return backend;
    }

    /** The arena tensor itself (one allocation of {@code plan().arenaBytes()}, or a shared one at least as large). */
    public Tensor arena() {
        return arena;
    }

    /** The view of graph input {@code name}: write the step's input into it. */
    public Tensor input(String name) {
        Value v = graph.inputs().get(name);
        if (v == null) {
            throw new IllegalArgumentException("the graph has no input '" + name + "'");
        }
        return env[v.id()];
    }

    /** The view of value {@code id}, or null where the plan gives it no place (parameters). */
    public Tensor view(int valueId) {
        return env[valueId];
    }

    /** Views by value id; the executor fills parameter slots in. Not a copy. */
    public Tensor[] env() {
        return env;
    }

    /** Releases the arena, unless it was shared (its owner releases it). */
    @Override
    public void close() {
        if (ownsArena) {
            backend.release(arena);
        }
    }
}
