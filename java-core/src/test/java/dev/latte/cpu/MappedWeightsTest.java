package dev.latte.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latte.core.Conv2dParams;
import dev.latte.core.NormAct;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.weights.DType;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.TensorInfo;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Weights read in place from a mapped safetensors file ({@link CpuBackend#uploadMapped}): the
 * same results, bit for bit, as the widened values uploaded as heap copies, on every op that
 * reads a weight; and no weight is ever widened whole (conv and linear weights are packed from
 * the file bytes, the rest read per call), in fp32, fp16 and bf16 files alike.
 */
class MappedWeightsTest {
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** name → shape; conv and linear weights get packed, the rest are read in place. */
    private static final Map<String, int[]> TENSORS = new LinkedHashMap<>();

    static {
        TENSORS.put("conv.weight", new int[] {8, 5, 3, 3});
        TENSORS.put("conv.bias", new int[] {8});
        TENSORS.put("norm.weight", new int[] {5});
        TENSORS.put("norm.bias", new int[] {5});
        TENSORS.put("linear.weight", new int[] {13, 20});
        TENSORS.put("linear.bias", new int[] {13});
        TENSORS.put("ln.weight", new int[] {20});
        TENSORS.put("ln.bias", new int[] {20});
        TENSORS.put("embedding.weight", new int[] {11, 20});
        TENSORS.put("positions.weight", new int[] {3, 20});
    }

    @TempDir
    Path tmp;

    /** A safetensors file of {@link #TENSORS} with random values stored as {@code dtype}. */
    private Path write(DType dtype) {
        Random rnd = new Random(7);
        var w = new SafeTensorsWriter();
        Arena arena = Arena.ofAuto();
        for (var e : TENSORS.entrySet()) {
            int n = Shape.of(e.getValue()).size();
            MemorySegment data = arena.allocate((long) n * dtype.byteSize());
            for (int i = 0; i < n; i++) {
                float v = (float) rnd.nextGaussian();
                switch (dtype) {
                    case F32 -> data.setAtIndex(F32, i, v);
                    case F16 -> data.setAtIndex(I16, i, Float.floatToFloat16(v));
                    case BF16 -> data.setAtIndex(I16, i, (short) (Float.floatToRawIntBits(v) >>> 16));
                    default -> throw new AssertionError(dtype);
                }
            }
            long[] shape = java.util.Arrays.stream(e.getValue()).asLongStream().toArray();
            w.add(e.getKey(), dtype, shape, data);
        }
        Path p = tmp.resolve("weights-" + dtype + ".safetensors");
        w.write(p);
        return p;
    }

    private static float[] random(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }

    /** An activation (not an uploaded tensor, which the backend counts as a weight). */
    private static Tensor input(CpuBackend be, Shape s, float[] v) {
        Tensor t = be.allocate(s);
        be.write(t, v);
        return t;
    }

    /** Every op that reads a weight, on {@code be} with weights {@code w}; the outputs by op. */
    private static Map<String, float[]> runOps(CpuBackend be, Map<String, Tensor> w) {
        Random rnd = new Random(3);
        Map<String, float[]> outs = new LinkedHashMap<>();
        Tensor x = input(be, Shape.of(2, 5, 6, 7), random(rnd, 2 * 5 * 6 * 7));
        Tensor tokens = input(be, Shape.of(2, 3, 20), random(rnd, 2 * 3 * 20));
        Tensor o = be.allocate(Shape.of(2, 8, 6, 7));
        be.conv2d(x, w.get("conv.weight"), w.get("conv.bias"), Conv2dParams.of(1, 1), o);
        outs.put("conv2d", be.download(o));
        be.conv2dFused(x, new NormAct(w.get("norm.weight"), w.get("norm.bias"), 5, 1e-5f, true), w.get("conv.weight"),
                w.get("conv.bias"), Conv2dParams.of(1, 1), null, o);
        outs.put("conv2dFused", be.download(o));
        Tensor gn = be.allocate(x.shape());
        be.groupNorm(x, w.get("norm.weight"), w.get("norm.bias"), 5, 1e-5f, true, gn);
        outs.put("groupNorm", be.download(gn));
        Tensor lin = be.allocate(Shape.of(2, 3, 13));
        be.linear(tokens, w.get("linear.weight"), w.get("linear.bias"), lin);
        outs.put("linear", be.download(lin));
        Tensor ln = be.allocate(tokens.shape());
        be.layerNorm(tokens, w.get("ln.weight"), w.get("ln.bias"), 1e-5f, ln);
        outs.put("layerNorm", be.download(ln));
        Tensor ids = input(be, Shape.of(2, 3), new float[] {0, 10, 4, 4, 7, 1});
        be.embedding(ids, w.get("embedding.weight"), w.get("positions.weight"), ln);
        outs.put("embedding", be.download(ln));
        return outs;
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "F16", "BF16"})
    void mappedWeightsComputeWhatTheirWidenedCopiesDoWithoutAWholeCopy(DType dtype) {
        Path file = write(dtype);
        try (SafeTensorsFile f = SafeTensorsFile.open(file); CpuBackend mapped = new CpuBackend(2);
             CpuBackend heap = new CpuBackend(2)) {
            Map<String, Tensor> mw = new LinkedHashMap<>(), hw = new LinkedHashMap<>();
            long fileBytes = 0, inPlace = 0;
            for (TensorInfo t : f.tensors()) {
                Shape s = Shape.of(t.intShape());
                mw.put(t.name(), mapped.uploadMapped(s, f.data(t.name()), t.dtype()));
                hw.put(t.name(), heap.upload(s, f.toFloatArray(t.name())));
                fileBytes += t.byteSize();
                inPlace += t.name().equals("conv.weight") || t.name().equals("linear.weight") ? 0 : t.byteSize();
            }
            assertEquals(0, mapped.heapWeightBytes(), "nothing widened at upload");
            Map<String, float[]> want = runOps(heap, hw), got = runOps(mapped, mw);
            for (String op : want.keySet()) {
                assertArrayEquals(want.get(op), got.get(op), dtype + " " + op);
            }
            // conv and linear weights are held once, packed; everything else is still the file's bytes
            assertEquals(0, mapped.heapWeightBytes(), "a mapped weight was widened whole");
            assertTrue(mapped.packedBytes() > 0);
            assertEquals(heap.packedBytes(), mapped.packedBytes());
            assertEquals(fileBytes, mapped.mappedBytes());
            assertEquals(inPlace, mapped.inPlaceBytes());
            for (String name : TENSORS.keySet()) {
                MemorySegment seg = ((CpuTensor) mw.get(name)).mapped();
                assertNotNull(seg, name);
                assertEquals(f.data(name).address(), seg.address(), name + " is a view of the mapping");
                assertEquals(f.data(name).byteSize(), seg.byteSize(), name);
            }
            // reading a weight back widens a copy for the caller, not one kept on the tensor
            assertArrayEquals(f.toFloatArray("conv.bias"), mapped.download(mw.get("conv.bias")));
            assertArrayEquals(f.toFloatArray("conv.weight"), mapped.download(mw.get("conv.weight")));
            assertEquals(0, mapped.heapWeightBytes());
        }
    }

    /** An op or write() changing a mapped weight copies it first (the map is read-only) and forgets the pack. */
    @Test
    void writingAMappedWeightCopiesItAndLeavesTheFileAlone() throws IOException {
        Path file = write(DType.F16);
        byte[] before = Files.readAllBytes(file);
        try (SafeTensorsFile f = SafeTensorsFile.open(file); CpuBackend be = new CpuBackend(2)) {
            Shape ws = Shape.of(13, 20);
            Tensor w = be.uploadMapped(ws, f.data("linear.weight"), DType.F16);
            Tensor x = be.upload(Shape.of(3, 20), random(new Random(5), 60));
            Tensor out = be.allocate(Shape.of(3, 13));
            be.linear(x, w, null, out); // packs it from the file
            assertTrue(be.packedBytes() > 0);
            float[] changed = random(new Random(9), ws.size());
            be.write(w, changed);
            assertNull(((CpuTensor) w).mapped(), "a written weight no longer reads the file");
            assertEquals(0, be.packedBytes(), "the stale pack is dropped");
            assertArrayEquals(changed, be.download(w));
            be.linear(x, w, null, out);
            float[] got = be.download(out);
            Tensor fresh = be.upload(ws, changed);
            be.linear(x, fresh, null, out);
            assertArrayEquals(be.download(out), got, "the op used the written values");
            assertArrayEquals(before, Files.readAllBytes(file), "the weights file is never written");
        }
    }
}
