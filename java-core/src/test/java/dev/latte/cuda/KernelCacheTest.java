package dev.latte.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class KernelCacheTest {
    static final String SRC = """
            extern "C" __global__ void scale(int n, float a, float* x) {
                int i = blockIdx.x * blockDim.x + threadIdx.x;
                if (i < n) x[i] *= a;
            }
            """;
    static final String V = "nvrtc 13.0 /usr/local/cuda/lib64/libnvrtc.so.13.0.88 107663296 1760000000000";

    @TempDir
    Path dir;

    private static List<Path> files(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.sorted().toList();
        }
    }

    @Test
    void secondCallAndWarmStartCompileNothing() throws IOException {
        NvrtcAvailable.assume();
        KernelCache cache = new KernelCache(dir);
        byte[] first = cache.cubin("scale.cu", SRC, "sm_80", List.of());
        assertEquals(1, cache.compilations());
        assertTrue(KernelCache.isElf(first));
        List<Path> written = files(dir);
        assertEquals(1, written.size(), written.toString());
        assertTrue(written.get(0).getFileName().toString().matches("scale\\.cu-sm_80-[0-9a-f]{64}\\.cubin"), written.toString());

        assertArrayEquals(first, cache.cubin("scale.cu", SRC, "sm_80", List.of()));
        assertEquals(1, cache.compilations());
        assertEquals(1, cache.hits());

        KernelCache warm = new KernelCache(dir);   // a new process, same directory
        assertArrayEquals(first, warm.cubin("scale.cu", SRC, "sm_80", List.of()));
        assertEquals(0, warm.compilations());
        assertEquals(written, files(dir), "no temporary files left behind");
    }

    @Test
    void optionsArchAndSourceAreInTheKey() throws IOException {
        NvrtcAvailable.assume();
        KernelCache cache = new KernelCache(dir);
        cache.cubin("scale.cu", SRC, "sm_80", List.of());
        cache.cubin("scale.cu", SRC, "sm_80", List.of("-DLATTE_VARIANT=1"));
        cache.cubin("scale.cu", SRC, "sm_90", List.of());
        cache.cubin("scale.cu", SRC + "\n// edited\n", "sm_90", List.of());
        byte[] ptx = cache.cubin("scale.cu", SRC, "compute_80", List.of());
        assertEquals(5, cache.compilations());
        assertEquals(5, files(dir).size());
        assertEquals(0, ptx[ptx.length - 1]);
        assertTrue(files(dir).stream().anyMatch(p -> p.toString().endsWith(".ptx")));
    }

    @Test
    void aCorruptEntryIsRecompiled() throws IOException {
        NvrtcAvailable.assume();
        KernelCache cache = new KernelCache(dir);
        byte[] good = cache.cubin("scale.cu", SRC, "sm_80", List.of());
        Path file = files(dir).get(0);
        Files.write(file, new byte[] {1, 2, 3});
        assertArrayEquals(good, cache.cubin("scale.cu", SRC, "sm_80", List.of()));
        assertEquals(2, cache.compilations());
        assertArrayEquals(good, Files.readAllBytes(file));
    }

    /** Where NVRTC came from is part of the key: the loaded library's real path, size and mtime. */
    @Test
    void identityNamesTheLoadedLibraryFile() throws IOException {
        NvrtcAvailable.assume();
        String id = Nvrtc.identity();
        int[] v = Nvrtc.version();
        assertTrue(id.startsWith("nvrtc " + v[0] + "." + v[1] + " /"), id);
        String[] f = id.split(" ");
        Path lib = Path.of(f[2]);
        assertTrue(lib.getFileName().toString().startsWith("libnvrtc.so"), id);
        assertEquals(Files.size(lib), Long.parseLong(f[3]), id);
        assertEquals(Files.getLastModifiedTime(lib).toMillis(), Long.parseLong(f[4]), id);
    }

    /** A cached image the driver will not load is compiled again and replaced, not an error. */
    @Test
    void anImageTheDriverRefusesIsRecompiled() throws IOException {
        NvrtcAvailable.assume();
        assumeTrue(CudaContext.unavailableReason() == null, CudaContext.unavailableReason());
        try (CudaContext ctx = CudaContext.open(0)) {
            KernelCache cache = new KernelCache(dir);
            cache.module(ctx, "scale.cu", SRC, List.of(), Map.of()).kernel("scale");
            Path file = files(dir).get(0);
            byte[] good = Files.readAllBytes(file);
            byte[] bogus = new byte[4096];   // passes the ELF-magic check, loads nowhere
            System.arraycopy(good, 0, bogus, 0, 16);
            Files.write(file, bogus);

            KernelCache warm = new KernelCache(dir);
            CudaModule m = warm.module(ctx, "scale.cu", SRC, List.of(), Map.of());
            assertEquals(1, warm.refused());
            assertEquals(1, warm.compilations());
            long d = ctx.malloc(16);
            ctx.copyHtoD(d, MemorySegment.ofArray(new float[] {1, 2, 3, 4}), 16);
            m.kernel("scale").launch(1, 1, 1, 32, 1, 1, 0, new KernelArgs().i32(4).f32(3).ptr(d));
            float[] out = new float[4];
            ctx.copyDtoH(MemorySegment.ofArray(out), d, 16);
            assertArrayEquals(new float[] {3, 6, 9, 12}, out);

            KernelCache third = new KernelCache(dir);   // the entry was replaced by one that loads
            third.module(ctx, "scale.cu", SRC, List.of(), Map.of());
            assertEquals(0, third.compilations() + third.refused());
        }
    }

    @Test
    void anUnwritableDirectoryCostsARecompileNotAFailure() throws IOException {
        NvrtcAvailable.assume();
        Path notADir = Files.writeString(dir.resolve("file"), "x");
        KernelCache cache = new KernelCache(notADir.resolve("kernels"));
        assertTrue(KernelCache.isElf(cache.cubin("scale.cu", SRC, "sm_80", List.of())));
        assertTrue(KernelCache.isElf(cache.cubin("scale.cu", SRC, "sm_80", List.of())));
        assertEquals(2, cache.compilations());
    }

    @Test
    void keyCoversEveryInput() {
        List<String> opts = List.of("--gpu-architecture=sm_80", "-std=c++17");
        String k = KernelCache.key("a.cu", SRC, "sm_80", opts, Map.of(), V);
        assertEquals(64, k.length());
        assertEquals(k, KernelCache.key("a.cu", SRC, "sm_80", opts, Map.of(), V));
        assertNotEquals(k, KernelCache.key("b.cu", SRC, "sm_80", opts, Map.of(), V));
        assertNotEquals(k, KernelCache.key("a.cu", SRC + " ", "sm_80", opts, Map.of(), V));
        assertNotEquals(k, KernelCache.key("a.cu", SRC, "sm_90", opts, Map.of(), V));
        assertNotEquals(k, KernelCache.key("a.cu", SRC, "sm_80", List.of("--gpu-architecture=sm_80"), Map.of(), V));
        assertNotEquals(k, KernelCache.key("a.cu", SRC, "sm_80", List.of("--gpu-architecture=sm_80", "-std=c++1", "7"),
                Map.of(), V));
        assertNotEquals(k, KernelCache.key("a.cu", SRC, "sm_80", opts, Map.of(), V.replace("13.0 ", "13.1 ")));
        // two builds of one version: another file, another size, another modification time
        assertNotEquals(k, KernelCache.key("a.cu", SRC, "sm_80", opts, Map.of(), V.replace("/usr/local/cuda", "/opt/cuda")));
        assertNotEquals(k, KernelCache.key("a.cu", SRC, "sm_80", opts, Map.of(), V.replace(" 107663296 ", " 107663297 ")));
        assertNotEquals(k, KernelCache.key("a.cu", SRC, "sm_80", opts, Map.of(), V.replace("1760000000000", "1760000000001")));
        assertNotEquals(k, KernelCache.key("a.cu", SRC, "sm_80", opts, Map.of("h.cuh", ""), V));
        assertEquals(KernelCache.key("a.cu", SRC, "sm_80", opts, Map.of("x.cuh", "1", "y.cuh", "2"), V),
                KernelCache.key("a.cu", SRC, "sm_80", opts, new java.util.LinkedHashMap<>(Map.of("y.cuh", "2", "x.cuh", "1")), V));
    }

    @Test
    void defaultDirectoryIsUnderACacheHome() {
        Path d = KernelCache.defaultDirectory();
        assertTrue(System.getenv("LATTE_KERNEL_CACHE") != null || d.endsWith(Path.of("latte", "kernels")), d.toString());
    }
}
