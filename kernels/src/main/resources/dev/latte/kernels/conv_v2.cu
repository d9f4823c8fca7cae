// Conv v2: implicit-GEMM convolution on the v2 engine's tiles, fp16 storage, sm_80+. Same contract
// as v1 (conv.cu): x [N, C, H, W], w [K, C, R, S], out [N, K, P, Q]; GroupNorm(+SiLU) applied to x
// on load, bias and residual (which may be out) in the epilogue. C·R·S must be a multiple of 8 and
// R·S ≤ 64; no nearest-resize on load (Upsample2D-folded convs stay on v1).
//
// 128 output pixels × 128 output channels per 256-thread block, 8 warps of 64×32 (4 × 4
// mma.m16n8k16), K = C·R·S advanced 32 taps at a time through two shared stages:
//   B (weights, K-contiguous rows): cp.async 16-byte copies with zero fill, as gemm_v2.
//   A (im2col of x): each thread owns one output pixel (its n, ih0, iw0 decoded once, with the only
//     divisions of the main loop's setup) and 16 consecutive taps per slice; the tap index advances
//     incrementally (one division per slice per thread, then rs + 1 with a wrap), r and s come from
//     a per-block table of R·S entries, so the main loop divides nothing. A warp's 32 lanes are 32
//     adjacent pixels of one tap: coalesced loads along a row of x. Loaded into registers while the
//     tensor cores work on the other stage, then stored as two 16-byte shared stores.
//   GroupNorm: one FMA per element from per-(n, c) {scale, shift} (groupnorm_scale_shift below,
//     from groupnorm_stats' {mean, rstd}), then SiLU with the fast exponential (fp16 storage).
// Shared rows 40 halves: ldmatrix and the 16-byte stores are conflict-free (80-byte pitch).
#include "common.cuh"
#include "pipeline.cuh"

#if __CUDA_ARCH__ >= 800

#define C2_BM 128
#define C2_BN 128
#define C2_BK 32
#define C2_THREADS 256
#define C2_PITCH (C2_BK + 8)
#define C2_MAX_RS 64

// {scale, shift}[n·C + c] = {γ_c·rstd, β_c − mean·γ_c·rstd} of (n, group of c); grid ceil(N·C / 256), block 256.
extern "C" __global__ void groupnorm_scale_shift_f16(const float* stats, const f16* gamma, const f16* beta, float2* ss,
                                                     int N, int C, int groups) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N * C) return;
    const int n = i / C, c = i - n * C, sg = n * groups + c / (C / groups);
    const float mean = stats[2 * sg], rstd = stats[2 * sg + 1], scale = to_f32(gamma[c]) * rstd;
    ss[i] = make_float2(scale, to_f32(beta[c]) - mean * scale);
}

// As groupnorm_scale_shift_f16, from the split statistics' parts (groupnorm_partials), merging each
// (n, group) as it goes: no separate merge launch. len values a group in parts blocks.
extern "C" __global__ void groupnorm_scale_shift_parts_f16(const double2* partial, const f16* gamma, const f16* beta,
                                                           float2* ss, int N, int C, int groups, int len, int parts,
                                                           float eps) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N * C) return;
    const int n = i / C, c = i - n * C, sg = n * groups + c / (C / groups);
    const float2 st = groupnorm_merge_parts(partial, sg, len, parts, eps);
    const float scale = to_f32(gamma[c]) * st.y;
    ss[i] = make_float2(scale, to_f32(beta[c]) - st.x * scale);
}

// exp2f (ex2.approx) rather than __expf: the same instruction on a GPU, and one the emulator links.
__device__ __forceinline__ float silu_fast(float v) { return __fdividef(v, 1.f + exp2f(-1.4426950408889634f * v)); }

