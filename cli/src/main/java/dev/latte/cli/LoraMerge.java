package dev.latte.cli;

import dev.latte.lora.Lora;
import dev.latte.model.ModelWriter;
import dev.latte.model.UNetModel;
import dev.latte.weights.DType;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.Text;
import dev.latte.weights.WeightsException;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * {@code latte lora-merge}: a model folder with a LoRA merged into its weights, written as a new
 * diffusers folder (config.json copied, weights in their original dtypes, untouched tensors copied
 * byte for byte).
 */
final class LoraMerge {
    static final Set<String> OPTIONS = Set.of("model", "lora", "scale", "out");

    private LoraMerge() {
    }

    static int run(Args a, PrintStream out, PrintStream err) {
        Path modelDir = Path.of(a.required("model"));
        Path loraFile = Path.of(a.required("lora"));
        Path outDir = a.outputModelFolder("out");
        double scale = a.getDouble("scale", 1.0);
        if (!Double.isFinite(scale)) {
            throw new Args.UsageException("lora-merge: --scale must be a finite number, got " + a.get("scale", ""));
        }
        try (UNetModel model = UNetModel.load(modelDir)) {
            Lora lora = Lora.load(loraFile, model.weights());
            report(lora, err);
            if (lora.modules().isEmpty()) {
                throw new WeightsException(lora.file() + ": no LoRA module fits " + modelDir
                        + " (all " + lora.unknownKeys().size() + " tensors are unknown)");
            }
            Map<String, float[]> merged = lora.mergedWeights(model.weights(), scale);
            SafeTensorsFile weights = model.weights();
            SafeTensorsWriter w = new SafeTensorsWriter();
            weights.metadata().forEach(w::metadata);
            w.metadata("lora_merged", lora.file() + " scale " + scale);
            for (TensorInfo t : weights.tensors()) {
                float[] v = merged.get(t.name());
                w.add(t.name(), t.dtype(), t.shape(), v == null ? weights.data(t.name()) : encode(t.dtype(), v));
            }
            // the source's config.json byte for byte, and its weights file name (an fp16 model stays .fp16)
            ModelWriter.write(outDir, Files.readString(modelDir.resolve(UNetModel.CONFIG)), w,
                    weights.path().getFileName().toString());
            var ranks = lora.modules().stream().map(m -> Integer.toString(m.rank())).collect(Collectors.toSet());
            var alphas = lora.modules().stream().map(m -> fmt(m.alpha())).collect(Collectors.toSet());
            out.printf("merged %d LoRA modules (rank %s, alpha %s) at scale %s into %d of %d tensors; wrote %s%n",
                    lora.modules().size(), String.join("/", ranks), String.join("/", alphas), scale, merged.size(),
                    weights.tensors().size(), outDir);
            return 0;
        } catch (IOException e) {
            throw new WeightsException(outDir + ": cannot write: " + e.getMessage(), e);
        }
    }

    /** Unknown keys in one warning line: often a text-encoder half the UNet has no use for. */
    static void report(Lora lora, PrintStream err) {
        List<String> unknown = lora.unknownKeys();
        if (!unknown.isEmpty()) {
            String shown = unknown.stream().limit(10).map(Text::quote).collect(Collectors.joining(", "))
                    + (unknown.size() > 10 ? ", ... (" + (unknown.size() - 10) + " more)" : "");
            err.println("latte: warning: " + Text.oneLine(lora.file() + ": " + unknown.size()
                    + " tensor(s) match no UNet weight and are ignored: " + shown));
        }
    }

    private static String fmt(float v) {
        return v == Math.rint(v) ? Long.toString((long) v) : Float.toString(v);
    }

    /** Back to the tensor's own dtype, rounding to nearest even as PyTorch's casts do. */
    static MemorySegment encode(DType dtype, float[] v) {
        var le = ByteOrder.LITTLE_ENDIAN;
        MemorySegment s = MemorySegment.ofArray(new byte[v.length * dtype.byteSize()]);
        for (int i = 0; i < v.length; i++) {
            switch (dtype) {
                case F32 -> s.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(le), i, v[i]);
                case F64 -> s.setAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(le), i, v[i]);
                case F16 -> s.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(le), i, Float.floatToFloat16(v[i]));
                case BF16 -> s.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(le), i, bf16(v[i]));
                default -> throw new IllegalArgumentException("cannot store merged weights as " + dtype);
            }
        }
        return s;
    }

    private static short bf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) {
            return (short) ((bits >>> 16) | 0x40); // stay a (quiet) NaN
        }
        return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
    }
}
