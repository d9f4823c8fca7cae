package dev.latte.core;

import java.util.Locale;

/**
 * How a backend stores a tensor's elements. Arithmetic is fp32 whatever the storage; a backend
 * stores its activations in one type ({@link Backend#activationType}), and a graph value may fix
 * its own where the activation type would lose it (token ids: integers above 2048 are not exact
 * in fp16). I8 holds quantised weights only ({@link Backend#uploadInt8}).
 */
public enum StorageType {
    F32(4), F16(2), I8(1);

    private final int bytes;

    StorageType(int bytes) {
        this.bytes = bytes;
    }

    public int bytes() {
        return bytes;
    }

    /** As kernels and messages name it: {@code fp32}, {@code fp16}, {@code int8}. */
    public String label() {
        return this == I8 ? "int8" : "fp" + 8 * bytes;
    }

    /** The suffix of a kernel compiled for this storage type: {@code _f32}, {@code _f16}, {@code _i8}. */
    public String kernelSuffix() {
        return "_" + name().toLowerCase(Locale.ROOT);
    }
}
