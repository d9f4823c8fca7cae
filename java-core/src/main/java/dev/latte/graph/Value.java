package dev.latte.graph;

import dev.latte.core.Shape;
import dev.latte.core.StorageType;

/**
 * A tensor of a graph: a graph input, a parameter (by checkpoint name) or an activation.
 * {@code storage} is null where the value is stored as the backend's activations are (fp32 or
 * fp16), else the type it keeps on every backend: only an op that says it reads such an input
 * ({@link Op#fixedStorageInputs}) may read it, and no op writes one (the graph checks both).
 */
public record Value(int id, Kind kind, String name, Shape shape, StorageType storage) {
    public enum Kind { INPUT, PARAM, ACTIVATION }

    public Value {
        if (storage == StorageType.I8) {
            throw new IllegalArgumentException("value '" + name + "': int8 storage is for quantised weights only");
        }
    }

    /** A value stored as the backend's activations. */
    public Value(int id, Kind kind, String name, Shape shape) {
        this(id, kind, name, shape, null);
    }

    /** Bytes this value takes on a backend whose activations are {@code activationBytes} wide. */
    public long bytes(int activationBytes) {
        return Math.multiplyExact(shape.numel(), (long) (storage == null ? activationBytes : storage.bytes()));
    }
}
