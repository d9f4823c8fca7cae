package dev.latte.plan;

import dev.latte.core.Shape;

import java.util.Comparator;
import java.util.List;
import java.util.Locale;

/**
 * Where every activation of one graph lives in one arena: a byte offset per activation, chosen
 * so that two activations whose lifetimes overlap never share a byte, except an in-place op's
 * output, which takes the bytes of the input it overwrites ({@link Activation#inPlaceOf}).
 * Pure data: no backend, no weights, so it can be made and checked anywhere.
 *
 * @param strategy        the assignment strategy that produced the offsets
 * @param elementBytes    bytes per element (fp32 4, fp16 2)
 * @param alignment       every offset is a multiple of this
 * @param opCount         ops in the graph; an activation kept to the end has {@code lastOp == opCount}
 * @param activations     every planned activation (graph inputs and op outputs), by value id
 * @param keptOutputs     named outputs that live to the end of the step
 * @param naiveBytes      the sum of all activations' bytes: one allocation each, nothing reused
 * @param lowerBoundBytes the largest total of (aligned) bytes live at one op: no arena can be smaller
 * @param arenaBytes      the arena this plan needs
 * @param external        inputs and outputs the caller keeps outside the arena in storage of its own (offset
 *                        -1), named by the input or output name: not in {@code activations} or the totals
 */
