package dev.latte.weights;

/**
 * Untrusted strings (tensor names, config keys, LoRA keys, paths) made safe to print: a file must
 * not be able to forge an error line with a newline, or repaint the terminal with an escape
 * sequence, through a name it chose.
 */
public final class Text {
    /** The longest untrusted string shown whole; longer ones keep their head and say how much is cut. */
    public static final int MAX_SHOWN = 160;

    private Text() {
    }

    /**
     * {@code s} with control characters escaped ({@code \n}, {@code \r}, {@code \t}, {@code \x1b},
     * C1 controls, Unicode line separators and bidirectional overrides as {@code \}{@code uXXXX})
     * and cut to {@link #MAX_SHOWN} characters.
     */
    public static String quote(String s) {
        if (s == null) {
            return "null";
        }
        String e = escape(s);
        if (e.length() <= MAX_SHOWN) {
            return e;
        }
        int cut = MAX_SHOWN - 24;
        if (Character.isHighSurrogate(e.charAt(cut - 1))) {
            cut--;
        }
        return e.substring(0, cut) + "...(" + (e.length() - cut) + " more chars)";
    }

    /** A whole message on one line: control characters escaped as in {@link #quote}, nothing cut. */
    public static String oneLine(String message) {
        return message == null ? "null" : escape(message);
    }

    private static String escape(String s) {
        StringBuilder b = null;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            String rep = switch (c) {
                case '\n' -> "\\n";
                case '\r' -> "\\r";
                case '\t' -> "\\t";
                default -> unsafe(c) ? (c < 0x100 ? String.format("\\x%02x", (int) c) : String.format("\\u%04x", (int) c))
                        : null;
            };
            if (rep != null && b == null) {
                b = new StringBuilder(s.length() + 16).append(s, 0, i);
            }
            if (b != null) {
                if (rep != null) {
                    b.append(rep);
                } else {
                    b.append(c);
                }
            }
        }
        return b == null ? s : b.toString();
    }

    private static boolean unsafe(char c) {
        return c < 0x20 || (c >= 0x7f && c <= 0x9f)
                || c == '\u2028' || c == '\u2029'                  // line / paragraph separators
                || (c >= '\u202a' && c <= '\u202e') || (c >= '\u2066' && c <= '\u2069') // bidi overrides
                || c == '\u200e' || c == '\u200f' || c == '\u061c'  // direction marks
                || c == '\ufeff';
    }
}
