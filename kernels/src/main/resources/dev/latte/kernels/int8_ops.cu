// INT8 weights (DESIGN.md "Precision"): w[n][k] ≈ q[n][k]·scale[n], q s8, one scale per output
// channel. Two ways to run them, as CpuInt8Ops does on the CPU:
//  W8A16: linear_w8 / conv2d_w8 are common.cuh's float GEMM with the weight dequantised in the main
//         loop, as each k slice is staged into shared memory (q·scale in fp32, then fp16 for the
//         tensor cores or kept fp32 for FMA); activations stay in the backend's float type.
//  W8A8:  quantize_rows / quantize_patches give every activation row (a token; for a conv the
//         C·R·S input patch of one output pixel, zero padding included) the scale max|row|/127
//         and the values rint(v/scale) clamped to ±127, exactly as the CPU reference rounds;
//         int8_gemm.cu's s8 GEMM (mma.sync, or dp4a) then sums s8×s8 exactly in s32 and its
//         epilogue applies a_scale·w_scale + bias.
#include "common.cuh"

template <class T>
struct LinearW8Problem {
    const T* x; const signed char* q; const T* scale; const T* bias; T* out;
    int M, N, K;

    struct Row { long long base; bool valid; };

    __device__ Row row(int m) const { return Row{(long long)m * K, m < M}; }
    __device__ float a(const Row& r, int k) const { return r.valid ? ld(x, r.base + k) : 0.f; }
    __device__ float b(int n, int k) const { return (float)q[(long long)n * K + k] * ld(scale, n); }
    __device__ void store(int m, int n, float acc) const {
        if (bias != nullptr) acc += ld(bias, n);
        st(out, (long long)m * N + n, acc);
    }
};

// The implicit GEMM of a plain convolution (no normalise-on-load, no residual): row m is output
// pixel (image, oh, ow), column n filter n, k runs over (c, r, s).
template <class T>
struct ConvW8Problem {
    const T* x; const signed char* q; const T* scale; const T* bias; T* out;
    int C, H, W, K, R, S, P, Q, sh, sw, pt, pl, M;

    struct Row { long long xbase; int ih0, iw0; bool valid; };

    __device__ Row row(int m) const {
        if (m >= M) return Row{0, 0, 0, false};
        int img = m / (P * Q), px = m % (P * Q);
        return Row{(long long)img * C * H * W, (px / Q) * sh - pt, (px % Q) * sw - pl, true};
    }
    __device__ float a(const Row& r, int k) const {
        if (!r.valid) return 0.f;
        int c = k / (R * S), rs = k % (R * S);
        int ih = r.ih0 + rs / S, iw = r.iw0 + rs % S;
        return ih >= 0 && ih < H && iw >= 0 && iw < W ? ld(x, r.xbase + ((long long)c * H + ih) * W + iw) : 0.f;
    }
    __device__ float b(int n, int k) const { return (float)q[(long long)n * C * R * S + k] * ld(scale, n); }
    __device__ void store(int m, int n, float acc) const {
        if (bias != nullptr) acc += ld(bias, n);
        int img = m / (P * Q), px = m % (P * Q);
        st(out, ((long long)img * K + n) * P * Q + px, acc);
    }
};

// grid (ceil(M / 64), ceil(N / 64)), block 128
extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
linear_w8_f32(const float* x, const signed char* q, const float* scale, const float* bias, float* out,
              int M, int N, int K) {
    LinearW8Problem<float> pr{x, q, scale, bias, out, M, N, K};
    gemm_tile_f32(pr, M, N, K);
}

extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
linear_w8_f16(const f16* x, const signed char* q, const f16* scale, const f16* bias, f16* out, int M, int N, int K) {
    LinearW8Problem<f16> pr{x, q, scale, bias, out, M, N, K};
    gemm_tile_f16(pr, M, N, K);
}

// grid (ceil(N·P·Q / 64), ceil(K / 64)), block 128
#define CONV_W8_ENTRY(SUFFIX, T, TILE)                                                                     \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS) conv2d_w8_##SUFFIX(                         \
        const T* x, const signed char* q, const T* scale, const T* bias, T* out, int N, int C, int H, int W, \
        int K, int R, int S, int P, int Q, int sh, int sw, int pt, int pl) {                                 \
        int M = N * P * Q;                                                                                   \
        ConvW8Problem<T> pr{x, q, scale, bias, out, C, H, W, K, R, S, P, Q, sh, sw, pt, pl, M};              \
        TILE(pr, M, K, C * R * S);                                                                           \
    }
