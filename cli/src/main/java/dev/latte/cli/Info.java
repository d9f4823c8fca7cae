package dev.latte.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.latte.model.UNetModel;
import dev.latte.weights.DType;
import dev.latte.weights.TensorInfo;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Map;

/** {@code latte info}: what a model folder holds. */
final class Info {
    private Info() {
    }

    /**
     * What the model's weights take on the CUDA backend: {int8 bytes, float bytes}, int8 weights as
     * stored (one byte each), every float tensor (int8 scales included) at {@code floatBytes}.
     */
    static long[] deviceBytes(UNetModel model, int floatBytes) {
        long int8 = 0, floats = 0;
        for (TensorInfo t : model.weights().tensors()) {
            if (t.dtype() == DType.I8) {
                int8 += t.numel();
            } else {
                floats += t.numel() * floatBytes;
            }
        }
        return new long[] {int8, floats};
    }

    static int run(Args a, PrintStream out) {
        try (UNetModel model = UNetModel.load(Path.of(a.required("model")))) {
            ObjectMapper json = new ObjectMapper()
                    .setPropertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
                    .enable(SerializationFeature.INDENT_OUTPUT);
            out.println("model: " + model.dir());
            out.println("weights: " + model.weights().path().getFileName() + " (" + model.weights().tensors().size()
                    + " tensors)");
            out.println("mode: " + model.mode());
            out.printf("parameters: %,d%n", model.parameterCount());
            for (Map.Entry<DType, Long> e : model.bytesByDtype().entrySet()) {
                out.printf("bytes %s: %,d (%.2f MiB)%n", e.getKey(), e.getValue(), e.getValue() / 1048576.0);
            }
            for (int floatBytes : new int[] {4, 2}) {
                long[] b = deviceBytes(model, floatBytes);
                out.printf("device bytes, cuda %s: %,d (%.2f MiB; int8 %,d, float %,d)%n", floatBytes == 4 ? "fp32" : "fp16",
                        b[0] + b[1], (b[0] + b[1]) / 1048576.0, b[0], b[1]);
            }
            out.println("config (with diffusers' defaults filled in):");
            out.println(json.writeValueAsString(model.config()));
            return 0;
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
