package dev.latte.exec;

import dev.latte.core.Backend;
import dev.latte.core.Tensor;
import dev.latte.graph.Graph;
import dev.latte.graph.NonFiniteException;
import dev.latte.graph.Op;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SequencedMap;

/**
 * Runs a graph's op list on a backend. Activations are allocated when produced and released after
 * their last reader, so peak memory follows the graph's liveness; parameters and inputs belong to
 * the caller. The named outputs come back as backend tensors the caller must release. The
 * planned mode ({@link #run(Graph, Backend, PlannedArena, Map, boolean)}) instead runs every op on
 * the arena views a {@code MemoryPlan} gave it, allocating nothing.
 */
public final class Executor {
    private Executor() {
    }

    /**
     * @param checkEachOp download every op's output and stop at the first non-finite value, naming
     *                    the op (a diagnostic mode: it synchronises after every op)
     */
    public static SequencedMap<String, Tensor> run(Graph graph, Backend backend, Map<String, Tensor> params,
                                                   Map<String, Tensor> inputs, boolean checkEachOp) {
        Tensor[] env = new Tensor[graph.values().size()];
        for (var e : graph.params().entrySet()) {
            env[e.getValue().id()] = require(params, e.getKey(), "parameter");
        }
        for (var e : graph.inputs().entrySet()) {
            env[e.getValue().id()] = require(inputs, e.getKey(), "input");
        }
        int[] last = graph.lastUses();
        boolean[] owned = new boolean[env.length];
        try {
            for (int i = 0; i < graph.ops().size(); i++) {
                Op op = graph.ops().get(i);
                env[op.out()] = backend.allocate(graph.value(op.out()).shape(), graph.value(op.out()).storage());
                owned[op.out()] = true;
                run(op, backend, env, checkEachOp);
                for (int id : op.inputs()) {
                    if (id >= 0 && owned[id] && last[id] == i) {
                        backend.release(env[id]);
                        owned[id] = false;
                        env[id] = null;
                    }
                }
            }
            SequencedMap<String, Tensor> out = new LinkedHashMap<>();
            for (var e : graph.outputs().entrySet()) {
                int id = e.getValue().id();
                out.put(e.getKey(), env[id]);
                owned[id] = false;
            }
            return out;
        } finally {
            for (int id = 0; id < env.length; id++) {
                if (owned[id] && env[id] != null) {
                    backend.release(env[id]);
                }
            }
        }
    }

    /**
     * Runs the graph out of a planned arena: every activation is the arena view the plan gave it,
     * so no op allocates. The caller has written the graph inputs into {@code arena.input(name)};
     * the kept outputs come back as views into the arena, valid until the next step or until the
     * arena is closed (download them, never release them). Inputs that die during the step are
     * overwritten, so write them again before another run.
     */
    public static SequencedMap<String, Tensor> run(Graph graph, Backend backend, PlannedArena arena,
                                                   Map<String, Tensor> params, boolean checkEachOp) {
        return run(graph, backend, arena, params, checkEachOp, OpScope.NONE);
    }

    /** As above, with {@code scope} entered around each op. */
    public static SequencedMap<String, Tensor> run(Graph graph, Backend backend, PlannedArena arena,
                                                   Map<String, Tensor> params, boolean checkEachOp, OpScope scope) {
        if (arena.graph() != graph || arena.backend() != backend) {
            throw new IllegalArgumentException("the planned arena was made for another graph or backend");
        }
        Tensor[] env = arena.env();
        for (var e : graph.params().entrySet()) {
            env[e.getValue().id()] = require(params, e.getKey(), "parameter");
        }
        for (int i = 0; i < graph.ops().size(); i++) {
            scope.enter(i);
            try {
                run(graph.ops().get(i), backend, env, checkEachOp);
            } finally {
                scope.exit();
            }
        }
        SequencedMap<String, Tensor> out = new LinkedHashMap<>();
        for (String name : arena.plan().keptOutputs()) {
            out.put(name, env[graph.outputs().get(name).id()]);
        }
        return out;
    }

    /** Runs one op; in the diagnostic mode reads its output back and names it if it went non-finite. */
    private static void run(Op op, Backend backend, Tensor[] env, boolean checkEachOp) {
        op.run(backend, env);
        if (checkEachOp) {
            long bad = nonFinite(backend.download(env[op.out()]));
            if (bad > 0) {
                throw new NonFiniteException("op '" + op.name() + "' produced " + bad
                        + " non-finite values from finite inputs");
            }
        }
    }

    private static Tensor require(Map<String, Tensor> map, String name, String what) {
        Tensor t = map.get(name);
        if (t == null) {
            throw new IllegalArgumentException("no " + what + " '" + name + "' given to the graph");
        }
        return t;
    }

    public static long nonFinite(float[] values) {
        long n = 0;
        for (float v : values) {
            if (!Float.isFinite(v)) {
                n++;
            }
        }
        return n;
    }
}