CONV_W8_ENTRY(f32, float, gemm_tile_f32)
CONV_W8_ENTRY(f16, f16, gemm_tile_f16)

// ------------------------------------------------------------------ W8A8 activation quantisation

#define QUANT_THREADS 256

// Block-wide max of one float per thread; every thread gets it. Uses 32 floats of shared.
__device__ __forceinline__ float block_max(float v, float* shared) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float m = 0.f;
    for (int i = 0; i < warps; i++) m = fmaxf(m, shared[i]);
    return m;
}

// Row `row` of length len, its elements from src(k): q[row·len + k] and scales[row].
template <class Src>
__device__ void quantize_row(const Src& src, long long row, int len, signed char* q, float* scales) {
    __shared__ float shared[32];
    float m = 0.f;
    for (int k = threadIdx.x; k < len; k += blockDim.x) m = fmaxf(m, fabsf(src(k)));
    m = block_max(m, shared);
    float s = m == 0.f ? 1.f : m / 127.f;
    if (threadIdx.x == 0) scales[row] = s;
    for (int k = threadIdx.x; k < len; k += blockDim.x) {
        float r = fminf(fmaxf(rintf(src(k) / s), -127.f), 127.f);
        q[row * len + k] = (signed char)(int)r;
    }
}

template <class T>
struct TokenRow {
    const T* x; long long base;
    __device__ float operator()(int k) const { return ld(x, base + k); }
};

template <class T>
struct PatchRow {
    const T* x; long long xbase; int H, W, R, S, ih0, iw0;
    __device__ float operator()(int k) const {
        int c = k / (R * S), rs = k % (R * S);
        int ih = ih0 + rs / S, iw = iw0 + rs % S;
        return ih >= 0 && ih < H && iw >= 0 && iw < W ? ld(x, xbase + ((long long)c * H + ih) * W + iw) : 0.f;
    }
};

// x [M, K] → q [M, K] s8, scales [M] fp32. grid (M), block QUANT_THREADS
template <class T>
__device__ void quantize_rows(const T* x, signed char* q, float* scales, int K) {
    long long row = blockIdx.x;
    quantize_row(TokenRow<T>{x, row * K}, row, K, q, scales);
}

// x [N, C, H, W] → the patch matrix q [N·P·Q, C·R·S] s8, scales [N·P·Q]. grid (N·P·Q), block QUANT_THREADS
template <class T>
__device__ void quantize_patches(const T* x, signed char* q, float* scales, int C, int H, int W, int R, int S, int P,
                                 int Q, int sh, int sw, int pt, int pl) {
    long long row = blockIdx.x;
    int img = (int)(row / (P * Q)), px = (int)(row % (P * Q));
    PatchRow<T> src{x, (long long)img * C * H * W, H, W, R, S, (px / Q) * sh - pt, (px % Q) * sw - pl};
    quantize_row(src, row, C * R * S, q, scales);
}

extern "C" __global__ void __launch_bounds__(QUANT_THREADS)
quantize_rows_f32(const float* x, signed char* q, float* scales, int K) { quantize_rows(x, q, scales, K); }
extern "C" __global__ void __launch_bounds__(QUANT_THREADS)
quantize_rows_f16(const f16* x, signed char* q, float* scales, int K) { quantize_rows(x, q, scales, K); }

extern "C" __global__ void __launch_bounds__(QUANT_THREADS)
quantize_patches_f32(const float* x, signed char* q, float* scales, int C, int H, int W, int R, int S, int P, int Q,
                     int sh, int sw, int pt, int pl) {
    quantize_patches(x, q, scales, C, H, W, R, S, P, Q, sh, sw, pt, pl);
}
extern "C" __global__ void __launch_bounds__(QUANT_THREADS)
quantize_patches_f16(const f16* x, signed char* q, float* scales, int C, int H, int W, int R, int S, int P, int Q,
                     int sh, int sw, int pt, int pl) {
    quantize_patches(x, q, scales, C, H, W, R, S, P, Q, sh, sw, pt, pl);
}

// n values of the backend's float type as fp32 (the s8 GEMM's epilogue takes fp32 scales and bias).
extern "C" __global__ void to_f32_f32(const float* x, float* out, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) out[i] = x[i];
}
extern "C" __global__ void to_f32_f16(const f16* x, float* out, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) out[i] = to_f32(x[i]);
}
