package dev.latte.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * A kernel's arguments in order, as their C types: {@code ptr} for a device pointer
 * ({@code T*}), {@code i32} for {@code int}/{@code unsigned}, {@code i64} for
 * {@code long long}/{@code size_t}, {@code f32} for {@code float}. The {@code void**}
 * kernelParams array is built in a confined arena for each launch.
 */
public final class KernelArgs {
    private static final byte PTR = 0;
    private static final byte I32 = 1;
    private static final byte I64 = 2;
    private static final byte F32 = 3;
    private static final String[] NAMES = {"ptr", "i32", "i64", "f32"};

    private long[] values = new long[8];
    private byte[] kinds = new byte[8];
    private int n;

    public KernelArgs ptr(long dptr) {
        return add(PTR, dptr);
    }

    public KernelArgs i32(int v) {
        return add(I32, v);
    }

    public KernelArgs i64(long v) {
        return add(I64, v);
    }

    public KernelArgs f32(float v) {
        return add(F32, Float.floatToRawIntBits(v));
    }

    /** Empties the list so the object can be filled again. */
    public KernelArgs clear() {
        n = 0;
        return this;
    }

    public int size() {
        return n;
    }

    private KernelArgs add(byte kind, long v) {
        if (n == values.length) {
            values = Arrays.copyOf(values, 2 * n);
            kinds = Arrays.copyOf(kinds, 2 * n);
        }
        values[n] = v;
        kinds[n] = kind;
        n++;
        return this;
    }

    private static boolean fourBytes(byte kind) {
        return kind == I32 || kind == F32;
    }

    /** The byte size of each argument. */
    int[] sizes() {
        int[] s = new int[n];
        for (int i = 0; i < n; i++) {
            s[i] = fourBytes(kinds[i]) ? 4 : 8;
        }
        return s;
    }

    /** kernelParams: an array of n pointers, each to one 8-byte slot holding the value. */
    MemorySegment build(Arena arena) {
        if (n == 0) {
            return MemorySegment.NULL;
        }
        MemorySegment slots = arena.allocate(8L * n, 8);
        MemorySegment params = arena.allocate(ADDRESS, n);
        for (int i = 0; i < n; i++) {
            if (fourBytes(kinds[i])) {
                slots.set(JAVA_INT, 8L * i, (int) values[i]);
            } else {
                slots.set(JAVA_LONG, 8L * i, values[i]);
            }
            params.setAtIndex(ADDRESS, i, slots.asSlice(8L * i, 8));
        }
        return params;
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("(");
        for (int i = 0; i < n; i++) {
            sb.append(i == 0 ? "" : ", ").append(NAMES[kinds[i]]).append(' ');
            switch (kinds[i]) {
                case PTR -> sb.append("0x").append(Long.toHexString(values[i]));
                case F32 -> sb.append(Float.intBitsToFloat((int) values[i]));
                default -> sb.append(values[i]);
            }
        }
        return sb.append(")").toString();
    }
}
