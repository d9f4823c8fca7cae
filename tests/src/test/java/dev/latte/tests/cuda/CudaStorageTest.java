package dev.latte.tests.cuda;

import dev.latte.core.Backend;
import dev.latte.core.Shape;
import dev.latte.core.StorageType;
import dev.latte.core.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Storage per tensor on the fp16 CUDA backend: a tensor stored as fp32 keeps token ids fp16 would
 * round (49407 → 49408), embedding reads such ids under fp16 tables, and every other op refuses a
 * tensor of another float type by name instead of misreading its bytes.
 */
class CudaStorageTest {
    @Test
    void fp32TensorsKeepIdsFp16WouldRound() {
        try (Backend b = CudaAliasTest.open("fp16")) {
            float[] ids = {49407, 2049, 0, 4097};
            Tensor t = b.upload(Shape.of(1, 4), ids, StorageType.F32);
            assertArrayEquals(ids, b.download(t));
            assertArrayEquals(new float[] {49408}, b.download(b.upload(Shape.of(1), new float[] {49407}))); // the activations' fp16
            Tensor arena = b.arena(4096);
            Tensor view = b.view(arena, 256, Shape.of(1, 4), StorageType.F32);
            b.write(view, ids);
            assertArrayEquals(ids, b.download(view));
            // CLIP's 49408-row table, row r holding r mod 8: fp16 ids would read row 49408 (none: NaN), 2048, 4096
            float[] table = new float[49408];
            for (int r = 0; r < table.length; r++) {
                table[r] = r % 8;
            }
            Tensor out = b.allocate(Shape.of(1, 4, 1));
            b.embedding(t, b.upload(Shape.of(49408, 1), table), null, out);
            assertArrayEquals(new float[] {7, 1, 0, 1}, b.download(out));
        }
    }

    @Test
    void anOpRefusesATensorOfAnotherFloatType() {
        try (Backend b = CudaAliasTest.open("fp16")) {
            Tensor x = b.upload(Shape.of(2, 4), new float[8], StorageType.F32);
            Tensor out = b.allocate(Shape.of(2, 4));
            var e = assertThrows(IllegalArgumentException.class, () -> b.silu(x, out));
            assertTrue(e.getMessage().endsWith(": tensor [2, 4] is stored as fp32; this op reads fp16"), e.getMessage());
            Tensor halfIds = b.upload(Shape.of(1, 2), new float[] {1, 2});
            e = assertThrows(IllegalArgumentException.class, () -> b.embedding(halfIds,
                    b.upload(Shape.of(4, 2), new float[8]), null, b.allocate(Shape.of(1, 2, 2))));
            assertTrue(e.getMessage().endsWith(": ids stored as fp16; token ids need fp32 (above 2048 fp16 rounds them)"),
                    e.getMessage());
        }
    }
}
