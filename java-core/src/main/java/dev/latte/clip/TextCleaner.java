package dev.latte.clip;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.Charset;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * CLIP's text cleaning before BPE (OpenAI's {@code simple_tokenizer}: {@code basic_clean} then
 * {@code whitespace_clean}, then lower-casing). {@code basic_clean} starts with
 * {@code ftfy.fix_text}; this class does the subset of ftfy's default fixes that change prompts
 * in practice: HTML entities (skipped, as ftfy does, when the text holds a '<'), UTF-8 read as
 * windows-1252 ("mojibake": every run of non-ASCII characters that re-encodes to valid UTF-8 is
 * decoded), C1 controls read as windows-1252, Latin ligatures, full-width characters, curly
 * quotes, line breaks, control characters, and NFC. Not done: ftfy's badness heuristics (a run
 * that decodes is always decoded), terminal escapes, surrogate pairs, and HTML's named entities
 * beyond the common ones in {@link #ENTITIES}.
 */
public final class TextCleaner {
    private TextCleaner() {
    }

    /** The text as the BPE sees it: ftfy subset, HTML unescaped twice, whitespace runs as one space, lower case. */
    public static String clean(String text) {
        String t = fixText(text);
        t = unescapeHtml(unescapeHtml(t));
        t = collapseWhitespace(strip(t));
        // Python's str.lower(): full Unicode case mapping, locale-independent
        return t.toLowerCase(Locale.ROOT);
    }

    static String fixText(String text) {
        String t = text;
        if (t.indexOf('<') < 0) {
            t = unescapeHtml(t);
        }
        t = fixMojibake(t);
        t = fixC1Controls(t);
        t = fixLigatures(t);
        t = fixWidth(t);
        t = uncurlQuotes(t);
        t = fixLineBreaks(t);
        t = removeControlChars(t);
        return Normalizer.normalize(t, Normalizer.Form.NFC);
    }

    // ---- whitespace as Python's str.isspace() / re's \s sees it -------------------------------

    static boolean isSpace(int c) {
        return Character.isWhitespace(c) || Character.isSpaceChar(c) || c == 0x85;
    }

    static String strip(String s) {
        int a = 0, b = s.length();
        while (a < b && isSpace(s.charAt(a))) {
            a++;
        }
        while (b > a && isSpace(s.charAt(b - 1))) {
            b--;
        }
        return s.substring(a, b);
    }

    static String collapseWhitespace(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        boolean inSpace = false;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (isSpace(c)) {
                if (!inSpace) {
                    sb.append(' ');
                }
                inSpace = true;
            } else {
                sb.append(c);
                inSpace = false;
            }
        }
        return strip(sb.toString());
    }

    // ---- HTML character references (Python's html.unescape) -----------------------------------

    private static final Pattern CHARREF =
            Pattern.compile("&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\\t\\n\\f <&#;]{1,32};?)");

    /** Named references this cleaner knows: the XML five, NBSP, and common typographic ones. */
    static final Map<String, String> ENTITIES = Map.ofEntries(
            Map.entry("amp", "&"), Map.entry("lt", "<"), Map.entry("gt", ">"), Map.entry("quot", "\""),
            Map.entry("apos", "'"), Map.entry("nbsp", "\u00a0"), Map.entry("copy", "\u00a9"),
            Map.entry("reg", "\u00ae"), Map.entry("trade", "\u2122"), Map.entry("hellip", "\u2026"),
            Map.entry("mdash", "\u2014"), Map.entry("ndash", "\u2013"), Map.entry("lsquo", "\u2018"),
            Map.entry("rsquo", "\u2019"), Map.entry("ldquo", "\u201c"), Map.entry("rdquo", "\u201d"),
            Map.entry("laquo", "\u00ab"), Map.entry("raquo", "\u00bb"), Map.entry("deg", "\u00b0"),
            Map.entry("middot", "\u00b7"), Map.entry("times", "\u00d7"), Map.entry("divide", "\u00f7"),
            Map.entry("euro", "\u20ac"), Map.entry("pound", "\u00a3"), Map.entry("yen", "\u00a5"),
            Map.entry("cent", "\u00a2"), Map.entry("sect", "\u00a7"), Map.entry("para", "\u00b6"),
            Map.entry("bull", "\u2022"));
    /** Names HTML5 also accepts without the ';' (a subset of {@link #ENTITIES}). */
    private static final java.util.Set<String> NO_SEMICOLON = java.util.Set.of("amp", "lt", "gt", "quot", "nbsp",
            "copy", "reg", "laquo", "raquo", "deg", "middot", "times", "divide", "pound", "yen", "cent", "sect", "para");

    static String unescapeHtml(String s) {
        if (s.indexOf('&') < 0) {
            return s;
        }
        Matcher m = CHARREF.matcher(s);
        StringBuilder sb = new StringBuilder(s.length());
        while (m.find()) {
            m.appendReplacement(sb, Matcher.quoteReplacement(replaceCharref(m.group(1))));
        }
        m.appendTail(sb);
        return sb.toString();
    }

    private static String replaceCharref(String ref) {
        if (ref.charAt(0) == '#') {
            boolean hex = ref.length() > 1 && (ref.charAt(1) == 'x' || ref.charAt(1) == 'X');
            String digits = ref.substring(hex ? 2 : 1).replace(";", "");
            long num;
            try {
                num = digits.length() > 8 ? Long.MAX_VALUE : Long.parseLong(digits, hex ? 16 : 10);
            } catch (NumberFormatException e) {
                num = Long.MAX_VALUE;
            }
            if (num >= 0x80 && num <= 0x9f) {
                return String.valueOf(CP1252_HIGH[(int) num - 0x80]);
            }
            if (num == 0 || (num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) {
                return "\ufffd";
            }
            return new String(Character.toChars((int) num));
        }
        String name = ref.endsWith(";") ? ref.substring(0, ref.length() - 1) : ref;
        if (ref.endsWith(";") && ENTITIES.containsKey(name)) {
            return ENTITIES.get(name);
        }
        // without ';' HTML5 takes the longest known prefix that may stand alone
        for (int n = ref.length() - 1; n > 1; n--) {
            String prefix = ref.substring(0, n);
            if (NO_SEMICOLON.contains(prefix)) {
                return ENTITIES.get(prefix) + ref.substring(n);
            }
        }
        return "&" + ref;
    }

    // ---- windows-1252 mojibake ------------------------------------------------------------------

    /** windows-1252's 0x80–0x9F; the five undefined bytes stay as their C1 controls ("sloppy" 1252). */
    private static final char[] CP1252_HIGH = new char[32];
    private static final Map<Character, Byte> SLOPPY_1252;

    static {
        Charset cp = Charset.forName("windows-1252");
        var dec = cp.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        java.util.HashMap<Character, Byte> enc = new java.util.HashMap<>();
        for (int b = 0x80; b <= 0xff; b++) {
            char c;
            try {
                c = dec.decode(ByteBuffer.wrap(new byte[] {(byte) b})).charAt(0);
            } catch (CharacterCodingException e) {
                c = (char) b;
            }
            if (b < 0xa0) {
                CP1252_HIGH[b - 0x80] = c;
            }
            enc.put(c, (byte) b);
            enc.putIfAbsent((char) b, (byte) b); // sloppy: C1 controls encode as themselves
        }
        SLOPPY_1252 = Map.copyOf(enc);
    }

    /** Each maximal run of non-ASCII characters that encodes in sloppy windows-1252 to valid UTF-8 is decoded. */
    static String fixMojibake(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        int i = 0;
        while (i < s.length()) {
            char c = s.charAt(i);
            if (c < 0x80 || !SLOPPY_1252.containsKey(c)) {
                sb.append(c);
                i++;
                continue;
            }
            int j = i;
            while (j < s.length() && s.charAt(j) >= 0x80 && SLOPPY_1252.containsKey(s.charAt(j))) {
                j++;
            }
            byte[] bytes = new byte[j - i];
            for (int k = i; k < j; k++) {
                bytes[k - i] = SLOPPY_1252.get(s.charAt(k));
            }
            String decoded = null;
            if (bytes.length >= 2) {
                try {
                    decoded = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                            .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
                } catch (CharacterCodingException e) {
                    decoded = null;
                }
            }
            sb.append(decoded != null ? decoded : s, decoded != null ? 0 : i, decoded != null ? decoded.length() : j);
            i = j;
        }
        return sb.toString();
    }

    static String fixC1Controls(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            sb.append(c >= 0x80 && c <= 0x9f ? CP1252_HIGH[c - 0x80] : c);
        }
        return sb.toString();
    }

    // ---- characters ftfy replaces ---------------------------------------------------------------

    private static final Map<Character, String> LIGATURES = Map.ofEntries(
            Map.entry('\u0132', "IJ"), Map.entry('\u0133', "ij"), Map.entry('\u0149', "\u02bcn"),
            Map.entry('\u01f1', "DZ"), Map.entry('\u01f2', "Dz"), Map.entry('\u01f3', "dz"),
            Map.entry('\u01c4', "D\u017d"), Map.entry('\u01c5', "D\u017e"), Map.entry('\u01c6', "d\u017e"),
            Map.entry('\u01c7', "LJ"), Map.entry('\u01c8', "Lj"), Map.entry('\u01c9', "lj"),
            Map.entry('\u01ca', "NJ"), Map.entry('\u01cb', "Nj"), Map.entry('\u01cc', "nj"),
            Map.entry('\ufb00', "ff"), Map.entry('\ufb01', "fi"), Map.entry('\ufb02', "fl"),
            Map.entry('\ufb03', "ffi"), Map.entry('\ufb04', "ffl"), Map.entry('\ufb05', "\u017ft"),
            Map.entry('\ufb06', "st"));

    static String fixLigatures(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            String r = LIGATURES.get(c);
            if (r != null) {
                sb.append(r);
            } else {
                sb.append(c);
            }
        }
        return sb.toString();
    }

    /** Full-width and half-width forms (U+FF01–U+FFEF) to their NFKC form; the ideographic space to ' '. */
    static String fixWidth(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\u3000') {
                sb.append(' ');
            } else if (c >= '\uff01' && c <= '\uffef') {
                sb.append(Normalizer.normalize(String.valueOf(c), Normalizer.Form.NFKC));
            } else {
                sb.append(c);
            }
        }
        return sb.toString();
    }

    static String uncurlQuotes(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\u02bc' || (c >= '\u2018' && c <= '\u201b')) {
                sb.append('\'');
            } else if (c >= '\u201c' && c <= '\u201f') {
                sb.append('"');
            } else {
                sb.append(c);
            }
        }
        return sb.toString();
    }

    static String fixLineBreaks(String s) {
        return s.replace("\r\n", "\n").replace('\r', '\n').replace('\u2028', '\n').replace('\u2029', '\n')
                .replace('\u0085', '\n');
    }

    /** ftfy's control characters: C0 but tab, LF, FF, CR; DEL; and a few format characters. */
    static String removeControlChars(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            boolean control = (c <= 0x08) || c == 0x0b || (c >= 0x0e && c <= 0x1f) || c == 0x7f
                    || (c >= 0x206a && c <= 0x206f) || c == 0xfeff || (c >= 0xfff9 && c <= 0xfffc);
            if (!control) {
                sb.append(c);
            }
        }
        return sb.toString();
    }
}
