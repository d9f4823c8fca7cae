package dev.latte.cuda.backend;

import dev.latte.cuda.CudaKernel;
import dev.latte.cuda.KernelArgs;
import java.util.HashSet;
import java.util.Set;

/**
 * Launcher for {@code attention_v2.cu} (FlashAttention-2 on tensor cores, fp16, sm_80+) on raw
 * device pointers: q, out [B, Sq, H·D], k, v [B, Sk, H·D]. Owns the kernel's launch constants: 64
 * queries and 128 threads per block; the head dim padded to the next kernel width (32, 48, 64, 80,
 * 96, 128, 160) with 64 keys per shared stage up to 80 and 32 beyond (the block's shared memory,
 * 4·keys·(width+8)·2 bytes, then stays under the 48 KiB every device grants without opt-in).
 */
final class AttentionV2 {
    static final int QUERIES = 64, THREADS = 128;
    private static final int[] WIDTHS = {32, 48, 64, 80, 96, 128, 160};
    private static final int DEFAULT_SHARED_LIMIT = 48 * 1024;
    private static final float LOG2E = 1.4426950408889634f;

    private final KernelLibrary lib;
    private final Set<String> raised = new HashSet<>();

    AttentionV2(KernelLibrary lib) {
        this.lib = lib;
    }

    /** The padded head dim this kernel family runs {@code d} at, or 0 if none. */
    static int width(int d) {
        if (d <= 0 || d % 8 != 0) {
            return 0;
        }
        for (int w : WIDTHS) {
            if (d <= w) {
                return w;
            }
        }
        return 0;
    }

    static int keysPerStage(int width) {
        return width <= 80 ? 64 : 32;
    }

    static int sharedBytes(int width) {
        return 4 * keysPerStage(width) * (width + 8) * 2;
    }

    /** Why v2 cannot run head dim {@code d} (or these pointers), or null if it can. */
    static String unsupported(int d, boolean aligned) {
        if (width(d) == 0) {
            return "attention=v2 takes head dims that are multiples of 8 up to 160, not " + d;
        }
        if (!aligned) {
            return "attention=v2 needs q, k, v and out 16-byte aligned";
        }
        return null;
    }

    /** Whether every pointer is 16-byte aligned (cp.async copies 16 bytes). */
    static boolean aligned(long... ptrs) {
        for (long p : ptrs) {
            if ((p & 15) != 0) {
                return false;
            }
        }
        return true;
    }

    void launch(long q, long k, long v, long out, int b, int sq, int sk, int heads, int d, float scale,
                boolean causal) {
        int w = width(d);
        String reason = unsupported(d, aligned(q, k, v, out));
        if (reason != null) {
            throw new IllegalArgumentException(reason);
        }
        if (sk <= 0) {
            throw new IllegalArgumentException("attention=v2: no keys (Sk = " + sk + ")");
        }
        CudaKernel kernel = lib.kernel("attention_v2.cu", "attention_v2_dp" + w + "_f16");
        int shared = sharedBytes(w);
        if (shared > DEFAULT_SHARED_LIMIT && raised.add(kernel.name())) {
            kernel.setMaxDynamicSharedMemory(shared);
        }
        kernel.launch((sq + QUERIES - 1) / QUERIES, heads, b, THREADS, 1, 1, shared, new KernelArgs()
                .ptr(q).ptr(k).ptr(v).ptr(out).i32(sq).i32(sk).i32(heads).i32(d).f32(scale * LOG2E)
                .i32(causal ? 1 : 0));
    }
}
