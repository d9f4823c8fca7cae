package dev.latte.graph;

import java.util.Collections;
import java.util.List;
import java.util.SequencedMap;

/**
 * A static op list for one input shape: every value's shape is known before anything runs, so
 * lifetimes and memory can be planned ahead. Inputs, parameters and named outputs are kept in
 * insertion order.
 */
public record Graph(List<Value> values, List<Op> ops, SequencedMap<String, Value> inputs,
                    SequencedMap<String, Value> params, SequencedMap<String, Value> outputs) {

    public Graph {
        values = List.copyOf(values);
        ops = List.copyOf(ops);
        inputs = Collections.unmodifiableSequencedMap(inputs);
        params = Collections.unmodifiableSequencedMap(params);
        outputs = Collections.unmodifiableSequencedMap(outputs);
        for (Op op : ops) {
            checkStorage(values, op);
        }
    }

    /**
     * An op writes its backend's activation type and reads a value of fixed storage only where it
     * says so ({@link Op#fixedStorageInputs}): anything else would hand a kernel bytes of another type.
     */
    private static void checkStorage(List<Value> values, Op op) {
        Value out = values.get(op.out());
        if (out.storage() != null) {
            throw new GraphException("op '" + op.name() + "' writes '" + out.name() + "', declared as "
                    + out.storage().label() + "; ops write the backend's activation type");
        }
        int[] fixed = op.fixedStorageInputs();
        for (int id : op.inputs()) {
            Value v = id < 0 ? null : values.get(id);
            if (v != null && v.storage() != null && java.util.Arrays.stream(fixed).noneMatch(f -> f == id)) {
                throw new GraphException("op '" + op.name() + "' (" + op.kind() + ") reads '" + v.name()
                        + "', stored as " + v.storage().label() + "; it reads only the backend's activation type");
            }
        }
    }

    public Value value(int id) {
        return values.get(id);
    }

    /**
     * For each value, the index of the last op that reads it (-1 if none). Named outputs live to
     * the end.
     */
    public int[] lastUses() {
        int[] last = new int[values.size()];
        java.util.Arrays.fill(last, -1);
        for (int i = 0; i < ops.size(); i++) {
            for (int id : ops.get(i).inputs()) {
                if (id >= 0) {
                    last[id] = i;
                }
            }
        }
        for (Value v : outputs.values()) {
            last[v.id()] = ops.size();
        }
        return last;
    }
}
