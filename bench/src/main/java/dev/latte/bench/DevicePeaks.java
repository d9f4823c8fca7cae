package dev.latte.bench;

import java.util.List;

/**
 * Peak arithmetic rates per streaming multiprocessor and clock, by compute capability; a device's
 * peak is {@code SMs × clock × rate} with the SM count and clock read from its attributes
 * ({@code CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT}, {@code CU_DEVICE_ATTRIBUTE_CLOCK_RATE}, the
 * boost clock in kHz). Dense (no sparsity) rates, operations counted as 2 per multiply-add:
 *
 * <pre>
 * arch   fp16 tensor, fp32 acc   int8 tensor   fp32 FMA    check (datasheet, dense)
 * sm_75  512                     1024          128         T4: 40 SMs × 1.59 GHz × 1024 = 65 TFLOP/s fp16
 * sm_80  2048                    4096          128         A100: 108 × 1.41 GHz × 2048 = 312 TFLOP/s
 * sm_86  512                     1024          256         RTX 3090: 82 × 1.695 GHz × 512 = 71 TFLOP/s
 * sm_89  512                     1024          256         RTX 4090: 128 × 2.52 GHz × 512 = 165 TFLOP/s
 * sm_90  4096                    8192          256         H100 SXM: 132 × 1.83 GHz × 4096 = 989 TFLOP/s
 * </pre>
 *
 * sm_86/sm_89 GeForce parts run fp16 MMA with fp32 accumulation at half their fp16-accumulate
 * rate; the professional parts of those architectures (A40, L40S) do not, so on them the table
 * understates the peak by 2×: {@link #rates} notes it. Latte's kernels accumulate in fp32, so
 * the fp32-accumulate rate is the honest ceiling. fp32 kernels use FFMA (no TF32).
 *
 * <p>Memory: the theoretical bandwidth is {@code 2 × memory clock × bus width / 8} (double data
 * rate; {@code CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE} in kHz and {@code ..._GLOBAL_MEMORY_BUS_WIDTH}
 * in bits; H100 SXM: 2 × 2.619 GHz × 640 B = 3.35 TB/s). The bench also measures a
 * device-to-device copy (bytes read + bytes written over time) and uses that as the ceiling.
 */
public final class DevicePeaks {
    /** Per-SM-per-clock rates of one architecture. */
    public record Rates(int computeCapability, int fp16TensorPerClock, int int8TensorPerClock, int fp32PerClock,
                        String note) {
    }

    public static final List<Rates> TABLE = List.of(
            new Rates(75, 512, 1024, 128, "Turing"),
            new Rates(80, 2048, 4096, 128, "A100"),
            new Rates(86, 512, 1024, 256, "GA10x GeForce fp32-accumulate rate; A40/A10 2x"),
            new Rates(89, 512, 1024, 256, "Ada GeForce fp32-accumulate rate; L40S/L4 2x"),
            new Rates(90, 4096, 8192, 256, "H100/H200"));

    private DevicePeaks() {
    }

    /** The rates for compute capability {@code cc} (10·major + minor), or null if not in the table. */
    public static Rates rates(int cc) {
        return TABLE.stream().filter(r -> r.computeCapability() == cc).findFirst().orElse(null);
    }

    /**
     * Peak operations per second for {@code dtype} ("fp16" tensor cores with fp32 accumulation,
     * "int8" tensor cores, "fp32" FFMA), or NaN when the architecture is not in the table or the
     * clock is unknown (≤ 0).
     */
    public static double peakOpsPerSecond(int cc, int sms, long clockKHz, String dtype) {
        Rates r = rates(cc);
        if (r == null || clockKHz <= 0 || sms <= 0) {
            return Double.NaN;
        }
        int perClock = switch (dtype) {
            case "fp16" -> r.fp16TensorPerClock();
            case "int8" -> r.int8TensorPerClock();
            case "fp32" -> r.fp32PerClock();
            default -> throw new IllegalArgumentException("dtype must be fp16, int8 or fp32, not '" + dtype + "'");
        };
        return (double) sms * clockKHz * 1e3 * perClock;
    }

    /** 2 × memory clock × bus width / 8 bytes per second, or NaN if either is unknown. */
    public static double theoreticalBandwidth(long memClockKHz, int busWidthBits) {
        if (memClockKHz <= 0 || busWidthBits <= 0) {
            return Double.NaN;
        }
        return 2.0 * memClockKHz * 1e3 * busWidthBits / 8;
    }
}
