package dev.latte.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every kernel file compiles with the CUDA toolkit's nvcc for the architectures Latte targets
 * (the machines that build Latte have nvcc but no GPU and no NVRTC), and ptxas's register and
 * spill report for sm_90 is printed per kernel. A spill in a hot kernel (conv, GEMM, attention,
 * INT8 GEMM) fails the test, naming the kernels. For sm_75 (Turing: no m16n8k16, no cp.async)
 * the {@code __CUDA_ARCH__ >= 800} guards must leave no tensor-core instruction in the PTX while
 * the fp32, fp16 and dp4a kernels remain.
 */
class NvccCompileTest {
    private static final Path SOURCES = Path.of("src/main/resources/dev/latte/kernels");
    private static final List<String> ARCHS = List.of("sm_75", "sm_80", "sm_89", "sm_90");
    /** PTX that sm_75 cannot run. */
    private static final Pattern AMPERE_ONLY = Pattern.compile("\\b(mma\\.sync\\.aligned\\.m16n8k(16|32)|cp\\.async|ldmatrix)\\b");
    /** Files whose kernels are on the UNet's hot path: no spills allowed there. */
    private static final Set<String> HOT = Set.of("conv.cu", "gemm.cu", "attention.cu", "int8_gemm.cu");
    private static final Pattern ENTRY = Pattern.compile("Compiling entry function '([^']+)' for '([^']+)'");
    private static final Pattern SPILL = Pattern.compile("(\\d+) bytes stack frame, (\\d+) bytes spill stores, (\\d+) bytes spill loads");
    private static final Pattern REGS = Pattern.compile("Used (\\d+) registers");

    @TempDir
    Path tmp;

    /** nvcc from $CUDA_HOME, /usr/local/cuda or the PATH; null when there is none. */
    static Path nvcc() {
        List<Path> candidates = new ArrayList<>();
        String home = System.getenv("CUDA_HOME");
        if (home != null) {
            candidates.add(Path.of(home, "bin", "nvcc"));
        }
        candidates.add(Path.of("/usr/local/cuda/bin/nvcc"));
        String path = System.getenv("PATH");
        if (path != null) {
            for (String dir : path.split(java.io.File.pathSeparator)) {
                candidates.add(Path.of(dir, "nvcc"));
            }
        }
        return candidates.stream().filter(Files::isExecutable).findFirst().orElse(null);
    }

    static List<Path> sources() throws IOException {
        try (Stream<Path> s = Files.list(SOURCES)) {
            return s.filter(p -> p.getFileName().toString().endsWith(".cu")).sorted().toList();
        }
    }

    record Result(int exit, String output) {
    }

    static Result run(List<String> cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(5, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new AssertionError("timed out: " + cmd);
        }
        return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
    }

    @TestFactory
    Stream<DynamicTest> ptxForEveryArch() throws IOException {
        Path nvcc = nvcc();
        assumeTrue(nvcc != null, "no nvcc (looked in $CUDA_HOME/bin, /usr/local/cuda/bin and the PATH)");
        List<Path> files = sources();
        assertFalse(files.isEmpty(), "no .cu files under " + SOURCES.toAbsolutePath());
        List<DynamicTest> tests = new ArrayList<>();
        for (Path f : files) {
            for (String arch : ARCHS) {
                String name = f.getFileName() + " " + arch;
                tests.add(DynamicTest.dynamicTest(name, () -> {
                    Path ptx = tmp.resolve(f.getFileName() + "." + arch + ".ptx");
                    Result r = run(List.of(nvcc.toString(), "-ptx", "-arch=" + arch, "-std=c++17",
                            f.toString(), "-o", ptx.toString()));
                    assertEquals(0, r.exit(), "nvcc -ptx -arch=" + arch + " " + f + ":\n" + r.output());
                    assertTrue(Files.size(ptx) > 0, "empty PTX for " + name);
                    if (arch.equals("sm_75")) {
                        String text = Files.readString(ptx);
                        Matcher m = AMPERE_ONLY.matcher(text);
                        if (m.find()) {
                            fail(name + ": PTX has " + m.group() + ", which sm_75 lacks");
                        }
                        boolean tensorCoreOnly = Set.of("attention_v2.cu", "gemm_v2.cu", "conv_v2.cu").contains(f.getFileName().toString());
                        assertEquals(!tensorCoreOnly, text.contains(".entry "), name + ": kernels left for sm_75");
                        if (f.getFileName().toString().equals("int8_gemm.cu")) {
                            assertTrue(text.contains("dp4a.s32.s32"), name + ": the dp4a path");
                        }
                    }
                }));
            }
        }
        return tests.stream();
    }

    @TestFactory
    Stream<DynamicTest> registersAndSpillsOnSm90() throws IOException {
        Path nvcc = nvcc();
        assumeTrue(nvcc != null, "no nvcc (looked in $CUDA_HOME/bin, /usr/local/cuda/bin and the PATH)");
        return sources().stream().map(f -> DynamicTest.dynamicTest(f.getFileName() + " ptxas -v sm_90", () -> {
            Path cubin = tmp.resolve(f.getFileName() + ".cubin");
            Result r = run(List.of(nvcc.toString(), "-cubin", "-arch=sm_90", "-std=c++17", "-Xptxas", "-v",
                    f.toString(), "-o", cubin.toString()));
            assertEquals(0, r.exit(), "nvcc -cubin -arch=sm_90 " + f + ":\n" + r.output());
            List<String> spilling = new ArrayList<>();
            String kernel = null;
            int kernels = 0;
            StringBuilder report = new StringBuilder();
            String spills = null;
            for (String line : r.output().split("\n")) {
                Matcher m = ENTRY.matcher(line);
                if (m.find()) {
                    kernel = m.group(1);
                    kernels++;
                    continue;
                }
                m = SPILL.matcher(line);
                if (m.find() && kernel != null) {
                    spills = m.group(1) + " B stack, " + m.group(2) + " B spill stores, " + m.group(3) + " B spill loads";
                    if (Integer.parseInt(m.group(2)) > 0 || Integer.parseInt(m.group(3)) > 0) {
                        spilling.add(kernel + " (" + spills + ")");
                    }
                    continue;
                }
                m = REGS.matcher(line);
                if (m.find() && kernel != null) {
                    report.append(String.format("  %-32s %3s registers, %s%n", kernel, m.group(1), spills));
                    kernel = null;
                }
            }
            System.out.print("ptxas sm_90 " + f.getFileName() + ":\n" + report);
            assertTrue(kernels > 0, "no kernels reported by ptxas for " + f + ":\n" + r.output());
            if (HOT.contains(f.getFileName().toString())) {
                assertTrue(spilling.isEmpty(), "hot kernels spill in " + f.getFileName() + ": " + spilling);
            } else if (!spilling.isEmpty()) {
                System.out.println("  (spills, not on the hot path: " + spilling + ")");
            }
        }));
    }
}
