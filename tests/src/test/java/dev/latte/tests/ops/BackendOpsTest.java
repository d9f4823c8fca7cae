package dev.latte.tests.ops;

import dev.latte.bench.OpCase;
import dev.latte.bench.OpCases;
import dev.latte.bench.OpCheck;
import dev.latte.cli.Backends;
import dev.latte.core.Backend;
import dev.latte.graph.OpSupport;
import dev.latte.ref.ReferenceBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicContainer;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The op-case table ({@link OpCases}) on every backend of {@link Backends#SPECS} against the
 * reference backend: sentinel guards around the output, a non-finite check, PSNR and the
 * per-element bound ({@link OpCheck}). A backend that cannot be opened here (no CUDA device) or
 * does not run an op skips those cases, saying why. {@code -Dlatte.cases=sd15} runs SD1.5's own
 * shapes instead of the small CI ones (slow: the reference is naive).
 */
class BackendOpsTest {
    private static final ReferenceBackend REF = new ReferenceBackend();
    private static final Map<Backends.Spec, Object> OPENED = new LinkedHashMap<>();
    /** The reference result per case and input rounding, computed once for every backend that needs it. */
    private static final Map<String, float[]> EXPECTED = new HashMap<>();

    @AfterAll
    static void close() {
        OPENED.values().forEach(o -> {
            if (o instanceof Backend b) {
                b.close();
            }
        });
        OPENED.clear();
    }

    /** The backend of {@code spec}, opened once; skips the calling test where it cannot be opened. */
    private static Backend backend(Backends.Spec spec) {
        Object o = OPENED.computeIfAbsent(spec, s -> {
            try {
                return Backends.open(s.name(), s.dtype(), Runtime.getRuntime().availableProcessors(), s.kernels());
            } catch (Backends.Unavailable e) {
                return e.getMessage();
            }
        });
        assumeTrue(o instanceof Backend, () -> String.valueOf(o));
        return (Backend) o;
    }

    @TestFactory
    Stream<DynamicContainer> everyCaseOnEveryBackend() {
        List<OpCase> cases = OpCases.selected();
        // a spec that forces a kernel version runs its family's ops only
        return Backends.SPECS.stream().filter(s -> !s.name().equals("ref")).map(spec ->
                DynamicContainer.dynamicContainer(spec.toString(), cases.stream()
                        .filter(c -> spec.family() == null || spec.family().runs(c.op().kind()))
                        .map(c -> DynamicTest.dynamicTest(c.name(), () -> check(spec, c)))));
    }

    private static void check(Backends.Spec spec, OpCase c) {
        Backend b = backend(spec);
        String unsupported = OpSupport.reason(b, c.op(), c.graph());
        assumeTrue(unsupported == null, unsupported);
        OpCheck.Tolerance tol = OpCheck.Tolerance.of(b);
        boolean fp16 = b.activationBytes() == 2;
        OpCheck.Inputs in = OpCheck.draw(c);
        OpCheck.Inputs given = fp16 ? in.fp16(c.graph(), c.op()) : in;
        float[] expected = EXPECTED.computeIfAbsent(c.name() + (fp16 ? " fp16 inputs" : ""),
                k -> OpCheck.run(REF, c, given).values());
        OpCheck.Result r = OpCheck.judge(spec.toString(), c, expected, OpCheck.run(b, c, given), tol);
        System.out.println("[op-case] " + c.name() + " " + r.summary());
        assertTrue(r.passed(), () -> c.name() + " on " + r.summary());
    }
}
