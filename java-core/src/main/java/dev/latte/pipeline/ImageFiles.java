package dev.latte.pipeline;

import dev.latte.weights.AtomicFiles;
import dev.latte.weights.WeightsException;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** The pipeline's images on disk: 8-bit RGB PNGs written atomically, and init images read for img2img. */
public final class ImageFiles {
    private ImageFiles() {
    }

    /** An image as the VAE encoder takes it: [1, 3, H, W], {@code 2·(v/255) − 1} as diffusers' preprocess. */
    public record Pixels(float[] values, int height, int width) {
    }

    /**
     * Writes {@code hwc} (8-bit RGB, rows top to bottom) as a PNG: encoded in memory, written to a
     * temporary file in the destination folder, fsynced, then renamed over {@code png} in one
     * step, so a reader sees the old file or the whole new one, never a partial one.
     */
    public static void writePng(byte[] hwc, int height, int width, Path png) {
        BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                int i = (y * width + x) * 3;
                img.setRGB(x, y, (hwc[i] & 0xff) << 16 | (hwc[i + 1] & 0xff) << 8 | (hwc[i + 2] & 0xff));
            }
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try {
            if (!ImageIO.write(img, "png", bytes)) {
                throw new IOException("no PNG writer in this JDK");
            }
        } catch (IOException e) {
            throw new WeightsException(png + ": cannot encode a PNG: " + e.getMessage());
        }
        byte[] data = bytes.toByteArray();
        AtomicFiles.writeStream(png, o -> o.write(data));
    }

    /** Reads an image (PNG, JPEG, …) as RGB in [-1, 1]. */
    public static Pixels read(Path file) {
        BufferedImage img;
        try {
            if (!Files.isRegularFile(file)) {
                throw new WeightsException(file + ": no such file");
            }
            img = ImageIO.read(file.toFile());
        } catch (IOException e) {
            throw new WeightsException(file + ": cannot read the image: " + e.getMessage());
        }
        if (img == null) {
            throw new WeightsException(file + ": not an image this JDK can read (PNG, JPEG, BMP, GIF)");
        }
        int h = img.getHeight(), w = img.getWidth();
        float[] v = new float[3 * h * w];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int rgb = img.getRGB(x, y);
                for (int c = 0; c < 3; c++) {
                    int level = (rgb >> (16 - 8 * c)) & 0xff;
                    v[(c * h + y) * w + x] = 2f * (level / 255f) - 1f;
                }
            }
        }
        return new Pixels(v, h, w);
    }
}
