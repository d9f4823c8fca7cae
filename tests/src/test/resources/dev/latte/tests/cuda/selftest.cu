// Latte's own NVRTC check kernel (tests module): the CUDA toolkit's fp16 header through the
// -I NVRTC is given, a template instantiated from extern "C" entry points, dynamic shared memory.
#include <cuda_fp16.h>

template <class T>
__device__ __forceinline__ float load(const T* p, int i);
template <> __device__ __forceinline__ float load<float>(const float* p, int i) { return p[i]; }
template <> __device__ __forceinline__ float load<__half>(const __half* p, int i) { return __half2float(p[i]); }

// out[block] = sum of x over the block's slice, fp32 accumulation.
template <class T>
__device__ void block_sum(const T* x, float* out, int n) {
    extern __shared__ float partial[];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    partial[threadIdx.x] = i < n ? load(x, i) : 0.0f;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

extern "C" __global__ void latte_selftest_sum_f32(const float* x, float* out, int n) { block_sum(x, out, n); }
extern "C" __global__ void latte_selftest_sum_f16(const __half* x, float* out, int n) { block_sum(x, out, n); }
