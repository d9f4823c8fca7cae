package dev.latte.cuda;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * NVRTC tests run wherever NVRTC loads. Under the nvrtc-redist Maven profile (CI) NVRTC must load:
 * the profile sets latte.requireNvrtc, so a broken set-up fails instead of skipping everything.
 */
final class NvrtcAvailable {
    private NvrtcAvailable() {
    }

    static void assume() {
        String reason = Nvrtc.unavailableReason();
        if (reason == null) {
            try {
                Nvrtc.includeDir();
            } catch (CudaUnavailableException e) {
                reason = e.getMessage();
            }
        }
        if (reason != null && Boolean.getBoolean("latte.requireNvrtc")) {
            fail("NVRTC is required here (latte.requireNvrtc) but unavailable: " + reason);
        }
        assumeTrue(reason == null, reason);
    }
}
