package dev.latte.cli;

import dev.latte.sampling.Sampler;

import java.io.Console;
import java.io.PrintStream;

/**
 * A one-line progress bar with steps/s and ETA, redrawn in place. Only on a terminal: redirected
 * output (logs, CI, tests) stays free of carriage returns.
 */
final class ProgressBar implements Sampler.Listener {
    private static final int WIDTH = 24;
    private final PrintStream err;
    private final String label;
    private final long start = System.nanoTime();

    private ProgressBar(PrintStream err, String label) {
        this.err = err;
        this.label = label;
    }

    /** A bar on {@code err} when this process has a terminal, else nothing. */
    static Sampler.Listener forTerminal(PrintStream err, String label) {
        Console c = System.console();
        // Since JDK 22 System.console() exists even when redirected; isTerminal() tells the difference.
        return c != null && c.isTerminal() ? new ProgressBar(err, label) : Sampler.Listener.NONE;
    }

    @Override
    public void onStep(int index, int steps, int timestep, float[] sample, float[] denoised) {
        int done = index + 1;
        double seconds = (System.nanoTime() - start) / 1e9;
        double rate = done / seconds;
        long eta = Math.round((steps - done) / rate);
        int fill = done * WIDTH / steps;
        err.printf("\rlatte: %s [%s%s] %d/%d  %.2f steps/s  ETA %d:%02d ", label, "#".repeat(fill),
                "-".repeat(WIDTH - fill), done, steps, rate, eta / 60, eta % 60);
        if (done == steps) {
            err.println();
        }
        err.flush();
    }
}
