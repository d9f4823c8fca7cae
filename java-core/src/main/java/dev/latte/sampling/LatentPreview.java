package dev.latte.sampling;

import dev.latte.weights.AtomicFiles;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;

/**
 * A PNG of latents [B, C, H, W] without a VAE: one row per batch item, one grey tile per channel,
 * each channel mapped min→black, max→white over the whole batch (so items compare), tiles
 * enlarged by nearest neighbour to at least 128 px so a 16×16 latent is visible.
 */
public final class LatentPreview {
    private static final int MIN_TILE = 128, GAP = 2;

    private LatentPreview() {
    }

    public static BufferedImage render(float[] x, int batch, int channels, int height, int width) {
        if ((long) batch * channels * height * width != x.length) {
            throw new IllegalArgumentException("preview: " + x.length + " values are not [" + batch + ", " + channels
                    + ", " + height + ", " + width + "]");
        }
        int zoom = Math.max(1, (MIN_TILE + Math.max(height, width) - 1) / Math.max(height, width));
        int tw = width * zoom, th = height * zoom, plane = height * width;
        var img = new BufferedImage(channels * (tw + GAP) - GAP, batch * (th + GAP) - GAP, BufferedImage.TYPE_INT_RGB);
        for (int c = 0; c < channels; c++) {
            float lo = Float.POSITIVE_INFINITY, hi = Float.NEGATIVE_INFINITY;
            for (int b = 0; b < batch; b++) {
                for (int p = 0; p < plane; p++) {
                    float v = x[(b * channels + c) * plane + p];
                    lo = Math.min(lo, v);
                    hi = Math.max(hi, v);
                }
            }
            float range = hi > lo ? hi - lo : 1;
            for (int b = 0; b < batch; b++) {
                for (int py = 0; py < th; py++) {
                    for (int px = 0; px < tw; px++) {
                        float v = x[(b * channels + c) * plane + (py / zoom) * width + px / zoom];
                        int g = Math.round(255 * (v - lo) / range);
                        img.setRGB(c * (tw + GAP) + px, b * (th + GAP) + py, g << 16 | g << 8 | g);
                    }
                }
            }
        }
        return img;
    }

    /** Writes atomically (a temp file beside {@code png}, then a rename). */
    public static void write(float[] x, int batch, int channels, int height, int width, Path png) {
        BufferedImage img = render(x, batch, channels, height, width);
        AtomicFiles.writeStream(png, out -> {
            if (!ImageIO.write(img, "png", out)) {
                throw new IOException("no PNG writer in this JDK");
            }
        });
    }
}
