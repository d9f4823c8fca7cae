package dev.latte.tests.ops;

import dev.latte.bench.OpCase;
import dev.latte.bench.OpCases;
import dev.latte.bench.OpCheck;
import dev.latte.core.Backend;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.ref.ReferenceBackend;
import org.junit.jupiter.api.Test;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The op-case checker fails what it must: one wrong element that PSNR forgives, a stray write, an unwritten element. */
class OpCheckTest {
    static final ReferenceBackend REF = new ReferenceBackend();

    static OpCase find(String name) {
        return OpCases.ci().stream().filter(c -> c.name().equals(name)).findFirst().orElseThrow();
    }

    @Test
    void oneWrongElementFailsTheBoundThoughPsnrPasses() {
        OpCase c = find("linear 100→72 77 tokens +bias");
        OpCheck.Inputs in = OpCheck.draw(c);
        float[] ref = OpCheck.run(REF, c, in).values();
        float[] got = ref.clone();
        got[5 * 72 + 3] += 0.5f;
        OpCheck.Result r = OpCheck.judge("corrupt", c, ref, new OpCheck.Output(got, null), OpCheck.Tolerance.FP16);
        assertTrue(r.psnr() >= OpCheck.Tolerance.FP16.minPsnr(), r.summary());
        assertFalse(r.passed(), r.summary());
        assertTrue(r.worst().startsWith("[0, 5, 3] = "), r.summary());
        assertTrue(OpCheck.judge("same", c, ref, new OpCheck.Output(ref.clone(), null), OpCheck.Tolerance.FP32).passed());
    }

    /** A backend whose silu writes its output one element late: the guard after the output must see it. */
    @Test
    void aStrayWriteIsNamed() {
        OpCase c = find("silu 40x9x7");
        Tensor[] arena = new Tensor[1];
        long[] offset = new long[1];
        Backend shifted = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class},
                (proxy, m, args) -> {
                    try {
                        if (m.getName().equals("view") && ((Shape) args[2]).equals(c.graph().value(c.op().out()).shape())) {
                            arena[0] = (Tensor) args[0];
                            offset[0] = (long) args[1];
                        }
                        if (m.getName().equals("silu")) {
                            REF.silu((Tensor) args[0], REF.view(arena[0], offset[0] + 4, ((Tensor) args[1]).shape()));
                            return null;
                        }
                        return m.invoke(REF, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
        OpCheck.Output out = OpCheck.run(shifted, c, OpCheck.draw(c));
        assertEquals("a write 0 bytes past the end of the output", out.guardViolation());
        float[] ref = OpCheck.run(REF, c, OpCheck.draw(c)).values();
        OpCheck.Result r = OpCheck.judge("shifted", c, ref, out, OpCheck.Tolerance.FP32);
        assertFalse(r.passed(), r.summary());
        assertEquals(1, r.nonFinite(), "the first element was never written: " + r.summary());
    }
}
