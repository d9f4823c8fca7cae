package dev.latte.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.WeightsException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.function.Consumer;

/**
 * Writes a derived model folder (quantised, pruned): the source's config.json with Latte's keys
 * added, and a new {@code diffusion_pytorch_model.safetensors}. Refuses to write over the source.
 */
public final class ModelWriter {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private ModelWriter() {
    }

    /** @param editConfig adds keys to a copy of the source's config.json object */
    public static void write(UNetModel source, Path outDir, Consumer<ObjectNode> editConfig, SafeTensorsWriter weights) {
        try {
            if (Files.exists(outDir) && Files.isSameFile(outDir, source.dir())) {
                throw new WeightsException(outDir + ": is the input model folder; write the new model elsewhere");
            }
            if (Files.exists(outDir) && !Files.isDirectory(outDir)) {
                throw new WeightsException(outDir + ": exists and is not a directory");
            }
            ObjectNode config = (ObjectNode) JSON.readTree(source.dir().resolve(UNetModel.CONFIG).toFile());
            editConfig.accept(config);
            Files.createDirectories(outDir);
            // a stale fp16 file beside the new one would be loaded first by nobody, but confuse everybody
            for (String f : UNetModel.WEIGHT_FILES) {
                Files.deleteIfExists(outDir.resolve(f));
            }
            weights.write(outDir.resolve(UNetModel.WEIGHT_FILES.getFirst()));
            Path tmp = outDir.resolve("." + UNetModel.CONFIG + "." + ProcessHandle.current().pid() + ".tmp");
            Files.writeString(tmp, JSON.writeValueAsString(config) + "\n");
            Files.move(tmp, outDir.resolve(UNetModel.CONFIG), StandardCopyOption.ATOMIC_MOVE,
                    StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new WeightsException(outDir + ": cannot write: " + e.getMessage(), e);
        }
    }
}
