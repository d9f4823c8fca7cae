package dev.latte.cpu;

import dev.latte.core.Conv2dParams;
import dev.latte.core.NormAct;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every op run on views into one arena (at odd offsets, between sentinel floats) must give
 * exactly what it gives on tensors that own their arrays, write nothing outside its output, and
 * leave its inputs alone; the ops that may run in place give the same bits in place.
 */
class CpuArenaTest {
    static final CpuBackend CPU = new CpuBackend(2);
    static final float SENTINEL = -12345.5f;

    @AfterAll
    static void close() {
        CPU.close();
    }

    interface Body {
        void run(CpuBackend b, Tensor[] in, Tensor out);
    }

    record Case(String name, Shape[] in, Shape out, Body body) {
    }

    static Shape s(int... d) {
        return Shape.of(d);
    }

    static float[] random(SplittableRandom rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (rnd.nextDouble() * 4 - 2);
        }
        return v;
    }

    static List<Case> cases() {
        List<Case> c = new ArrayList<>();
        c.add(new Case("conv2d 3x3 stride 2", new Shape[] {s(2, 3, 7, 6), s(5, 3, 3, 3), s(5)}, s(2, 5, 4, 3),
                (b, i, o) -> b.conv2d(i[0], i[1], i[2], Conv2dParams.of(2, 1), o)));
        c.add(new Case("conv2dFused norm+silu+residual", new Shape[] {s(1, 4, 5, 5), s(4), s(4), s(6, 4, 3, 3), s(6),
                s(1, 6, 5, 5)}, s(1, 6, 5, 5), (b, i, o) -> b.conv2dFused(i[0], new NormAct(i[1], i[2], 2, 1e-5f, true),
                i[3], i[4], Conv2dParams.of(1, 1), i[5], o)));
        c.add(new Case("groupNorm", new Shape[] {s(2, 4, 3, 3), s(4), s(4)}, s(2, 4, 3, 3),
                (b, i, o) -> b.groupNorm(i[0], i[1], i[2], 2, 1e-5f, true, o)));
        c.add(new Case("layerNorm", new Shape[] {s(2, 5, 8), s(8), s(8)}, s(2, 5, 8),
                (b, i, o) -> b.layerNorm(i[0], i[1], i[2], 1e-5f, o)));
        c.add(new Case("linear", new Shape[] {s(2, 5, 8), s(6, 8), s(6)}, s(2, 5, 6),
                (b, i, o) -> b.linear(i[0], i[1], i[2], o)));
        c.add(new Case("attention", new Shape[] {s(2, 5, 8), s(2, 7, 8), s(2, 7, 8)}, s(2, 5, 8),
                (b, i, o) -> b.attention(i[0], i[1], i[2], 2, 0.5f, o)));
        c.add(new Case("silu", new Shape[] {s(3, 50)}, s(3, 50), (b, i, o) -> b.silu(i[0], o)));
        c.add(new Case("gelu", new Shape[] {s(3, 50)}, s(3, 50), (b, i, o) -> b.gelu(i[0], o)));
        c.add(new Case("geglu", new Shape[] {s(3, 10)}, s(3, 5), (b, i, o) -> b.geglu(i[0], o)));
        c.add(new Case("timestepEmbedding", new Shape[] {s(3)}, s(3, 9),
                (b, i, o) -> b.timestepEmbedding(i[0], true, 1f, o)));
        c.add(new Case("upsampleNearest", new Shape[] {s(1, 2, 3, 2)}, s(1, 2, 6, 4), (b, i, o) -> b.upsampleNearest(i[0], o)));
        c.add(new Case("concatChannels", new Shape[] {s(2, 2, 3, 3), s(2, 3, 3, 3)}, s(2, 5, 3, 3),
                (b, i, o) -> b.concatChannels(i[0], i[1], o)));
        c.add(new Case("add", new Shape[] {s(4, 33), s(4, 33)}, s(4, 33), (b, i, o) -> b.add(i[0], i[1], o)));
        c.add(new Case("addChannelBias", new Shape[] {s(2, 3, 4, 4), s(2, 3)}, s(2, 3, 4, 4),
                (b, i, o) -> b.addChannelBias(i[0], i[1], o)));
        c.add(new Case("scale", new Shape[] {s(70)}, s(70), (b, i, o) -> b.scale(i[0], 0.37f, o)));
        c.add(new Case("nchwToTokens", new Shape[] {s(2, 3, 4, 5)}, s(2, 20, 3), (b, i, o) -> b.nchwToTokens(i[0], o)));
        c.add(new Case("tokensToNchw", new Shape[] {s(2, 20, 3)}, s(2, 3, 4, 5), (b, i, o) -> b.tokensToNchw(i[0], o)));
        return c;
    }

    /** Inputs and the output at odd float offsets in one arena, sentinels in the gaps. */
    @TestFactory
    Stream<DynamicTest> viewsGiveTheOwnedResult() {
        return cases().stream().map(c -> DynamicTest.dynamicTest(c.name(), () -> {
            SplittableRandom rnd = new SplittableRandom(c.name().hashCode());
            float[][] host = new float[c.in().length][];
            Tensor[] owned = new Tensor[c.in().length];
            for (int i = 0; i < host.length; i++) {
                host[i] = random(rnd, c.in()[i].size());
                owned[i] = CPU.upload(c.in()[i], host[i]);
            }
            Tensor ownedOut = CPU.allocate(c.out());
            c.body().run(CPU, owned, ownedOut);
            float[] expected = CPU.download(ownedOut);

            int[] at = new int[host.length + 1];
            int pos = 3;
            for (int i = 0; i <= host.length; i++) {
                at[i] = pos;
                pos += (i < host.length ? host[i].length : c.out().size()) + 5;
            }
            Tensor arena = CPU.arena((long) pos * Float.BYTES);
            float[] all = new float[pos];
            Arrays.fill(all, SENTINEL);
            CPU.write(arena, all);
            Tensor[] views = new Tensor[host.length];
            for (int i = 0; i < host.length; i++) {
                views[i] = CPU.view(arena, (long) at[i] * Float.BYTES, c.in()[i]);
                CPU.write(views[i], host[i]);
            }
            Tensor out = CPU.view(arena, (long) at[host.length] * Float.BYTES, c.out());
            c.body().run(CPU, views, out);
            assertArrayEquals(expected, CPU.download(out), c.name());

            float[] after = CPU.download(arena);
            for (int i = 0; i < host.length; i++) {
                assertArrayEquals(host[i], Arrays.copyOfRange(after, at[i], at[i] + host[i].length), "input " + i);
            }
            boolean[] used = new boolean[pos];
            for (int i = 0; i <= host.length; i++) {
                Arrays.fill(used, at[i], at[i] + (i < host.length ? host[i].length : c.out().size()), true);
            }
            for (int k = 0; k < pos; k++) {
                if (!used[k]) {
                    assertEquals(SENTINEL, after[k], "float " + k + " outside every tensor was written");
                }
            }
            CPU.release(arena);
        }));
    }

    /** The ops the planner runs in place give the out-of-place bits when out is the input's view. */
    @TestFactory
    Stream<DynamicTest> inPlaceGivesTheSameBits() {
        // case name → index of the input out may be
        return Stream.of(new Object[] {"silu", 0}, new Object[] {"gelu", 0}, new Object[] {"scale", 0},
                new Object[] {"add", 0}, new Object[] {"add", 1}, new Object[] {"addChannelBias", 0},
                new Object[] {"groupNorm", 0}, new Object[] {"layerNorm", 0},
                new Object[] {"conv2dFused norm+silu+residual", 5}).map(p -> {
            String name = (String) p[0];
            int alias = (Integer) p[1];
            Case c = cases().stream().filter(k -> k.name().equals(name)).findFirst().orElseThrow();
            return DynamicTest.dynamicTest(name + " out = input " + alias, () -> {
                SplittableRandom rnd = new SplittableRandom(name.hashCode() + alias);
                float[][] host = new float[c.in().length][];
                Tensor[] owned = new Tensor[c.in().length];
                for (int i = 0; i < host.length; i++) {
                    host[i] = random(rnd, c.in()[i].size());
                    owned[i] = CPU.upload(c.in()[i], host[i]);
                }
                Tensor ownedOut = CPU.allocate(c.out());
                c.body().run(CPU, owned, ownedOut);
                int total = Arrays.stream(host).mapToInt(h -> h.length + 8).sum();
                Tensor arena = CPU.arena((long) total * Float.BYTES);
                Tensor[] views = new Tensor[host.length];
                int pos = 8;
                for (int i = 0; i < host.length; i++) {
                    views[i] = CPU.view(arena, (long) pos * Float.BYTES, c.in()[i]);
                    CPU.write(views[i], host[i]);
                    pos += host[i].length + 8;
                }
                c.body().run(CPU, views, views[alias]);
                assertArrayEquals(CPU.download(ownedOut), CPU.download(views[alias]));
                CPU.release(arena);
            });
        });
    }

    @Test
    void conv2dFusedAllocatesNothingAndOverlapsAreRefused() {
        Tensor arena = CPU.arena(4096);
        Tensor x = CPU.view(arena, 0, s(1, 2, 4, 4));
        Tensor w = CPU.upload(s(2, 2, 3, 3), new float[36]);
        Tensor g = CPU.upload(s(2), new float[] {1, 1}), b = CPU.upload(s(2), new float[2]);
        Tensor out = CPU.view(arena, 256, s(1, 2, 4, 4));
        long before = CPU.allocations();
        CPU.conv2dFused(x, new NormAct(g, b, 1, 1e-5f, true), w, null, Conv2dParams.of(1, 1), out, out);
        assertEquals(before, CPU.allocations());
        // out overlapping x (conv), or partly overlapping an in-place operand, is refused
        Tensor shifted = CPU.view(arena, 4, s(1, 2, 4, 4));
        assertThrows(IllegalArgumentException.class, () -> CPU.conv2d(x, w, null, Conv2dParams.of(1, 1), shifted));
        assertThrows(IllegalArgumentException.class, () -> CPU.add(x, x, shifted));
        assertThrows(IllegalArgumentException.class, () -> CPU.view(arena, 2, s(4)));
        assertThrows(IllegalArgumentException.class, () -> CPU.view(arena, 4096, s(1)));
        assertThrows(IllegalStateException.class, () -> ((CpuTensor) x).data());
        CPU.release(arena);
        assertThrows(IllegalStateException.class, () -> CPU.download(x), "a view dies with its arena");
        assertTrue(CPU.supportsArena());
    }
}
