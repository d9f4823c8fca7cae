package dev.latte.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.latte.clip.ClipTokenizer;
import dev.latte.pipeline.PipelineFolder;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;

/**
 * {@code latte tokenize --model DIR [--json] PROMPT...}: each prompt's ids as the pipeline feeds
 * them to the text encoder. DIR is a pipeline folder (its {@code tokenizer/}) or a tokenizer folder.
 */
final class Tokenize {
    private Tokenize() {
    }

    static int run(List<String> args, PrintStream out) {
        String model = null;
        boolean json = false;
        List<String> prompts = new ArrayList<>();
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (a.equals("--model")) {
                if (i + 1 >= args.size()) {
                    throw new Args.UsageException("tokenize: option --model needs a value");
                }
                model = args.get(++i);
            } else if (a.equals("--json")) {
                json = true;
            } else if (a.equals("--")) {
                prompts.addAll(args.subList(i + 1, args.size()));
                break;
            } else if (a.startsWith("--")) {
                throw new Args.UsageException("tokenize: unknown option '" + a + "' (known: --model, --json; prompts "
                        + "follow, after -- if one starts with --)");
            } else {
                prompts.add(a);
            }
        }
        if (model == null) {
            throw new Args.UsageException("tokenize: --model is required");
        }
        if (prompts.isEmpty()) {
            throw new Args.UsageException("tokenize: give at least one prompt");
        }
        Path dir = Path.of(model);
        Path tokDir = PipelineFolder.isPipeline(dir) || Files.isDirectory(dir.resolve("tokenizer"))
                ? dir.resolve("tokenizer") : dir;
        ClipTokenizer tok = ClipTokenizer.load(tokDir);
        ObjectMapper mapper = new ObjectMapper();
        ArrayNode all = mapper.createArrayNode();
        for (String p : prompts) {
            if (p.indexOf('\ufffd') >= 0) {
                throw new IllegalArgumentException("tokenize: prompt holds U+FFFD (text that was not valid UTF-8 "
                        + "before it reached Latte); pass UTF-8 text");
            }
            ClipTokenizer.Encoding e = tok.encode(p);
            if (json) {
                ObjectNode o = all.addObject();
                o.put("prompt", p);
                ArrayNode ids = o.putArray("input_ids");
                Arrays.stream(e.ids()).forEach(ids::add);
                o.put("bpe_length", e.bpeLength());
                o.put("truncated", e.truncated());
                ArrayNode toks = o.putArray("tokens");
                e.tokens().forEach(toks::add);
            } else {
                out.printf("%s%n  %d BPE tokens%s: %s%n  ids: %s%n", p, e.bpeLength(),
                        e.truncated() ? " (truncated to " + (tok.maxLength() - 2) + ")" : "",
                        String.join(" ", e.tokens()),
                        Arrays.stream(e.ids()).mapToObj(Integer::toString).collect(Collectors.joining(" ")));
            }
        }
        if (json) {
            out.println(all.toString());
        }
        return 0;
    }
}
