package dev.latte.cli;

import dev.latte.sampling.Sampler;

import java.io.Console;
import java.io.PrintStream;
import java.util.function.IntPredicate;

/**
 * A one-line progress bar with steps/s and ETA, redrawn in place. Only on a terminal: redirected
 * output (logs, CI, tests) stays free of carriage returns. With DeepCache, full steps are drawn
 * {@code #} and partial steps {@code +}, with the count of each.
 */
final class ProgressBar implements Sampler.Listener {
    private static final int WIDTH = 24;
    private final PrintStream err;
    private final String label;
    private final long start = System.nanoTime();
    private final IntPredicate fullStep;
    private int full, partial;

    private ProgressBar(PrintStream err, String label, IntPredicate fullStep) {
        this.err = err;
        this.label = label;
        this.fullStep = fullStep;
    }

    /** A bar on {@code err} when this process has a terminal, else nothing. */
    static Sampler.Listener forTerminal(PrintStream err, String label) {
        return forTerminal(err, label, null);
    }

    /** A bar that also tells full from partial steps ({@code fullStep} of the step index), if not null. */
    static Sampler.Listener forTerminal(PrintStream err, String label, IntPredicate fullStep) {
        Console c = System.console();
        // Since JDK 22 System.console() exists even when redirected; isTerminal() tells the difference.
        return c != null && c.isTerminal() ? new ProgressBar(err, label, fullStep) : Sampler.Listener.NONE;
    }

    /** The bar itself: WIDTH characters, '#' done ('+' where done by partial steps), '-' to come. */
    String bar(int done, int steps) {
        if (fullStep == null) {
            int fill = done * WIDTH / steps;
            return "#".repeat(fill) + "-".repeat(WIDTH - fill);
        }
        StringBuilder b = new StringBuilder(WIDTH);
        for (int k = 0; k < WIDTH; k++) {
            int step = k * steps / WIDTH; // the step this character stands for
            b.append(step >= done ? '-' : fullStep.test(step) ? '#' : '+');
        }
        return b.toString();
    }

    @Override
    public void onStep(int index, int steps, int timestep, float[] sample, float[] denoised) {
        int done = index + 1;
        double seconds = (System.nanoTime() - start) / 1e9;
        double rate = done / seconds;
        long eta = Math.round((steps - done) / rate);
        String counts = "";
        if (fullStep != null) {
            if (fullStep.test(index)) {
                full++;
            } else {
                partial++;
            }
            counts = String.format("  %d full, %d partial", full, partial);
        }
        err.printf("\rlatte: %s [%s] %d/%d%s  %.2f steps/s  ETA %d:%02d ", label, bar(done, steps), done, steps,
                counts, rate, eta / 60, eta % 60);
        if (done == steps) {
            err.println();
        }
        err.flush();
    }
}
