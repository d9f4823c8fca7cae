package dev.latte.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The library tactics' bindings without a GPU: the soname search and its report when a library is
 * absent, and, where the real libraries are found (the {@code cuda-libs} Maven profile unpacks
 * NVIDIA's redistributables and points {@code latte.cudaLibsDir} at them), every host-only call of
 * the binding: versions, and descriptors set and read back, which checks each attribute id, enum
 * value and argument order this project uses against the library itself (a wrong id is refused or
 * reads back another size; a wrong format shows in the strides; swapped pad/stride in the output
 * size). Matmuls and convolutions need a GPU: the op-case table runs them there.
 */
class LibraryBindingsTest {
    @TempDir
    Path tmp;

    /** The search at an empty directory, without the loader path: the one-line reason names every place. */
    @Test
    void absentLibrariesAreReportedWithThePlacesTried() throws IOException {
        Path empty = Files.createDirectory(tmp.resolve("empty"));
        Map<String, String> env = Map.of("LATTE_CUDA_LIB_DIR", empty.toString());
        for (NativeLibraries.Spec spec : new NativeLibraries.Spec[] {NativeLibraries.CUBLASLT, NativeLibraries.CUDNN}) {
            CudaUnavailableException e;
            try {
                NativeLibraries.Loaded l = NativeLibraries.load(spec, env::get, false);
                assumeTrue(false, spec.sonames().getFirst() + " present at " + l.location());
                return;
            } catch (CudaUnavailableException x) {
                e = x;
            }
            String m = e.getMessage();
            assertTrue(m.startsWith("no " + String.join(" or ", spec.sonames()) + " (tried: "
                    + empty.resolve(spec.sonames().getFirst())), m);
            assertTrue(m.contains("/usr/local/cuda/lib64/" + spec.sonames().getLast()), m);
            assertFalse(m.contains("\n"), m);
        }
    }

    /**
     * A library of the right name without the functions bound here (another build, a stub): the
     * reason names the file and the first missing function, in one line.
     */
    @Test
    void aLibraryWithoutTheFunctionsSaysWhichIsMissing() throws IOException, InterruptedException {
        Path dir = Files.createDirectory(tmp.resolve("stub"));
        Path src = Files.writeString(tmp.resolve("stub.c"), "int latte_stub(void) { return 0; }\n");
        Process gcc;
        try {
            gcc = new ProcessBuilder("gcc", "-shared", "-fPIC", "-o", dir.resolve("libcublasLt.so.12").toString(),
                    src.toString()).inheritIO().start();
        } catch (IOException e) {
            assumeTrue(false, "no gcc to build a stub library: " + e.getMessage());
            return;
        }
        assumeTrue(gcc.waitFor() == 0, "gcc failed");
        Files.copy(dir.resolve("libcublasLt.so.12"), dir.resolve("libcudnn.so.9"));
        Map<String, String> env = Map.of("LATTE_CUDA_LIB_DIR", dir.toString());
        NativeLibraries.Loaded lt = NativeLibraries.load(NativeLibraries.CUBLASLT, env::get, false);
        CudaUnavailableException e1 = assertThrows(CudaUnavailableException.class, () -> bindCublasLt(lt));
        assertEquals(dir.resolve("libcublasLt.so.12") + " has no cublasLtGetVersion", e1.getMessage());
        NativeLibraries.Loaded dnn = NativeLibraries.load(NativeLibraries.CUDNN, env::get, false);
        CudaUnavailableException e2 = assertThrows(CudaUnavailableException.class, () -> bindCudnn(dnn));
        assertEquals(dir.resolve("libcudnn.so.9") + " has no cudnnGetVersion", e2.getMessage());
    }

    /** cuDNN's sub-libraries are opened from the directory it is found in, before the shim needs them. */
    @Test
    void cudnnSubLibrariesComeFirstInDependencyOrder() {
        assertEquals("libcudnn_graph.so.9", NativeLibraries.CUDNN.companions().getFirst());
        assertEquals("libcudnn_adv.so.9", NativeLibraries.CUDNN.companions().getLast());
        assertTrue(NativeLibraries.CUDNN.companions().indexOf("libcudnn_ops.so.9")
                < NativeLibraries.CUDNN.companions().indexOf("libcudnn_cnn.so.9"));
        assertEquals(java.util.List.of("libcublasLt.so.13", "libcublasLt.so.12"), NativeLibraries.CUBLASLT.sonames());
    }

    /** cublasLtMatmulHeuristicResult_t as cublasLt.h declares it: algo (8 x uint64), size_t, status, float, int[4]. */
    @Test
    void heuristicResultLayout() {
        MemoryLayout l = CublasLt.HEURISTIC_RESULT;
        assertEquals(96, l.byteSize());
        assertEquals(64, l.byteOffset(MemoryLayout.PathElement.groupElement("workspaceSize")));
        assertEquals(72, l.byteOffset(MemoryLayout.PathElement.groupElement("state")));
        assertEquals(76, l.byteOffset(MemoryLayout.PathElement.groupElement("wavesCount")));
        assertEquals(CublasLt.ALGO_BYTES, l.byteOffset(MemoryLayout.PathElement.groupElement("workspaceSize")));
    }

    @Test
    void pointerAlignmentForTheHeuristic() {
        assertEquals(256, CublasLt.alignment(0));
        assertEquals(256, CublasLt.alignment(0x7f0000001000L));
        assertEquals(16, CublasLt.alignment(0x7f0000001010L));
        assertEquals(2, CublasLt.alignment(0x7f0000001002L));
    }

    /** The real library where one is found (cuda-libs profile, LATTE_CUDA_LIB_DIR, CUDA_HOME, the loader). */
    private static NativeLibraries.Loaded real(NativeLibraries.Spec spec) {
        Map<String, String> env = new HashMap<>(System.getenv());
        String dir = System.getProperty("latte.cudaLibsDir");
        if (dir != null && !dir.isBlank()) {
            String given = env.get("LATTE_CUDA_LIB_DIR");
            env.put("LATTE_CUDA_LIB_DIR", dir + (given == null ? "" : File.pathSeparator + given));
        }
        try {
            return NativeLibraries.load(spec, env::get, true);
        } catch (CudaUnavailableException e) {
            assumeTrue(false, "no real library here (mvn -Pcuda-libs fetches NVIDIA's): " + e.getMessage());
            throw e;
        }
    }

    @Test
    void cublasLtVersionAndDescriptors() {
        NativeLibraries.Loaded l = real(NativeLibraries.CUBLASLT);
        CublasLt.Api api = new CublasLt.Api(l.lookup(), l.location());
        long version = api.version();
        int major = l.location().contains(".so.13") ? 13 : 12;
        assertEquals(major, version / 10000, "cublasLtGetVersion " + version + " from " + l.location());
        assertTrue(api.cudartVersion() / 1000 == major, "cudart " + api.cudartVersion());
        assertEquals("CUBLAS_STATUS_SUCCESS", api.statusName(0));
        assertEquals("CUBLAS_STATUS_INVALID_VALUE", api.statusName(7));
        System.out.println("[library] cuBLASLt " + version + " (cudart " + api.cudartVersion() + ") at " + l.location());
        try (Arena a = Arena.ofConfined()) {
            MemorySegment desc = api.matmulDesc(a, CublasLt.CUBLAS_COMPUTE_32F, CublasLt.CUDA_R_32F, CublasLt.CUBLAS_OP_T,
                    CublasLt.CUBLAS_OP_N, CublasLt.EPILOGUE_BIAS);
            assertEquals(CublasLt.CUBLAS_COMPUTE_32F, intOf(api.descAttribute(a, desc, CublasLt.DESC_COMPUTE_TYPE, 4)));
            assertEquals(CublasLt.CUDA_R_32F, intOf(api.descAttribute(a, desc, CublasLt.DESC_SCALE_TYPE, 4)));
            assertEquals(CublasLt.CUBLAS_OP_T, intOf(api.descAttribute(a, desc, CublasLt.DESC_TRANSA, 4)));
            assertEquals(CublasLt.CUBLAS_OP_N, intOf(api.descAttribute(a, desc, CublasLt.DESC_TRANSB, 4)));
            assertEquals(CublasLt.EPILOGUE_BIAS, intOf(api.descAttribute(a, desc, CublasLt.DESC_EPILOGUE, 4)));
            // the bias pointer is 8 bytes and nothing else; the bias data type 4
            api.setPointer(a, desc, CublasLt.DESC_BIAS_POINTER, 0x7f0000001000L);
            assertEquals(0x7f0000001000L, MemorySegment.ofArray(api.descAttribute(a, desc, CublasLt.DESC_BIAS_POINTER,
                    8)).get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 0));
            assertNotEquals(0, api.trySet(a, desc, CublasLt.DESC_BIAS_POINTER, 4));
            assertEquals(0, api.trySet(a, desc, CublasLt.DESC_BIAS_DATA_TYPE, 4));
            assertNotEquals(0, api.trySet(a, desc, CublasLt.DESC_BIAS_DATA_TYPE, 8));
            MemorySegment layout = api.layout(a, CublasLt.CUDA_R_16F, 320, 4096, 320);
            assertEquals(CublasLt.CUDA_R_16F, api.layoutAttribute(a, layout, CublasLt.LAYOUT_TYPE, 4));
            assertEquals(CublasLt.ORDER_COL, api.layoutAttribute(a, layout, CublasLt.LAYOUT_ORDER, 4));
            assertEquals(320, api.layoutAttribute(a, layout, CublasLt.LAYOUT_ROWS, 8));
            assertEquals(4096, api.layoutAttribute(a, layout, CublasLt.LAYOUT_COLS, 8));
            assertEquals(320, api.layoutAttribute(a, layout, CublasLt.LAYOUT_LD, 8));
            // workspace (8 bytes) and the four alignments (4 bytes each) are accepted as sized
            MemorySegment pref = api.preference(a, CublasLt.WORKSPACE_BYTES, new int[] {256, 16, 8, 2});
            api.destroy(api.prefDestroy, pref);
            api.destroy(api.layoutDestroy, layout);
            api.destroy(api.descDestroy, desc);
        }
    }

    @Test
    void cudnnVersionAndDescriptors() {
        NativeLibraries.Loaded l = real(NativeLibraries.CUDNN);
        Cudnn.Api api = new Cudnn.Api(l.lookup(), l.location());
        long version = api.version();
        assertEquals(9, version / 10000, "cudnnGetVersion " + version + " from " + l.location());
        assertEquals("CUDNN_STATUS_SUCCESS", api.errorString(Cudnn.STATUS_SUCCESS));
        System.out.println("[library] cuDNN " + version + " (cudart " + api.cudartVersion() + ") at " + l.location());
        try (Arena a = Arena.ofConfined()) {
            MemorySegment nchw = api.tensor(a, Cudnn.TENSOR_NCHW, Cudnn.DATA_HALF, 2, 320, 64, 48);
            assertArrayEquals(new int[] {Cudnn.DATA_HALF, 2, 320, 64, 48, 320 * 64 * 48, 64 * 48, 48, 1},
                    api.tensorInfo(a, nchw));
            MemorySegment nhwc = api.tensor(a, Cudnn.TENSOR_NHWC, Cudnn.DATA_FLOAT, 2, 320, 64, 48);
            assertArrayEquals(new int[] {Cudnn.DATA_FLOAT, 2, 320, 64, 48, 320 * 64 * 48, 1, 48 * 320, 320},
                    api.tensorInfo(a, nhwc));
            MemorySegment filter = api.filter(a, Cudnn.DATA_HALF, Cudnn.TENSOR_NCHW, 640, 320, 3, 3);
            assertArrayEquals(new int[] {Cudnn.DATA_HALF, Cudnn.TENSOR_NCHW, 640, 320, 3, 3}, api.filterInfo(a, filter));
            // pad 1, stride 2 (Downsample2D): 64x48 -> 32x24 (pad and stride swapped: 66x50)
            MemorySegment conv = api.convolution(a, 1, 1, 2, 2, Cudnn.TENSOR_OP_MATH);
            assertArrayEquals(new int[] {2, 640, 32, 24}, api.outputDims(a, conv, nchw, filter));
            MemorySegment stride1 = api.convolution(a, 0, 1, 1, 1, Cudnn.FMA_MATH);
            assertArrayEquals(new int[] {2, 640, 62, 48}, api.outputDims(a, stride1, nchw, filter));
            MemorySegment act = api.identity(a);
            api.destroy(api.destroyActivation, act);
            api.destroy(api.destroyConv, conv);
            api.destroy(api.destroyConv, stride1);
            api.destroy(api.destroyFilter, filter);
            api.destroy(api.destroyTensor, nchw);
            api.destroy(api.destroyTensor, nhwc);
            // a bad argument is the library's one-line error, naming the call
            CudaException e = assertThrows(CudaException.class,
                    () -> api.tensor(a, Cudnn.TENSOR_NCHW, Cudnn.DATA_HALF, 0, 320, 64, 48));
            assertTrue(e.getMessage().startsWith("cudnnSetTensor4dDescriptor(0x320x64x48): CUDNN_STATUS_BAD_PARAM"),
                    e.getMessage());
        }
    }

    private static void bindCublasLt(NativeLibraries.Loaded l) {
        new CublasLt.Api(l.lookup(), l.location());
    }

    private static void bindCudnn(NativeLibraries.Loaded l) {
        new Cudnn.Api(l.lookup(), l.location());
    }

    private static int intOf(byte[] b) {
        assertEquals(4, b.length, "attribute size");
        return MemorySegment.ofArray(b).get(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, 0);
    }
}
