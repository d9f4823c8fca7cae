// Linear v2: the pipelined tensor-core GEMM, fp16 storage, sm_80+. out[m][n] = Σ_k x[m][k]·w[n][k]
// (+ epilogue), x [M, K] and w [N, K] row-major (nn.Linear's layout: both operands K-contiguous,
// so both load with plain ldmatrix), K a multiple of 8, every pointer 16-byte aligned.
//
// 128×128 block tile, 8 warps in 2 (M) × 4 (N), each warp 64×32 = 4 × 4 mma.m16n8k16 tiles (64 fp32
// accumulators per thread). K advances 32 at a time through a 3-stage ring of shared tiles filled by
// cp.async (16-byte copies, zero fill past M, N and K): while stage s computes, stages s+1 and s+2
// are in flight. Shared rows are 32 + 8 halves (80 bytes), so the 8 rows of each ldmatrix start in
// 8 distinct 16-byte bank groups (80·r mod 128 covers all eight); padding rather than an XOR
// swizzle, at 25% more shared memory (60 KiB per block: the launcher raises the opt-in limit).
//
// Epilogues, fused so the GEMM's output is written once: bias; bias + residual (res may be out:
// each element is read and written by one thread); SiLU(acc + bias); GEGLU, where w holds [2F, K]
// (the value rows, then the gate rows, as diffusers' GEGLU.proj) and out [M, F] =
// (a + b_a)·gelu(g + b_g): the block's B tile interleaves 8 value rows and the 8 matching gate
// rows per n8 pair, so the thread holding a value accumulator holds its gate too. QKV: a
// self-attention's three projections in one GEMM over the three weight tensors, out [3, M, C].
#include "common.cuh"
#include "pipeline.cuh"

#if __CUDA_ARCH__ >= 800

#define G2_BM 128
#define G2_BN 128
#define G2_BK 32
#define G2_STAGES 3
#define G2_THREADS 256
#define G2_PITCH (G2_BK + 8)

enum { EPI_BIAS = 0, EPI_RESIDUAL = 1, EPI_SILU = 2, EPI_GEGLU = 3, EPI_QKV = 4 };

// QKV: N = 3C; w, w1, w2 are the q, k, v weights [C, K] and bias, b1, b2 their biases (all or none);
// out [3, M, C]. Other epilogues ignore w1, w2, b1, b2.
template <int EPI>
__device__ __forceinline__ void gemm_v2(const f16* x, const f16* w, const f16* bias, const f16* res, f16* out, int M,
                                        int N, int K, const f16* w1 = nullptr, const f16* w2 = nullptr,
                                        const f16* b1 = nullptr, const f16* b2 = nullptr) {
    extern __shared__ uint4 g2_smem[];
    f16* const As = (f16*)g2_smem;                       // [STAGES][BM][PITCH]
    f16* const Bs = As + G2_STAGES * G2_BM * G2_PITCH;   // [STAGES][BN][PITCH]
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    const int m0 = blockIdx.x * G2_BM;
    // GEGLU: N is F (outputs); the block covers 64 outputs = 128 weight rows. Else 128 outputs.
    const int n0 = blockIdx.y * (EPI == EPI_GEGLU ? G2_BN / 2 : G2_BN);

    // This thread's two 16-byte chunks of each tile: row tid/4 and tid/4 + 64, chunk tid%4.
    const int lr = tid >> 2, lc = (tid & 3) * 8;
    const f16* aSrc[2];
    const f16* bSrc[2];
    bool aOk[2], bOk[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int r = lr + h * 64;
        aOk[h] = m0 + r < M;
        aSrc[h] = x + (long long)(aOk[h] ? m0 + r : 0) * K + lc;
        int wrow;
        const f16* wb = w;
        if (EPI == EPI_QKV) {  // the weight of the block (q, k or v) this row's output column is in
            const int C = N / 3;
            wrow = n0 + r;
            bOk[h] = wrow < N;
            const int s = wrow >= C ? (wrow >= 2 * C ? 2 : 1) : 0;
            wb = s == 0 ? w : s == 1 ? w1 : w2;
            wrow -= s * C;
        } else if (EPI == EPI_GEGLU) {
            const int q = r >> 3, oc = n0 + (q >> 1) * 8 + (r & 7);  // n8 group q: value rows if even, gate if odd
            bOk[h] = oc < N;
            wrow = (q & 1) ? N + oc : oc;
        } else {
            wrow = n0 + r;
            bOk[h] = wrow < N;
        }
        bSrc[h] = wb + (long long)(bOk[h] ? wrow : 0) * K + lc;
    }
    const int kTiles = (K + G2_BK - 1) / G2_BK;
    auto load = [&](int stage, int kt) {
        const int k = kt * G2_BK;
        f16* a = As + stage * G2_BM * G2_PITCH;
        f16* b = Bs + stage * G2_BN * G2_PITCH;
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int r = lr + h * 64;
            const bool kOk = k + lc < K;  // K % 8 == 0: a chunk is wholly in or out
            const bool ai = aOk[h] && kOk, bi = bOk[h] && kOk;  // a zero fill reads nothing: any valid address
            cp_async16(smem_addr(a + r * G2_PITCH + lc), ai ? aSrc[h] + k : x, ai);
            cp_async16(smem_addr(b + r * G2_PITCH + lc), bi ? bSrc[h] + k : w, bi);
        }
    };

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.f;

