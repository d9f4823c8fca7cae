package dev.latte.tests.unet;

import dev.latte.cpu.CpuBackend;
import dev.latte.model.GoldenCase;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.tests.Resources;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The CPU UNet against diffusers on unet-tiny: the output and every stored intermediate, ≥ 110 dB. */
class UNetTinyGoldenTest {
    static final double MIN_PSNR = 110;
    static CpuBackend backend;
    static UNetModel model;
    static UNetRunner runner;

    @BeforeAll
    static void load() {
        backend = new CpuBackend();
        model = UNetModel.load(Resources.unetTiny());
        runner = new UNetRunner(model, backend);
    }

    @AfterAll
    static void close() {
        runner.close();
        model.close();
        backend.close();
    }

    @TestFactory
    Stream<DynamicTest> everyCaseEveryTensor() {
        return Stream.of("case-0", "case-1", "case-2").flatMap(c -> {
            List<GoldenCase.Row> rows = GoldenCase.validate(runner, Resources.golden("unet-tiny/" + c + ".safetensors"));
            assertEquals(11, rows.size(), c + ": stored tensors compared");
            return rows.stream().map(r -> DynamicTest.dynamicTest(c + " " + r.name(), () -> {
                System.out.printf("unet-tiny %s %-20s PSNR %.2f dB, max |err| %.3e%n", c, r.name(),
                        r.compare().psnr(), r.compare().maxAbsError());
                assertEquals(0, r.compare().nonFinite(), "non-finite values");
                assertTrue(r.compare().psnr() >= MIN_PSNR,
                        c + " " + r.name() + ": PSNR " + r.compare().psnr() + " dB < " + MIN_PSNR);
            }));
        });
    }
}
