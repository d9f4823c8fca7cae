package dev.latte.plan;

import dev.latte.core.Conv2dParams;
import dev.latte.core.Shape;
import dev.latte.graph.Graph;
import dev.latte.graph.Op;
import dev.latte.graph.Value;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.SequencedMap;
import java.util.SplittableRandom;

/**
 * Random, shape-correct op graphs over small NCHW tensors, with every op kind the planner treats
 * specially (in-place unary, add, scale, conv with a residual epilogue) and the ones it must not
 * alias (conv, concat, upsample, groupNorm), so they can both be planned and run.
 */
final class RandomGraphs {
    private final SplittableRandom rnd;
    private final List<Value> values = new ArrayList<>();
    private final List<Op> ops = new ArrayList<>();
    private final List<Value> acts = new ArrayList<>();
    private final SequencedMap<String, Value> inputs = new LinkedHashMap<>();
    private final SequencedMap<String, Value> params = new LinkedHashMap<>();
    private final SequencedMap<String, Value> outputs = new LinkedHashMap<>();

    private RandomGraphs(long seed) {
        rnd = new SplittableRandom(seed);
    }

    static Graph of(long seed, int opCount) {
        return new RandomGraphs(seed).build(opCount);
    }

    private Value value(Value.Kind kind, String name, Shape shape) {
        Value v = new Value(values.size(), kind, name, shape);
        values.add(v);
        if (kind != Value.Kind.PARAM) {
            acts.add(v);
        }
        if (kind == Value.Kind.INPUT) {
            inputs.put(name, v);
        } else if (kind == Value.Kind.PARAM) {
            params.put(name, v);
        }
        return v;
    }

    private Value param(Shape s) {
        return value(Value.Kind.PARAM, "p" + params.size(), s);
    }

    /** Mostly a recent value: graphs then have short and long lifetimes both. */
    private Value pick() {
        int n = acts.size();
        return rnd.nextInt(3) > 0 ? acts.get(Math.max(0, n - 1 - rnd.nextInt(Math.min(n, 4)))) : acts.get(rnd.nextInt(n));
    }

    private Value sameShape(Shape s) {
        List<Value> same = acts.stream().filter(v -> v.shape().equals(s)).toList();
        return same.get(rnd.nextInt(same.size()));
    }

    private Graph build(int opCount) {
        int nIn = 1 + rnd.nextInt(3);
        for (int i = 0; i < nIn; i++) {
            value(Value.Kind.INPUT, "in" + i, Shape.of(1, 2 + rnd.nextInt(3), 2, 2 + rnd.nextInt(2)));
        }
        while (ops.size() < opCount) {
            Value x = pick();
            int n = x.shape().dim(0), c = x.shape().dim(1), h = x.shape().dim(2), w = x.shape().dim(3);
            String name = "op" + ops.size();
            switch (rnd.nextInt(9)) {
                case 0 -> {
                    Value o = value(Value.Kind.ACTIVATION, name, x.shape());
                    ops.add(new Op.Unary(name, rnd.nextBoolean() ? Op.Fn.SILU : Op.Fn.GELU, x.id(), o.id()));
                }
                case 1 -> {
                    Value o = value(Value.Kind.ACTIVATION, name, x.shape());
                    ops.add(new Op.Scale(name, x.id(), 0.5f + rnd.nextInt(4), o.id()));
                }
                case 2 -> {
                    Value y = sameShape(x.shape());
                    Value o = value(Value.Kind.ACTIVATION, name, x.shape());
                    ops.add(new Op.Add(name, x.id(), y.id(), o.id()));
                }
                case 3 -> {
                    List<Value> fit = acts.stream().filter(v -> v.shape().dim(2) == h && v.shape().dim(3) == w
                            && v.shape().dim(1) + c <= 8).toList();
                    if (fit.isEmpty()) {
                        continue;
                    }
                    Value y = fit.get(rnd.nextInt(fit.size()));
                    Value o = value(Value.Kind.ACTIVATION, name, Shape.of(n, c + y.shape().dim(1), h, w));
                    ops.add(new Op.ConcatChannels(name, x.id(), y.id(), o.id()));
                }
                case 4 -> {
                    if (h * w > 24) {
                        continue;
                    }
                    Value o = value(Value.Kind.ACTIVATION, name, Shape.of(n, c, 2 * h, 2 * w));
                    ops.add(new Op.UpsampleNearest(name, x.id(), o.id()));
                }
                case 5 -> {
                    int k = 2 + rnd.nextInt(3);
                    Value wt = param(Shape.of(k, c, 3, 3)), b = param(Shape.of(k));
                    Value o = value(Value.Kind.ACTIVATION, name, Shape.of(n, k, h, w));
                    ops.add(new Op.Conv2d(name, x.id(), wt.id(), b.id(), Conv2dParams.of(1, 1), o.id()));
                }
                case 6, 7 -> {
                    // conv(norm(x)) + residual, the residual an existing value of the output's shape
                    List<Value> res = acts.stream().filter(v -> v.shape().dim(2) == h && v.shape().dim(3) == w).toList();
                    Value r = res.get(rnd.nextInt(res.size()));
                    int k = r.shape().dim(1);
                    boolean norm = rnd.nextBoolean();
                    Value g = norm ? param(Shape.of(c)) : null, be = norm ? param(Shape.of(c)) : null;
                    Value wt = param(Shape.of(k, c, 1 + 2 * rnd.nextInt(2), 1)), b = param(Shape.of(k));
                    int pad = wt.shape().dim(2) / 2;
                    Value o = value(Value.Kind.ACTIVATION, name, Shape.of(n, k, h, w));
                    ops.add(new Op.Conv2dFused(name, x.id(), norm ? g.id() : -1, norm ? be.id() : -1, 1, 1e-5f,
                            rnd.nextBoolean(), wt.id(), b.id(), new Conv2dParams(1, 1, pad, 0, pad, 0),
                            rnd.nextBoolean() ? r.id() : -1, o.id()));
                }
                default -> {
                    Value g = param(Shape.of(c)), b = param(Shape.of(c));
                    Value o = value(Value.Kind.ACTIVATION, name, x.shape());
                    ops.add(new Op.GroupNorm(name, x.id(), g.id(), b.id(), 1, 1e-5f, rnd.nextBoolean(), o.id()));
                }
            }
        }
        Value last = values.get(ops.getLast().out());
        outputs.put("out", last);
        for (int i = 0; i < 2; i++) {
            Value v = values.get(ops.get(rnd.nextInt(ops.size())).out());
            if (!outputs.containsValue(v)) {
                outputs.put("mid" + i, v);
            }
        }
        return new Graph(values, ops, inputs, params, outputs);
    }
}
