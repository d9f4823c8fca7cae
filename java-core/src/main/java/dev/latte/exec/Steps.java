package dev.latte.exec;

import dev.latte.core.Backend;
import dev.latte.core.Tensor;
import dev.latte.graph.Graph;
import dev.latte.graph.Op;
import dev.latte.graph.OpSupport;
import dev.latte.plan.MemoryPlan;

import java.util.List;
import java.util.Map;

/**
 * The graph-level entry to a backend: {@code prepare(backend, graph, plan, params)} → a
 * {@link dev.latte.core.Step}. It lives here rather than on {@code Backend} because {@code core}
 * sits below {@code graph} and {@code plan} and may not import them; a backend with its own way
 * of running a whole step (the CUDA backend's captured graphs) implements {@link Preparer}, every
 * other one gets {@link PlannedStep} (the planned executor). Every op is checked against the
 * backend ({@link OpSupport}) first, so an unsupported op is named before anything runs.
 */
public final class Steps {
    /** The system property that makes every step run op by op (no CUDA graph): {@code -Dlatte.eager=true}. */
    public static final String EAGER = "latte.eager";

    /**
     * @param eager run op by op every time, never captured (for debugging and profiling)
     * @param arena null, or an arena ({@link Backend#arena}) of at least the plan's bytes for the
     *              step's activations instead of one of its own: shared by steps that never run at
     *              the same time (DeepCache's full and partial steps), each of which writes its
     *              inputs before it runs and has its outputs read before another runs. The caller
     *              frees it after the steps.
     */
    public record Options(boolean eager, Tensor arena) {
        public Options(boolean eager) {
            this(eager, null);
        }

        public static Options defaults() {
            return new Options(Boolean.getBoolean(EAGER));
        }

        public Options withArena(Tensor shared) {
            return new Options(eager, shared);
        }
    }

    /** A backend that prepares its own steps. */
    public interface Preparer {
        ArenaStep prepare(Graph graph, MemoryPlan plan, Map<String, Tensor> params, Options options);

        /** As above, with the plan's external values bound to the caller's tensors (see {@link PlannedArena#bind}). */
        default ArenaStep prepare(Graph graph, MemoryPlan plan, Map<String, Tensor> params,
                                  Map<String, Tensor> external, Options options) {
            if (!external.isEmpty()) {
                throw new UnsupportedOperationException("this backend's steps cannot bind external tensors");
            }
            return prepare(graph, plan, params, options);
        }
    }

    private Steps() {
    }

    public static ArenaStep prepare(Backend backend, Graph graph, MemoryPlan plan, Map<String, Tensor> params) {
        return prepare(backend, graph, plan, params, Options.defaults());
    }

    public static ArenaStep prepare(Backend backend, Graph graph, MemoryPlan plan, Map<String, Tensor> params,
                                    Options options) {
        return prepare(backend, graph, plan, params, Map.of(), options);
    }

    /**
     * A step whose plan keeps {@code external} values (graph inputs or outputs, by name, listed in
     * {@link MemoryPlan#external()}) in the caller's tensors, which outlive the step: DeepCache's
     * cached feature, written by one graph's steps and read by another's.
     */
    public static ArenaStep prepare(Backend backend, Graph graph, MemoryPlan plan, Map<String, Tensor> params,
                                    Map<String, Tensor> external, Options options) {
        for (Op op : graph.ops()) {
            String why = OpSupport.reason(backend, op, graph);
            if (why != null) {
                throw new IllegalArgumentException(backend.name() + " backend cannot run op '" + op.name()
                        + "': " + why);
            }
        }
        return backend instanceof Preparer p ? p.prepare(graph, plan, params, external, options)
                : new PlannedStep(backend, graph, plan, params, external, options.arena(), OpScope.NONE, List.of());
    }
}
