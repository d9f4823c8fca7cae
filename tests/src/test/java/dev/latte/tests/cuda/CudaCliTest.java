package dev.latte.tests.cuda;

import static dev.latte.tests.cli.Cli.latte;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.latte.cuda.CudaContext;
import dev.latte.tests.Resources;
import dev.latte.tests.cli.Cli.Result;
import java.util.List;
import org.junit.jupiter.api.Test;

/** {@code latte validate --backend cuda}: on a GPU it passes its gates; without one it says why, exit 2. */
class CudaCliTest {
    static String[] validate(String dtype) {
        return new String[] {"validate", "--model", Resources.unetTiny().toString(), "--golden",
                Resources.golden("unet-tiny/case-0.safetensors").toString(), "--backend", "cuda", "--dtype", dtype};
    }

    @Test
    void validateFp16OnTheGpu() {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        Result r = latte(validate("fp16"));
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("all >= 45.0 dB") && r.out().contains("cuda-fp16"), r.out());
    }

    @Test
    void validateFp32OnTheGpu() {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        Result r = latte(validate("fp32"));
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("all >= 100.0 dB") && r.out().contains("cuda-fp32"), r.out());
    }

    /** Runs where there is no GPU: one line naming the reason, exit 2, no stack trace. */
    @Test
    void withoutADeviceItSaysWhy() {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason != null, "a CUDA device is present");
        Result r = latte(validate("fp16"));
        assertEquals(2, r.code(), r.err());
        List<String> lines = r.err().strip().lines().toList();
        assertEquals(List.of("latte: cuda backend unavailable: " + reason), lines);
    }

    @Test
    void badDtype() {
        Result r = latte(validate("bf16"));
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("--dtype must be fp16 or fp32"), r.err());
    }
}
