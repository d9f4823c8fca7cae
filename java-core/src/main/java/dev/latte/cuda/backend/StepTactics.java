package dev.latte.cuda.backend;

import dev.latte.cuda.backend.CudaBackend.Precision;
import dev.latte.exec.OpScope;
import dev.latte.graph.Graph;
import dev.latte.graph.Op;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The kernel version of every op of a step, resolved once from its shapes when the step is
 * prepared ({@link Tactics#forOp}: the default table, or a version forced by name), instead of
 * at each launch. While the step runs, {@link #scope} pins op i's version in the launchers, which
 * then run it rather than ask the table again (an op whose tensors turn out not to be 16-byte
 * aligned, as the choice assumed, is asked again with its real alignment).
 */
public final class StepTactics {
    private final Tactics.Version[] byOp;
    private final List<String> lines;

    private StepTactics(Tactics.Version[] byOp, List<String> lines) {
        this.byOp = byOp;
        this.lines = lines;
    }

    /**
     * Every op of {@code g} on {@code tactics} at precision {@code p} for kernels built for
     * sm_{@code cc}; an {@link IllegalArgumentException} naming the op where a forced version cannot run it.
     */
    public static StepTactics resolve(Graph g, Tactics tactics, Precision p, int cc) {
        Tactics.Version[] byOp = new Tactics.Version[g.ops().size()];
        Map<String, Integer> count = new LinkedHashMap<>();
        for (int i = 0; i < byOp.length; i++) {
            Op op = g.ops().get(i);
            try {
                byOp[i] = tactics.forOp(op, g, p, cc);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("op '" + op.name() + "': " + e.getMessage(), e);
            }
            if (byOp[i] != null) {
                count.merge(op.kind() + " " + op.describe(g) + ": " + byOp[i].id(), 1, Integer::sum);
            }
        }
        List<String> lines = new ArrayList<>();
        count.forEach((line, n) -> lines.add(n == 1 ? line : line + " (x" + n + ")"));
        return new StepTactics(byOp, List.copyOf(lines));
    }

    /** Op {@code i}'s version, or null where no kernel family runs it. */
    public Tactics.Version at(int i) {
        return byOp[i];
    }

    /** One line per distinct op kind, shape and version, in first-use order, with how many ops share it. */
    public List<String> lines() {
        return lines;
    }

    /** Pins each op's version in {@code launch} while the op runs. */
    OpScope scope(Launch launch) {
        return new OpScope() {
            @Override
            public void enter(int op) {
                launch.pin(byOp[op]);
            }

            @Override
            public void exit() {
                launch.pin(null);
            }
        };
    }
}
