package dev.latte.core;

/**
 * Stride and zero padding of a 2-D convolution. Padding may be asymmetric (diffusers'
 * {@code Downsample2D} with {@code padding=0} pads right and bottom by one).
 */
public record Conv2dParams(int strideH, int strideW, int padTop, int padLeft, int padBottom, int padRight) {
    public static Conv2dParams of(int stride, int pad) {
        return new Conv2dParams(stride, stride, pad, pad, pad, pad);
    }

    public int outHeight(int inHeight, int kernelH) {
        return (inHeight + padTop + padBottom - kernelH) / strideH + 1;
    }

    public int outWidth(int inWidth, int kernelW) {
        return (inWidth + padLeft + padRight - kernelW) / strideW + 1;
    }
}
