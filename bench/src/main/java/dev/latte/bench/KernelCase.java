package dev.latte.bench;

import dev.latte.graph.Graph;
import dev.latte.graph.Op;

/**
 * One distinct op shape of a UNet step: what {@code latte bench kernels} times.
 *
 * @param config  where it comes from, e.g. {@code "sd15 512x512 batch 2"}
 * @param op      the op kind ({@code conv2dFused}, {@code attention}, {@code linear}, ...)
 * @param shape   its shapes and parameters in one line (inputs, output, stride/pad, heads, ...)
 * @param count   how many times this exact op runs per step
 * @param example the first op of the step with this shape (diffusers module path)
 * @param flops   arithmetic per run (a multiply-add counts 2)
 * @param bytes   the fewest bytes one run must move: every input read once, the output written once
 * @param bound   "compute" (convolutions, GEMMs, attention: reported as TFLOP/s) or "memory" (GB/s)
 * @param graph   the graph holding {@code sample} (for running it; not part of the table)
 * @param sample  a representative op of this shape
 */
public record KernelCase(String config, String op, String shape, int count, String example, long flops, long bytes,
                         String bound, Graph graph, Op sample) {

    /** Arithmetic intensity, FLOP per byte. */
    public double intensity() {
        return bytes == 0 ? 0 : flops / (double) bytes;
    }
}
