package dev.latte.bench;

import java.util.Arrays;

/**
 * Order statistics of a set of timings: percentiles interpolate linearly between the closest
 * ranks (numpy's default, {@code np.percentile(x, q)}), so the median of an even count is the mean
 * of the middle two.
 */
public record Stats(int n, double median, double p10, double p90, double min, double max, double mean) {

    public static Stats of(double[] values) {
        if (values.length == 0) {
            throw new IllegalArgumentException("no values");
        }
        double[] s = values.clone();
        Arrays.sort(s);
        double sum = 0;
        for (double v : s) {
            sum += v;
        }
        return new Stats(s.length, percentile(s, 50), percentile(s, 10), percentile(s, 90), s[0], s[s.length - 1],
                sum / s.length);
    }

    /** The q-th percentile (0..100) of sorted values, numpy's linear interpolation. */
    public static double percentile(double[] sorted, double q) {
        if (q < 0 || q > 100) {
            throw new IllegalArgumentException("percentile " + q);
        }
        double rank = q / 100 * (sorted.length - 1);
        int lo = (int) Math.floor(rank);
        int hi = Math.min(lo + 1, sorted.length - 1);
        return sorted[lo] + (rank - lo) * (sorted[hi] - sorted[lo]);
    }
}
