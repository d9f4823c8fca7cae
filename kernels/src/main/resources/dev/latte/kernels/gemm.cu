// Linear layers: out[m][n] = Σ_k x[m][k]·w[n][k] + bias[n]; x [M, K] (all leading dims folded into
// M), w [N, K] as PyTorch stores nn.Linear weights, out [M, N].
// Tiling: 64 rows × 64 features per 128-thread block, 32-wide k slices through shared memory
// (common.cuh). fp16: tensor cores (mma.sync m16n8k16, fp32 accumulate); fp32: FMA, no TF32.
#include "common.cuh"

template <class T>
struct LinearProblem {
    const T* x; const T* w; const T* bias; T* out;
    int M, N, K;

    struct Row { long long base; bool valid; };

    __device__ Row row(int m) const { return Row{(long long)m * K, m < M}; }
    __device__ float a(const Row& r, int k) const { return r.valid ? ld(x, r.base + k) : 0.f; }
    __device__ float b(int n, int k) const { return ld(w, (long long)n * K + k); }
    __device__ void store(int m, int n, float acc) const {
        if (bias != nullptr) acc += ld(bias, n);
        st(out, (long long)m * N + n, acc);
    }
};

// grid (ceil(M / 64), ceil(N / 64)), block 128
extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
linear_f32(const float* x, const float* w, const float* bias, float* out, int M, int N, int K) {
    LinearProblem<float> pr{x, w, bias, out, M, N, K};
    gemm_tile_f32(pr, M, N, K);
}

extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
linear_f16(const f16* x, const f16* w, const f16* bias, f16* out, int M, int N, int K) {
    LinearProblem<f16> pr{x, w, bias, out, M, N, K};
    gemm_tile_f16(pr, M, N, K);
}
