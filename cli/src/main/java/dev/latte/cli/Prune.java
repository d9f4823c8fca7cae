package dev.latte.cli;

import dev.latte.model.UNetModel;
import dev.latte.prune.Pruner;
import dev.latte.weights.SafeTensorsFile;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Set;

/** {@code latte prune}: structured channel pruning of a model's inner widths ({@link Pruner}). */
final class Prune {
    static final Set<String> OPTIONS = Set.of("model", "ratio", "out", "grad");

    private Prune() {
    }

    static int run(Args a, PrintStream out) {
        Path outDir = a.outputModelFolder("out");
        double ratio = a.getDouble("ratio", Double.NaN);
        if (!(ratio >= 0 && ratio < 1)) {
            throw new Args.UsageException("prune: --ratio must be a number in [0, 1), got " + a.required("ratio"));
        }
        String grad = a.get("grad", null);
        try (UNetModel model = UNetModel.load(Path.of(a.required("model")));
             SafeTensorsFile grads = grad == null ? null : SafeTensorsFile.open(Path.of(grad))) {
            Pruner.Result r = Pruner.prune(model, ratio, grads, outDir);
            int changed = (int) r.modules().stream().filter(m -> m.after() < m.before()).count();
            out.printf("pruned %d of %d modules at ratio %s (+%d%% margin, blocks of %d): parameters %,d -> %,d"
                    + " (%.1f%% fewer); wrote %s%n", changed, r.modules().size(), ratio, Math.round(Pruner.MARGIN * 100),
                    Pruner.BLOCK, r.paramsBefore(), r.paramsAfter(),
                    100.0 * (r.paramsBefore() - r.paramsAfter()) / r.paramsBefore(), outDir);
            return 0;
        }
    }
}
