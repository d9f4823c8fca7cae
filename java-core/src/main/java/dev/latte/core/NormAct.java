package dev.latte.core;

/**
 * A GroupNorm (optionally followed by SiLU) that a fused op applies to its input as it loads it,
 * so the normalised tensor is never written to memory.
 */
public record NormAct(Tensor gamma, Tensor beta, int groups, float eps, boolean silu) {
}
