package dev.latte.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * NVRTC through our own binding; needs no GPU (CI loads libnvrtc from the nvrtc-redist profile, or
 * the emulated device's). Asserts what NVRTC's output does, not how it is laid out.
 */
class NvrtcTest {
    /** fp16 in, fp32 accumulate: needs cuda_fp16.h from the include directory. */
    static final String HALF_AXPY = """
            #include <cuda_fp16.h>
            extern "C" __global__ void half_axpy(int n, float a, const __half* x, __half* y) {
                int i = blockIdx.x * blockDim.x + threadIdx.x;
                if (i < n) y[i] = __float2half(a * __half2float(x[i]) + __half2float(y[i]));
            }
            """;

    @BeforeAll
    static void nvrtc() {
        NvrtcAvailable.assume();
    }

    @Test
    void version() {
        int[] v = Nvrtc.version();
        assertEquals(2, v.length);
        assertTrue(v[0] >= 12 && v[1] >= 0, v[0] + "." + v[1]);
    }

    @ParameterizedTest
    @ValueSource(strings = {"sm_80", "sm_90"})
    void fp16KernelToCubin(String arch) {
        byte[] cubin = Nvrtc.compile("half_axpy.cu", HALF_AXPY, arch, List.of());
        assertTrue(KernelCache.isElf(cubin), "ELF magic");
        String strings = new String(cubin, StandardCharsets.ISO_8859_1);
        assertTrue(strings.contains("half_axpy"), "kernel symbol in the image");
    }

    @Test
    void ptxForAVirtualArchitecture() {
        byte[] ptx = Nvrtc.compile("half_axpy.cu", HALF_AXPY, "compute_80", List.of());
        assertEquals(0, ptx[ptx.length - 1], "NUL-terminated for cuModuleLoadData");
        String text = new String(ptx, 0, ptx.length - 1, StandardCharsets.UTF_8);
        assertTrue(text.contains("half_axpy"), text);
    }

    /**
     * What an image is for: the CUBIN for the device's architecture and the PTX for its virtual
     * one both load and compute y = a·x + y in fp16. Needs a device (real or emulated).
     */
    @ParameterizedTest
    @ValueSource(strings = {"sm_", "compute_"})
    void imagesLoadAndRunOnTheDevice(String kind) {
        assumeTrue(CudaContext.unavailableReason() == null, CudaContext.unavailableReason());
        try (CudaContext ctx = CudaContext.open(0)) {
            byte[] image = Nvrtc.compile("half_axpy.cu", HALF_AXPY, kind + ctx.computeCapability(), List.of());
            CudaKernel k = ctx.loadModule(image).kernel("half_axpy");
            int n = 1000;
            short[] x = new short[n], y = new short[n];
            for (int i = 0; i < n; i++) {
                x[i] = Float.floatToFloat16(i * 0.25f);
                y[i] = Float.floatToFloat16(-i);
            }
            long dx = ctx.malloc(2L * n), dy = ctx.malloc(2L * n);
            ctx.copyHtoD(dx, MemorySegment.ofArray(x), 2L * n);
            ctx.copyHtoD(dy, MemorySegment.ofArray(y), 2L * n);
            k.launch((n + 127) / 128, 1, 1, 128, 1, 1, 0, new KernelArgs().i32(n).f32(2f).ptr(dx).ptr(dy));
            ctx.copyDtoH(MemorySegment.ofArray(y), dy, 2L * n);
            for (int i = 0; i < n; i++) {
                assertEquals(Float.float16ToFloat(Float.floatToFloat16(2 * i * 0.25f - i)), Float.float16ToFloat(y[i]),
                        "y[" + i + "]");
            }
        }
    }

    @Test
    void compileErrorCarriesFileAndLine() {
        String bad = """
                extern "C" __global__ void bad(float* x) {
                    int i = threadIdx.x;
                    x[i] = undefined_name;
                }
                """;
        NvrtcException e = assertThrows(NvrtcException.class, () -> Nvrtc.compile("bad.cu", bad, "sm_80", List.of()));
        assertTrue(e.getMessage().startsWith("nvrtcCompileProgram(bad.cu, --gpu-architecture=sm_80"), e.getMessage());
        assertTrue(e.getMessage().contains("NVRTC_ERROR_COMPILATION"), e.getMessage());
        assertTrue(e.getMessage().contains("bad.cu(3)"), e.getMessage());
        assertTrue(e.log().contains("undefined_name"), e.log());
        assertEquals("NVRTC_ERROR_COMPILATION", e.errorName());
    }

    @Test
    void optionsReachTheCompiler() {
        String src = """
                #ifndef LATTE_TILE
                #error LATTE_TILE must be defined
                #endif
                extern "C" __global__ void k(float* x) { x[threadIdx.x] = LATTE_TILE; }
                """;
        NvrtcException e = assertThrows(NvrtcException.class, () -> Nvrtc.compile("tile.cu", src, "sm_80", List.of()));
        assertTrue(e.getMessage().contains("tile.cu(2)"), e.getMessage());
        assertTrue(e.getMessage().contains("LATTE_TILE must be defined"), e.getMessage());
        assertTrue(KernelCache.isElf(Nvrtc.compile("tile.cu", src, "sm_80", List.of("-DLATTE_TILE=16"))));
    }

    @Test
    void inMemoryHeaders() {
        String src = """
                #include "latte_common.cuh"
                extern "C" __global__ void k(float* x) { x[threadIdx.x] = latte_twice(x[threadIdx.x]); }
                """;
        Map<String, String> headers = Map.of("latte_common.cuh", "__device__ inline float latte_twice(float v) { return 2 * v; }\n");
        Nvrtc.Output out = Nvrtc.compile("k.cu", src, "sm_90", List.of(), headers);
        assertTrue(KernelCache.isElf(out.image()));
    }

    @Test
    void defaultOptions() {
        List<String> o = Nvrtc.effectiveOptions("sm_86", List.of("-lineinfo"));
        assertEquals(List.of("--gpu-architecture=sm_86", "-std=c++17", "-I" + Nvrtc.includeDir(), "-lineinfo"), o);
        assertFalse(o.contains("--use_fast_math"));
        assertEquals(List.of("--gpu-architecture=sm_90a", "-I" + Nvrtc.includeDir(), "-std=c++20"),
                Nvrtc.effectiveOptions("sm_90a", List.of("-std=c++20")));
        assertThrows(IllegalArgumentException.class, () -> Nvrtc.effectiveOptions("90", List.of()));
        assertThrows(IllegalArgumentException.class, () -> Nvrtc.effectiveOptions("sm_80", List.of("-arch=sm_90")));
    }

    @Test
    void includeDirectorySearch(@TempDir Path tmp) throws IOException {
        Path fake = Files.createDirectories(tmp.resolve("inc"));
        Files.writeString(fake.resolve("cuda_fp16.h"), "// fake\n");
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        assertEquals(fake, Nvrtc.findIncludeDir(Map.of("LATTE_CUDA_INCLUDE", fake.toString())::get, empty));
        assertEquals(fake, Nvrtc.findIncludeDir(Map.of("CUDA_HOME", tmp.toString(),
                "LATTE_CUDA_INCLUDE", empty.toString())::get, fake));
        String m = assertThrows(CudaUnavailableException.class, () -> Nvrtc.findIncludeDir(
                Map.of("LATTE_CUDA_INCLUDE", empty.toString(), "CUDA_HOME", tmp.toString())::get,
                tmp.resolve("none"))).getMessage();
        assertTrue(m.contains("cuda_fp16.h") && m.contains(empty.toString()) && m.contains(tmp.resolve("include").toString())
                && m.contains(tmp.resolve("none").toString()), m);
    }
}
