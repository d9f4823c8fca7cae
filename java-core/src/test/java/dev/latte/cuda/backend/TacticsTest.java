package dev.latte.cuda.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latte.core.Conv2dParams;
import dev.latte.core.Shape;
import dev.latte.cuda.backend.CudaBackend.Precision;
import dev.latte.graph.Graph;
import dev.latte.graph.GraphBuilder;
import dev.latte.graph.Value;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The default tactic table and versions by name, without a GPU. */
class TacticsTest {
    @Test
    void parsesNamesAndRejectsUnknownOnes() {
        assertSame(Tactics.defaults(), Tactics.parse(""));
        assertSame(Tactics.defaults(), Tactics.parse("default"));
        Tactics t = Tactics.parse(" attention=v1 , linear=v1");
        assertEquals("attention=v1,linear=v1", t.toString());
        assertSame(Tactics.ATTENTION_V1, t.forced(Tactics.Family.ATTENTION));
        assertEquals("no kernel version attention=v9 (attention has v1, v2)",
                assertThrows(IllegalArgumentException.class, () -> Tactics.parse("attention=v9")).getMessage());
        assertEquals("kernel version 'softmax=v1' is not FAMILY=VERSION with FAMILY one of attention, linear, conv",
                assertThrows(IllegalArgumentException.class, () -> Tactics.parse("softmax=v1")).getMessage());
        assertEquals("kernel family attention named twice in 'attention=v1,attention=v2'",
                assertThrows(IllegalArgumentException.class, () -> Tactics.parse("attention=v1,attention=v2")).getMessage());
    }

    @Test
    void defaultAttentionTable() {
        Tactics d = Tactics.defaults();
        // tensor cores for fp16 on Ampere and later, every SD1.5 head dim
        for (int hd : new int[] {40, 64, 80, 160}) {
            assertSame(Tactics.ATTENTION_V2, d.attention(Precision.FP16, 80, hd, true, false));
            assertSame(Tactics.ATTENTION_V2, d.attention(Precision.FP16, 90, hd, true, true));
        }
        assertSame(Tactics.ATTENTION_V1, d.attention(Precision.FP32, 90, 64, true, false));
        assertSame(Tactics.ATTENTION_V1, d.attention(Precision.FP16, 75, 64, true, false));
        assertSame(Tactics.ATTENTION_V1, d.attention(Precision.FP16, 90, 44, true, false));
        assertSame(Tactics.ATTENTION_V1, d.attention(Precision.FP16, 90, 192, true, false));
        assertSame(Tactics.ATTENTION_V1, d.attention(Precision.FP16, 90, 64, false, false));
        // both versions mask causally; v2 only where its mask (j <= i) is v1's (j <= i + Sk - Sq)
        assertSame(Tactics.ATTENTION_V1, d.attention(Precision.FP32, 90, 64, true, true));
        assertSame(Tactics.ATTENTION_V1, d.attention(Precision.FP16, 90, 64, true, true, false));
        assertEquals("attention head dim 64: attention=v2 masks causally only as many keys as queries",
                assertThrows(IllegalArgumentException.class,
                        () -> Tactics.parse("attention=v2").attention(Precision.FP16, 90, 64, true, true, false))
                        .getMessage());
        assertEquals("attention head dim 64: attention=v2 needs sm_80+, kernels are built for sm_75",
                assertThrows(IllegalArgumentException.class,
                        () -> Tactics.parse("attention=v2").attention(Precision.FP16, 75, 64, true, false)).getMessage());
    }

    @Test
    void defaultLinearTable() {
        Tactics d = Tactics.defaults();
        assertSame(Tactics.LINEAR_V2, d.linear(Precision.FP16, 80, 320, true));
        assertSame(Tactics.LINEAR_V1, d.linear(Precision.FP16, 75, 320, true));
        assertSame(Tactics.LINEAR_V1, d.linear(Precision.FP32, 90, 320, true));
        assertSame(Tactics.LINEAR_V1, d.linear(Precision.FP16, 90, 300 + 2, true));
        assertSame(Tactics.LINEAR_V1, d.linear(Precision.FP16, 90, 320, false));
        assertEquals("linear=v2 needs in_features a multiple of 8, not 302", assertThrows(IllegalArgumentException.class,
                () -> Tactics.parse("linear=v2").linear(Precision.FP16, 90, 302, true)).getMessage());
        assertSame(Tactics.LINEAR_V1, Tactics.parse("linear=v1").linear(Precision.FP16, 90, 320, true));
    }