public record MemoryPlan(String strategy, int elementBytes, int alignment, int opCount, List<Activation> activations,
                         List<String> keptOutputs, long naiveBytes, long lowerBoundBytes, long arenaBytes,
                         List<Activation> external) {

    /** A plan with everything in the arena. */
    public MemoryPlan(String strategy, int elementBytes, int alignment, int opCount, List<Activation> activations,
                      List<String> keptOutputs, long naiveBytes, long lowerBoundBytes, long arenaBytes) {
        this(strategy, elementBytes, alignment, opCount, activations, keptOutputs, naiveBytes, lowerBoundBytes,
                arenaBytes, List.of());
    }

    /** Bytes of the {@link #external} tensors, which live outside the arena. */
    public long externalBytes() {
        return external.stream().mapToLong(Activation::bytes).sum();
    }

    /**
     * One activation.
     *
     * @param valueId   the graph value id
     * @param firstOp   the op that writes it (0 for graph inputs, written by the caller before op 0)
     * @param lastOp    the last op that reads it ({@code opCount} for outputs kept to the end)
     * @param inPlaceOf the value id of the input whose bytes this op output overwrites, or -1
     */
    public record Activation(int valueId, String name, Shape shape, long bytes, int firstOp, int lastOp,
                             long offset, int inPlaceOf) {
        public long end() {
            return offset + bytes;
        }
    }

    public MemoryPlan {
        activations = List.copyOf(activations);
        keptOutputs = List.copyOf(keptOutputs);
        external = List.copyOf(external);
    }

    /** arena ÷ lower bound: 1.0 is optimal. */
    public double ratioToLowerBound() {
        return lowerBoundBytes == 0 ? 1.0 : arenaBytes / (double) lowerBoundBytes;
    }

    /** arena ÷ naive. */
    public double ratioToNaive() {
        return naiveBytes == 0 ? 0.0 : arenaBytes / (double) naiveBytes;
    }

    /** The activation of value {@code id}, or null when the value is not planned (a parameter). */
    public Activation activation(int valueId) {
        // activations are sorted by value id
        int lo = 0, hi = activations.size() - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            int id = activations.get(mid).valueId();
            if (id == valueId) {
                return activations.get(mid);
            } else if (id < valueId) {
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return null;
    }

    /** The {@code n} largest activations, largest first. */
    public List<Activation> largest(int n) {
        return activations.stream().sorted(Comparator.comparingLong(Activation::bytes).reversed()
                .thenComparingInt(Activation::valueId)).limit(n).toList();
    }

    /**
     * Checks the plan's promise: every activation inside the arena and aligned, and no two
     * activations live at the same op share a byte unless one overwrites the other in place at
     * the op where the input dies. Throws {@link IllegalStateException} naming the pair.
     */
    public void verify() {
        for (Activation a : activations) {
            if (a.offset() < 0 || a.end() > arenaBytes || a.offset() % alignment != 0) {
                throw new IllegalStateException("activation '" + a.name() + "' at [" + a.offset() + ", " + a.end()
                        + ") is outside the " + arenaBytes + "-byte arena or not " + alignment + "-aligned");
            }
        }
        List<Activation> byStart = activations.stream().sorted(Comparator.comparingInt(Activation::firstOp)).toList();
        for (int i = 0; i < byStart.size(); i++) {
            Activation a = byStart.get(i);
            for (int j = i + 1; j < byStart.size() && byStart.get(j).firstOp() <= a.lastOp(); j++) {
                Activation b = byStart.get(j);
                boolean bytes = a.offset() < b.end() && b.offset() < a.end();
                if (bytes && !inPlacePair(a, b) && !inPlacePair(b, a)) {
                    throw new IllegalStateException("activations '" + a.name() + "' (ops " + a.firstOp() + ".."
                            + a.lastOp() + ", bytes " + a.offset() + ".." + a.end() + ") and '" + b.name() + "' (ops "
                            + b.firstOp() + ".." + b.lastOp() + ", bytes " + b.offset() + ".." + b.end()
                            + ") are live together and share bytes");
                }
            }
        }
    }

    /** b overwrites a in place (same bytes) at the op where a dies and b is born. */
    private static boolean inPlacePair(Activation a, Activation b) {
        return b.inPlaceOf() == a.valueId() && a.offset() == b.offset() && a.bytes() == b.bytes()
                && a.lastOp() == b.firstOp();
    }

    /** One line: the four totals. */
    public String summary() {
        return String.format(Locale.ROOT, "%d activations, naive %s, lower bound %s, arena %s"
                        + " (%.4f x lower bound, %.4f x naive), strategy %s",
                activations.size(), mib(naiveBytes), mib(lowerBoundBytes), mib(arenaBytes), ratioToLowerBound(),
                ratioToNaive(), strategy);
    }

    static String mib(long bytes) {
        return String.format(Locale.ROOT, "%.1f MiB", bytes / 1048576.0);
    }

    /**
     * The plan as JSON: the four totals, then every activation's name, bytes, first and last op,
     * offset and (for in-place outputs) the input it overwrites, so anyone can re-check it.
     */
    public String toJson() {
        StringBuilder s = new StringBuilder(64 * activations.size() + 512);
        s.append("{\n  \"strategy\": ").append(quote(strategy))
                .append(",\n  \"element_bytes\": ").append(elementBytes)
                .append(",\n  \"alignment\": ").append(alignment)
                .append(",\n  \"op_count\": ").append(opCount)
                .append(",\n  \"kept_outputs\": [");
        for (int i = 0; i < keptOutputs.size(); i++) {
            s.append(i == 0 ? "" : ", ").append(quote(keptOutputs.get(i)));
        }
        s.append("],\n  \"naive_bytes\": ").append(naiveBytes)
                .append(",\n  \"lower_bound_bytes\": ").append(lowerBoundBytes)
                .append(",\n  \"arena_bytes\": ").append(arenaBytes)
                .append(",\n  \"arena_over_lower_bound\": ").append(String.format(Locale.ROOT, "%.6f", ratioToLowerBound()))
                .append(",\n  \"arena_over_naive\": ").append(String.format(Locale.ROOT, "%.6f", ratioToNaive()))
                .append(",\n  \"external_bytes\": ").append(externalBytes())
                .append(",\n  \"external\": [");
        for (int i = 0; i < external.size(); i++) {
            Activation a = external.get(i);
            s.append(i == 0 ? "" : ", ").append("{\"name\": ").append(quote(a.name()))
                    .append(", \"shape\": ").append(a.shape().toString().replace(" ", ""))
                    .append(", \"bytes\": ").append(a.bytes()).append('}');
        }
        s.append("],\n  \"activations\": [");
        for (int i = 0; i < activations.size(); i++) {
            Activation a = activations.get(i);
            s.append(i == 0 ? "\n" : ",\n").append("    {\"name\": ").append(quote(a.name()))
                    .append(", \"shape\": ").append(a.shape().toString().replace(" ", ""))
                    .append(", \"bytes\": ").append(a.bytes())
                    .append(", \"first_op\": ").append(a.firstOp())
                    .append(", \"last_op\": ").append(a.lastOp())
                    .append(", \"offset\": ").append(a.offset());
            if (a.inPlaceOf() >= 0) {
                Activation of = activation(a.inPlaceOf());
                s.append(", \"in_place_of\": ").append(quote(of.name()));
            }
            s.append('}');
        }
        return s.append("\n  ]\n}\n").toString();
    }

    private static String quote(String v) {
        StringBuilder s = new StringBuilder("\"");
        for (char c : v.toCharArray()) {
            switch (c) {
                case '"' -> s.append("\\\"");
                case '\\' -> s.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        s.append(String.format("\\u%04x", (int) c));
                    } else {
                        s.append(c);
                    }
                }
            }
        }
        return s.append('"').toString();
    }
}
