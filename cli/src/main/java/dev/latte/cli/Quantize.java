package dev.latte.cli;

import dev.latte.model.UNetModel;
import dev.latte.quant.Quantizer;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Set;

/** {@code latte quantize}: a model with every conv/linear weight int8 per output channel ({@link Quantizer}). */
final class Quantize {
    static final Set<String> OPTIONS = Set.of("model", "out");

    private Quantize() {
    }

    static int run(Args a, PrintStream out) {
        Path outDir = a.outputModelFolder("out");
        try (UNetModel model = UNetModel.load(Path.of(a.required("model")))) {
            Quantizer.Summary s = Quantizer.quantize(model, outDir);
            out.printf("quantised %d of %d tensors to int8 (per-output-channel fp32 scales): weight bytes %,d -> %,d"
                    + " (%.2fx smaller); wrote %s%n", s.quantized(), s.tensors(), s.bytesBefore(), s.bytesAfter(),
                    (double) s.bytesBefore() / s.bytesAfter(), outDir);
            return 0;
        }
    }
}
