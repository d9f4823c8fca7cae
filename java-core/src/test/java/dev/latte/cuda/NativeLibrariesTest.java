package dev.latte.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NativeLibrariesTest {
    @TempDir
    Path tmp;

    @Test
    void failureListsEveryPlaceTriedInOrder() throws IOException {
        Path libDir1 = Files.createDirectory(tmp.resolve("libdir1"));
        Path libDir2 = Files.createDirectory(tmp.resolve("libdir2"));
        Path cudaHome = Files.createDirectory(tmp.resolve("cuda"));
        NativeLibraries.Spec spec = new NativeLibraries.Spec(List.of("liblatte-missing.so.7", "liblatte-missing.so.6"),
                false, List.of("/nonexistent/last-resort"));
        Map<String, String> env = Map.of("LATTE_CUDA_LIB_DIR", libDir1 + File.pathSeparator + libDir2,
                "CUDA_HOME", cudaHome.toString(), "LD_LIBRARY_PATH", "/some/ld/path");

        String m = assertThrows(CudaUnavailableException.class, () -> NativeLibraries.load(spec, env::get, true))
                .getMessage();

        assertTrue(m.startsWith("no liblatte-missing.so.7 or liblatte-missing.so.6 (tried: "), m);
        assertFalse(m.contains("\n"), "one line: " + m);
        List<String> expected = List.of(
                libDir1.resolve("liblatte-missing.so.7").toString(),
                libDir1.resolve("liblatte-missing.so.6").toString(),
                libDir2.resolve("liblatte-missing.so.7").toString(),
                cudaHome.resolve("lib64/liblatte-missing.so.7").toString(),
                "/usr/local/cuda/lib64/liblatte-missing.so.6",
                "liblatte-missing.so.7 on the loader path (LD_LIBRARY_PATH=/some/ld/path, ld.so.cache)",
                "liblatte-missing.so.6 on the loader path",
                "/nonexistent/last-resort/liblatte-missing.so.6");
        int last = -1;
        for (String place : expected) {
            int at = m.indexOf(place);
            assertTrue(at > last, "'" + place + "' missing or out of order in: " + m);
            last = at;
        }
    }

    @Test
    void aLibraryThatExistsButDoesNotLoadSaysSo() throws IOException {
        Path dir = Files.createDirectory(tmp.resolve("broken"));
        Files.write(dir.resolve("liblatte-broken.so.1"), foreignElf());
        NativeLibraries.Spec spec = new NativeLibraries.Spec(List.of("liblatte-broken.so.1"), false, List.of());
        String m = assertThrows(CudaUnavailableException.class,
                () -> NativeLibraries.load(spec, Map.of("LATTE_CUDA_LIB_DIR", dir.toString())::get, false)).getMessage();
        assertTrue(m.contains(dir.resolve("liblatte-broken.so.1") + " (present but failed to load"), m);
    }

    /**
     * A 64-bit shared-object header for another machine (AArch64) with a non-executable-stack
     * program header: the dynamic loader rejects it cleanly, and the JVM has no stack-guard
     * warning to print about it.
     */
    static byte[] foreignElf() {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(64 + 56).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0});
        b.putShort((short) 3).putShort((short) 183).putInt(1);      // ET_DYN, EM_AARCH64, EV_CURRENT
        b.putLong(0).putLong(64).putLong(0).putInt(0);              // entry, phoff, shoff, flags
        b.putShort((short) 64).putShort((short) 56).putShort((short) 1).putShort((short) 64)
                .putShort((short) 0).putShort((short) 0);
        b.putInt(0x6474e551).putInt(6);                             // PT_GNU_STACK, PF_R | PF_W
        b.putLong(0).putLong(0).putLong(0).putLong(0).putLong(0).putLong(16);
        return b.array();
    }

    @Test
    void directoriesComeInOrderWithoutDuplicates() {
        Map<String, String> env = Map.of("LATTE_CUDA_LIB_DIR", "/a" + File.pathSeparator + File.pathSeparator + "/b",
                "CUDA_HOME", "/usr/local/cuda");
        assertEquals(List.of(Path.of("/a"), Path.of("/b"), Path.of("/usr/local/cuda/lib64")),
                NativeLibraries.directories(env::get));
        assertEquals(List.of(Path.of("/usr/local/cuda/lib64")), NativeLibraries.directories(k -> null));
    }

    /** The real driver search with LATTE_CUDA_LIB_DIR at an empty directory (no loader path). */
    @Test
    void driverSearchNamesTheEnvironmentDirectoryAndTheDefaults() throws IOException {
        Path empty = Files.createDirectory(tmp.resolve("empty"));
        CudaUnavailableException e;
        try {
            NativeLibraries.Loaded l = NativeLibraries.load(NativeLibraries.CUDA,
                    Map.of("LATTE_CUDA_LIB_DIR", empty.toString())::get, false);
            assumeTrue(false, "libcuda.so.1 present at " + l.location());
            return;
        } catch (CudaUnavailableException x) {
            e = x;
        }
        String m = e.getMessage();
        assertTrue(m.startsWith("no libcuda.so.1 (tried: " + empty.resolve("libcuda.so.1")), m);
        assertTrue(m.contains("/usr/local/cuda/lib64/libcuda.so.1"), m);
        assertTrue(m.contains("/usr/local/nvidia/lib64/libcuda.so.1"), m);
    }

    /**
     * Where there is no driver, the reason GPU tests give names libcuda.so.1 and the places tried.
     * Run in a child JVM without LATTE_CUDA_LIB_DIR or CUDA_HOME, so it also runs where this JVM
     * has a driver (the emulated device in CI); skipped only where the loader finds a libcuda.so.1.
     */
    @Test
    void unavailableReasonListsThePlacesTried() throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                ProbeMain.class.getName()).redirectErrorStream(true);
        pb.environment().remove("LATTE_CUDA_LIB_DIR");
        pb.environment().remove("CUDA_HOME");
        Process p = pb.start();
        List<String> lines = new String(p.getInputStream().readAllBytes()).strip().lines().toList();
        assertEquals(0, p.waitFor(), String.join("\n", lines));
        assertEquals(3, lines.size(), String.join("\n", lines));
        String reason = lines.get(0);
        assumeTrue(reason.startsWith("no libcuda.so.1"), "libcuda.so.1 loads here: " + reason);
        assertTrue(reason.contains("/usr/local/cuda/lib64/libcuda.so.1"), reason);
        assertTrue(reason.contains("libcuda.so.1 on the loader path"), reason);
        assertEquals(reason, lines.get(1), "CudaContext.open(0)");
        assertEquals(reason, lines.get(2), "NativeLibraries.cuda()");
    }
}
