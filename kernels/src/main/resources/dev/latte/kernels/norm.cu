// GroupNorm statistics and apply, LayerNorm. Statistics are accumulated in double and two-pass
// (mean, then Σ(x − mean)²), as the CPU reference does, so the fp32 path loses nothing to
// cancellation; the normalised values are computed in fp32.
#include "common.cuh"

#define NORM_THREADS 256

// Block-wide sum of one double per thread; every thread gets the total. Uses 32 doubles of shared.
__device__ __forceinline__ double block_sum(double v, double* shared) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    __syncthreads();  // shared may still be read from a previous call
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    double total = 0;
    for (int i = 0; i < warps; i++) total += shared[i];
    return total;
}

// stats[n·groups + g] = {mean, 1/sqrt(var + eps)} over the group's cpg·hw contiguous values.
// grid (N·groups), block NORM_THREADS: one block per group; read-only over x.
template <class T>
__device__ void groupnorm_stats(const T* x, float* stats, int len, float eps) {
    __shared__ double red[32];
    const T* base = x + (long long)blockIdx.x * len;
    double s = 0;
    for (int i = threadIdx.x; i < len; i += blockDim.x) s += ld(base, i);
    double mean = block_sum(s, red) / len;
    double q = 0;
    for (int i = threadIdx.x; i < len; i += blockDim.x) {
        double d = ld(base, i) - mean;
        q += d * d;
    }
    double var = block_sum(q, red) / len;
    if (threadIdx.x == 0) {
        stats[2 * blockIdx.x] = (float)mean;
        stats[2 * blockIdx.x + 1] = (float)(1.0 / sqrt(var + (double)eps));
    }
}

extern "C" __global__ void groupnorm_stats_f32(const float* x, float* stats, int len, float eps) {
    groupnorm_stats(x, stats, len, eps);
}
extern "C" __global__ void groupnorm_stats_f16(const f16* x, float* stats, int len, float eps) {
    groupnorm_stats(x, stats, len, eps);
}

// Large groups (SD's 64² levels: 40,960 values a group, 64 groups at batch 2) leave most of a GPU
// idle with one block a group, so they are split: block (group, part) reduces its slice two-pass
// in double to {mean, M2 = Σ(x − mean)²}, and groupnorm_merge combines a group's parts with
// Chan's pairwise update (Welford's, for whole partitions), also in double.
// grid (N·groups, parts), block NORM_THREADS; part p covers [p·len/parts, (p+1)·len/parts), parts ≤ len.
template <class T>
__device__ void groupnorm_partials(const T* x, double2* partial, int len, int parts) {
    __shared__ double red[32];
    const int p = blockIdx.y;
    const int lo = (int)((long long)len * p / parts), hi = (int)((long long)len * (p + 1) / parts), n = hi - lo;
    const T* base = x + (long long)blockIdx.x * len + lo;
    double s = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += ld(base, i);
    double mean = block_sum(s, red) / n;
    double q = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        double d = ld(base, i) - mean;
        q += d * d;
    }
    double m2 = block_sum(q, red);
    if (threadIdx.x == 0) partial[(long long)blockIdx.x * parts + p] = make_double2(mean, m2);
}

extern "C" __global__ void groupnorm_partials_f32(const float* x, double2* partial, int len, int parts) {
    groupnorm_partials(x, partial, len, parts);
}
extern "C" __global__ void groupnorm_partials_f16(const f16* x, double2* partial, int len, int parts) {
    groupnorm_partials(x, partial, len, parts);
}

// stats[g] = {mean, 1/sqrt(var + eps)} from the group's parts; a thread per group, grid ceil(groups / 256).
extern "C" __global__ void groupnorm_merge(const double2* partial, float* stats, int groups, int len, int parts,
                                           float eps) {
    const int g = blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= groups) return;
    const float2 r = groupnorm_merge_parts(partial, g, len, parts, eps);
    stats[2 * g] = r.x;
    stats[2 * g + 1] = r.y;
}

// out = (x − mean)·(γ·rstd) + β, then SiLU if asked; x, out [N, C, hw]; out may be x.
// grid-stride over all N·C·hw elements.
template <class T>
__device__ void groupnorm_apply(const T* x, const float* stats, const T* gamma, const T* beta, T* out,
                                int C, int hw, int cpg, int groups, int silu, long long total) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        int c = (int)((i / hw) % C), n = (int)(i / ((long long)hw * C));
        int sg = n * groups + c / cpg;
        float v = (ld(x, i) - stats[2 * sg]) * (ld(gamma, c) * stats[2 * sg + 1]) + ld(beta, c);
        st(out, i, silu ? silu_f(v) : v);
    }
}

extern "C" __global__ void groupnorm_apply_f32(const float* x, const float* stats, const float* gamma,
                                               const float* beta, float* out, int C, int hw, int cpg,
                                               int groups, int silu, long long total) {
    groupnorm_apply(x, stats, gamma, beta, out, C, hw, cpg, groups, silu, total);
}
extern "C" __global__ void groupnorm_apply_f16(const f16* x, const float* stats, const f16* gamma,
                                               const f16* beta, f16* out, int C, int hw, int cpg,
                                               int groups, int silu, long long total) {
    groupnorm_apply(x, stats, gamma, beta, out, C, hw, cpg, groups, silu, total);
}

// LayerNorm over the last dim d of [rows, d]; one block per row (d ≤ a few thousand in SD).
// grid (rows), block NORM_THREADS; out may be x (each element is read before it is written by the
// same thread, and the statistics are complete before any write).
template <class T>
__device__ void layernorm(const T* x, const T* gamma, const T* beta, T* out, int d, float eps) {
    __shared__ double red[32];
    long long base = (long long)blockIdx.x * d;
    double s = 0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) s += ld(x, base + i);
    double mean = block_sum(s, red) / d;
    double q = 0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        double dv = ld(x, base + i) - mean;
        q += dv * dv;
    }
    double var = block_sum(q, red) / d;
    float m = (float)mean, rstd = (float)(1.0 / sqrt(var + (double)eps));
    for (int i = threadIdx.x; i < d; i += blockDim.x)
        st(out, base + i, (ld(x, base + i) - m) * rstd * ld(gamma, i) + ld(beta, i));
}

extern "C" __global__ void layernorm_f32(const float* x, const float* gamma, const float* beta, float* out,
                                         int d, float eps) {
    layernorm(x, gamma, beta, out, d, eps);
}
extern "C" __global__ void layernorm_f16(const f16* x, const f16* gamma, const f16* beta, f16* out, int d,
                                         float eps) {
    layernorm(x, gamma, beta, out, d, eps);
}
