// INT8 GEMM: C[m][n] = Σ_k A[m][k]·B(k, n), s8 inputs, exact s32 accumulation.
// A [M, K] row-major. B is [K, N] row-major (the "_kn" kernels: the layout of a plain matrix
// product, as in the golden int8_gemm test) or [N, K] row-major (the "_nk" kernels: nn.Linear
// weights, one row per output channel). Outputs: s32 C, or the dequantising epilogue
// C_f[m][n] = C[m][n]·sa[m]·sb[n] (+ bias[n]) in fp32 or fp16 (per-row activation scales sa,
// per-output-channel weight scales sb; a null scale or bias pointer means 1 or 0).
//
// Tensor-core kernel (sm_80+): 64×64 output tile per 128-thread block, 64-wide k slices staged
// through shared memory with rows padded to 80 bytes (fragment loads hit 32 distinct banks);
// 4 warps in 2×2, each a 32×32 sub-tile = 2 × 4 mma.sync.m16n8k32 tiles, 32 s32 accumulators.
// dp4a kernel: the fallback for devices or builds without s8 mma, one output per thread, four
// products per dp4a instruction.
#include "common.cuh"

#define I8_BM 64
#define I8_BN 64
#define I8_BK 64
#define I8_PITCH (I8_BK + 16)

#if __CUDA_ARCH__ >= 800
// m16n8k32 s8 fragments (PTX ISA), g = lane/4, t = lane%4, four s8 per register (lowest k low):
//   a0 (row g, k 4t..4t+3) a1 (row g+8, same k) a2 (row g, k 4t+16..) a3 (row g+8, k 4t+16..)
//   b0 (k 4t..4t+3, col g) b1 (k 4t+16..4t+19, col g); d as for m16n8k16.
__device__ __forceinline__ void mma_s8_16832(int d[4], const unsigned a[4], const unsigned b[2]) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

#endif

template <bool B_KN>
__device__ __forceinline__ signed char b_at(const signed char* b, int n, int k, int N, int K) {
    return B_KN ? b[(long long)k * N + n] : b[(long long)n * K + k];
}

// Epilogues: where C[m][n] goes.
struct StoreS32 {
    int* c;
    __device__ void operator()(int m, int n, int N, int acc) const { c[(long long)m * N + n] = acc; }
};
template <class T>
struct StoreScaled {
    T* c; const float* sa; const float* sb; const float* bias;
    __device__ void operator()(int m, int n, int N, int acc) const {
        float v = (float)acc * (sa != nullptr ? sa[m] : 1.f) * (sb != nullptr ? sb[n] : 1.f);
        if (bias != nullptr) v += bias[n];
        st(c, (long long)m * N + n, v);
    }
};

#if __CUDA_ARCH__ >= 800
// grid (ceil(M/64), ceil(N/64)), block 128
template <bool B_KN, class Store>
__device__ void int8_gemm_mma(const signed char* a, const signed char* b, int M, int N, int K, const Store& store) {
    __shared__ __align__(16) signed char As[I8_BM][I8_PITCH];
    __shared__ __align__(16) signed char Bs[I8_BN][I8_PITCH];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    const int m0 = blockIdx.x * I8_BM, n0 = blockIdx.y * I8_BN;
    const int lrow = tid >> 1, lk = (tid & 1) * 32;  // each thread stages 32 bytes of one A and one B row

    int acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0;

    const int am = m0 + lrow, bn = n0 + lrow;
    for (int k0 = 0; k0 < K; k0 += I8_BK) {
#pragma unroll 8
        for (int i = 0; i < 32; i++) {
            int k = k0 + lk + i;
            As[lrow][lk + i] = (am < M && k < K) ? a[(long long)am * K + k] : (signed char)0;
            Bs[lrow][lk + i] = (bn < N && k < K) ? b_at<B_KN>(b, bn, k, N, K) : (signed char)0;
        }
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < I8_BK; ks += 32) {
            unsigned af[2][4], bf[4][2];
#pragma unroll
            for (int i = 0; i < 2; i++) {
                int r = wm + i * 16 + g;
                af[i][0] = *(const unsigned*)&As[r][ks + 4 * t];
                af[i][1] = *(const unsigned*)&As[r + 8][ks + 4 * t];
                af[i][2] = *(const unsigned*)&As[r][ks + 4 * t + 16];
                af[i][3] = *(const unsigned*)&As[r + 8][ks + 4 * t + 16];
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int c = wn + j * 8 + g;
                bf[j][0] = *(const unsigned*)&Bs[c][ks + 4 * t];
                bf[j][1] = *(const unsigned*)&Bs[c][ks + 4 * t + 16];
            }
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) mma_s8_16832(acc[i][j], af[i], bf[j]);
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
                if (m < M && n < N) store(m, n, N, acc[i][j][e]);
            }
}

#endif

// grid (ceil(N/16), ceil(M/16)), block (16, 16): thread (x, y) computes C[m0 + y][n0 + x]
template <bool B_KN, class Store>
__device__ void int8_gemm_dp4a(const signed char* a, const signed char* b, int M, int N, int K, const Store& store) {
    int n = blockIdx.x * 16 + threadIdx.x, m = blockIdx.y * 16 + threadIdx.y;
    if (m >= M || n >= N) return;
    int acc = 0;
    for (int k = 0; k < K; k += 4) {
        unsigned pa = 0, pb = 0;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            if (k + e < K) {
                pa |= (unsigned)(unsigned char)a[(long long)m * K + k + e] << (8 * e);
                pb |= (unsigned)(unsigned char)b_at<B_KN>(b, n, k + e, N, K) << (8 * e);
            }
        }
        asm("dp4a.s32.s32 %0, %1, %2, %0;" : "+r"(acc) : "r"(pa), "r"(pb));
    }
    store(m, n, N, acc);
}

#define I8_S32_ENTRY(ALGO, LAYOUT, BKN)                                                                      \
    extern "C" __global__ void int8_gemm_##ALGO##_##LAYOUT(const signed char* a, const signed char* b, int* c, \
                                                           int M, int N, int K) {                            \
        int8_gemm_##ALGO<BKN>(a, b, M, N, K, StoreS32{c});                                                   \
    }
#define I8_SCALED_ENTRY(ALGO, SUFFIX, T)                                                                     \
    extern "C" __global__ void int8_gemm_##ALGO##_nk_scaled_##SUFFIX(                                        \
        const signed char* a, const signed char* b, T* c, const float* sa, const float* sb, const float* bias, \
        int M, int N, int K) {                                                                               \
        int8_gemm_##ALGO<false>(a, b, M, N, K, StoreScaled<T>{c, sa, sb, bias});                             \
    }

#if __CUDA_ARCH__ >= 800  // s8 mma: sm_80+; dp4a (sm_61+) is the path before that
I8_S32_ENTRY(mma, kn, true)
I8_S32_ENTRY(mma, nk, false)
I8_SCALED_ENTRY(mma, f32, float)
I8_SCALED_ENTRY(mma, f16, f16)
#endif
I8_S32_ENTRY(dp4a, kn, true)
I8_S32_ENTRY(dp4a, nk, false)
I8_SCALED_ENTRY(dp4a, f32, float)
I8_SCALED_ENTRY(dp4a, f16, f16)
