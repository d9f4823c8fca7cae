package dev.latte.weights;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** What every rejection of bad input must look like: one printable line that names its source. */
public final class Fuzzing {
    private Fuzzing() {
    }

    /** {@code e}'s message is one line, free of control characters, and starts with {@code source}. */
    public static void assertOneLine(Exception e, String source) {
        String m = e.getMessage();
        assertTrue(m != null && !m.isEmpty(), () -> "no message: " + e);
        for (int i = 0; i < m.length(); i++) {
            char c = m.charAt(i);
            boolean control = c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == '\u2028' || c == '\u2029';
            int at = i;
            assertTrue(!control, () -> "control character U+" + Integer.toHexString(c) + " at " + at + " in: " + m);
        }
        assertTrue(m.startsWith(source), () -> "does not start with '" + source + "': " + m);
    }
}
