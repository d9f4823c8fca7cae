package dev.latte.bench;

import dev.latte.core.Shape;
import dev.latte.graph.Value;
import dev.latte.model.ModelWriter;
import dev.latte.unet.UNet2DConditionModel;
import dev.latte.weights.DType;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.UNetConfig;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.BiConsumer;
import java.util.stream.IntStream;

/**
 * Seeded random weights for a UNet config, drawn as the goldens' random models are (weights
 * N(0, 1/fan_in), norm weights 1 + 0.1·N, biases 0.1·N), generated in memory, tensor by tensor and
 * in parallel: each tensor has its own generator seeded from (seed, name), so a tensor's values do
 * not depend on the order or the threads. {@link #export} writes the same values as a diffusers
 * folder (config.json + safetensors) for other runtimes (bench/torch_unet.py) to load.
 */
public final class RandomWeights {
    private RandomWeights() {
    }

    /** The parameters of {@code unet} (names and shapes, in graph order). */
    public static List<Value> parameters(UNet2DConditionModel unet) {
        int side = 2 << unet.config().levels();
        return List.copyOf(unet.graph(1, side, side, 1).params().values());
    }

    /** The values of one parameter. */
    public static float[] values(long seed, String name, Shape shape) {
        SplittableRandom rnd = new SplittableRandom(seed * 0x9E3779B97F4A7C15L ^ name.hashCode());
        float[] v = new float[shape.size()];
        boolean norm = name.matches(".*norm[^.]*\\.weight");
        boolean bias = name.endsWith(".bias");
        long fanIn = shape.rank() > 1 ? shape.numel() / shape.dim(0) : 1;
        double std = bias || norm ? 0.1 : 1 / Math.sqrt(fanIn);
        double mean = norm ? 1 : 0;
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (mean + std * rnd.nextGaussian());
        }
        return v;
    }

    /**
     * Generates every parameter in chunks of {@code chunk} tensors (each chunk in parallel) and hands
     * them to {@code sink} one at a time, in order, on the calling thread (so a GPU upload may run
     * there); at most one chunk is held in memory.
     */
    public static void generate(List<Value> params, long seed, int chunk, BiConsumer<Value, float[]> sink) {
        for (int start = 0; start < params.size(); start += chunk) {
            List<Value> part = params.subList(start, Math.min(params.size(), start + chunk));
            float[][] data = new float[part.size()][];
            IntStream.range(0, part.size()).parallel()
                    .forEach(i -> data[i] = values(seed, part.get(i).name(), part.get(i).shape()));
            for (int i = 0; i < part.size(); i++) {
                sink.accept(part.get(i), data[i]);
                data[i] = null;
            }
        }
    }

    /**
     * Writes {@code dir/config.json} ({@code configJson} as given) and
     * {@code dir/diffusion_pytorch_model.safetensors} with every parameter as F16 or F32.
     */
    public static Path export(Path dir, String configJson, long seed, DType dtype) {
        if (dtype != DType.F16 && dtype != DType.F32) {
            throw new IllegalArgumentException("export dtype must be F16 or F32, not " + dtype);
        }
        UNetConfig cfg = UNetConfig.parse(configJson, "config.json");
        List<Value> params = parameters(new UNet2DConditionModel(cfg, "config.json"));
        SafeTensorsWriter w = new SafeTensorsWriter();
        w.metadata("latte_random_seed", Long.toString(seed));
        generate(params, seed, 64, (p, v) -> {
            int[] d = p.shape().dims();
            long[] shape = new long[d.length];
            for (int i = 0; i < d.length; i++) {
                shape[i] = d[i];
            }
            if (dtype == DType.F32) {
                w.addF32(p.name(), shape, v);
            } else {
                MemorySegment bytes = MemorySegment.ofArray(new byte[2 * v.length]);
                for (int i = 0; i < v.length; i++) {
                    bytes.set(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 2L * i,
                            Float.floatToFloat16(v[i]));
                }
                w.add(p.name(), DType.F16, shape, bytes);
            }
        });
        ModelWriter.write(dir, configJson, w, "diffusion_pytorch_model.safetensors");
        return dir;
    }
}
