package dev.latte.plan;

import dev.latte.graph.Graph;
import dev.latte.graph.Op;
import dev.latte.graph.Value;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * The time-sliced pool: plans every activation of a graph into one arena ahead of time.
 *
 * <p>Each activation gets a lifetime [first write, last read] in op indices: graph inputs from
 * op 0 (the caller writes them before the step), op outputs from their op, named outputs the
 * caller keeps to the end ({@code opCount}). An op that may run in place (see
 * {@link #IN_PLACE_OPS}) writes over an input that dies at that op, so the two become one buffer.
 * Buffers are then given offsets so that buffers live at the same op never share a byte: each
 * strategy is an order of the buffers plus a fit rule (best fit into the gaps between the
 * already-placed buffers whose lifetimes overlap, as in Pisarchyk &amp; Lee 2020, "Efficient
 * Memory Management for Deep Neural Net Inference", or first fit); {@link Strategy#SEARCH}
 * then improves the best order by random local moves. The smallest arena wins.
 *
 * <p>Parameters are not activations (weights live elsewhere) and are not planned; nor are the
 * graph inputs and named outputs the caller declares external (a tensor that outlives the step,
 * such as DeepCache's cached feature): they are listed in {@link MemoryPlan#external()}, and the
 * caller binds them to its own storage. Offsets are multiples of {@link #ALIGNMENT}.
 */
public final class MemoryPlanner {
    public static final int ALIGNMENT = 256;

    /**
     * Ops whose output may take the bytes of an input that dies there: elementwise SiLU and GELU,
     * Add (either operand), AddChannelBias, Scale, and a fused convolution's residual (the
     * epilogue reads each residual element before it writes that output element; see
     * {@code Backend.conv2dFused}). Never conv's or linear's main input, attention, transposes,
     * concat or upsample: those read an input after their writes to the output begin.
     */
    public static final String IN_PLACE_OPS = "silu, gelu, add, addChannelBias, scale, conv2dFused residual";

    public enum Strategy {
        /** Pisarchyk &amp; Lee's greedy by size: largest first, best fit. */
        GREEDY_BY_SIZE,
        /** Largest first, first fit (lowest offset that fits). */
        GREEDY_BY_SIZE_FIRST_FIT,
        /** Pisarchyk &amp; Lee's greedy by breadth: ops by live bytes, each op's tensors largest first. */
        GREEDY_BY_BREADTH,
        /** Longest lifetime first, then largest; best fit. */
        LONGEST_FIRST,
        /** Largest size × lifetime first; best fit. */
        LARGEST_AREA_FIRST,
        /** Largest first, equal sizes in order of birth; best fit. */
        GREEDY_BY_SIZE_THEN_BIRTH,
        /** Random local moves (move one buffer elsewhere in the order) from the best order above. */
        SEARCH
    }

    /**
     * @param inPlace          let in-place ops reuse a dying input's bytes
     * @param strategies       the strategies to try; the smallest arena wins
     * @param searchIterations orders {@link Strategy#SEARCH} tries
     * @param seed             its random seed (plans are deterministic for a seed)
     */
    public record Options(boolean inPlace, Set<Strategy> strategies, int searchIterations, long seed) {
        public Options {
            strategies = Collections.unmodifiableSet(strategies.isEmpty() ? EnumSet.noneOf(Strategy.class)
                    : EnumSet.copyOf(strategies)); // EnumSet: tried in Strategy order
        }

        public static Options defaults() {
            return new Options(true, EnumSet.allOf(Strategy.class), 400, 42);
        }

        public Options with(Strategy only) {
            return new Options(inPlace, EnumSet.of(only), searchIterations, seed);
        }

        public Options withInPlace(boolean on) {
            return new Options(on, strategies, searchIterations, seed);
        }
    }

    private MemoryPlanner() {
    }

    /** The best plan keeping every named output of the graph to the end. */
    public static MemoryPlan plan(Graph g, int elementBytes) {
        return plan(g, elementBytes, g.outputs().keySet(), Options.defaults());
    }

    /** The best plan keeping the named outputs {@code kept} to the end (the others may be overwritten). */
    public static MemoryPlan plan(Graph g, int elementBytes, Set<String> kept) {
        return plan(g, elementBytes, kept, Options.defaults());
    }

    public static MemoryPlan plan(Graph g, int elementBytes, Set<String> kept, Options o) {
        return plan(g, elementBytes, kept, Set.of(), o);
    }

    /**
     * The best plan keeping {@code kept} to the end, with the graph inputs and named outputs
     * {@code external} left out of the arena (the caller gives them their own storage).
     */
    public static MemoryPlan plan(Graph g, int elementBytes, Set<String> kept, Set<String> external, Options o) {
        List<MemoryPlan> all = planEach(g, elementBytes, kept, external, o);
        MemoryPlan best = all.stream().min(Comparator.comparingLong(MemoryPlan::arenaBytes)).orElseThrow();
        best.verify();
        return best;
    }

    /**
     * One plan per strategy in {@code o} (in {@link Strategy} order); {@link Strategy#SEARCH}
     * starts from the best order of the others (or greedy by size alone).
     */
    public static List<MemoryPlan> planEach(Graph g, int elementBytes, Set<String> kept, Options o) {
        return planEach(g, elementBytes, kept, Set.of(), o);
    }

    /** {@link #planEach(Graph, int, Set, Options)} with {@code external} values left out of the arena. */
    public static List<MemoryPlan> planEach(Graph g, int elementBytes, Set<String> kept, Set<String> external,
                                            Options o) {
        if (elementBytes <= 0) {
            throw new IllegalArgumentException("element size " + elementBytes + " bytes");
        }
        if (o.strategies().isEmpty()) {
            throw new IllegalArgumentException("no planning strategy given");
        }
        for (String k : kept) {
            if (!g.outputs().containsKey(k)) {
                throw new IllegalArgumentException("the graph has no output '" + k + "' to keep; it has "
                        + g.outputs().keySet());
            }
        }
        for (String x : external) {
            if (!g.inputs().containsKey(x) && !g.outputs().containsKey(x)) {
                throw new IllegalArgumentException("the graph has no input or output '" + x + "' to keep outside"
                        + " the arena");
            }
        }
        Buffers b = new Buffers(g, elementBytes, kept, external, o.inPlace());
        List<MemoryPlan> plans = new ArrayList<>();
        int[] bestOrder = null;
        long bestArena = Long.MAX_VALUE;
        for (Strategy s : o.strategies()) {
            if (s == Strategy.SEARCH) {
                continue;
            }
            int[] order = b.order(s);
            long[] off = new long[b.n];
            long arena = b.assign(order, s != Strategy.GREEDY_BY_SIZE_FIRST_FIT, off);
            plans.add(b.toPlan(s.name(), off, arena));
            if (arena < bestArena && s != Strategy.GREEDY_BY_SIZE_FIRST_FIT) {
                bestArena = arena;
                bestOrder = order;
            }
        }
        if (o.strategies().contains(Strategy.SEARCH)) {
            if (bestOrder == null) {
                bestOrder = b.order(Strategy.GREEDY_BY_SIZE);
            }
            long[] off = new long[b.n];
            long arena = b.search(bestOrder, o.searchIterations(), o.seed(), off);
            plans.add(b.toPlan(Strategy.SEARCH.name(), off, arena));
        }
        return plans;
    }

    /** Activations merged into buffers (in-place chains), with lifetimes and aligned sizes. */
    private static final class Buffers {
        final Graph g;
        final int elementBytes;
        final List<String> kept;
        final int opCount;
        // per value id
        final int[] first;
        final int[] last;
        final long[] bytes;
        final int[] buffer;
        final int[] inPlaceOf;
        final List<MemoryPlan.Activation> external = new ArrayList<>();
        // per buffer
        int n;
        long[] size = new long[16];
        int[] bFirst = new int[16];
        int[] bLast = new int[16];
        final long naive;
        final long lowerBound;

        Buffers(Graph g, int elementBytes, Set<String> keptSet, Set<String> externalSet, boolean inPlace) {
            this.g = g;
            this.elementBytes = elementBytes;
            this.kept = g.outputs().keySet().stream().filter(keptSet::contains).toList();
            this.opCount = g.ops().size();
            int values = g.values().size();
            first = new int[values];
            last = new int[values];
            bytes = new long[values];
            buffer = new int[values];
            inPlaceOf = new int[values];
            Arrays.fill(first, -1);
            Arrays.fill(last, -1);
            Arrays.fill(buffer, -1);
            Arrays.fill(inPlaceOf, -1);
            boolean[] keep = new boolean[values];
            for (String k : kept) {
                keep[g.outputs().get(k).id()] = true;
            }
            for (Value v : g.inputs().values()) {
                first[v.id()] = 0;
            }
            for (int i = 0; i < opCount; i++) {
                Op op = g.ops().get(i);
                if (first[op.out()] >= 0 || g.value(op.out()).kind() != Value.Kind.ACTIVATION) {
                    throw new IllegalArgumentException("op " + i + " '" + op.name() + "' writes value "
                            + op.out() + ", which is not a fresh activation");
                }
                first[op.out()] = i;
                for (int id : op.inputs()) {
                    if (id >= 0) {
                        last[id] = i;
                    }
                }
            }
            boolean[] outside = new boolean[values];
            for (String x : externalSet) {
                Value v = g.inputs().containsKey(x) ? g.inputs().get(x) : g.outputs().get(x);
                if (!outside[v.id()]) {
                    outside[v.id()] = true;
                    external.add(new MemoryPlan.Activation(v.id(), x, v.shape(),
                            v.bytes(elementBytes), Math.max(first[v.id()], 0),
                            opCount, -1, -1));
                    first[v.id()] = -1; // not planned: no buffer, never overwritten in place
                }
            }
            external.sort(Comparator.comparingInt(MemoryPlan.Activation::valueId));
            long naiveSum = 0;
            for (int id = 0; id < values; id++) {
                if (first[id] < 0) {
                    continue; // a parameter, or an activation fused away
                }
                if (keep[id]) {
                    last[id] = opCount;
                }
                last[id] = Math.max(last[id], first[id]); // written and never read: live at its op only
                bytes[id] = g.value(id).bytes(elementBytes); // a value of fixed storage at its own width
                naiveSum += bytes[id];
            }
            naive = naiveSum;
            for (Value v : g.inputs().values()) {
                if (!outside[v.id()]) {
                    buffer[v.id()] = newBuffer(v.id());
                }
            }
            for (int i = 0; i < opCount; i++) {
                Op op = g.ops().get(i);
                int o = op.out();
                if (outside[o]) {
                    continue;
                }
                int c = inPlace ? inPlaceInput(op, i, keep) : -1;
                if (c >= 0) {
                    buffer[o] = buffer[c];
                    bLast[buffer[o]] = last[o];
                    inPlaceOf[o] = c;
                } else {
                    buffer[o] = newBuffer(o);
                }
            }
            long[] delta = new long[opCount + 2];
            for (int k = 0; k < n; k++) {
                delta[bFirst[k]] += size[k];
                delta[bLast[k] + 1] -= size[k];
            }
            long live = 0, peak = 0;
            for (int t = 0; t <= opCount; t++) {
                live += delta[t];
                peak = Math.max(peak, live);
            }
            lowerBound = peak;
        }

        private int newBuffer(int id) {
            if (n == size.length) {
                size = Arrays.copyOf(size, 2 * n);
                bFirst = Arrays.copyOf(bFirst, 2 * n);
                bLast = Arrays.copyOf(bLast, 2 * n);
            }
            size[n] = Math.ceilDiv(bytes[id], ALIGNMENT) * ALIGNMENT;
            bFirst[n] = first[id];
            bLast[n] = last[id];
            return n++;
        }

        /** The input op {@code i} may overwrite in place, or -1. */
        private int inPlaceInput(Op op, int i, boolean[] keep) {
            int[] candidates = op.inPlaceInputs();
            for (int c : candidates) {
                if (c >= 0 && first[c] >= 0 && last[c] == i && !keep[c] && bytes[c] == bytes[op.out()]
                        && g.value(c).storage() == g.value(op.out()).storage()) {
                    return c;
                }
            }
            return -1;
        }

        private long lifetime(int k) {
            return bLast[k] - bFirst[k] + 1L;
        }

        int[] order(Strategy s) {
            Integer[] idx = IntStream.range(0, n).boxed().toArray(Integer[]::new);
            Comparator<Integer> bySize = Comparator.comparingLong((Integer k) -> size[k]).reversed();
            Comparator<Integer> c = switch (s) {
                case GREEDY_BY_SIZE, GREEDY_BY_SIZE_FIRST_FIT ->
                        bySize.thenComparing(Comparator.comparingLong((Integer k) -> lifetime(k)).reversed());
                case GREEDY_BY_SIZE_THEN_BIRTH -> bySize.thenComparingInt(k -> bFirst[k]);
                case LONGEST_FIRST -> Comparator.comparingLong((Integer k) -> lifetime(k)).reversed().thenComparing(bySize);
                case LARGEST_AREA_FIRST -> Comparator.comparingDouble((Integer k) -> -(double) size[k] * lifetime(k));
                case GREEDY_BY_BREADTH -> null;
                case SEARCH -> throw new IllegalArgumentException("SEARCH has no fixed order");
            };
            if (c != null) {
                Arrays.sort(idx, c.thenComparingInt(k -> k));
                return Arrays.stream(idx).mapToInt(Integer::intValue).toArray();
            }
            // greedy by breadth: ops by live bytes (largest first), each op's live buffers largest first
            long[] breadth = new long[opCount + 1];
            List<List<Integer>> liveAt = new ArrayList<>();
            for (int t = 0; t <= opCount; t++) {
                liveAt.add(new ArrayList<>());
            }
            for (int k = 0; k < n; k++) {
                for (int t = bFirst[k]; t <= bLast[k]; t++) {
                    breadth[t] += size[k];
                    liveAt.get(t).add(k);
                }
            }
            Integer[] ops = IntStream.rangeClosed(0, opCount).boxed().toArray(Integer[]::new);
            Arrays.sort(ops, Comparator.comparingLong((Integer t) -> breadth[t]).reversed().thenComparingInt(t -> t));
            boolean[] seen = new boolean[n];
            int[] order = new int[n];
            int m = 0;
            for (int t : ops) {
                List<Integer> live = liveAt.get(t);
                live.sort(bySize.thenComparingInt(k -> k));
                for (int k : live) {
                    if (!seen[k]) {
                        seen[k] = true;
                        order[m++] = k;
                    }
                }
            }
            return order;
        }

        /**
         * Places buffers in {@code order}: each into the gap between the placed buffers it
         * overlaps in time, best fit (smallest gap that fits) or first fit (lowest offset), or
         * above them all. Returns the arena size.
         */
        long assign(int[] order, boolean bestFit, long[] off) {
            int[] placed = new int[n]; // placed buffers, by offset
            int count = 0;
            long arena = 0;
            for (int k : order) {
                long need = size[k], prev = 0, bestGap = Long.MAX_VALUE, at = -1;
                for (int j = 0; j < count; j++) {
                    int p = placed[j];
                    if (bFirst[p] > bLast[k] || bFirst[k] > bLast[p]) {
                        continue;
                    }
                    long gap = off[p] - prev;
                    if (gap >= need && gap < bestGap) {
                        bestGap = gap;
                        at = prev;
                        if (!bestFit) {
                            break;
                        }
                    }
                    prev = Math.max(prev, off[p] + size[p]);
                }
                off[k] = at >= 0 ? at : prev;
                arena = Math.max(arena, off[k] + need);
                // insert into placed, keeping offset order
                int pos = count;
                while (pos > 0 && off[placed[pos - 1]] > off[k]) {
                    placed[pos] = placed[pos - 1];
                    pos--;
                }
                placed[pos] = k;
                count++;
            }
            return arena;
        }

        /** Hill climbing over orders: move one buffer to another place in the order; keep if not worse. */
        long search(int[] start, int iterations, long seed, long[] bestOff) {
            SplittableRandom rnd = new SplittableRandom(seed);
            int[] cur = start.clone();
            long[] off = new long[n];
            long best = assign(cur, true, bestOff);
            int[] trial = new int[n];
            for (int it = 0; it < iterations && n > 1; it++) {
                int from = rnd.nextInt(n), to = rnd.nextInt(n);
                if (from == to) {
                    continue;
                }
                System.arraycopy(cur, 0, trial, 0, n);
                int moved = trial[from];
                if (from < to) {
                    System.arraycopy(trial, from + 1, trial, from, to - from);
                } else {
                    System.arraycopy(trial, to, trial, to + 1, from - to);
                }
                trial[to] = moved;
                long arena = assign(trial, true, off);
                if (arena <= best) {
                    int[] t = cur;
                    cur = trial;
                    trial = t;
                    best = arena;
                }
            }
            return assign(cur, true, bestOff); // the offsets of the order kept
        }

        MemoryPlan toPlan(String strategy, long[] bufferOffsets, long arena) {
            List<MemoryPlan.Activation> acts = new ArrayList<>();
            for (int id = 0; id < first.length; id++) {
                if (first[id] < 0) {
                    continue;
                }
                Value v = g.value(id);
                acts.add(new MemoryPlan.Activation(id, v.name(), v.shape(), bytes[id], first[id], last[id],
                        bufferOffsets[buffer[id]], inPlaceOf[id]));
            }
            return new MemoryPlan(strategy, elementBytes, ALIGNMENT, opCount, acts, kept, naive, lowerBound, arena,
                    external);
        }
    }
}
