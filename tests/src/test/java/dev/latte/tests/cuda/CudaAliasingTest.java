package dev.latte.tests.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.latte.core.Conv2dParams;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cuda.CudaContext;
import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.CudaBackend.Precision;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The CUDA backend's in-place rules go by bytes, as the CPU's do: two views of an arena are
 * different objects over the same bytes. Same bytes run in place where the op allows it; a
 * partial overlap, or any overlap where the op cannot run in place, is refused.
 */
class CudaAliasingTest {
    static CudaContext ctx;
    static CudaBackend gpu;
    static Tensor arena;

    @BeforeAll
    static void open() {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        ctx = CudaContext.open(0);
        gpu = new CudaBackend(ctx, Precision.FP32);
        arena = gpu.arena(4096);
    }

    @AfterAll
    static void close() {
        if (gpu != null) {
            gpu.close();
        }
        if (ctx != null) {
            ctx.close();
        }
    }

    static float[] ramp(int n, float step) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = i * step;
        }
        return v;
    }

    @Test
    void theSameBytesThroughAnotherViewRunInPlace() {
        Tensor a = gpu.view(arena, 0, Shape.of(64)), b = gpu.view(arena, 1024, Shape.of(64));
        Tensor sameAsA = gpu.view(arena, 0, Shape.of(64));
        gpu.write(a, ramp(64, 1));
        gpu.write(b, ramp(64, 0.5f));
        gpu.add(a, b, sameAsA);
        assertArrayEquals(ramp(64, 1.5f), gpu.download(a));
    }

    @Test
    void aPartialOverlapIsRefused() {
        Tensor a = gpu.view(arena, 0, Shape.of(64)), shifted = gpu.view(arena, 128, Shape.of(64));
        String m = assertThrows(IllegalArgumentException.class, () -> gpu.silu(a, shifted)).getMessage();
        assertTrue(m.contains("partly overlaps"), m);
        Tensor b = gpu.view(arena, 1024, Shape.of(64));
        m = assertThrows(IllegalArgumentException.class, () -> gpu.add(a, b, shifted)).getMessage();
        assertTrue(m.contains("partly overlaps"), m);
    }

    /** A convolution cannot run in place: out over x's bytes, through another view, used to be taken. */
    @Test
    void aConvolutionOverItsOwnInputIsRefused() {
        Tensor x = gpu.view(arena, 0, Shape.of(1, 1, 4, 4)), out = gpu.view(arena, 0, Shape.of(1, 1, 4, 4));
        Tensor w = gpu.view(arena, 2048, Shape.of(1, 1, 3, 3));
        String m = assertThrows(IllegalArgumentException.class,
                () -> gpu.conv2d(x, w, null, Conv2dParams.of(1, 1), out)).getMessage();
        assertTrue(m.contains("out aliases x"), m);
    }

    @Test
    void attentionOverItsKeysIsRefused() {
        Tensor q = gpu.view(arena, 0, Shape.of(1, 4, 8)), k = gpu.view(arena, 1024, Shape.of(1, 4, 8));
        Tensor v = gpu.view(arena, 2048, Shape.of(1, 4, 8)), outOverK = gpu.view(arena, 1024, Shape.of(1, 4, 8));
        String m = assertThrows(IllegalArgumentException.class,
                () -> gpu.attention(q, k, v, 2, 0.5f, outOverK)).getMessage();
        assertTrue(m.contains("(out aliases k)"), m);
    }
}
