package dev.latte.tests.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.latte.core.Backend;
import dev.latte.core.Compare;
import dev.latte.cpu.CpuBackend;
import dev.latte.cuda.CudaContext;
import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.CudaBackend.Precision;
import dev.latte.lora.Lora;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.sampling.DdimScheduler;
import dev.latte.sampling.Gaussian;
import dev.latte.sampling.GuidedUNet;
import dev.latte.sampling.NoiseSource;
import dev.latte.sampling.Sampler;
import dev.latte.sampling.SamplingInputs.Conditioning;
import dev.latte.sampling.SchedulerConfig;
import dev.latte.tests.Resources;
import dev.latte.tests.sampling.TinyLora;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The sampling loop on CUDA: DDIM with classifier-free guidance over unet-tiny with a LoRA merged
 * in (8x8 latents, so the emulated device runs it in CI) follows the CPU's trajectory step by step (fp32 ≥ 100 dB, fp16 ≥ 45 dB, DESIGN.md's gates),
 * and after the first step allocates nothing on the device: the context's cuMemAlloc count and
 * cuMemGetInfo's free bytes are the same after every later step.
 */
class CudaSamplingTest {
    static final int STEPS = 3, SIDE = 8, LATENT = 4 * SIDE * SIDE, CTX = 77 * 32;
    static CudaContext ctx;
    static UNetModel model;
    static Map<String, float[]> lora;
    static float[] init, cond, uncond;
    static List<float[]> cpuTrajectory;

    @TempDir
    static Path tmp;

    @BeforeAll
    static void open() {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        ctx = CudaContext.open(0);
        model = UNetModel.load(Resources.unetTiny());
        Path file = TinyLora.write(model.weights(), tmp.resolve("lora.safetensors"), 21);
        lora = Lora.load(file, model.weights()).mergedWeights(model.weights(), 0.8);
        Gaussian g = new Gaussian(5);
        init = g.next(LATENT);
        cond = g.next(CTX);
        uncond = g.next(CTX);
        try (CpuBackend cpu = new CpuBackend()) {
            cpuTrajectory = trajectory(cpu, new ArrayList<>());
        }
    }

    @AfterAll
    static void close() {
        if (model != null) {
            model.close();
        }
        if (ctx != null) {
            ctx.close();
        }
    }

    /** Every step's latents; {@code device} gets {allocations, free bytes} after each step on CUDA. */
    static List<float[]> trajectory(Backend backend, List<long[]> device) {
        List<float[]> steps = new ArrayList<>();
        try (UNetRunner runner = new UNetRunner(model, backend, lora)) {
            var unet = new GuidedUNet(runner, new Conditioning(cond, uncond, 1, 77, 32), 7.5, SIDE, SIDE);
            Sampler.run(new DdimScheduler(SchedulerConfig.SD15, STEPS, 0), unet, init.clone(), NoiseSource.NONE,
                    (i, n, t, x, d) -> {
                        steps.add(x.clone());
                        if (backend instanceof CudaBackend) {
                            device.add(new long[] {ctx.allocationCount(), ctx.memInfo()[0]});
                        }
                    });
        }
        return steps;
    }

    @ParameterizedTest
    @EnumSource(Precision.class)
    void ddimWithGuidanceAndLoraFollowsTheCpu(Precision precision) {
        List<long[]> device = new ArrayList<>();
        List<float[]> gpu;
        try (CudaBackend backend = new CudaBackend(ctx, precision)) {
            gpu = trajectory(backend, device);
        }
        assertEquals(STEPS, gpu.size());
        double gate = precision == Precision.FP16 ? 45 : 100;
        for (int i = 0; i < STEPS; i++) {
            Compare c = Compare.of(cpuTrajectory.get(i), gpu.get(i));
            System.out.printf(Locale.ROOT, "cuda %s sampling step %d: PSNR %.2f dB vs the CPU%n", precision, i, c.psnr());
            assertTrue(c.psnr() >= gate, precision + " step " + i + ": " + c.psnr() + " dB < " + gate);
        }
        for (int i = 1; i < STEPS; i++) {
            assertEquals(device.get(0)[0], device.get(i)[0], precision + ": cuMemAlloc calls by step " + i);
            assertEquals(device.get(0)[1], device.get(i)[1], precision + ": cuMemGetInfo free bytes at step " + i);
        }
    }
}
