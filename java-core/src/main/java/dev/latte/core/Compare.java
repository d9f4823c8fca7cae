package dev.latte.core;

/**
 * How close a result is to a reference: PSNR = 10·log10(peak² / MSE) with peak = max|reference|,
 * the measure every quality gate of Latte is stated in. Sums run in double so the measure itself
 * adds no error.
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
}
