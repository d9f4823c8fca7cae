package dev.latte.clip;

import dev.latte.core.Shape;
import dev.latte.core.StorageType;
import dev.latte.graph.Graph;
import dev.latte.graph.GraphBuilder;
import dev.latte.graph.Value;
import dev.latte.weights.ClipTextConfig;

/**
 * transformers' {@code CLIPTextModel} as a graph builder, parameters in Hugging Face naming
 * ({@code text_model.embeddings.token_embedding.weight}, {@code text_model.encoder.layers.N.…}).
 *
 * <p>Graph input: {@code input_ids} [B, L] (token ids held as floats). Named outputs:
 * {@code hidden_states.0} (embeddings), {@code hidden_states.N} after encoder layer N (before the
 * final LayerNorm), and {@code last_hidden_state}, what Stable Diffusion conditions on.
 * Attention is causal over all L positions with no padding mask, as CLIP's is: padding tokens are
 * computed like any other.
 */
public final class ClipTextModel {
    public static final String INPUT = "input_ids";
    public static final String OUT = "last_hidden_state";

    private final ClipTextConfig cfg;

    public ClipTextModel(ClipTextConfig cfg) {
        this.cfg = cfg;
    }

    public ClipTextConfig config() {
        return cfg;
    }

    public Graph graph(int batch, int length) {
        if (length > cfg.maxPositionEmbeddings()) {
            throw new IllegalArgumentException("text encoder: " + length + " tokens exceed max_position_embeddings "
                    + cfg.maxPositionEmbeddings());
        }
        int d = cfg.hiddenSize();
        GraphBuilder g = new GraphBuilder();
        Value ids = g.input(INPUT, Shape.of(batch, length), StorageType.F32);
        g.push("text_model");
        g.push("embeddings");
        Value tok = g.in("token_embedding", () -> g.param("weight", Shape.of(cfg.vocabSize(), d)));
        Value pos = g.in("position_embedding", () -> g.param("weight", Shape.of(cfg.maxPositionEmbeddings(), d)));
        Value h = g.embedding(ids, tok, pos); // [B, L, D]
        g.pop();
        g.output("hidden_states.0", h);
        for (int i = 0; i < cfg.numHiddenLayers(); i++) {
            h = layer(g, "encoder.layers." + i, h);
            g.output("hidden_states." + (i + 1), h);
        }
        Value last = h;
        h = g.in("final_layer_norm", () -> g.layerNorm(last, cfg.layerNormEps()));
        g.pop();
        g.output(OUT, h);
        return g.build();
    }

    /** CLIPEncoderLayer: x + out_proj(attn(ln1(x))), then x + fc2(act(fc1(ln2(x)))). */
    private Value layer(GraphBuilder g, String scope, Value x) {
        int d = cfg.hiddenSize();
        g.push(scope);
        Value n1 = g.in("layer_norm1", () -> g.layerNorm(x, cfg.layerNormEps()));
        g.push("self_attn");
        Value q = g.in("q_proj", () -> g.linear(n1, d, true));
        Value k = g.in("k_proj", () -> g.linear(n1, d, true));
        Value v = g.in("v_proj", () -> g.linear(n1, d, true));
        Value a = g.attention(q, k, v, cfg.numAttentionHeads(), true); // causal, scale 1/√head_dim
        Value o = g.in("out_proj", () -> g.linear(a, d, true));
        g.pop();
        Value h = g.add(x, o);
        Value h1 = h;
        Value n2 = g.in("layer_norm2", () -> g.layerNorm(h1, cfg.layerNormEps()));
        g.push("mlp");
        Value f = g.in("fc1", () -> g.linear(n2, cfg.intermediateSize(), true)); // [B, L, intermediate]
        f = cfg.hiddenAct().equals("quick_gelu") ? g.quickGelu(f) : g.gelu(f);
        Value act = f;
        Value f2 = g.in("fc2", () -> g.linear(act, d, true));
        g.pop();
        h = g.add(h, f2);
        g.pop();
        return h;
    }
}
