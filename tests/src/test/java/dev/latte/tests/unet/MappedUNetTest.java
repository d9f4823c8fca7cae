package dev.latte.tests.unet;

import dev.latte.cpu.CpuBackend;
import dev.latte.cpu.CpuTensor;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.tests.Resources;
import dev.latte.weights.DType;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.TensorInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A UNet folder on the CPU backend reads its weights from the mapped file: an fp16 folder runs
 * without any weight widened whole on the heap (only the packed conv/linear weights are fp32
 * copies), and computes exactly what the same values uploaded as fp32 heap copies compute.
 */
class MappedUNetTest {
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @TempDir
    Path tmp;

    /** unet-tiny with every tensor stored as fp16. */
    private Path fp16Copy() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("unet-tiny-fp16"));
        Files.copy(Resources.unetTiny().resolve(UNetModel.CONFIG), dir.resolve(UNetModel.CONFIG));
        var w = new SafeTensorsWriter();
        try (SafeTensorsFile f = SafeTensorsFile.open(Resources.unetTiny().resolve(UNetModel.WEIGHT_FILES.getFirst()))) {
            Arena arena = Arena.ofAuto();
            for (TensorInfo t : f.tensors()) {
                float[] v = f.toFloatArray(t.name());
                MemorySegment half = arena.allocate(2L * v.length);
                for (int i = 0; i < v.length; i++) {
                    half.setAtIndex(I16, i, Float.floatToFloat16(v[i]));
                }
                w.add(t.name(), DType.F16, t.shape(), half);
            }
        }
        w.write(dir.resolve(UNetModel.WEIGHT_FILES.getFirst()));
        return dir;
    }

    private static float[] gaussian(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }

    @Test
    void fp16FolderRunsFromTheMapWithoutWidenedCopies() throws IOException {
        Path dir = fp16Copy();
        try (UNetModel model = UNetModel.load(dir); CpuBackend mapped = new CpuBackend(2);
             CpuBackend heap = new CpuBackend(2)) {
            assertEquals("fp16", model.mode());
            long fileBytes = model.weights().tensors().stream().mapToLong(TensorInfo::byteSize).sum();
            Map<String, float[]> widened = new HashMap<>();
            for (TensorInfo t : model.weights().tensors()) {
                widened.put(t.name(), model.weights().toFloatArray(t.name()));
            }
            var d = new UNetRunner.Dims(2, 16, 16, 7);
            Random rnd = new Random(1);
            float[] sample = gaussian(rnd, 2 * model.config().inChannels() * 16 * 16);
            float[] context = gaussian(rnd, 2 * 7 * model.unet().contextDim());
            float[] t = {321};
            float[] got, want;
            try (UNetRunner r = new UNetRunner(model, mapped)) {
                assertEquals(0, mapped.heapWeightBytes(), "loading widened a weight");
                for (String name : new String[] {"conv_in.bias", "conv_norm_out.weight", "conv_in.weight"}) {
                    var seg = ((CpuTensor) r.params().get(name)).mapped();
                    assertEquals(model.weights().data(name).address(), seg.address(), name + " is a view of the map");
                    assertEquals(model.weights().data(name).byteSize(), seg.byteSize(), name);
                }
                got = r.forward(d, sample, t, context, Set.of(UNetRunner.OUT)).get(UNetRunner.OUT);
                assertEquals(0, mapped.heapWeightBytes(), "a forward widened a weight whole");
                assertEquals(fileBytes, mapped.mappedBytes());
                assertTrue(mapped.inPlaceBytes() > 0 && mapped.inPlaceBytes() < fileBytes / 10,
                        "in place: " + mapped.inPlaceBytes() + " of " + fileBytes);
                // the same fp16 values as fp32 heap copies (the replaced-weights path uploads them)
                try (UNetRunner h = new UNetRunner(model, heap, widened)) {
                    want = h.forward(d, sample, t, context, Set.of(UNetRunner.OUT)).get(UNetRunner.OUT);
                    assertEquals(heap.packedBytes(), mapped.packedBytes(), "the same packs, made from the fp16 bytes");
                }
                assertTrue(mapped.packedBytes() > fileBytes, "packs are fp32");
            }
            assertArrayEquals(want, got);
        }
    }
}
