package dev.latte.cuda.backend;

import dev.latte.core.OpChecks;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cuda.CudaKernel;
import dev.latte.cuda.KernelArgs;

import java.util.HashMap;
import java.util.Map;

import static dev.latte.cuda.backend.Launch.check;

/**
 * {@code attention.cu}: flash-style attention, one launch, a block per {@link #QUERIES} queries of
 * one (batch, head), K/V streamed through shared memory {@link #KEYS} keys at a time; head dims
 * 40, 64, 80, 160 have their own kernels, any other d ≤ {@link #MAX_D} takes the generic one.
 * Causal (CLIP's text encoder) is a kernel argument: keys past a query score −∞, no mask exists.
 */
final class AttentionLauncher {
    static final String FILE = "attention.cu";
    private static final int WARPS = KernelLibrary.define(FILE, "ATT_WARPS");
    /** Queries a block, keys a shared tile, the largest head dim, as {@code attention.cu} defines them. */
    static final int QUERIES = WARPS * KernelLibrary.define(FILE, "ATT_QPW"),
            KEYS = KernelLibrary.define(FILE, "ATT_KB"),
            MAX_D = KernelLibrary.define(FILE, "ATT_MAX_D");
    private static final int DEFAULT_SHARED_LIMIT = 48 * 1024;

    private final Launch l;
    private final Tactics tactics;
    private final CudaBackend.Precision precision;
    private final AttentionV2 v2;
    /** Per kernel, the dynamic shared memory it was allowed beyond the default (the generic one varies with d). */
    private final Map<String, Integer> sharedRaised = new HashMap<>();

    public AttentionLauncher(Launch launch, Tactics tactics, CudaBackend.Precision precision) {
        this.l = launch;
        this.tactics = tactics;
        this.precision = precision;
        this.v2 = new AttentionV2(launch.library());
    }

    /** The version {@link Tactics} picks: v2 ({@link AttentionV2}) or this file's kernels. */
    public void attention(Tensor qt, Tensor kt, Tensor vt, int heads, float scale, boolean causal, Tensor outt) {
        Shape qs = qt.shape(), ks = kt.shape();
        String what = OpChecks.attention(qt, kt, vt, heads, outt) + (causal ? ", causal" : "");
        int b = qs.dim(0), sq = qs.dim(1), sk = ks.dim(1), d = qs.dim(2) / heads;
        check(heads <= 65535 && b <= 65535, what + " (grid)");
        CudaTensor q = l.cuda(what, qt), k = l.cuda(what, kt), v = l.cuda(what, vt), out = l.cuda(what, outt);
        Launch.apart(what, out, k, "k");
        Launch.apart(what, out, v, "v");
        if ((long) b * sq == 0 || d == 0) {
            return;
        }
        Tactics.Version version;
        try {
            boolean aligned = AttentionV2.aligned(q.ptr(), k.ptr(), v.ptr(), out.ptr());
            version = l.version(Tactics.Family.ATTENTION, aligned,
                    () -> tactics.attention(precision, l.library().computeCapability(), d, aligned, causal, sq == sk));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(what + ": " + e.getMessage(), e);
        }
        if (version == Tactics.ATTENTION_V2) {
            v2.launch(q.ptr(), k.ptr(), v.ptr(), out.ptr(), b, sq, sk, heads, d, scale, causal);
            return;
        }
        check(d <= MAX_D, what + " (head dim " + d + " > " + MAX_D + ")");
        String name = switch (d) {
            case 40, 64, 80, 160 -> "attention_d" + d;
            default -> "attention";
        };
        int shared = 4 * (KEYS * (d + 1) + KEYS * d + QUERIES * d);
        CudaKernel kernel = l.kernel(FILE, name);
        if (shared > DEFAULT_SHARED_LIMIT && shared > sharedRaised.getOrDefault(kernel.name(), DEFAULT_SHARED_LIMIT)) {
            sharedRaised.put(kernel.name(), shared);
            kernel.setMaxDynamicSharedMemory(shared);
        }
        kernel.launch(Launch.blocks(sq, QUERIES), heads, b, WARPS * 32, 1, 1, shared, new KernelArgs()
                .ptr(q.ptr()).ptr(k.ptr()).ptr(v.ptr()).ptr(out.ptr()).i32(sq).i32(sk).i32(heads).i32(d).f32(scale)
                .i32(causal ? 1 : 0));
    }
}
