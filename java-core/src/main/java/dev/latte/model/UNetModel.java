package dev.latte.model;

import dev.latte.core.Int8Mode;
import dev.latte.core.Shape;
import dev.latte.graph.Graph;
import dev.latte.graph.Value;
import dev.latte.graph.WeightFormat;
import dev.latte.unet.UNet2DConditionModel;
import dev.latte.weights.DType;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.Text;
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
 * and a floating-point dtype (or I8 for a conv/linear weight stored with its {@code _scale}, see
 * {@code quant.Quantizer}), and every tensor in the file must be used. A config that
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
            check(unet, weights, format(config, weights, Int8Mode.W8A16));
            checkFinite(weights);
        } catch (RuntimeException e) {
            weights.close();
            throw e;
        }
        return new UNetModel(dir, unet, weights);
    }

    /**
     * NaN/Inf in a weight, named at load for every command: found later, only the op that read it
     * could be named, and commands that write models (quantize, prune, lora-merge) would carry it on.
     */
    private static void checkFinite(SafeTensorsFile weights) {
        for (TensorInfo t : weights.tensors()) {
            long bad = weights.nonFiniteCount(t.name());
            if (bad > 0) {
                throw new WeightsException(Text.quote(weights.path().getFileName().toString()) + ": tensor '"
                        + Text.quote(t.name()) + "' holds " + bad + " NaN/Inf values (of " + t.numel() + ")");
            }
        }
    }

    private static void check(UNet2DConditionModel unet, SafeTensorsFile weights, WeightFormat format) {
        String file = Text.quote(weights.path().getFileName().toString());
        Map<String, Value> params = parameters(unet, format);
        for (Value p : params.values()) {
            if (!weights.contains(p.name())) {
                throw new WeightsException(file + ": no tensor '" + Text.quote(p.name()) + "' (config.json implies "
                        + p.shape() + ")");
            }
            TensorInfo info = weights.info(p.name());
            if (!Shape.of(info.intShape()).equals(p.shape())) {
                throw new WeightsException(file + ": tensor '" + Text.quote(p.name()) + "' is " + info
                        + " but config.json implies " + p.shape() + " (config and weights disagree)");
            }
            if (format.isInt8(p.name())) {
                if (info.dtype() != DType.I8) {
                    throw new WeightsException(file + ": tensor '" + Text.quote(p.name()) + "' has a '" + p.name()
                            + WeightFormat.SCALE_SUFFIX + "' but dtype " + info.dtype() + "; quantised weights must be I8");
                }
            } else if (info.dtype() == DType.I8 && !p.name().endsWith(WeightFormat.SCALE_SUFFIX)) {
                throw new WeightsException(file + ": tensor '" + Text.quote(p.name()) + "' is I8 but has no '" + p.name()
                        + WeightFormat.SCALE_SUFFIX + "' (int8 conv/linear weights need per-output-channel scales)");
            } else if (!info.dtype().isFloatingPoint()) {
                throw new WeightsException(file + ": tensor '" + Text.quote(p.name()) + "' has dtype " + info.dtype()
                        + "; UNet weights must be F32, F16, BF16 or F64 (or I8 with a scale)");
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
                    + Text.quote(unused.getFirst()) + "' (config and weights disagree)");
        }
    }

    /** Parameter shapes do not depend on the input size: any graph declares them all. */
    private static Map<String, Value> parameters(UNet2DConditionModel unet, WeightFormat format) {
        int side = 2 << unet.config().levels();
        return unet.graph(1, side, side, 1, format).params();
    }

    /**
     * What the weights say beyond the config: a conv/linear weight with a {@code _scale}
     * companion is int8; a model whose config.json is marked {@code latte_pruned} takes its inner
     * widths from the stored shapes (an unmarked model must match its config exactly).
     */
    private static WeightFormat format(UNetConfig config, SafeTensorsFile weights, Int8Mode mode) {
        boolean pruned = config.lattePruned();
        return new WeightFormat() {
            @Override
            public int[] shape(String name) {
                return pruned && weights.contains(name) ? weights.info(name).intShape() : null;
            }

            @Override
            public boolean isInt8(String name) {
                return weights.contains(name + SCALE_SUFFIX);
            }

            @Override
            public Int8Mode int8Mode() {
                return mode;
            }
        };
    }

    /** The weights' format with int8 layers run in {@code mode}. */
    public WeightFormat weightFormat(Int8Mode mode) {
        return format(unet.config(), weights, mode);
    }

    /** Whether any conv/linear weight is stored as int8. */
    public boolean isQuantized() {
        return weights.tensors().stream().anyMatch(t -> t.dtype() == DType.I8);
    }

    /** Whether config.json is marked {@code latte_pruned} (inner widths come from the weights). */
    public boolean isPruned() {
        return unet.config().lattePruned();
    }

    /** fp32 / fp16 / int8-per-channel, and pruned, as {@code latte info} shows it. */
    public String mode() {
        String m = isQuantized() ? "int8-per-channel" : bytesByDtype().containsKey(DType.F32) ? "fp32"
                : bytesByDtype().containsKey(DType.F16) ? "fp16" : String.valueOf(bytesByDtype().keySet());
        return isPruned() ? m + ", pruned" : m;
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
        return graph(batch, height, width, contextLength, Int8Mode.W8A16);
    }

    /** The graph with int8 weights (if any) run in {@code mode}. */
    public Graph graph(int batch, int height, int width, int contextLength, Int8Mode mode) {
        return unet.graph(batch, height, width, contextLength, weightFormat(mode));
    }

    /** Elements of all tensors but int8 weights' scales (an int8 model counts as its float original). */
    public long parameterCount() {
        return weights.tensors().stream().filter(t -> !isInt8Scale(t.name())).mapToLong(TensorInfo::numel).sum();
    }

    private boolean isInt8Scale(String name) {
        if (!name.endsWith(WeightFormat.SCALE_SUFFIX)) {
            return false;
        }
        String w = name.substring(0, name.length() - WeightFormat.SCALE_SUFFIX.length());
        return weights.contains(w) && weights.info(w).dtype() == DType.I8;
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
