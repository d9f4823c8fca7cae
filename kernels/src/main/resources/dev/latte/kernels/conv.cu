// Convolution as an implicit GEMM, with GroupNorm(+SiLU) applied to x on load and bias and
// residual added in the epilogue: Backend.conv2dFused (and plain conv2d with the extras null).
//
//   GEMM M = N·P·Q output pixels, GEMM N = K output channels, GEMM K = C·R·S taps.
//   A(m, k) = norm(x)[n, c, p·sh − pt + r, q·sw − pl + s] (zero outside x: the padding is applied
//             to the normalised tensor, as PyTorch pads conv's input; x itself may be Hs × Ws,
//             read nearest-resized to H × W), B(kout, k) = w[kout][k]
//             (w [K,C,R,S] is already row-major in k = (c·R + r)·S + s).
// Tiling: 64 pixels × 64 output channels per 128-thread block, 32 taps per shared-memory slice
// (common.cuh). fp16 runs on tensor cores (mma.sync m16n8k16, fp32 accumulate); fp32 on FMA.
// Normalise-on-load reads per-(n, group) {mean, rstd} that groupnorm_stats (norm.cu) wrote in a
// read-only pass over x, so neither the GroupNorm nor the SiLU output ever exists in memory.
#include "common.cuh"

template <class T>
struct ConvProblem {
    const T* x; const T* w; const T* bias; const T* residual; T* out;
    const float* stats;              // [N·groups][2] = {mean, rstd}, or null: no normalisation
    const T* gamma; const T* beta;   // [C] GroupNorm affine
    int N, C, H, W, K, R, S, P, Q, sh, sw, pt, pl, cpg, groups, silu;
    int Hs, Ws;                      // x's own size; H × W is the conv's input after a nearest resize

    struct Row { int n, ih0, iw0; bool valid; };

    __device__ Row row(int m) const {
        Row rw;
        rw.valid = m < N * P * Q;
        int mm = rw.valid ? m : 0;
        int q = mm % Q, pq = mm / Q, p = pq % P;
        rw.n = pq / P;
        rw.ih0 = p * sh - pt;
        rw.iw0 = q * sw - pl;
        return rw;
    }

    __device__ float a(const Row& rw, int k) const {
        int rs = R * S, c = k / rs, t = k - c * rs, r = t / S, s = t - r * S;
        int ih = rw.ih0 + r, iw = rw.iw0 + s;
        if (!rw.valid || ih < 0 || ih >= H || iw < 0 || iw >= W) return 0.f;
        // Upsample2D folded into the load: the resized input is never written out
        int sih = Hs == H ? ih : ih * Hs / H, siw = Ws == W ? iw : iw * Ws / W;
        float v = ld(x, ((long long)(rw.n * C + c) * Hs + sih) * Ws + siw);
        if (stats != nullptr) {
            int sg = rw.n * groups + c / cpg;
            float mean = stats[2 * sg], rstd = stats[2 * sg + 1];
            v = (v - mean) * (ld(gamma, c) * rstd) + ld(beta, c);
            if (silu) v = silu_f(v);
        }
        return v;
    }

    __device__ float b(int n, int k) const { return ld(w, (long long)n * (C * R * S) + k); }

    __device__ void store(int m, int kout, float acc) const {
        int q = m % Q, pq = m / Q, p = pq % P, n = pq / P;
        long long o = ((long long)(n * K + kout) * P + p) * Q + q;
        if (bias != nullptr) acc += ld(bias, kout);
        if (residual != nullptr) acc += ld(residual, o);
        st(out, o, acc);
    }
};

#define CONV_PARAMS(T)                                                                              \
    const T *x, const T *w, const T *bias, const T *residual, T *out, const float *stats,          \
        const T *gamma, const T *beta, int N, int C, int H, int W, int K, int R, int S, int P, int Q, \
        int sh, int sw, int pt, int pl, int groups, int silu, int Hs, int Ws

#define CONV_PROBLEM(T)                                                                              \
    ConvProblem<T> pr{x, w, bias, residual, out, stats, gamma, beta, N, C, H, W, K, R, S, P, Q, sh, sw, \
                      pt, pl, groups > 0 ? C / groups : 1, groups, silu, Hs, Ws}

// grid (ceil(N·P·Q / 64), ceil(K / 64)), block 128
extern "C" __global__ void __launch_bounds__(GEMM_THREADS) conv2d_f32(CONV_PARAMS(float)) {
    CONV_PROBLEM(float);
    gemm_tile_f32(pr, N * P * Q, K, C * R * S);
}

extern "C" __global__ void __launch_bounds__(GEMM_THREADS) conv2d_f16(CONV_PARAMS(f16)) {
    CONV_PROBLEM(f16);
    gemm_tile_f16(pr, N * P * Q, K, C * R * S);
}
