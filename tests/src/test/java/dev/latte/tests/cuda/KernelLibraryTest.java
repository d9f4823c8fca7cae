package dev.latte.tests.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latte.cuda.backend.KernelLibrary;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * No GPU needed: the kernel files KernelLibrary lists are on the classpath, and every entry point
 * the CUDA backend's launchers ask for exists in them, in both storage types.
 */
class KernelLibraryTest {
    private static final Pattern ENTRY = Pattern.compile("extern \"C\" __global__ void(?: __launch_bounds__\\([^)]*\\))?\\s+(\\w+)\\(");
    private static final Pattern MACRO_ENTRY = Pattern.compile("^(?:UNARY|ATTENTION_ENTRY)\\((\\w+)", Pattern.MULTILINE);
    private static final Pattern V2_ENTRY = Pattern.compile("^ATTENTION_V2_ENTRY\\((\\d+),", Pattern.MULTILINE);
    private static final Pattern LINEAR_V2 = Pattern.compile("^(?:LINEAR|CONV)_V2_ENTRY\\((\\w+),", Pattern.MULTILINE);
    private static final Pattern INT8_ENTRY = Pattern.compile("^I8_(S32|SCALED)_ENTRY\\((\\w+), (\\w+)", Pattern.MULTILINE);

    /** Launcher name → file, as CudaBackend asks for them (each exists as _f32 and _f16). */
    private static final List<String[]> FLOAT_KERNELS = List.of(
            new String[] {"conv.cu", "conv2d"}, new String[] {"gemm.cu", "linear"},
            new String[] {"norm.cu", "groupnorm_stats"}, new String[] {"norm.cu", "groupnorm_apply"},
            new String[] {"norm.cu", "layernorm"},
            new String[] {"attention.cu", "attention"}, new String[] {"attention.cu", "attention_d40"},
            new String[] {"attention.cu", "attention_d64"}, new String[] {"attention.cu", "attention_d80"},
            new String[] {"attention.cu", "attention_d160"},
            new String[] {"elementwise.cu", "silu"}, new String[] {"elementwise.cu", "gelu"},
            new String[] {"elementwise.cu", "geglu"}, new String[] {"elementwise.cu", "add"},
            new String[] {"elementwise.cu", "scale"}, new String[] {"elementwise.cu", "add_channel_bias"},
            new String[] {"elementwise.cu", "upsample_nearest"}, new String[] {"elementwise.cu", "concat_channels"},
            new String[] {"elementwise.cu", "transpose"}, new String[] {"elementwise.cu", "timestep_embedding"},
            new String[] {"elementwise.cu", "quick_gelu"}, new String[] {"elementwise.cu", "embedding"});

    static Set<String> entries(String file) {
        String src = KernelLibrary.source(file);
        Set<String> names = new TreeSet<>();
        Matcher m = ENTRY.matcher(src);
        while (m.find()) {
            names.add(m.group(1));
        }
        m = MACRO_ENTRY.matcher(src);
        while (m.find()) {
            String n = m.group(1);
            if (src.contains("UNARY(" + n)) {
                names.add(n + "_f32");
                names.add(n + "_f16");
            } else {
                names.add(n);
            }
        }
        m = V2_ENTRY.matcher(src);
        while (m.find()) {
            names.add("attention_v2_dp" + m.group(1) + "_f16");
        }
        m = LINEAR_V2.matcher(src);
        while (m.find()) {
            names.add(m.group(1));
        }
        m = INT8_ENTRY.matcher(src);
        while (m.find()) {
            names.add("int8_gemm_" + m.group(2) + "_" + (m.group(1).equals("S32") ? "" : "nk_scaled_") + m.group(3));
        }
        return names;
    }

    @Test
    void everyListedFileIsOnTheClasspath() {
        for (String f : KernelLibrary.FILES) {
            assertTrue(KernelLibrary.source(f).contains("#include \"common.cuh\""), f);
        }
        for (String h : KernelLibrary.HEADERS) {
            assertTrue(!KernelLibrary.source(h).isEmpty(), h);
        }
    }

    @Test
    void everyLaunchedKernelExists() {
        List<String> missing = new ArrayList<>();
        for (String[] k : FLOAT_KERNELS) {
            Set<String> names = entries(k[0]);
            for (String suffix : List.of("_f32", "_f16")) {
                if (!names.contains(k[1] + suffix)) {
                    missing.add(k[0] + ":" + k[1] + suffix);
                }
            }
        }
        Set<String> int8 = entries("int8_gemm.cu");
        for (String algo : List.of("mma", "dp4a")) {
            for (String v : List.of("kn", "nk", "nk_scaled_f32", "nk_scaled_f16")) {
                if (!int8.contains("int8_gemm_" + algo + "_" + v)) {
                    missing.add("int8_gemm.cu:int8_gemm_" + algo + "_" + v);
                }
            }
        }
        Set<String> v2 = entries("attention_v2.cu");
        for (int width : new int[] {32, 48, 64, 80, 96, 128, 160}) {  // AttentionV2's padded head dims
            if (!v2.contains("attention_v2_dp" + width + "_f16")) {
                missing.add("attention_v2.cu:attention_v2_dp" + width + "_f16");
            }
        }
        Set<String> linear = entries("gemm_v2.cu");
        for (String k : List.of("linear_v2_f16", "linear_v2_residual_f16", "linear_v2_silu_f16", "linear_v2_geglu_f16")) {
            if (!linear.contains(k)) {
                missing.add("gemm_v2.cu:" + k);
            }
        }
        Set<String> conv = entries("conv_v2.cu");
        for (String k : List.of("conv2d_v2_f16", "conv2d_v2_norm_f16", "groupnorm_scale_shift_f16")) {
            if (!conv.contains(k)) {
                missing.add("conv_v2.cu:" + k);
            }
        }
        assertEquals(List.of(), missing, "kernels the launchers use but the sources lack");
    }

    /** Launchers read their launch constants from the kernel files; a missing one is named, not guessed. */
    @Test
    void launchConstantsComeFromTheKernelFiles() {
        assertEquals(64, KernelLibrary.define("common.cuh", "GEMM_BM"));
        assertEquals(256, KernelLibrary.define("attention.cu", "ATT_MAX_D"));
        assertEquals(32, KernelLibrary.define("elementwise.cu", "TR_TILE"));
        var e = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
                () -> KernelLibrary.define("gemm.cu", "NO_SUCH_CONSTANT"));
        assertEquals("gemm.cu defines no NO_SUCH_CONSTANT", e.getMessage());
    }
}
