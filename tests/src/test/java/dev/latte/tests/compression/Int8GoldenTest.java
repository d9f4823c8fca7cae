package dev.latte.tests.compression;

import dev.latte.core.Compare;
import dev.latte.core.Int8Mode;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cpu.CpuBackend;
import dev.latte.quant.Int8;
import dev.latte.tests.Resources;
import dev.latte.weights.SafeTensorsFile;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Latte's int8 against PyTorch: {@code ops/int8_weight_quant} (the quantisation rule, exactly, and
 * the dequantised product) and {@code ops/int8_gemm} (s8×s8 → s32, exactly).
 */
class Int8GoldenTest {
    static final CpuBackend CPU = new CpuBackend(2);

    @AfterAll
    static void close() {
        CPU.close();
    }

    static SafeTensorsFile op(String name) {
        return SafeTensorsFile.open(Resources.golden("ops/" + name + ".safetensors"));
    }

    static byte[] bytes(SafeTensorsFile f, String name) {
        long[] v = f.toLongArray(name);
        byte[] b = new byte[v.length];
        for (int i = 0; i < v.length; i++) {
            b[i] = (byte) v[i];
        }
        return b;
    }

    @Test
    void weightQuantisationIsPyTorchsExactly() {
        try (SafeTensorsFile f = op("int8_weight_quant")) {
            float[] w = f.toFloatArray("w");
            Int8.Rows q = Int8.quantizeRows(w, 128);
            assertArrayEquals(f.toFloatArray("w_scale"), q.scale(), "w_scale = max|w_row| / 127");
            assertArrayEquals(bytes(f, "w_q"), q.q(), "w_q = clamp(round(w / scale), -127, 127)");

            Tensor x = CPU.upload(Shape.of(64, 256), f.toFloatArray("x"));
            Tensor wq = CPU.uploadInt8(Shape.of(128, 256), q.q()), ws = CPU.upload(Shape.of(128), q.scale());
            Tensor out = CPU.allocate(Shape.of(64, 128));
            CPU.linearInt8(x, wq, ws, null, Int8Mode.W8A16, out);
            float[] y = CPU.download(out);
            Compare deq = Compare.of(f.toFloatArray("y_dequant"), y);
            Compare vsFloat = Compare.of(f.toFloatArray("y_float"), y);
            CPU.linearInt8(x, wq, ws, null, Int8Mode.W8A8, out);
            Compare a8 = Compare.of(f.toFloatArray("y_float"), CPU.download(out));
            System.out.printf("int8_weight_quant: W8A16 vs y_dequant %.1f dB, vs y_float %.1f dB; W8A8 vs y_float %.1f dB%n",
                    deq.psnr(), vsFloat.psnr(), a8.psnr());
            assertTrue(deq.psnr() >= 110, "W8A16 vs y_dequant: " + deq.psnr() + " dB");
            assertTrue(vsFloat.psnr() >= 35 && a8.psnr() >= 30, "int8 error vs fp32: " + vsFloat.psnr() + ", "
                    + a8.psnr() + " dB");
        }
    }

    @Test
    void int8GemmIsExact() {
        try (SafeTensorsFile f = op("int8_gemm")) {
            byte[] a = bytes(f, "a"), b = bytes(f, "b"); // a [64, 256], b [256, 128]
            long[] c = f.toLongArray("c");
            byte[] bT = new byte[b.length]; // the weight layout: [out, in]
            for (int k = 0; k < 256; k++) {
                for (int n = 0; n < 128; n++) {
                    bT[n * 256 + k] = b[k * 128 + n];
                }
            }
            for (int m = 0; m < 64; m++) {
                for (int n = 0; n < 128; n++) {
                    assertEquals(c[m * 128 + n], Int8.dot(a, m * 256, bT, n * 256, 256), "c[" + m + "," + n + "]");
                }
            }
            // through the backend, weight scale 1: W8A16 on integer-valued activations is exact in fp32 ...
            float[] x = new float[a.length];
            for (int i = 0; i < a.length; i++) {
                x[i] = a[i];
            }
            float[] ones = new float[128];
            java.util.Arrays.fill(ones, 1f);
            Tensor wq = CPU.uploadInt8(Shape.of(128, 256), bT), ws = CPU.upload(Shape.of(128), ones);
            Tensor xt = CPU.upload(Shape.of(64, 256), x), out = CPU.allocate(Shape.of(64, 128));
            CPU.linearInt8(xt, wq, ws, null, Int8Mode.W8A16, out);
            float[] y16 = CPU.download(out);
            CPU.linearInt8(xt, wq, ws, null, Int8Mode.W8A8, out);
            float[] y8 = CPU.download(out);
            int exactRows = 0;
            for (int m = 0; m < 64; m++) {
                // ... and W8A8 too on every row whose activation scale is exactly 1 (max |a| = 127, no -128)
                int max = 0, min = 0;
                for (int k = 0; k < 256; k++) {
                    max = Math.max(max, Math.abs(a[m * 256 + k]));
                    min = Math.min(min, a[m * 256 + k]);
                }
                boolean scaleOne = max == 127 && min > -128;
                exactRows += scaleOne ? 1 : 0;
                for (int n = 0; n < 128; n++) {
                    assertEquals((float) c[m * 128 + n], y16[m * 128 + n], "W8A16 c[" + m + "," + n + "]");
                    if (scaleOne) {
                        assertEquals((float) c[m * 128 + n], y8[m * 128 + n], "W8A8 c[" + m + "," + n + "]");
                    }
                }
            }
            assertEquals(19, exactRows, "rows of a with activation scale exactly 1");
        }
    }
}
