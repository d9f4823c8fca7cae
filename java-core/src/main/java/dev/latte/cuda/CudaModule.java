package dev.latte.cuda;

import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;

/** A loaded CUBIN/PTX image ({@link CudaContext#loadModule}); its kernels live as long as it does. */
public final class CudaModule implements AutoCloseable {
    private final CudaContext ctx;
    private final MemorySegment module;
    private final Map<String, CudaKernel> kernels = new HashMap<>();
    private boolean closed;

    CudaModule(CudaContext ctx, MemorySegment module) {
        this.ctx = ctx;
        this.module = module;
    }

    /**
     * The kernel named {@code name} (cuModuleGetFunction): the {@code extern "C"} name, or the
     * mangled one for a C++ kernel. Looked up once per name.
     */
    public synchronized CudaKernel kernel(String name) {
        checkOpen();
        CudaKernel k = kernels.get(name);
        if (k == null) {
            ctx.enter();
            k = new CudaKernel(this, name, Driver.moduleGetFunction(module, name));
            kernels.put(name, k);
        }
        return k;
    }

    CudaContext context() {
        return ctx;
    }

    void checkOpen() {
        if (closed) {
            throw new IllegalStateException("CudaModule is closed");
        }
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        ctx.disown(this);
        ctx.enter();
        Driver.moduleUnload(module);
    }
}
