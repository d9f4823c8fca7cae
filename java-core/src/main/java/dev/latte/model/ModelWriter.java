package dev.latte.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.latte.weights.AtomicFiles;
import dev.latte.weights.OutputGuard;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.WeightsException;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.function.Consumer;

/**
 * Writes a model folder: {@code config.json} and one weights file, nothing else. The folder is
 * replaced whole ({@link AtomicFiles#replaceFolder}): until the new model is complete and synced,
 * the old one (if any) stays as it was, and afterwards no stale twin (an fp16 file beside a new
 * fp32 one) is left to be loaded instead.
 */
public final class ModelWriter {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private ModelWriter() {
    }

    /**
     * A model derived from {@code source} (quantised, pruned, merged): its config.json with
     * {@code editConfig}'s changes and {@code weights} as {@code diffusion_pytorch_model.safetensors}.
     */
    public static void write(UNetModel source, Path outDir, Consumer<ObjectNode> editConfig, SafeTensorsWriter weights) {
        write(source, outDir, editConfig, weights, UNetModel.WEIGHT_FILES.getFirst());
    }

    /** As above, with the weights file named {@code weightsFile} (one of {@link UNetModel#WEIGHT_FILES}). */
    public static void write(UNetModel source, Path outDir, Consumer<ObjectNode> editConfig, SafeTensorsWriter weights,
                             String weightsFile) {
        new OutputGuard().input(source.dir()).checkModelFolder(outDir, "output folder");
        ObjectNode config;
        try {
            config = (ObjectNode) JSON.readTree(source.dir().resolve(UNetModel.CONFIG).toFile());
        } catch (IOException e) {
            throw new WeightsException(source.dir().resolve(UNetModel.CONFIG) + ": cannot read: " + e.getMessage(), e);
        }
        editConfig.accept(config);
        String text;
        try {
            text = JSON.writeValueAsString(config) + "\n";
        } catch (IOException e) {
            throw new IllegalStateException(e); // a tree read from JSON always writes back
        }
        write(outDir, text, weights, weightsFile);
    }

    /** A model folder from a config.json text and its weights. */
    public static void write(Path outDir, String configJson, SafeTensorsWriter weights, String weightsFile) {
        if (!UNetModel.WEIGHT_FILES.contains(weightsFile)) {
            throw new IllegalArgumentException("weights file must be one of " + UNetModel.WEIGHT_FILES);
        }
        AtomicFiles.replaceFolder(outDir, dir -> {
            try (FileChannel ch = FileChannel.open(dir.resolve(weightsFile), StandardOpenOption.CREATE_NEW,
                    StandardOpenOption.WRITE)) {
                weights.writeTo(ch);
            }
            Files.writeString(dir.resolve(UNetModel.CONFIG), configJson, StandardCharsets.UTF_8);
        });
    }
}
