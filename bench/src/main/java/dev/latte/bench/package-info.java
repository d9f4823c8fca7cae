/**
 * Benchmarks (issue #7): the kernel-case table derived from a fused UNet graph ({@link KernelCases}),
 * the device peak table ({@link DevicePeaks}),
 * order statistics ({@link Stats}), seeded random weights for built-in configs ({@link RandomWeights}),
 * the CUDA-event timing of each case ({@link KernelBench}) and the JSON report ({@link BenchReport}).
 * Everything but {@link KernelBench} runs without a GPU.
 */
package dev.latte.bench;
