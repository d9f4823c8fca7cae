package dev.latte.sampling;

/** {@code numpy.arange(start, stop, step)} for floats, value for value, so schedules round as numpy's do. */
final class NumpyArange {
    private NumpyArange() {
    }

    static double[] of(double start, double stop, double step) {
        // numpy: length ceil((stop - start) / step); a[0] = start, a[1] = start + step, then
        // a[i] = start + i * (a[1] - a[0]) — the re-derived delta is not always step.
        int len = (int) Math.max(0, Math.ceil((stop - start) / step));
        double[] a = new double[len];
        if (len == 0) {
            return a;
        }
        a[0] = start;
        if (len > 1) {
            a[1] = start + step;
            double delta = a[1] - a[0];
            for (int i = 2; i < len; i++) {
                a[i] = start + i * delta;
            }
        }
        return a;
    }
}
