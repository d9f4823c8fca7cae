package dev.latte.tests.unet;

import dev.latte.core.Backend;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.exec.Executor;
import dev.latte.exec.PlannedArena;
import dev.latte.graph.Fusion;
import dev.latte.graph.Graph;
import dev.latte.graph.Op;
import dev.latte.model.UNetModel;
import dev.latte.plan.MemoryPlan;
import dev.latte.plan.MemoryPlanner;
import dev.latte.ref.ReferenceBackend;
import dev.latte.tests.Resources;
import dev.latte.weights.SafeTensorsFile;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The fused graph computes exactly what the unfused one does, with the ResNet GN/SiLU/add passes
 * and the transformer's residual adds, GEGLU and separate q/k/v projections gone: bit for bit on the reference backend, whose fused ops compose the unfused ones. (The fast
 * CPU backend normalises on load in its own fp32 arithmetic; it is held to the reference by the
 * op-case table and to the goldens.)
 */
class FusionTest {
    @Test
    void fusedUNetIsBitIdenticalAndSmaller() {
        try (UNetModel model = UNetModel.load(Resources.unetTiny()); Backend cpu = new ReferenceBackend()) {
            Graph plain = model.graph(2, 16, 16, 7);
            Graph fused = Fusion.fuse(plain);

            long resnets = plain.params().keySet().stream().filter(n -> n.endsWith("conv1.weight")).count();
            long transformers = plain.params().keySet().stream().filter(n -> n.endsWith("proj_in.weight")).count();
            long gnPlain = plain.ops().stream().filter(o -> o instanceof Op.GroupNorm).count();
            long gnFused = fused.ops().stream().filter(o -> o instanceof Op.GroupNorm).count();
            // norm1, norm2 per resnet and the transformer norm fold into convs; conv_norm_out is a named output
            assertEquals(gnPlain - 2 * resnets - transformers, gnFused);
            assertEquals(1, gnFused);
            long withResidual = fused.ops().stream()
                    .filter(o -> o instanceof Op.Conv2dFused f && f.residual() >= 0).count();
            assertEquals(resnets + transformers, withResidual, "every resnet skip and transformer proj_out residual");
            long upsamplers = plain.params().keySet().stream().filter(n -> n.contains("upsamplers.0.conv.weight")).count();
            assertEquals(2, upsamplers);
            assertEquals(upsamplers, fused.ops().stream().filter(o -> o instanceof Op.Conv2dUpsampled).count());
            assertEquals(0, fused.ops().stream().filter(o -> o instanceof Op.UpsampleNearest).count());
            // per BasicTransformerBlock: q/k/v as one GEMM read in place by attn1, attn1/attn2/ff
            // out-projections with the residual in their epilogue, GEGLU in the ff's first linear
            long blocks = plain.params().keySet().stream().filter(n -> n.endsWith("attn1.to_q.weight")).count();
            assertTrue(blocks > 0);
            assertEquals(blocks, fused.ops().stream().filter(o -> o instanceof Op.LinearQkv).count());
            assertEquals(blocks, fused.ops().stream().filter(o -> o instanceof Op.AttentionQkv).count());
            assertEquals(blocks, fused.ops().stream().filter(o -> o instanceof Op.Attention).count(), "attn2 stays");
            assertEquals(3 * blocks, fused.ops().stream().filter(o -> o instanceof Op.LinearResidual).count());
            assertEquals(blocks, fused.ops().stream().filter(o -> o instanceof Op.LinearGeglu).count());
            assertEquals(0, fused.ops().stream().filter(o -> o instanceof Op.Unary u && u.fn() == Op.Fn.GEGLU).count());
            assertEquals(plain.ops().stream().filter(o -> o instanceof Op.Add).count() - 3 * blocks - resnets
                    - transformers, fused.ops().stream().filter(o -> o instanceof Op.Add).count());
            assertTrue(fused.ops().size() < plain.ops().size());
            // the matrix work DeepCache's MAC counts (and the roofline) see is fusion's invariant
            assertEquals(plain.ops().stream().filter(Op::computeBound).mapToLong(o -> o.flops(plain)).sum(),
                    fused.ops().stream().filter(Op::computeBound).mapToLong(o -> o.flops(fused)).sum());
            for (Op op : fused.ops()) {
                op.check(fused);
            }

            Map<String, Tensor> params = new HashMap<>();
            SafeTensorsFile w = model.weights();
            plain.params().forEach((name, v) -> params.put(name, cpu.upload(v.shape(), w.toFloatArray(name))));
            Random rnd = new Random(1);
            Map<String, Tensor> inputs = Map.of(
                    "sample", cpu.upload(Shape.of(2, 4, 16, 16), RandomModels.gaussian(rnd, 2 * 4 * 16 * 16)),
                    "timestep", cpu.upload(Shape.of(2), new float[] {10, 900}),
                    "encoder_hidden_states", cpu.upload(Shape.of(2, 7, 32), RandomModels.gaussian(rnd, 2 * 7 * 32)));
            var a = Executor.run(plain, cpu, params, inputs, false);
            var b = Executor.run(fused, cpu, params, inputs, false);
            for (String name : plain.outputs().keySet()) {
                assertArrayEquals(cpu.download(a.get(name)), cpu.download(b.get(name)), name);
            }
            // planned: the residual epilogues run in place over residuals that die there
            MemoryPlan plan = MemoryPlanner.plan(fused, Float.BYTES, fused.outputs().keySet());
            assertTrue(fused.ops().stream().anyMatch(o -> o instanceof Op.LinearResidual r
                    && plan.activation(r.out()).inPlaceOf() == r.residual()), "some residual epilogue runs in place");
            try (PlannedArena arena = PlannedArena.bind(cpu, fused, plan)) {
                inputs.forEach((name, t) -> cpu.write(arena.input(name), cpu.download(t)));
                var c = Executor.run(fused, cpu, arena, params, false);
                for (String name : plain.outputs().keySet()) {
                    assertArrayEquals(cpu.download(a.get(name)), cpu.download(c.get(name)), name + " (planned)");
                }
            }
        }
    }
}
