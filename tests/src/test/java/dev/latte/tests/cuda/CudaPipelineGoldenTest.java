package dev.latte.tests.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.latte.cuda.CudaContext;
import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.CudaBackend.Precision;
import dev.latte.model.Component;
import dev.latte.model.GoldenCase;
import dev.latte.tests.Resources;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The text encoder and the VAE on the GPU in fp32 against the same goldens the CPU passes, every
 * stored tensor ≥ 100 dB (the CUDA fp32 gate). Skips, naming the reason, where no CUDA device can
 * be opened.
 */
class CudaPipelineGoldenTest {
    static final double MIN_PSNR_FP32 = 100;
    static CudaContext ctx;

    @BeforeAll
    static void open() {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        ctx = CudaContext.open(0);
    }

    @AfterAll
    static void close() {
        if (ctx != null) {
            ctx.close();
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"text_encoder/case-0", "text_encoder/case-1", "text_encoder/case-2", "vae/decode-1",
            "vae/encode-1"})
    void fp32(String c) {
        Path dir = Resources.golden("pipeline/" + c.substring(0, c.indexOf('/')));
        try (CudaBackend backend = new CudaBackend(ctx, Precision.FP32)) {
            List<GoldenCase.Row> rows = Component.validate(dir, backend,
                    Resources.golden("pipeline/" + c + ".safetensors"));
            assertTrue(rows.size() >= 5, rows.toString());
            for (GoldenCase.Row r : rows) {
                System.out.printf("cuda fp32 %s %-28s %.1f dB%n", c, r.name(), r.compare().psnr());
                assertTrue(r.compare().psnr() >= MIN_PSNR_FP32, c + " " + r.name() + ": " + r.compare().psnr() + " dB");
            }
        }
    }
}
