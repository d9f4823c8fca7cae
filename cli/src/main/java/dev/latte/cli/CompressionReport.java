package dev.latte.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.latte.core.Backend;
import dev.latte.core.Int8Mode;
import dev.latte.model.GoldenCase;
import dev.latte.model.ModelWriter;
import dev.latte.model.UNetModel;
import dev.latte.model.UNetRunner;
import dev.latte.prune.Pruner;
import dev.latte.quant.Quantizer;
import dev.latte.weights.AtomicFiles;
import dev.latte.weights.DType;
import dev.latte.weights.SafeTensorsFile;
import dev.latte.weights.SafeTensorsWriter;
import dev.latte.weights.TensorInfo;
import dev.latte.weights.WeightsException;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

/**
 * {@code latte compression-report}: every compression mode of one model measured against its
 * golden cases: weight bytes, parameter count and the PSNR of {@code out} against the fp32
 * golden, for fp32, fp16-stored weights, int8 (W8A16, W8A8), and pruning at 0.25 and 0.5 with
 * and without int8. Derived models are written to a scratch folder and deleted afterwards.
 */
final class CompressionReport {
    static final Set<String> OPTIONS = Set.of("model", "goldens", "json", "threads", "backend");
    static final double[] RATIOS = {0.25, 0.5};

    private record Variant(String name, Path dir, Int8Mode mode) {
    }

    private CompressionReport() {
    }

    static int run(Args a, PrintStream out, PrintStream err) {
        a.outputFile("json");
        Path modelDir = Path.of(a.required("model"));
        Path goldens = Path.of(a.get("goldens", modelDir.toString()));
        List<Path> cases;
        try (Stream<Path> s = Files.list(goldens)) {
            cases = s.filter(p -> p.getFileName().toString().matches("case-.*\\.safetensors"))
                    .sorted(Comparator.comparing(Path::toString)).toList();
        } catch (IOException e) {
            throw new WeightsException(goldens + ": cannot list: " + e.getMessage(), e);
        }
        if (cases.isEmpty()) {
            throw new Args.UsageException("compression-report: no case-*.safetensors in " + goldens);
        }
        Path work;
        try {
            work = Files.createTempDirectory("latte-compression");
        } catch (IOException e) {
            throw new WeightsException("cannot create a scratch folder: " + e.getMessage(), e);
        }
        try (Backend backend = Backends.open(a, "fp32")) {
            List<Variant> variants = derive(modelDir, work, err);
            ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
            ObjectNode root = json.createObjectNode();
            root.put("report", "compression");
            root.put("model", modelDir.toString());
            root.put("backend", backend.name());
            root.put("date", Instant.now().toString());
            root.put("commit", Bench.git("rev-parse", "HEAD"));
            root.put("note", "PSNR of the UNet output 'out' against the fp32 diffusers golden of each case. The model"
                    + " has random weights (not trained), so pruning loses far more than it would on a trained model;"
                    + " int8 and fp16 errors are representative of rounding only.");
            ArrayNode rows = root.putArray("variants");
            out.printf("%-26s %14s %12s %s%n", "variant", "weight bytes", "parameters", "PSNR out vs fp32 golden (dB)");
            for (Variant v : variants) {
                try (UNetModel model = UNetModel.load(v.dir());
                     UNetRunner runner = new UNetRunner(model, backend, v.mode())) {
                    long bytes = model.bytesByDtype().values().stream().mapToLong(Long::longValue).sum();
                    long params = model.parameterCount();
                    ObjectNode r = rows.addObject();
                    r.put("name", v.name());
                    r.put("mode", model.mode());
                    r.put("int8_mode", model.isQuantized() ? v.mode().name() : null);
                    r.put("weight_bytes", bytes);
                    ObjectNode byDtype = r.putObject("weight_bytes_by_dtype");
                    model.bytesByDtype().forEach((d, b) -> byDtype.put(d.name(), b));
                    r.put("parameters", params);
                    ArrayNode psnr = r.putArray("psnr_out_db");
                    double min = Double.POSITIVE_INFINITY;
                    for (Path c : cases) {
                        double db = GoldenCase.validate(runner, c).stream().filter(row -> row.name().equals("out"))
                                .findFirst().orElseThrow().compare().psnr();
                        psnr.add(db);
                        min = Math.min(min, db);
                    }
                    r.put("psnr_out_min_db", min);
                    StringBuilder dbs = new StringBuilder();
                    psnr.forEach(db -> dbs.append(String.format(" %7.2f", db.doubleValue())));
                    out.printf("%-26s %,14d %,12d %s%n", v.name(), bytes, params, dbs);
                }
            }
            String file = a.get("json", null);
            if (file != null) {
                AtomicFiles.writeString(Path.of(file), json.writeValueAsString(root) + "\n");
                out.println("wrote " + file);
            }
            return 0;
        } catch (IOException e) {
            throw new WeightsException("compression-report: " + e.getMessage(), e);
        } finally {
            delete(work);
        }
    }

    /** Writes the derived models into {@code work}; the original is the fp32 row. */
    private static List<Variant> derive(Path modelDir, Path work, PrintStream err) {
        List<Variant> v = new ArrayList<>();
        v.add(new Variant("fp32", modelDir, Int8Mode.W8A16));
        try (UNetModel model = UNetModel.load(modelDir)) {
            err.println("latte: writing fp16, int8 and pruned variants of " + modelDir + " to " + work);
            v.add(new Variant("fp16 weights", fp16(model, work.resolve("fp16")), Int8Mode.W8A16));
            Path int8 = work.resolve("int8");
            Quantizer.quantize(model, int8);
            v.add(new Variant("int8 W8A16", int8, Int8Mode.W8A16));
            v.add(new Variant("int8 W8A8", int8, Int8Mode.W8A8));
            for (double r : RATIOS) {
                Path pruned = work.resolve("pruned-" + r);
                Pruner.prune(model, r, null, pruned);
                v.add(new Variant("pruned " + r, pruned, Int8Mode.W8A16));
                Path both = work.resolve("pruned-" + r + "-int8");
                try (UNetModel p = UNetModel.load(pruned)) {
                    Quantizer.quantize(p, both);
                }
                v.add(new Variant("pruned " + r + " + int8 W8A16", both, Int8Mode.W8A16));
                v.add(new Variant("pruned " + r + " + int8 W8A8", both, Int8Mode.W8A8));
            }
        }
        return v;
    }

    /** The model with every F32 tensor stored as F16 (round to nearest even), computed in fp32 as before. */
    private static Path fp16(UNetModel model, Path dir) {
        SafeTensorsFile f = model.weights();
        SafeTensorsWriter w = new SafeTensorsWriter();
        var layout = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        for (TensorInfo t : f.tensors()) {
            if (t.dtype() != DType.F32) {
                w.add(t.name(), t.dtype(), t.shape(), f.data(t.name()));
                continue;
            }
            float[] v = f.toFloatArray(t.name());
            MemorySegment s = MemorySegment.ofArray(new byte[v.length * 2]);
            for (int i = 0; i < v.length; i++) {
                s.setAtIndex(layout, i, Float.floatToFloat16(v[i]));
            }
            w.add(t.name(), DType.F16, t.shape(), s);
        }
        ModelWriter.write(model, dir, cfg -> { }, w);
        return dir;
    }

    private static void delete(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // a scratch folder left in /tmp is harmless
        }
    }
}
