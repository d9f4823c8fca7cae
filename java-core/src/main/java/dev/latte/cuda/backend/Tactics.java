package dev.latte.cuda.backend;

import dev.latte.core.Shape;
import dev.latte.cuda.backend.CudaBackend.Precision;
import dev.latte.graph.Graph;
import dev.latte.graph.Op;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * The kernel lab's catalogue and the backend's choice among it (llm.c's {@code dev/cuda}: each kernel
 * family keeps its versions side by side, v1 being the first one written). A {@code Tactics} either
 * forces a version per family, by name ({@link #parse}, {@code "attention=v1"}), or leaves the
 * family to the default tactic table, which picks per shape, storage type and architecture:
 *
 * <table>
 *   <caption>Default tactics (no GPU has measured them yet: chosen from instruction counts, see the README)</caption>
 *   <tr><th>family</th><th>picks</th><th>else</th></tr>
 *   <tr><td>attention</td><td>v2 (tensor cores) for fp16 on sm_80+, head dim a multiple of 8 up to 160,
 *       16-byte aligned tensors</td><td>v1</td></tr>
 *   <tr><td>linear</td><td>v2 (pipelined tensor-core GEMM) for fp16 on sm_80+, in_features a multiple
 *       of 8, 16-byte aligned tensors</td><td>v1</td></tr>
 *   <tr><td>conv</td><td>v2 (implicit GEMM on tensor-core tiles) for fp16 on sm_80+, C·R·S a multiple of
 *       8, up to 64 taps, no Upsample2D folded in</td><td>v1</td></tr>
 * </table>
 *
 * A forced version that cannot run a case (storage type, architecture, shape) is an error naming the
 * version and the reason, never a silent fallback: a benchmark of v2 must time v2.
 */
public final class Tactics {
    /** A kernel family: the ops that share one set of versions. */
    public enum Family {
        ATTENTION, LINEAR, CONV;

        public String id() {
            return name().toLowerCase(Locale.ROOT);
        }

        /** Whether ops of kind {@code opKind} ({@code Op.kind()}) run on this family's kernels. */
        public boolean runs(String opKind) {
            return switch (this) {
                case ATTENTION -> opKind.equals("attention");
                case LINEAR -> opKind.equals("linear");
                case CONV -> opKind.startsWith("conv2d") && !opKind.contains("Int8");
            };
        }

        static Family of(String id) {
            for (Family f : values()) {
                if (f.id().equals(id)) {
                    return f;
                }
            }
            return null;
        }
    }

    /**
     * One version of a family.
     *
     * @param minCc lowest compute capability its kernels are built for (10·major + minor)
     * @param fp32  whether it has fp32-storage kernels
     * @param fp16  whether it has fp16-storage kernels
     */
    public record Version(Family family, String name, String file, int minCc, boolean fp32, boolean fp16,
                          String description) {
        public String id() {
            return family.id() + "=" + name;
        }

        /** Why it cannot run at this precision and architecture, or null if it can. */
        public String unsupported(Precision p, int cc) {
            if (cc < minCc) {
                return id() + " needs sm_" + minCc + "+, kernels are built for sm_" + cc;
            }
            if (p == Precision.FP32 ? !fp32 : !fp16) {
                return id() + " has no " + (p == Precision.FP32 ? "fp32" : "fp16") + " kernels";
            }
            return null;
        }
    }

    public static final Version ATTENTION_V1 = new Version(Family.ATTENTION, "v1", "attention.cu", 0, true, true,
            "flash-style online softmax on fp32 CUDA cores, 32 queries x 32 keys per block");
    public static final Version ATTENTION_V2 = new Version(Family.ATTENTION, "v2", "attention_v2.cu", 80, false, true,
            "FlashAttention-2 on tensor cores: mma.m16n8k16, softmax on the accumulator fragments,"
                    + " cp.async double-buffered K/V, 64 queries per block, causal mask");
    public static final Version LINEAR_V1 = new Version(Family.LINEAR, "v1", "gemm.cu", 0, true, true,
            "64x64x32 tiles, one shared buffer; mma.m16n8k16 for fp16 on sm_80+, FMA otherwise");
    public static final Version LINEAR_V2 = new Version(Family.LINEAR, "v2", "gemm_v2.cu", 80, false, true,
            "128x128x32 tiles, 8 warps, 3-stage cp.async ring, ldmatrix, padded shared rows;"
                    + " epilogues bias, residual, SiLU, GEGLU");
    public static final Version CONV_V1 = new Version(Family.CONV, "v1", "conv.cu", 0, true, true,
            "implicit GEMM on the v1 engine, GroupNorm+SiLU on load, bias and residual in the epilogue");

    public static final Version CONV_V2 = new Version(Family.CONV, "v2", "conv_v2.cu", 80, false, true,
            "implicit GEMM on 128x128 tensor-core tiles, division-free incremental im2col, cp.async weights,"
                    + " GroupNorm as one FMA from per-(n, c) scale/shift");

    /** Every version of every family, in the order the lab lists them. */
    public static final List<Version> VERSIONS = List.of(ATTENTION_V1, ATTENTION_V2, LINEAR_V1, LINEAR_V2,
            CONV_V1, CONV_V2);

    private static final Tactics DEFAULTS = new Tactics(new EnumMap<>(Family.class));

    private final Map<Family, Version> forced;

    private Tactics(Map<Family, Version> forced) {
        this.forced = forced;
    }

    /** The default tactic table for every family. */
    public static Tactics defaults() {
        return DEFAULTS;
    }

    /**
     * {@code "attention=v2,linear=v1"}: each named family forced to that version, the rest on the
     * defaults; {@code ""} or {@code "default"} is {@link #defaults()}. Unknown names are an
     * {@link IllegalArgumentException} listing what exists.
     */
    public static Tactics parse(String spec) {
        Map<Family, Version> forced = new EnumMap<>(Family.class);
        String s = spec == null ? "" : spec.strip();
        if (s.isEmpty() || s.equals("default")) {
            return DEFAULTS;
        }
        for (String item : s.split(",")) {
            String[] kv = item.strip().split("=", -1);
            Family f = kv.length == 2 ? Family.of(kv[0].strip()) : null;
            if (f == null) {
                throw new IllegalArgumentException("kernel version '" + item.strip() + "' is not FAMILY=VERSION with FAMILY one of "
                        + List.of(Family.values()).stream().map(Family::id).collect(Collectors.joining(", ")));
            }
            Version v = version(f, kv[1].strip());
            if (forced.put(f, v) != null) {
                throw new IllegalArgumentException("kernel family " + f.id() + " named twice in '" + spec + "'");
            }
        }
        return new Tactics(forced);
    }

    /** The version {@code name} of family {@code f}; an error listing the family's versions if none. */
    public static Version version(Family f, String name) {
        List<String> names = new ArrayList<>();
        for (Version v : VERSIONS) {
            if (v.family() == f) {
                if (v.name().equals(name)) {
                    return v;
                }
                names.add(v.name());
            }
        }
        throw new IllegalArgumentException("no kernel version " + f.id() + "=" + name + " (" + f.id() + " has "
                + String.join(", ", names) + ")");
    }

    /** The versions of one family. */
    public static List<Version> versions(Family f) {
        return VERSIONS.stream().filter(v -> v.family() == f).toList();
    }

    /** The version forced for {@code f}, or null when the default table decides. */
    public Version forced(Family f) {
        return forced.get(f);
    }

    /** This with {@code v} forced for its family. */
    public Tactics with(Version v) {
        Map<Family, Version> m = new EnumMap<>(Family.class);
        m.putAll(forced);
        m.put(v.family(), v);
        return new Tactics(m);
    }

    /** As below, for as many keys as queries. */
    Version attention(Precision p, int cc, int headDim, boolean aligned, boolean causal) {
        return attention(p, cc, headDim, aligned, causal, true);
    }

    /**
     * The attention version for one call: the forced one (an {@link IllegalArgumentException} naming
     * why, if it cannot run this case), else v2 where it applies, else v1. Both mask causally, but
     * v2 hides key j from query i when j > i, v1 when j > i + Sk − Sq (as the CPU backend does): they
     * agree only when {@code square} (Sq = Sk, the text encoder's case), so v2 takes causal only then.
     */
    Version attention(Precision p, int cc, int headDim, boolean aligned, boolean causal, boolean square) {
        Version f = forced.get(Family.ATTENTION);
        Version v2 = ATTENTION_V2;
        String v2Reason = v2.unsupported(p, cc);
        if (v2Reason == null) {
            v2Reason = AttentionV2.unsupported(headDim, aligned);
        }
        if (v2Reason == null && causal && !square) {
            v2Reason = v2.id() + " masks causally only as many keys as queries";
        }
        if (f == null) {
            return v2Reason == null ? v2 : ATTENTION_V1;
        }
        String reason = f == v2 ? v2Reason : f.unsupported(p, cc);
        if (reason != null) {
            throw new IllegalArgumentException("attention head dim " + headDim + ": " + reason);
        }
        return f;
    }

    /** The linear version for one GEMM: forced (an error naming why, if it cannot run), else v2 where it applies, else v1. */
    Version linear(Precision p, int cc, int k, boolean aligned) {
        Version f = forced.get(Family.LINEAR);
        String v2Reason = LINEAR_V2.unsupported(p, cc);
        if (v2Reason == null) {
            v2Reason = LinearV2.unsupported(k, aligned);
        }
        if (f == null) {
            return v2Reason == null ? LINEAR_V2 : LINEAR_V1;
        }
        String reason = f == LINEAR_V2 ? v2Reason : f.unsupported(p, cc);
        if (reason != null) {
            throw new IllegalArgumentException(reason);
        }
        return f;
    }

    /** The conv version for one convolution: forced (an error naming why, if it cannot run), else v2 where it applies, else v1. */
    Version conv(Precision p, int cc, int c, int r, int s, boolean resized, boolean aligned) {
        Version f = forced.get(Family.CONV);
        String v2Reason = CONV_V2.unsupported(p, cc);
        if (v2Reason == null) {
            v2Reason = ConvV2.unsupported(c, r, s, resized, aligned);
        }
        if (f == null) {
            return v2Reason == null ? CONV_V2 : CONV_V1;
        }
        String reason = f == CONV_V2 ? v2Reason : f.unsupported(p, cc);
        if (reason != null) {
            throw new IllegalArgumentException(reason);
        }
        return f;
    }

    /**
     * The version op {@code op} of {@code g} runs, from its shapes (tensors assumed 16-byte aligned,
     * as arena views and device allocations are), or null for an op no family runs; an
     * {@link IllegalArgumentException} naming why where a forced version cannot run it.
     */
    public Version forOp(Op op, Graph g, Precision p, int cc) {
        return switch (op) {
            case Op.Attention a -> attention(p, cc, g.value(a.q()).shape().dim(2) / a.heads(), true, a.causal(),
                    g.value(a.q()).shape().dim(1) == g.value(a.k()).shape().dim(1));
            case Op.Linear l -> linear(p, cc, g.value(l.w()).shape().dim(1), true);
            case Op.Conv2dFused c -> conv(p, cc, g.value(c.w()).shape(), false);
            case Op.Conv2d c -> conv(p, cc, g.value(c.w()).shape(), false);
            case Op.Conv2dUpsampled c -> conv(p, cc, g.value(c.w()).shape(), true);
            default -> null;
        };
    }

    private Version conv(Precision p, int cc, Shape w, boolean resized) {
        return conv(p, cc, w.dim(1), w.dim(2), w.dim(3), resized, true);
    }

    @Override
    public String toString() {
        if (forced.isEmpty()) {
            return "default";
        }
        return forced.values().stream().map(Version::id).collect(Collectors.joining(","));
    }
}
