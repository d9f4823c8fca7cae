package dev.latte.cuda;

import java.lang.foreign.MemorySegment;

/** A CUDA event of one {@link CudaContext}, recorded on its stream; for timing and waiting. */
public final class CudaEvent implements AutoCloseable {
    private final CudaContext ctx;
    private final MemorySegment event;
    private boolean closed;

    CudaEvent(CudaContext ctx, MemorySegment event) {
        this.ctx = ctx;
        this.event = event;
    }

    /** Queues the event on the context's stream (cuEventRecord). */
    public void record() {
        checkOpen();
        ctx.enter();
        Driver.eventRecord(event, ctx.streamHandle());
    }

    /** Waits until the work queued before the last {@link #record()} has run. */
    public void synchronize() {
        checkOpen();
        ctx.enter();
        Driver.eventSynchronize(event);
    }

    MemorySegment handle() {
        checkOpen();
        return event;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("CudaEvent is closed");
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        ctx.disown(this);
        ctx.enter();
        Driver.eventDestroy(event);
    }
}
