package dev.latte.quant;

import dev.latte.graph.Graph;
import dev.latte.graph.Op;
import dev.latte.model.ModelWriter;
import dev.latte.model.UNetModel;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.WeightsException;

import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.Set;

/**
 * {@code latte quantize}: every conv and linear weight of a UNet (every tensor a Conv2d or Linear
 * op multiplies by) becomes {@code X.weight} I8 of the same shape plus {@code X.weight_scale} F32
 * [out channels] ({@link Int8}); biases, norms and everything else are copied byte for byte.
 * config.json gains {@code "latte_quantization": "int8-per-channel"}.
 */
public final class Quantizer {
    public static final String CONFIG_KEY = "latte_quantization";
    public static final String CONFIG_VALUE = "int8-per-channel";

    /** What a run did: weights quantised, and file bytes of all tensors before and after. */
    public record Summary(int quantized, int tensors, long bytesBefore, long bytesAfter) {
    }

    private Quantizer() {
    }

    /** The names of the weights a quantised model stores as int8. */
    public static Set<String> quantizableWeights(UNetModel model) {
        int side = 2 << model.config().levels();
        Graph g = model.graph(1, side, side, 1);
        Set<String> names = new LinkedHashSet<>();
        for (Op op : g.ops()) {
            switch (op) {
                case Op.Conv2d c -> names.add(g.value(c.w()).name());
                case Op.Linear l -> names.add(g.value(l.w()).name());
                default -> {
                }
            }
        }
        return names;
    }

    public static Summary quantize(UNetModel model, Path outDir) {
        if (model.isQuantized()) {
            throw new WeightsException(model.dir() + ": already quantised (holds I8 tensors)");
        }
        Set<String> targets = quantizableWeights(model);
        SafeTensorsFile weights = model.weights();
        SafeTensorsWriter w = new SafeTensorsWriter();
        weights.metadata().forEach(w::metadata);
        w.metadata(CONFIG_KEY, CONFIG_VALUE);
        long before = 0, after = 0;
        for (TensorInfo t : weights.tensors()) {
            before += t.byteSize();
            if (targets.contains(t.name())) {
                Int8.Rows q = Int8.quantizeRows(weights.toFloatArray(t.name()), t.intShape()[0]);
                w.addI8(t.name(), t.shape(), q.q());
                w.addF32(t.name() + "_scale", new long[] {q.rows()}, q.scale());
                after += (long) q.q().length + 4L * q.rows();
            } else {
                w.add(t.name(), t.dtype(), t.shape(), weights.data(t.name()));
                after += t.byteSize();
            }
        }
        ModelWriter.write(model, outDir, cfg -> cfg.put(CONFIG_KEY, CONFIG_VALUE), w);
        return new Summary(targets.size(), weights.tensors().size(), before, after);
    }
}
