package dev.latte.graph;

import dev.latte.core.Int8Mode;

/**
 * What the stored weights say that the config cannot: which conv/linear weights are int8 (a
 * {@code NAME_scale} companion exists) and the stored shape of a parameter, from which a model
 * builder takes the inner widths of pruned modules. {@link #CONFIG} knows nothing: every weight
 * is float and every width is the config's, exactly the graph a diffusers config implies.
 */
public interface WeightFormat {
    WeightFormat CONFIG = new WeightFormat() {
        @Override
        public int[] shape(String name) {
            return null;
        }

        @Override
        public boolean isInt8(String name) {
            return false;
        }

        @Override
        public Int8Mode int8Mode() {
            return Int8Mode.W8A16;
        }
    };

    /** Suffix of the fp32 per-output-channel scale tensor stored beside an int8 {@code X.weight}. */
    String SCALE_SUFFIX = "_scale";

    /** The stored shape of parameter {@code name}, or null if unknown. */
    int[] shape(String name);

    /** Whether {@code name} (a conv or linear weight) is stored as int8 with a {@code _scale} companion. */
    boolean isInt8(String name);

    /** How int8 layers run in graphs built with this format. */
    Int8Mode int8Mode();
}
