/**
 * The CUDA layer: driver API and NVRTC bindings through {@code java.lang.foreign} (no JNI), found
 * by soname at run time ({@link dev.latte.cuda.NativeLibraries}); kernels compiled at start-up by
 * {@link dev.latte.cuda.Nvrtc} for the device's architecture and cached on disk
 * ({@link dev.latte.cuda.KernelCache}); one device, one stream, owned handles
 * ({@link dev.latte.cuda.CudaContext} → modules, kernels, events, graphs). Every
 * {@code CUresult}/{@code nvrtcResult} is checked ({@link dev.latte.cuda.CudaException}).
 */
package dev.latte.cuda;
