/**
 * Running a graph on a backend: {@link Executor} (op by op, allocating per value, or out of a
 * planned arena) and {@link PlannedArena} (a {@code MemoryPlan} made real on a backend). Sits
 * above {@code graph} and {@code plan}, below the models and samplers that drive it, so no
 * import runs back up.
 */
package dev.latte.exec;