template <bool NORM>
__device__ __forceinline__ void conv_v2(const f16* x, const f16* w, const f16* bias, const f16* res, f16* out,
                                        const float2* ss, int N, int C, int H, int W, int K, int R, int S, int P, int Q,
                                        int sh, int sw, int pt, int pl, int silu) {
    extern __shared__ uint4 c2_smem[];
    f16* const As = (f16*)c2_smem;                   // [2][BM][PITCH]
    f16* const Bs = As + 2 * C2_BM * C2_PITCH;       // [2][BN][PITCH]
    int* const rsTab = (int*)(Bs + 2 * C2_BN * C2_PITCH);  // [R·S]: r << 16 | s
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    const int PQ = P * Q, M = N * PQ, RS = R * S, CRS = C * RS, HW = H * W;
    const int m0 = blockIdx.x * C2_BM, n0 = blockIdx.y * C2_BN;
    for (int i = tid; i < RS; i += C2_THREADS) {
        const int r = i / S;
        rsTab[i] = (r << 16) | (i - r * S);
    }

    // A: this thread's output pixel and tap half
    const int am = m0 + (tid & (C2_BM - 1)), akl = (tid >> 7) * 16;
    const bool aValid = am < M;
    int an = 0, ih0 = 0, iw0 = 0;
    if (aValid) {
        const int pq = am % PQ, p = pq / Q, q = pq - p * Q;
        an = am / PQ;
        ih0 = p * sh - pt;
        iw0 = q * sw - pl;
    }
    const f16* xn = x + (long long)an * C * HW;
    const float2* ssn = NORM ? ss + (long long)an * C : nullptr;
    f16* const aDst = As + (tid & (C2_BM - 1)) * C2_PITCH + akl;

    // B: two 16-byte chunks per thread, rows tid/4 and tid/4 + 64
    const int lr = tid >> 2, lc = (tid & 3) * 8;
    const f16* bSrc[2];
    bool bOk[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        bOk[h] = n0 + lr + h * 64 < K;
        bSrc[h] = w + (long long)(bOk[h] ? n0 + lr + h * 64 : 0) * CRS + lc;
    }
    const int kTiles = (CRS + C2_BK - 1) / C2_BK;

    unsigned areg[8];
    auto loadA = [&](int kt) {
        const int k = kt * C2_BK + akl;
        int c = k / RS, rs = k - c * RS;
#pragma unroll
        for (int i = 0; i < 16; i += 2) {
            float v[2];
#pragma unroll
            for (int e = 0; e < 2; e++) {
                float val = 0.f;
                if (aValid && k + i + e < CRS) {
                    const int rsv = rsTab[rs], ih = ih0 + (rsv >> 16), iw = iw0 + (rsv & 0xffff);
                    if ((unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W) {
                        val = to_f32(xn[(long long)c * HW + ih * W + iw]);
                        if (NORM) {
                            const float2 f = ssn[c];
                            val = fmaf(val, f.x, f.y);
                            if (silu) val = silu_fast(val);
                        }
                    }
                }
                v[e] = val;
                if (++rs == RS) {
                    rs = 0;
                    c++;
                }
            }
            areg[i / 2] = pack_f16x2(v[0], v[1]);
        }
    };
    auto storeA = [&](int stage) {
        uint4* d = (uint4*)(aDst + stage * C2_BM * C2_PITCH);
        d[0] = make_uint4(areg[0], areg[1], areg[2], areg[3]);
        d[1] = make_uint4(areg[4], areg[5], areg[6], areg[7]);
    };
    auto loadB = [&](int stage, int kt) {
        const int k = kt * C2_BK;
        f16* b = Bs + stage * C2_BN * C2_PITCH;
        const bool kOk = k + lc < CRS;  // CRS % 8 == 0: a chunk is wholly in or out
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const bool ok = bOk[h] && kOk;
            cp_async16(smem_addr(b + (lr + h * 64) * C2_PITCH + lc), ok ? bSrc[h] + k : w, ok);
        }
    };

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.f;

    __syncthreads();  // rsTab
    loadB(0, 0);
    cp_async_commit();
    loadA(0);
    storeA(0);
    cp_async_wait<0>();
    __syncthreads();

    const int aRow = wm + (lane & 15), aCol = (lane >> 4) * 8;
    const int bRow = wn + (lane & 7) + ((lane >> 4) << 3), bCol = ((lane >> 3) & 1) * 8;
    for (int kt = 0; kt < kTiles; kt++) {
        const int cur = kt & 1;
        const bool more = kt + 1 < kTiles;
        if (more) {
            loadB(cur ^ 1, kt + 1);
            loadA(kt + 1);  // global loads in flight during the mma below
        }
        cp_async_commit();
        const f16* a = As + cur * C2_BM * C2_PITCH;
        const f16* b = Bs + cur * C2_BN * C2_PITCH;
#pragma unroll
        for (int ks = 0; ks < C2_BK; ks += 16) {
            unsigned af[4][4], bf[4][2];
#pragma unroll
            for (int i = 0; i < 4; i++) ldsm_x4(af[i], smem_addr(a + (aRow + i * 16) * C2_PITCH + ks + aCol));
#pragma unroll
            for (int j = 0; j < 4; j += 2) {
                unsigned r4[4];
                ldsm_x4(r4, smem_addr(b + (bRow + j * 8) * C2_PITCH + ks + bCol));
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
        if (more) storeA(cur ^ 1);
        cp_async_wait<0>();
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int m = m0 + wm + i * 16 + g + h * 8;
            if (m >= M) continue;
            const int n = m / PQ, pq = m - n * PQ;
            const long long base = (long long)n * K * PQ + pq;
#pragma unroll
            for (int j = 0; j < 4; j++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int kout = n0 + wn + j * 8 + 2 * t + e;
                    if (kout >= K) continue;
                    const long long o = base + (long long)kout * PQ;
                    float v = acc[i][j][h * 2 + e];
                    if (bias != nullptr) v += ld(bias, kout);
                    if (res != nullptr) v += ld(res, o);
                    st(out, o, v);
                }
        }
}

// grid (ceil(N·P·Q / 128), ceil(K / 128)), block 256, dynamic shared 2·(128 + 128)·40·2 + 4·64 = 41216
// bytes; ss = groupnorm_scale_shift's output for _norm (silu: 0 or 1), unused otherwise.
#define CONV_V2_ENTRY(NAME, NORM)                                                                            \
    extern "C" __global__ void __launch_bounds__(C2_THREADS)                                                 \
    NAME(const f16* x, const f16* w, const f16* bias, const f16* res, f16* out, const float2* ss, int N, int C, \
         int H, int W, int K, int R, int S, int P, int Q, int sh, int sw, int pt, int pl, int silu) {         \
        conv_v2<NORM>(x, w, bias, res, out, ss, N, C, H, W, K, R, S, P, Q, sh, sw, pt, pl, silu);           \
    }

CONV_V2_ENTRY(conv2d_v2_f16, false)
CONV_V2_ENTRY(conv2d_v2_norm_f16, true)

#endif
