// Linear layers: out[m][n] = Σ_k x[m][k]·w[n][k] + bias[n] (+ res[m][n]); x [M, K] (all leading
// dims folded into M), w [N, K] as PyTorch stores nn.Linear weights, out [M, N]. res (nullable) is
// the residual epilogue; it may be out: each element is read and written by one thread.
// Tiling: 64 rows × 64 features per 128-thread block, 32-wide k slices through shared memory
// (common.cuh). fp16: tensor cores (mma.sync m16n8k16, fp32 accumulate); fp32: FMA, no TF32.
#include "common.cuh"

template <class T>
struct LinearProblem {
    const T* x; const T* w; const T* bias; const T* res; T* out;
    int M, N, K;

    struct Row { long long base; bool valid; };

    __device__ Row row(int m) const { return Row{(long long)m * K, m < M}; }
    __device__ float a(const Row& r, int k) const { return r.valid ? ld(x, r.base + k) : 0.f; }
    __device__ float b(int n, int k) const { return ld(w, (long long)n * K + k); }
    __device__ void store(int m, int n, float acc) const {
        if (bias != nullptr) acc += ld(bias, n);
        if (res != nullptr) acc += ld(res, (long long)m * N + n);
        st(out, (long long)m * N + n, acc);
    }
};

// grid (ceil(M / 64), ceil(N / 64)), block 128
extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
linear_f32(const float* x, const float* w, const float* bias, const float* res, float* out, int M, int N, int K) {
    LinearProblem<float> pr{x, w, bias, res, out, M, N, K};
    gemm_tile_f32(pr, M, N, K);
}

extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
linear_f16(const f16* x, const f16* w, const f16* bias, const f16* res, f16* out, int M, int N, int K) {
    LinearProblem<f16> pr{x, w, bias, res, out, M, N, K};
    gemm_tile_f16(pr, M, N, K);
}

// A self-attention's q, k and v projections as one GEMM: N = 3C output columns, column n from the
// weight (and bias) of block s = n / C, row n − s·C, so the three checkpoint tensors are read where
// they are. out [3, M, C]: block s is a contiguous [M, C] tensor (attention reads it in place).
template <class T>
struct LinearQkvProblem {
    const T* x; const T* wq; const T* wk; const T* wv; const T* bq; const T* bk; const T* bv; T* out;
    int M, C, K;

    struct Row { long long base; bool valid; };

    __device__ Row row(int m) const { return Row{(long long)m * K, m < M}; }
    __device__ float a(const Row& r, int k) const { return r.valid ? ld(x, r.base + k) : 0.f; }
    __device__ int block(int n) const { return n >= C ? (n >= 2 * C ? 2 : 1) : 0; }
    __device__ float b(int n, int k) const {
        const int s = block(n);
        return ld(s == 0 ? wq : s == 1 ? wk : wv, (long long)(n - s * C) * K + k);
    }
    __device__ void store(int m, int n, float acc) const {
        const int s = block(n), c = n - s * C;
        const T* bias = s == 0 ? bq : s == 1 ? bk : bv;
        if (bias != nullptr) acc += ld(bias, c);
        st(out, ((long long)s * M + m) * C + c, acc);
    }
};

// grid (ceil(M / 64), ceil(3C / 64)), block 128; biases all null or none
extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
linear_qkv_f32(const float* x, const float* wq, const float* wk, const float* wv, const float* bq, const float* bk,
               const float* bv, float* out, int M, int C, int K) {
    LinearQkvProblem<float> pr{x, wq, wk, wv, bq, bk, bv, out, M, C, K};
    gemm_tile_f32(pr, M, 3 * C, K);
}

extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
linear_qkv_f16(const f16* x, const f16* wq, const f16* wk, const f16* wv, const f16* bq, const f16* bk,
               const f16* bv, f16* out, int M, int C, int K) {
    LinearQkvProblem<f16> pr{x, wq, wk, wv, bq, bk, bv, out, M, C, K};
    gemm_tile_f16(pr, M, 3 * C, K);
}
