package dev.latte.core;

/**
 * How a layer with int8 weights (per-output-channel symmetric, {@code w ≈ w_q · w_scale[row]})
 * runs.
 * <ul>
 *   <li>{@link #W8A16}: weights are dequantised as they are loaded and multiplied with
 *       activations at the backend's float precision (fp16 on CUDA, fp32 on the CPU reference).
 *   <li>{@link #W8A8}: activations are quantised too, with a dynamic symmetric scale per token
 *       ({@code a_scale = max|row|/127}), multiplied s8×s8 into an exact int32 sum, and rescaled
 *       by {@code a_scale · w_scale} (then + bias) in the epilogue.
 * </ul>
 */
public enum Int8Mode {
    W8A16, W8A8;

    /** {@code w8a16} or {@code w8a8}, as the CLI spells them. */
    public static Int8Mode parse(String s) {
        for (Int8Mode m : values()) {
            if (m.name().equalsIgnoreCase(s)) {
                return m;
            }
        }
        throw new IllegalArgumentException("unknown int8 mode '" + s + "' (w8a16 or w8a8)");
    }
}
