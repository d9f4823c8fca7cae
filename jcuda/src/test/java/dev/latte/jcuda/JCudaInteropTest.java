package dev.latte.jcuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.latte.bench.BenchReport;
import dev.latte.core.Shape;
import dev.latte.core.Tensor;
import dev.latte.cuda.CudaContext;
import dev.latte.cuda.backend.CudaBackend;
import dev.latte.cuda.backend.CudaBackend.Precision;
import dev.latte.cuda.backend.CudaTensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import jcuda.Pointer;
import jcuda.Sizeof;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.JCudaDriver;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * JCuda 12.6.0's driver binding beside Latte's in one process and one primary context: JCuda's
 * device memory as a Latte tensor an op writes, a Latte tensor as a JCuda pointer JCuda copies
 * from, and the launch benchmark through both bindings. Runs on a real or the emulated device;
 * skips, naming the reason, where there is none.
 */
class JCudaInteropTest {
    static CudaContext ctx;

    @BeforeAll
    static void open() {
        String reason = CudaContext.unavailableReason();
        assumeTrue(reason == null, reason);
        ctx = CudaContext.open(0);
        JCudaDriver.setExceptionsEnabled(true);
        JCudaDriver.cuInit(0);
    }

    @AfterAll
    static void close() {
        if (ctx != null) {
            ctx.close();
        }
    }

    @Test
    void jcudaSeesTheSameDevice() {
        CUdevice dev = new CUdevice();
        JCudaDriver.cuDeviceGet(dev, 0);
        byte[] name = new byte[256];
        JCudaDriver.cuDeviceGetName(name, name.length, dev);
        assertEquals(ctx.deviceName(), new String(name, 0, indexOfNul(name)));
    }

    /** JCuda allocates and fills; Latte scales it in place through the wrapped tensor; JCuda reads it back. */
    @Test
    void aJCudaBufferAsALatteTensor() {
        int n = 1000;
        float[] host = new float[n];
        for (int i = 0; i < n; i++) {
            host[i] = i - 500;
        }
        ctx.synchronize();   // the primary context current on this thread, for JCuda's calls
        CUdeviceptr buf = new CUdeviceptr();
        JCudaDriver.cuMemAlloc(buf, (long) n * Sizeof.FLOAT);
        try (CudaBackend backend = new CudaBackend(ctx, Precision.FP32)) {
            JCudaDriver.cuMemcpyHtoD(buf, Pointer.to(host), (long) n * Sizeof.FLOAT);
            CudaTensor t = JCudaInterop.wrap(backend, buf, Shape.of(n));
            assertEquals(JCudaInterop.address(buf), t.ptr());
            backend.scale(t, 0.5f, t);
            backend.release(t);   // frees nothing: the buffer is JCuda's
            ctx.synchronize();
            float[] back = new float[n];
            JCudaDriver.cuMemcpyDtoH(Pointer.to(back), buf, (long) n * Sizeof.FLOAT);
            for (int i = 0; i < n; i++) {
                assertEquals(host[i] * 0.5f, back[i], "element " + i);
            }
        } finally {
            JCudaDriver.cuMemFree(buf);
        }
    }

    /** A Latte tensor handed to JCuda: JCuda reads it. */
    @Test
    void aLatteTensorAsAJCudaPointer() {
        float[] host = {1, 2, 3, 4, 5, 6, 7};
        try (CudaBackend backend = new CudaBackend(ctx, Precision.FP32)) {
            Tensor t = backend.upload(Shape.of(host.length), host);
            ctx.synchronize();
            float[] back = new float[host.length];
            JCudaDriver.cuMemcpyDtoH(Pointer.to(back), JCudaInterop.pointer(t), 4L * host.length);
            assertArrayEquals(host, back);
        }
    }

    /** The benchmark runs both bindings and checks each one's last launch did its store. */
    @Test
    void launchOverheadThroughBothBindings(@TempDir Path tmp) throws IOException {
        LaunchOverhead.Result r = LaunchOverhead.measure(ctx, 200);
        assertTrue(r.ffm().hostUsPerLaunch() > 0 && r.jni().hostUsPerLaunch() > 0, r.toString());
        assertTrue(r.ffm().roundTripUs() > 0 && r.jni().roundTripUs() > 0, r.toString());
        assertEquals(ctx.emulated(), r.emulated());
        Path json = tmp.resolve("launch.json");
        BenchReport.write(json, r.json());
        JsonNode j = BenchReport.JSON.readTree(Files.readString(json));
        assertEquals("latte-bench-launch/1", j.get("schema").asText());
        assertEquals(ctx.deviceName(), j.get("device").asText());
        System.out.println("launch overhead: " + j);
    }

    private static int indexOfNul(byte[] b) {
        for (int i = 0; i < b.length; i++) {
            if (b[i] == 0) {
                return i;
            }
        }
        return b.length;
    }
}
