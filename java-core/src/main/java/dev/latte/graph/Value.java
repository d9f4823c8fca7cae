package dev.latte.graph;

import dev.latte.core.Shape;

/** A tensor of a graph: a graph input, a parameter (by checkpoint name) or an activation. */
public record Value(int id, Kind kind, String name, Shape shape) {
    public enum Kind { INPUT, PARAM, ACTIVATION }
}
