package dev.latte.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.latte.model.UNetModel;
import dev.latte.weights.DType;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Map;

/** {@code latte info}: what a model folder holds. */
final class Info {
    private Info() {
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
            out.println("config (with diffusers' defaults filled in):");
            out.println(json.writeValueAsString(model.config()));
            return 0;
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
