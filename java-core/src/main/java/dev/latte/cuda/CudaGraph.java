package dev.latte.cuda;

import java.lang.foreign.MemorySegment;

/**
 * A captured and instantiated CUDA graph ({@link CudaContext#beginCapture()} …
 * {@link CudaContext#endCapture()}); each {@link #launch()} replays the captured work, with the
 * same kernel arguments and device addresses, on the context's stream.
 */
public final class CudaGraph implements AutoCloseable {
    private final CudaContext ctx;
    private final MemorySegment graph;
    private final MemorySegment exec;
    private boolean closed;

    CudaGraph(CudaContext ctx, MemorySegment graph, MemorySegment exec) {
        this.ctx = ctx;
        this.graph = graph;
        this.exec = exec;
    }

    /** Queues one replay on the context's stream (cuGraphLaunch). */
    public void launch() {
        if (closed) {
            throw new IllegalStateException("CudaGraph is closed");
        }
        ctx.enter();
        Driver.graphLaunch(exec, ctx.streamHandle());
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        ctx.disown(this);
        ctx.enter();
        try {
            Driver.graphExecDestroy(exec);
        } finally {
            Driver.graphDestroy(graph);
        }
    }
}
