package dev.latte.model;

import dev.latte.core.Shape;
import dev.latte.graph.Graph;
import dev.latte.graph.Value;
import dev.latte.unet.UNet2DConditionModel;
import dev.latte.weights.DType;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.UNetConfig;
import dev.latte.weights.WeightsException;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * A diffusers UNet folder ({@code config.json} + {@code diffusion_pytorch_model.safetensors}),
 * checked on load: every parameter the config implies must be in the file with the implied shape
 * and a floating-point dtype, and every tensor in the file must be used. A config that
 * contradicts its weights therefore fails here, naming the tensor, not later as a wrong answer.
 */
public final class UNetModel implements AutoCloseable {
    public static final String CONFIG = "config.json";
    public static final List<String> WEIGHT_FILES =
            List.of("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors");

    private final Path dir;
    private final UNet2DConditionModel unet;
    private final SafeTensorsFile weights;

    private UNetModel(Path dir, UNet2DConditionModel unet, SafeTensorsFile weights) {
        this.dir = dir;
        this.unet = unet;
        this.weights = weights;
    }

    public static UNetModel load(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new WeightsException(dir + ": not a directory (expected a diffusers UNet folder)");
        }
        Path configPath = dir.resolve(CONFIG);
        if (!Files.isRegularFile(configPath)) {
            throw new WeightsException(dir + ": no " + CONFIG + " (expected a diffusers UNet folder with "
                    + CONFIG + " and " + WEIGHT_FILES.getFirst() + ")");
        }
        UNetConfig config = UNetConfig.load(configPath);
        UNet2DConditionModel unet = new UNet2DConditionModel(config, configPath.toString());
        Path weightsPath = WEIGHT_FILES.stream().map(dir::resolve).filter(Files::isRegularFile).findFirst()
                .orElseThrow(() -> new WeightsException(dir + ": no " + String.join(" or ", WEIGHT_FILES)));
        SafeTensorsFile weights = SafeTensorsFile.open(weightsPath);
        try {
            check(unet, weights);
        } catch (RuntimeException e) {
            weights.close();
            throw e;
        }
        return new UNetModel(dir, unet, weights);
    }

    private static void check(UNet2DConditionModel unet, SafeTensorsFile weights) {
        String file = weights.path().getFileName().toString();
        Map<String, Value> params = parameters(unet);
        for (Value p : params.values()) {
            if (!weights.contains(p.name())) {
                throw new WeightsException(file + ": no tensor '" + p.name() + "' (config.json implies "
                        + p.shape() + ")");
            }
            TensorInfo info = weights.info(p.name());
            if (!Shape.of(info.intShape()).equals(p.shape())) {
                throw new WeightsException(file + ": tensor '" + p.name() + "' is " + info
                        + " but config.json implies " + p.shape() + " (config and weights disagree)");
            }
            if (!info.dtype().isFloatingPoint()) {
                throw new WeightsException(file + ": tensor '" + p.name() + "' has dtype " + info.dtype()
                        + "; UNet weights must be F32, F16, BF16 or F64");
            }
        }
        List<String> unused = new ArrayList<>();
        for (TensorInfo t : weights.tensors()) {
            if (!params.containsKey(t.name())) {
                unused.add(t.name());
            }
        }
        if (!unused.isEmpty()) {
            throw new WeightsException(file + ": " + unused.size() + " tensor(s) not used by config.json, first '"
                    + unused.getFirst() + "' (config and weights disagree)");
        }
    }

    /** Parameter shapes do not depend on the input size: any graph declares them all. */
    private static Map<String, Value> parameters(UNet2DConditionModel unet) {
        int side = 2 << unet.config().levels();
        return unet.graph(1, side, side, 1).params();
    }

    public Path dir() {
        return dir;
    }

    public UNetConfig config() {
        return unet.config();
    }

    public UNet2DConditionModel unet() {
        return unet;
    }

    public SafeTensorsFile weights() {
        return weights;
    }

    public Graph graph(int batch, int height, int width, int contextLength) {
        return unet.graph(batch, height, width, contextLength);
    }

    public long parameterCount() {
        return weights.tensors().stream().mapToLong(TensorInfo::numel).sum();
    }

    public Map<DType, Long> bytesByDtype() {
        Map<DType, Long> bytes = new EnumMap<>(DType.class);
        for (TensorInfo t : weights.tensors()) {
            bytes.merge(t.dtype(), t.byteSize(), Long::sum);
        }
        return bytes;
    }

    @Override
    public void close() {
        weights.close();
    }
}
