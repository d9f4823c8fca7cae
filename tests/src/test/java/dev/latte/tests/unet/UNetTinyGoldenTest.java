package dev.latte.tests.unet;

import dev.latte.core.Backend;
import dev.latte.cpu.CpuBackend;
import dev.latte.model.GoldenCase;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.ref.ReferenceBackend;
import dev.latte.tests.Resources;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The UNet against diffusers on unet-tiny, the output and every stored intermediate ≥ 110 dB: on
 * the reference backend (the trust anchor) and on the fast CPU backend.
 */
class UNetTinyGoldenTest {
    static final double MIN_PSNR = 110;
    static List<Backend> backends;
    static UNetModel model;

    @BeforeAll
    static void load() {
        backends = List.of(new ReferenceBackend(), new CpuBackend());
        model = UNetModel.load(Resources.unetTiny());
    }

    @AfterAll
    static void close() {
        model.close();
        backends.forEach(Backend::close);
    }

    @TestFactory
    Stream<DynamicTest> everyCaseEveryTensor() {
        return backends.stream().flatMap(be -> Stream.of("case-0", "case-1", "case-2").flatMap(c -> {
            List<GoldenCase.Row> rows;
            try (UNetRunner runner = new UNetRunner(model, be)) {
                rows = GoldenCase.validate(runner, Resources.golden("unet-tiny/" + c + ".safetensors"));
            }
            assertEquals(11, rows.size(), c + ": stored tensors compared");
            return rows.stream().map(r -> DynamicTest.dynamicTest(be.name() + " " + c + " " + r.name(), () -> {
                System.out.printf("unet-tiny %s %s %-20s PSNR %.2f dB, max |err| %.3e%n", be.name(), c, r.name(),
                        r.compare().psnr(), r.compare().maxAbsError());
                assertEquals(0, r.compare().nonFinite(), "non-finite values");
                assertTrue(r.compare().psnr() >= MIN_PSNR,
                        c + " " + r.name() + ": PSNR " + r.compare().psnr() + " dB < " + MIN_PSNR);
            }));
        }));
    }
}