#pragma unroll
    for (int s = 0; s < G2_STAGES - 1; s++) {
        if (s < kTiles) load(s, s);
        cp_async_commit();
    }
    // ldmatrix row addresses within a stage: A as for Q in attention_v2, B (w rows) as for K there
    const int aRow = wm + (lane & 15), aCol = (lane >> 4) * 8;
    const int bRow = wn + (lane & 7) + ((lane >> 4) << 3), bCol = ((lane >> 3) & 1) * 8;
    for (int kt = 0; kt < kTiles; kt++) {
        cp_async_wait<G2_STAGES - 2>();  // tile kt has landed (for this thread) ...
        __syncthreads();                 // ... for every thread; and stage (kt-1)%S is free
        if (kt + G2_STAGES - 1 < kTiles) load((kt + G2_STAGES - 1) % G2_STAGES, kt + G2_STAGES - 1);
        cp_async_commit();
        const int stage = kt % G2_STAGES;
        const f16* a = As + stage * G2_BM * G2_PITCH;
        const f16* b = Bs + stage * G2_BN * G2_PITCH;
#pragma unroll
        for (int ks = 0; ks < G2_BK; ks += 16) {
            unsigned af[4][4], bf[4][2];
#pragma unroll
            for (int i = 0; i < 4; i++) ldsm_x4(af[i], smem_addr(a + (aRow + i * 16) * G2_PITCH + ks + aCol));
#pragma unroll
            for (int j = 0; j < 4; j += 2) {
                unsigned r4[4];
                ldsm_x4(r4, smem_addr(b + (bRow + j * 8) * G2_PITCH + ks + bCol));
                bf[j][0] = r4[0];
                bf[j][1] = r4[1];
                bf[j + 1][0] = r4[2];
                bf[j + 1][1] = r4[3];
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) mma_f16_16816(acc[i][j], af[i], bf[j]);
        }
    }
    cp_async_wait<0>();

    const int outN = N;  // GEGLU: N = F outputs per row
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int m = m0 + wm + i * 16 + g + h * 8;
            if (m >= M) continue;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                if (EPI == EPI_GEGLU && (j & 1)) continue;  // odd n8 tiles are the gates of the even ones
                const int n = EPI == EPI_GEGLU ? n0 + wn / 2 + (j >> 1) * 8 + 2 * t : n0 + wn + j * 8 + 2 * t;
                // QKV: block s of the column pair (C is even, so n and n + 1 share it), column within it
                const int C = EPI == EPI_QKV ? outN / 3 : outN;
                const int s = EPI == EPI_QKV ? (n >= C ? (n >= 2 * C ? 2 : 1) : 0) : 0;
                const f16* bsel = EPI == EPI_QKV ? (s == 0 ? bias : s == 1 ? b1 : b2) : bias;
                float v[2];
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int c = n + e;
                    float r = acc[i][j][h * 2 + e];
                    if (c < outN) {
                        if (bsel != nullptr) r += ld(bsel, c - s * C);
                        if (EPI == EPI_RESIDUAL) r += ld(res, (long long)m * outN + c);
                        if (EPI == EPI_SILU) r = silu_f(r);
                        if (EPI == EPI_GEGLU) {
                            float gate = acc[i][j + 1][h * 2 + e];
                            if (bias != nullptr) gate += ld(bias, outN + c);
                            r *= gelu_f(gate);
                        }
                    }
                    v[e] = r;
                }
                f16* o = EPI == EPI_QKV ? out + ((long long)s * M + m) * C + (n - s * C) : out + (long long)m * outN + n;
                if (n + 1 < outN && (C & 1) == 0) {
                    *(unsigned*)o = pack_f16x2(v[0], v[1]);
                } else {
                    if (n < outN) o[0] = from_f32<f16>(v[0]);
                    if (n + 1 < outN) o[1] = from_f32<f16>(v[1]);
                }
            }
        }
}

// grid (ceil(M / 128), ceil(N / 128)) (GEGLU: ceil(F / 64)), block 256, dynamic shared
// 3·(128 + 128)·40·2 = 61440 bytes. res only for _residual (may equal out); bias may be null.
#define LINEAR_V2_ENTRY(NAME, EPI)                                                                        \
    extern "C" __global__ void __launch_bounds__(G2_THREADS)                                              \
    NAME(const f16* x, const f16* w, const f16* bias, const f16* res, f16* out, int M, int N, int K) {    \
        gemm_v2<EPI>(x, w, bias, res, out, M, N, K);                                                      \
    }

LINEAR_V2_ENTRY(linear_v2_f16, EPI_BIAS)
LINEAR_V2_ENTRY(linear_v2_residual_f16, EPI_RESIDUAL)
LINEAR_V2_ENTRY(linear_v2_silu_f16, EPI_SILU)
LINEAR_V2_ENTRY(linear_v2_geglu_f16, EPI_GEGLU)

// grid (ceil(M / 128), ceil(3C / 128)), block 256, shared as above; C a multiple of 8; biases all or none
extern "C" __global__ void __launch_bounds__(G2_THREADS)
linear_v2_qkv_f16(const f16* x, const f16* wq, const f16* wk, const f16* wv, const f16* bq, const f16* bk,
                  const f16* bv, f16* out, int M, int C, int K) {
    gemm_v2<EPI_QKV>(x, wq, bq, nullptr, out, M, 3 * C, K, wk, wv, bk, bv);
}

#endif
