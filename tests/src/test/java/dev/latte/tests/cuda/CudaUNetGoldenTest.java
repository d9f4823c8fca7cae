package dev.latte.tests.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.CudaBackend.Precision;
import dev.latte.model.GoldenCase;
import dev.latte.model.UNetRunner;
import dev.latte.tests.Resources;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The whole UNet on the GPU against diffusers on unet-tiny: the output and every stored
 * intermediate, fp32 (no TF32) ≥ 100 dB and fp16 ≥ 45 dB (DESIGN.md's gates). Skips, naming the
 * reason, where no CUDA device can be opened.
 */
class CudaUNetGoldenTest extends CudaUNetTinyFixture {
    static final double MIN_PSNR_FP32 = 100, MIN_PSNR_FP16 = 45;

    /**
     * Both precisions, each from a planned arena (the default: a captured CUDA graph) on every
     * case, and allocating per op on case 0 (every case with {@code -Dlatte.cases=sd15|all}: the
     * emulated device in CI takes about ten seconds of CPU per forward).
     */
    @TestFactory
    Stream<DynamicTest> everyCaseEveryTensor() {
        return Stream.of(Precision.FP32, Precision.FP16).flatMap(prec -> Stream.of(true, false).flatMap(planned -> {
            double gate = prec == Precision.FP16 ? MIN_PSNR_FP16 : MIN_PSNR_FP32;
            String mode = prec + (planned ? " planned" : " unplanned");
            List<DynamicTest> tests = new java.util.ArrayList<>();
            try (CudaBackend backend = new CudaBackend(ctx, prec); UNetRunner runner = new UNetRunner(model, backend)) {
                runner.setPlanned(planned);
                boolean all = planned || !System.getProperty("latte.cases", "ci").equals("ci");
                for (String c : all ? List.of("case-0", "case-1", "case-2") : List.of("case-0")) {
                    List<GoldenCase.Row> rows = GoldenCase.validate(runner,
                            Resources.golden("unet-tiny/" + c + ".safetensors"));
                    assertEquals(11, rows.size(), c + ": stored tensors compared");
                    for (GoldenCase.Row r : rows) {
                        tests.add(DynamicTest.dynamicTest(mode + " " + c + " " + r.name(), () -> {
                            System.out.printf(Locale.ROOT, "unet-tiny cuda %s %s %-20s PSNR %.2f dB, max |err| %.3e%n",
                                    mode, c, r.name(), r.compare().psnr(), r.compare().maxAbsError());
                            assertEquals(0, r.compare().nonFinite(), "non-finite values");
                            assertTrue(r.compare().psnr() >= gate,
                                    mode + " " + c + " " + r.name() + ": PSNR " + r.compare().psnr() + " dB < " + gate);
                        }));
                    }
                }
            }
            return tests.stream();
        }));
    }
}
