package dev.latte.exec;

import dev.latte.core.Step;

/** A {@link Step} that runs out of a {@link PlannedArena} (every step {@link Steps#prepare} makes). */
public interface ArenaStep extends Step {
    PlannedArena arena();
}
