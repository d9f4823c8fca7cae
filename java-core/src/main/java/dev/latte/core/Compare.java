package dev.latte.core;

import java.util.Locale;

/**
 * How close a result is to a reference: PSNR = 10·log10(peak² / MSE) with peak = max|reference|,
 * the measure every quality gate of Latte is stated in. Sums run in double so the measure itself
 * adds no error. A whole-tensor PSNR can hide one wrong row, so op comparisons also bound every
 * element ({@link #bound}).
 */
public record Compare(double psnr, double maxAbsError, long nonFinite) {

    public static Compare of(float[] reference, float[] result) {
        if (reference.length != result.length) {
            throw new IllegalArgumentException("length " + result.length + " vs reference " + reference.length);
        }
        double peak = 0, sq = 0, maxAbs = 0;
        long bad = 0;
        for (int i = 0; i < reference.length; i++) {
            if (!Float.isFinite(result[i])) {
                bad++;
                continue;
            }
            double d = (double) result[i] - reference[i];
            sq += d * d;
            maxAbs = Math.max(maxAbs, Math.abs(d));
            peak = Math.max(peak, Math.abs(reference[i]));
        }
        double psnr;
        if (bad > 0) {
            psnr = Double.NEGATIVE_INFINITY;
        } else if (sq == 0) {
            psnr = Double.POSITIVE_INFINITY;
        } else {
            psnr = 10 * Math.log10(peak * peak / (sq / reference.length));
        }
        return new Compare(psnr, bad > 0 ? Double.NaN : maxAbs, bad);
    }

    /**
     * Every element within {@code |result − reference| ≤ atol + rtol·|reference|} (llm.c's
     * {@code validate_result}): how many are not, and the worst one (largest |d| over its allowance;
     * a non-finite result is worst of all).
     */
    public static Bound bound(float[] reference, float[] result, double atol, double rtol) {
        if (reference.length != result.length) {
            throw new IllegalArgumentException("length " + result.length + " vs reference " + reference.length);
        }
        if (!(atol >= 0 && rtol >= 0)) {
            throw new IllegalArgumentException("atol " + atol + ", rtol " + rtol);
        }
        long outside = 0;
        int worst = -1;
        double worstRatio = -1;
        for (int i = 0; i < reference.length; i++) {
            double allowed = atol + rtol * Math.abs(reference[i]);
            double d = Math.abs((double) result[i] - reference[i]);
            double ratio = Float.isFinite(result[i]) ? (allowed > 0 ? d / allowed : (d == 0 ? 0 : Double.POSITIVE_INFINITY))
                    : Double.POSITIVE_INFINITY;
            if (!(d <= allowed)) {
                outside++;
            }
            if (ratio > worstRatio) {
                worstRatio = ratio;
                worst = i;
            }
        }
        return new Bound(atol, rtol, reference.length, outside, worst,
                worst < 0 ? 0 : reference[worst], worst < 0 ? 0 : result[worst], Math.max(worstRatio, 0));
    }

    /**
     * The outcome of {@link #bound}: {@code outside} of {@code elements} broke the bound; the worst
     * element is {@code worst} (−1 for none), whose |d| is {@code ratio} times its allowance.
     */
    public record Bound(double atol, double rtol, long elements, long outside, int worst, float reference,
                        float result, double ratio) {
        public boolean ok() {
            return outside == 0;
        }

        /** One line naming the worst element, e.g. for an assertion message. */
        @Override
        public String toString() {
            if (worst < 0) {
                return "no elements";
            }
            return String.format(Locale.ROOT, "%d of %d elements outside |d| <= %.1e + %.1e*|ref|; worst [%d]: %s vs"
                            + " reference %s (%.3g x its allowance)", outside, elements, atol, rtol, worst, result,
                    reference, ratio);
        }
    }
}
