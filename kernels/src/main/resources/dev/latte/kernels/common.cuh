// Shared by every Latte kernel file. Self-contained: NVRTC has no standard library headers, and
// fp16 is handled here with PTX conversions so no toolkit header is needed at run time.
// KernelLibrary inlines this file where a .cu says #include "common.cuh"; nvcc finds it beside.
#pragma once

// +∞ without <cmath> (NVRTC has no INFINITY macro).
#define LATTE_INF __int_as_float(0x7f800000)

// fp16 storage is the raw IEEE binary16 bit pattern; arithmetic is always fp32.
typedef unsigned short f16;

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(f16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

template <class T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ f16 from_f32<f16>(float v) {
    f16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    return h;
}

template <class T> __device__ __forceinline__ float ld(const T* p, long long i) { return to_f32(p[i]); }
template <class T> __device__ __forceinline__ void st(T* p, long long i, float v) { p[i] = from_f32<T>(v); }

// Precise (not fast-math) SiLU: the fp32 path is held to 100 dB against the CPU reference.
__device__ __forceinline__ float silu_f(float x) { return x / (1.0f + expf(-x)); }

// {mean, 1/sqrt(var + eps)} of group g of len values from its parts' {mean, M2} (groupnorm_partials in
// norm.cu; part p holds [p·len/parts, (p+1)·len/parts)): Chan's pairwise update, in double.
__device__ __forceinline__ float2 groupnorm_merge_parts(const double2* partial, long long g, int len, int parts,
                                                        float eps) {
    double count = 0, mean = 0, m2 = 0;
    for (int p = 0; p < parts; p++) {
        const double2 b = partial[g * parts + p];
        const double nb = (double)((int)((long long)len * (p + 1) / parts) - (int)((long long)len * p / parts));
        const double n = count + nb, d = b.x - mean;
        mean += d * (nb / n);
        m2 += b.y + d * d * (count * nb / n);
        count = n;
    }
    return make_float2((float)mean, (float)(1.0 / sqrt(m2 / len + (double)eps)));
}
// Exact GELU, 0.5·x·(1 + erf(x/√2)) written with erfc so that large negative x keeps its digits.
__device__ __forceinline__ float gelu_f(float x) { return 0.5f * x * erfcf(-x * 0.70710678118654752440f); }

// Two halves packed into one 32-bit register, lower index in the low half (mma fragment order).
__device__ __forceinline__ unsigned pack2(f16 lo, f16 hi) { return (unsigned)lo | ((unsigned)hi << 16); }

#if __CUDA_ARCH__ >= 800
// D = A·B + D for one m16n8k16 tile, fp16 inputs, fp32 accumulate (sm_80+; absent below, so a
// tensor-core kernel built for an older device is a compile error, not an illegal instruction).
// Fragment layout (PTX ISA, "mma.m16n8k16"), g = lane/4, t = lane%4:
//   a0 (row g,   k 2t..2t+1)  a1 (row g+8, k 2t..2t+1)  a2 (row g, k 2t+8..)  a3 (row g+8, k 2t+8..)
//   b0 (k 2t..2t+1, col g)    b1 (k 2t+8..2t+9, col g)
//   d0,d1 (row g, cols 2t, 2t+1)  d2,d3 (row g+8, cols 2t, 2t+1)
__device__ __forceinline__ void mma_f16_16816(float d[4], const unsigned a[4], const unsigned b[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

// ------------------------------------------------------------------ the GEMM engine
// C[m][n] = Σ_k A(m,k)·B(n,k) for one 64×64 block tile, 128 threads. Conv (implicit GEMM) and
// linear differ only in how A and B elements are fetched and how C is stored, so they supply a
// Problem type:
//   struct Row;                               per-thread state for one A row (decoded once per tile)
//   Row row(int m) const;                     m may be ≥ M: the Row must then yield zeros
//   float a(const Row&, int k) const;         k < K guaranteed; applies normalise-on-load etc.
//   float b(int n, int k) const;              n < N, k < K guaranteed
//   void store(int m, int n, float acc) const m < M, n < N guaranteed; adds bias/residual
// Tiles are staged through shared memory one BK slice at a time; thread t fills row t/2 of the A
// and B slices, half a row (16 k values) each, so one A-row decode serves 16 elements.

#define GEMM_BM 64
#define GEMM_BN 64
#define GEMM_BK 32
#define GEMM_THREADS 128

// fp16 storage on sm_80+: tensor cores (below sm_80: the fp32 engine, after it). 4 warps in a 2×2 grid, each warp owns a 32×32 sub-tile =
// 2 (m16) × 4 (n8) mma tiles, 32 fp32 accumulators per thread. The shared rows are padded to
// 40 halves (80 bytes) so the 8 rows × 4 words a fragment load touches fall in 32 distinct banks.
#if __CUDA_ARCH__ >= 800
template <class Problem>
__device__ __forceinline__ void gemm_tile_f16(const Problem& pr, int M, int N, int K) {
    __shared__ __align__(16) f16 As[GEMM_BM][GEMM_BK + 8];
    __shared__ __align__(16) f16 Bs[GEMM_BN][GEMM_BK + 8];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    const int m0 = blockIdx.x * GEMM_BM, n0 = blockIdx.y * GEMM_BN;
    const int lrow = tid >> 1, lk = (tid & 1) * 16;

    float acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

    const typename Problem::Row arow = pr.row(m0 + lrow);
    const int bn = n0 + lrow;
    for (int k0 = 0; k0 < K; k0 += GEMM_BK) {
#pragma unroll 4
        for (int i = 0; i < 16; i++) {
            int k = k0 + lk + i;
            float av = k < K ? pr.a(arow, k) : 0.f;
            float bv = (k < K && bn < N) ? pr.b(bn, k) : 0.f;
            As[lrow][lk + i] = from_f32<f16>(av);
            Bs[lrow][lk + i] = from_f32<f16>(bv);
        }
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < GEMM_BK; ks += 16) {
            unsigned af[2][4], bf[4][2];
#pragma unroll
            for (int i = 0; i < 2; i++) {
                int r = wm + i * 16 + g;
                af[i][0] = *(const unsigned*)&As[r][ks + 2 * t];
                af[i][1] = *(const unsigned*)&As[r + 8][ks + 2 * t];
                af[i][2] = *(const unsigned*)&As[r][ks + 2 * t + 8];
                af[i][3] = *(const unsigned*)&As[r + 8][ks + 2 * t + 8];
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int c = wn + j * 8 + g;
                bf[j][0] = *(const unsigned*)&Bs[c][ks + 2 * t];
                bf[j][1] = *(const unsigned*)&Bs[c][ks + 2 * t + 8];
            }
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) mma_f16_16816(acc[i][j], af[i], bf[j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int m = m0 + wm + i * 16 + g + (e >> 1) * 8;
                int n = n0 + wn + j * 8 + 2 * t + (e & 1);
                if (m < M && n < N) pr.store(m, n, acc[i][j][e]);
            }
}
#endif

// fp32 storage: plain FMA (no TF32: the fp32 path is the 100 dB path). Thread t computes rows
// (t/16)·8 + i (i < 8) and columns t%16 + 16·j (j < 4) of the tile; rows of a warp are broadcast
// reads, columns hit 16 distinct banks thanks to the odd row pitch (BK + 1).
template <class Problem>
__device__ __forceinline__ void gemm_tile_f32(const Problem& pr, int M, int N, int K) {
    __shared__ float As[GEMM_BM][GEMM_BK + 1];
    __shared__ float Bs[GEMM_BN][GEMM_BK + 1];
    const int tid = threadIdx.x;
    const int tm = (tid >> 4) * 8, tn = tid & 15;
    const int m0 = blockIdx.x * GEMM_BM, n0 = blockIdx.y * GEMM_BN;
    const int lrow = tid >> 1, lk = (tid & 1) * 16;

    float acc[8][4];
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.f;

    const typename Problem::Row arow = pr.row(m0 + lrow);
    const int bn = n0 + lrow;
    for (int k0 = 0; k0 < K; k0 += GEMM_BK) {
#pragma unroll 4
        for (int i = 0; i < 16; i++) {
            int k = k0 + lk + i;
            As[lrow][lk + i] = k < K ? pr.a(arow, k) : 0.f;
            Bs[lrow][lk + i] = (k < K && bn < N) ? pr.b(bn, k) : 0.f;
        }
        __syncthreads();
#pragma unroll 4
        for (int k = 0; k < GEMM_BK; k++) {
            float bv[4];
#pragma unroll
            for (int j = 0; j < 4; j++) bv[j] = Bs[tn + 16 * j][k];
#pragma unroll
            for (int i = 0; i < 8; i++) {
                float av = As[tm + i][k];
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(av, bv[j], acc[i][j]);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int m = m0 + tm + i, n = n0 + tn + 16 * j;
            if (m < M && n < N) pr.store(m, n, acc[i][j]);
        }
}

#if __CUDA_ARCH__ < 800
// fp16 storage before sm_80 (no m16n8k16): the fp32 engine, which loads through the same Problem,
// so fp16 runs everywhere fp32 does, on CUDA cores.
template <class Problem>
__device__ __forceinline__ void gemm_tile_f16(const Problem& pr, int M, int N, int K) {
    gemm_tile_f32(pr, M, N, K);
}
#endif
