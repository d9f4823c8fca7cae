package dev.latte.vae;

import java.util.function.BiFunction;

/**
 * diffusers' {@code AutoencoderKL.tiled_decode} (v0.25.1): the latent is cut into tiles of
 * {@code tileLatent} pixels every {@code tileLatent·(1 − overlap)} pixels, each tile decoded on its
 * own (a smaller arena: the decoder's activations scale with the tile, not the image), then each
 * decoded tile blended linearly with the one above and the one to its left over
 * {@code tileSample·overlap} pixels and cropped to {@code tileSample − blend} pixels. Blends
 * happen in place, in diffusers' order, so a tile's blended edge is what the next tile blends with.
 */
public final class TiledDecode {
    public static final double OVERLAP = 0.25;

    private TiledDecode() {
    }

    /** A decoded tile: values [B, C, h, w]. */
    public record Tile(float[] values, int batch, int channels, int height, int width) {
    }

    /** Whether diffusers would tile a latent of this size (either side over the tile size). */
    public static boolean needed(int latentH, int latentW, int tileLatent) {
        return latentH > tileLatent || latentW > tileLatent;
    }

    /**
     * @param z       [B, C, H, W] latents (what the decoder receives)
     * @param decoder decodes one latent tile (values, {h, w}) to a {@link Tile}
     * @return the blended image [B, outC, ·, ·] as a Tile
     */
    public static Tile decode(float[] z, int batch, int channels, int height, int width, int tileLatent,
                              int tileSample, BiFunction<float[], int[], Tile> decoder) {
        int overlapSize = (int) (tileLatent * (1 - OVERLAP));
        int blend = (int) (tileSample * OVERLAP);
        int rowLimit = tileSample - blend;
        int rowsN = Math.ceilDiv(height, overlapSize), colsN = Math.ceilDiv(width, overlapSize);
        Tile[][] tiles = new Tile[rowsN][colsN];
        for (int ti = 0; ti < rowsN; ti++) {
            for (int tj = 0; tj < colsN; tj++) {
                int i = ti * overlapSize, j = tj * overlapSize;
                int h = Math.min(tileLatent, height - i), w = Math.min(tileLatent, width - j);
                float[] tile = new float[batch * channels * h * w];
                for (int b = 0; b < batch * channels; b++) {
                    for (int y = 0; y < h; y++) {
                        System.arraycopy(z, (b * height + i + y) * width + j, tile, (b * h + y) * w, w);
                    }
                }
                tiles[ti][tj] = decoder.apply(tile, new int[] {h, w});
            }
        }
        // crop sizes: each kept tile contributes at most rowLimit pixels per side
        int outH = 0, outW = 0;
        for (int ti = 0; ti < rowsN; ti++) {
            outH += Math.min(rowLimit, tiles[ti][0].height());
        }
        for (int tj = 0; tj < colsN; tj++) {
            outW += Math.min(rowLimit, tiles[0][tj].width());
        }
        Tile first = tiles[0][0];
        int bc = first.batch() * first.channels();
        float[] out = new float[bc * outH * outW];
        int y0 = 0;
        for (int ti = 0; ti < rowsN; ti++) {
            int x0 = 0;
            int keptH = Math.min(rowLimit, tiles[ti][0].height());
            for (int tj = 0; tj < colsN; tj++) {
                Tile t = tiles[ti][tj];
                if (ti > 0) {
                    blendV(tiles[ti - 1][tj], t, blend);
                }
                if (tj > 0) {
                    blendH(tiles[ti][tj - 1], t, blend);
                }
                int keptW = Math.min(rowLimit, t.width());
                for (int c = 0; c < bc; c++) {
                    for (int y = 0; y < keptH; y++) {
                        System.arraycopy(t.values(), (c * t.height() + y) * t.width(), out,
                                (c * outH + y0 + y) * outW + x0, keptW);
                    }
                }
                x0 += keptW;
            }
            y0 += keptH;
        }
        return new Tile(out, first.batch(), first.channels(), outH, outW);
    }

    /** b's top rows fade in from a's bottom rows: b[y] = a[H−e+y]·(1 − y/e) + b[y]·(y/e). */
    static void blendV(Tile a, Tile b, int extent) {
        int e = Math.min(Math.min(a.height(), b.height()), extent);
        int bc = b.batch() * b.channels();
        for (int c = 0; c < bc; c++) {
            for (int y = 0; y < e; y++) {
                float wb = (float) ((double) y / e), wa = (float) (1 - (double) y / e); // Python doubles, then fp32
                int ra = (c * a.height() + a.height() - e + y) * a.width(), rb = (c * b.height() + y) * b.width();
                for (int x = 0; x < b.width(); x++) {
                    b.values()[rb + x] = a.values()[ra + x] * wa + b.values()[rb + x] * wb;
                }
            }
        }
    }

    /** b's left columns fade in from a's right columns. */
    static void blendH(Tile a, Tile b, int extent) {
        int e = Math.min(Math.min(a.width(), b.width()), extent);
        int bc = b.batch() * b.channels();
        for (int c = 0; c < bc; c++) {
            for (int y = 0; y < b.height(); y++) {
                int ra = (c * a.height() + y) * a.width(), rb = (c * b.height() + y) * b.width();
                for (int x = 0; x < e; x++) {
                    float wb = (float) ((double) x / e), wa = (float) (1 - (double) x / e);
                    b.values()[rb + x] = a.values()[ra + a.width() - e + x] * wa + b.values()[rb + x] * wb;
                }
            }
        }
    }
}