    @Test
    void defaultConvTable() {
        Tactics d = Tactics.defaults();
        assertSame(Tactics.CONV_V2, d.conv(Precision.FP16, 80, 320, 3, 3, false, true));
        assertSame(Tactics.CONV_V2, d.conv(Precision.FP16, 90, 2560, 1, 1, false, true));
        assertSame(Tactics.CONV_V1, d.conv(Precision.FP16, 90, 4, 3, 3, false, true));   // conv_in: C·R·S = 36
        assertSame(Tactics.CONV_V1, d.conv(Precision.FP16, 90, 1280, 3, 3, true, true)); // Upsample2D folded in
        assertSame(Tactics.CONV_V1, d.conv(Precision.FP32, 90, 320, 3, 3, false, true));
        assertSame(Tactics.CONV_V1, d.conv(Precision.FP16, 75, 320, 3, 3, false, true));
        assertEquals("conv=v2 needs C·R·S a multiple of 8, not 36", assertThrows(IllegalArgumentException.class,
                () -> Tactics.parse("conv=v2").conv(Precision.FP16, 90, 4, 3, 3, false, true)).getMessage());
    }

    @Test
    void paddedWidthsAndSharedMemory() {
        assertEquals(48, AttentionV2.width(40));
        assertEquals(80, AttentionV2.width(80));
        assertEquals(160, AttentionV2.width(160));
        assertEquals(0, AttentionV2.width(168));
        assertEquals(0, AttentionV2.width(36));
        for (int w : new int[] {32, 48, 64, 80, 96, 128, 160}) {
            // no opt-in above 48 KiB needed for any width
            assertTrue(AttentionV2.sharedBytes(w) <= 48 * 1024, "width " + w);
        }
    }

    /** conv 3x3 4→8 (C·R·S 36), conv 3x3 8→8 (72), linear K 40 and K 37, attention head dim 40 twice. */
    static Graph mixed() {
        GraphBuilder b = new GraphBuilder();
        Value x = b.input("x", Shape.of(1, 4, 6, 6));
        Value h = b.in("conv_a", () -> b.conv2d(x, 8, 3, Conv2dParams.of(1, 1), true));
        b.output("img", b.in("conv_b", () -> b.conv2d(h, 8, 3, Conv2dParams.of(1, 1), true)));
        Value t = b.input("t", Shape.of(1, 7, 40)), u = b.input("u", Shape.of(1, 7, 37));
        Value p = b.in("proj", () -> b.linear(t, 40, true));
        Value q = b.in("proj_odd", () -> b.linear(u, 40, true));
        Value a = b.in("attn1", () -> b.attention(p, q, q, 1));
        b.output("out", b.in("attn2", () -> b.attention(a, q, q, 1)));
        return b.build();
    }

    @Test
    void aStepResolvesEveryOpOnceFromTheTable() {
        Graph g = mixed();
        Tactics d = Tactics.defaults();
        StepTactics s = StepTactics.resolve(g, d, Precision.FP16, 80);
        List<String> versions = new ArrayList<>();
        for (int i = 0; i < g.ops().size(); i++) {
            versions.add(g.ops().get(i).name() + " " + s.at(i).id());
        }
        assertEquals(List.of("conv_a.conv2d conv=v1", "conv_b.conv2d conv=v2", "proj.linear linear=v2",
                "proj_odd.linear linear=v1", "attn1.attention attention=v2", "attn2.attention attention=v2"), versions);
        // the same answers the table gives for each shape
        assertSame(d.conv(Precision.FP16, 80, 4, 3, 3, false, true), s.at(0));
        assertSame(d.conv(Precision.FP16, 80, 8, 3, 3, false, true), s.at(1));
        assertSame(d.linear(Precision.FP16, 80, 40, true), s.at(2));
        assertSame(d.linear(Precision.FP16, 80, 37, true), s.at(3));
        assertSame(d.attention(Precision.FP16, 80, 40, true, false, true), s.at(4));
        // one line per distinct op shape and version; the two attentions share one
        assertEquals(5, s.lines().size(), s.lines().toString());
        assertEquals("conv2d " + g.ops().get(0).describe(g) + ": conv=v1", s.lines().get(0));
        assertEquals("attention " + g.ops().get(4).describe(g) + ": attention=v2 (x2)", s.lines().get(4));
        // fp32, and sm_75, take v1 everywhere
        for (StepTactics v1 : List.of(StepTactics.resolve(g, d, Precision.FP32, 90),
                StepTactics.resolve(g, d, Precision.FP16, 75))) {
            for (int i = 0; i < g.ops().size(); i++) {
                assertEquals("v1", v1.at(i).name(), g.ops().get(i).name());
            }
        }
    }

    @Test
    void aForcedVersionOverridesTheTableForItsFamilyOnly() {
        Graph g = mixed();
        StepTactics s = StepTactics.resolve(g, Tactics.parse("linear=v1,attention=v1"), Precision.FP16, 80);
        assertSame(Tactics.LINEAR_V1, s.at(2));
        assertSame(Tactics.ATTENTION_V1, s.at(4));
        assertSame(Tactics.CONV_V2, s.at(1)); // conv left to the table
        var e = assertThrows(IllegalArgumentException.class,
                () -> StepTactics.resolve(g, Tactics.parse("conv=v2"), Precision.FP16, 80));
        assertEquals("op 'conv_a.conv2d': conv=v2 needs C·R·S a multiple of 8, not 36", e.getMessage());
    }
}
