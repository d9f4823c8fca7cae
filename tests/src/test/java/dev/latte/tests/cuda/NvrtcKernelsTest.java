package dev.latte.tests.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.latte.cuda.CudaUnavailableException;
import dev.latte.cuda.Nvrtc;

import java.io.IOException;
import java.io.InputStream;
import java.net.JarURLConnection;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.stream.Stream;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Every kernel file on the classpath under {@code dev/latte/kernels/} (the kernels module) and
 * Latte's own self-test kernel compile through our NVRTC binding to CUBIN for sm_80 and sm_90,
 * exactly as the CUDA backend compiles them at start-up; {@code .cuh} files there are given to
 * NVRTC as in-memory headers. A compile error fails with NVRTC's log (file:line). No GPU needed:
 * CI loads libnvrtc from the nvrtc-redist profile.
 */
class NvrtcKernelsTest {
    static final String KERNELS = "dev/latte/kernels/";
    static final List<String> ARCHS = List.of("sm_80", "sm_90");

    @BeforeAll
    static void nvrtc() {
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

    /** File name → text for every .cu/.cuh/.h directly under {@code dir} on the classpath (directories and jars). */
    static Map<String, String> resources(String dir) throws IOException, URISyntaxException {
        Map<String, String> out = new TreeMap<>();
        ClassLoader cl = NvrtcKernelsTest.class.getClassLoader();
        for (URL url : Collections.list(cl.getResources(dir))) {
            if (url.getProtocol().equals("file")) {
                Path root = Path.of(url.toURI());
                try (Stream<Path> files = Files.list(root)) {
                    for (Path f : files.filter(f -> Files.isRegularFile(f) && isCuda(f.getFileName().toString())).toList()) {
                        out.putIfAbsent(f.getFileName().toString(), Files.readString(f));
                    }
                }
            } else if (url.getProtocol().equals("jar")) {
                JarURLConnection c = (JarURLConnection) url.openConnection();
                c.setUseCaches(false);
                try (JarFile jar = c.getJarFile()) {
                    for (JarEntry e : Collections.list(jar.entries())) {
                        String name = e.getName();
                        if (!e.isDirectory() && name.startsWith(dir) && name.indexOf('/', dir.length()) < 0 && isCuda(name)) {
                            try (InputStream in = jar.getInputStream(e)) {
                                out.putIfAbsent(name.substring(dir.length()), new String(in.readAllBytes(), StandardCharsets.UTF_8));
                            }
                        }
                    }
                }
            } else {
                fail("cannot list " + url);
            }
        }
        return out;
    }

    record Compiled(Nvrtc.Output out, long ms) {
    }

    /** The compile's result; its NvrtcException (with NVRTC's log) as is. */
    static Compiled result(Future<Compiled> job) throws Throwable {
        try {
            return job.get();
        } catch (ExecutionException e) {
            throw e.getCause();
        }
    }

    static boolean isCuda(String name) {
        return name.endsWith(".cu") || isHeader(name);
    }

    static boolean isHeader(String name) {
        return name.endsWith(".cuh") || name.endsWith(".h");
    }

    @Test
    void theKernelsModuleIsOnTheClasspath() throws Exception {
        assertFalse(resources(KERNELS).keySet().stream().noneMatch(n -> n.endsWith(".cu")),
                "no .cu files under " + KERNELS + " on the test classpath (is latte-kernels a dependency?)");
    }

    @TestFactory
    List<DynamicTest> everyKernelCompilesToCubin() throws Exception {
        Map<String, String> all = resources(KERNELS);
        Map<String, String> headers = new TreeMap<>();
        all.forEach((n, text) -> {
            if (isHeader(n)) {
                headers.put(n, text);
            }
        });
        Map<String, String> sources = new TreeMap<>();
        all.forEach((n, text) -> {
            if (n.endsWith(".cu")) {
                sources.put(n, text);
            }
        });
        sources.putAll(resources("dev/latte/tests/cuda/"));
        // NVRTC programs are independent: compile them all at once, report one test per (file, arch)
        ExecutorService pool = Executors.newFixedThreadPool(Math.min(8, Runtime.getRuntime().availableProcessors()));
        List<DynamicTest> tests = new ArrayList<>();
        try {
            for (var s : sources.entrySet()) {
                for (String arch : ARCHS) {
                    Future<Compiled> job = pool.submit(() -> {
                        long t0 = System.nanoTime();
                        Nvrtc.Output out = Nvrtc.compile(s.getKey(), s.getValue(), arch, List.of(), headers);
                        return new Compiled(out, (System.nanoTime() - t0) / 1_000_000);
                    });
                    tests.add(DynamicTest.dynamicTest(s.getKey() + " → " + arch, () -> {
                        Compiled c = result(job);
                        byte[] cubin = c.out().image();
                        assertTrue(cubin.length > 64 && cubin[0] == 0x7f && cubin[1] == 'E' && cubin[2] == 'L'
                                && cubin[3] == 'F', "ELF magic");
                        assertEquals(190, (cubin[18] & 0xff) | (cubin[19] & 0xff) << 8, "e_machine EM_CUDA");
                        System.out.printf("NVRTC %s %s: %d bytes in %d ms%s%n", s.getKey(), arch, cubin.length, c.ms(),
                                c.out().log().isBlank() ? "" : "\n" + c.out().log().strip());
                    }));
                }
            }
        } finally {
            pool.shutdown();   // queued compiles still run; the tests wait for theirs
        }
        return tests;
    }
}
