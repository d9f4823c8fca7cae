package dev.latte.tests.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.latte.graph.GraphException;
import dev.latte.unet.UNet2DConditionModel;
import dev.latte.weights.UNetConfig;
import dev.latte.weights.WeightsException;

import java.nio.charset.StandardCharsets;

/**
 * Any text as a UNet {@code config.json}: either a config whose graph builds (at the smallest
 * input every level can halve, as loading a model does), or one line naming config.json and the
 * key (or the op the config cannot build). Seeds: {@code ConfigFuzzTestInputs/parseAndBuild/}.
 */
class ConfigFuzzTest {
    @FuzzTest(maxDuration = "10m")
    void parseAndBuild(byte[] bytes) {
        String json = new String(bytes, StandardCharsets.UTF_8);
        try {
            UNetConfig cfg = UNetConfig.parse(json, "config.json");
            var unet = new UNet2DConditionModel(cfg, "config.json");
            int side = 2 << cfg.levels();
            unet.graph(1, side, side, 1);
        } catch (WeightsException e) {
            Fuzzing.assertOneLine(e, "config.json");
        } catch (GraphException e) {
            Fuzzing.assertOneLine(e, null);
        }
    }
}
