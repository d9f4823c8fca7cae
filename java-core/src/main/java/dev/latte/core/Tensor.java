package dev.latte.core;

/**
 * A tensor owned by a backend: a shape and the backend's storage. What the storage is (a Java
 * array, device memory) is the backend's business; code above the backend only passes tensors
 * back to the backend that made them.
 */
public interface Tensor {
    Shape shape();
}
