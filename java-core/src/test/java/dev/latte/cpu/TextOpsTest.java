package dev.latte.cpu;

import dev.latte.core.Backend;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.ref.ReferenceBackend;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The text encoder's ops (causal attention, embedding, quick-GELU): the CPU backend against the naive reference. */
class TextOpsTest {
    static float[] random(int n, long seed) {
        Random r = new Random(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return v;
    }

    static void close(float[] ref, float[] got, double atol, double rtol, String what) {
        assertEquals(ref.length, got.length);
        for (int i = 0; i < ref.length; i++) {
            assertTrue(Math.abs(ref[i] - got[i]) <= atol + rtol * Math.abs(ref[i]),
                    what + "[" + i + "]: " + got[i] + " vs " + ref[i]);
        }
    }

    static float[] attention(Backend b, float[] q, float[] k, float[] v, int batch, int s, int ch, int heads,
                             boolean causal) {
        Shape sh = Shape.of(batch, s, ch);
        Tensor out = b.allocate(sh);
        b.attention(b.upload(sh, q), b.upload(sh, k), b.upload(sh, v), heads, (float) (1 / Math.sqrt(ch / heads)),
                causal, out);
        return b.download(out);
    }

    @Test
    void causalAttentionMatchesTheReferenceAndMasks() {
        int batch = 2, s = 77, ch = 32, heads = 4;
        float[] q = random(batch * s * ch, 1), k = random(batch * s * ch, 2), v = random(batch * s * ch, 3);
        try (CpuBackend cpu = new CpuBackend(2); ReferenceBackend ref = new ReferenceBackend()) {
            float[] r = attention(ref, q, k, v, batch, s, ch, heads, true);
            float[] c = attention(cpu, q, k, v, batch, s, ch, heads, true);
            close(r, c, 1e-6, 1e-5, "causal attention");
            // position 0 sees only key 0: its output is v[0] exactly, per batch and head
            for (int bi = 0; bi < batch; bi++) {
                for (int j = 0; j < ch; j++) {
                    assertEquals(v[bi * s * ch + j], r[bi * s * ch + j], 1e-6);
                    assertEquals(v[bi * s * ch + j], c[bi * s * ch + j], 1e-6);
                }
            }
            // changing a later key changes nothing before it
            float[] k2 = k.clone();
            k2[(s - 1) * ch] += 5;
            float[] c2 = attention(cpu, q, k2, v, batch, s, ch, heads, true);
            for (int i = 0; i < (s - 1) * ch; i++) {
                assertEquals(c[i], c2[i], "row before the changed key");
            }
            float[] full = attention(cpu, q, k, v, batch, s, ch, heads, false);
            assertTrue(Math.abs(full[0] - c[0]) > 1e-3, "non-causal attention must differ at position 0");
        }
    }

    @Test
    void embeddingGathersRowsAndAddsPositions() {
        int vocab = 50, d = 8, len = 5;
        float[] table = random(vocab * d, 4), pos = random(7 * d, 5);
        float[] ids = {3, 0, 49, 7, 7, 1, 2, 3, 4, 5};
        try (CpuBackend cpu = new CpuBackend(2); ReferenceBackend ref = new ReferenceBackend()) {
            float[][] results = new float[2][];
            int n = 0;
            for (Backend b : new Backend[] {ref, cpu}) {
                Tensor out = b.allocate(Shape.of(2, len, d));
                b.embedding(b.upload(Shape.of(2, len), ids), b.upload(Shape.of(vocab, d), table),
                        b.upload(Shape.of(7, d), pos), out);
                results[n++] = b.download(out);
            }
            assertArrayEquals(results[0], results[1]);
            assertEquals(table[49 * d + 2] + pos[2 * d + 2], results[1][2 * d + 2]);
            for (Backend b : new Backend[] {ref, cpu}) {
                Tensor out = b.allocate(Shape.of(1, 2, d));
                var e = assertThrows(IllegalArgumentException.class, () -> b.embedding(
                        b.upload(Shape.of(1, 2), new float[] {1, 50}), b.upload(Shape.of(vocab, d), table), null, out));
                assertTrue(e.getMessage().contains("id 50.0 at [0, 1]"), e.getMessage());
            }
        }
    }

    @Test
    void quickGelu() {
        float[] x = random(1000, 6);
        try (CpuBackend cpu = new CpuBackend(2); ReferenceBackend ref = new ReferenceBackend()) {
            float[][] r = new float[2][];
            int n = 0;
            for (Backend b : new Backend[] {ref, cpu}) {
                Tensor t = b.upload(Shape.of(10, 100), x);
                b.quickGelu(t, t); // in place, as the planner may run it
                r[n++] = b.download(t);
            }
            close(r[0], r[1], 1e-7, 1e-6, "quickGelu");
            assertEquals((float) (x[0] / (1 + Math.exp(-1.702 * x[0]))), r[0][0], 1e-7);
        }
    }
}
