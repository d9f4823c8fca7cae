package dev.latte.sampling;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class LatentPreviewTest {
    @TempDir
    Path tmp;

    @Test
    void tilesAreEnlargedAndNormalisedPerChannel() throws IOException {
        int b = 2, c = 4, h = 16, w = 16;
        float[] x = new float[b * c * h * w];
        for (int i = 0; i < x.length; i++) {
            x[i] = (i % (h * w)) * 0.01f + (i / (h * w)) * 3; // each channel its own range
        }
        Path png = tmp.resolve("p.png");
        LatentPreview.write(x, b, c, h, w, png);
        BufferedImage img = ImageIO.read(png.toFile());
        // 16 px latents are shown 8× (128 px tiles) with 2 px gaps
        assertEquals(4 * 128 + 3 * 2, img.getWidth());
        assertEquals(2 * 128 + 2, img.getHeight());
        // channel 1's minimum is item 0's first pixel, its maximum item 1's last
        assertEquals(0, img.getRGB(130, 0) & 0xff);
        assertEquals(255, img.getRGB(130 + 127, 130 + 127) & 0xff);
        // a latent pixel covers an 8×8 block
        assertEquals(img.getRGB(0, 0), img.getRGB(7, 7));
    }

    @Test
    void wrongSizeIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> LatentPreview.render(new float[10], 1, 4, 2, 2));
    }
}
