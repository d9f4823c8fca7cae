package dev.latte.sampling;

/**
 * What a scheduler steps on: the model's prediction for sample {@code x} at timestep {@code t}.
 * The UNet with classifier-free guidance is one ({@link GuidedUNet}); tests use closed forms.
 */
@FunctionalInterface
public interface NoiseModel {
    float[] predict(float[] x, int t);
}
