// Attention v2: FlashAttention-2 on tensor cores, fp16 storage, sm_80+. Same contract as v1
// (attention.cu): q, out [B, Sq, H·D], k, v [B, Sk, H·D], out = softmax(q·kᵀ·scale)·v per
// (batch, head), plus a causal flag (key j visible to query i iff j ≤ i, the text encoder's mask).
//
// One block = 4 warps = 64 queries of one (batch, head); warp w owns query rows 16w..16w+15 for
// the whole key sweep (FA2's split: no cross-warp reduction). The head dim D (a multiple of 8) is
// padded to DP, a multiple of 16; padding columns arrive as zeros through cp.async's zero fill.
//   Q: loaded once (cp.async → shared → ldmatrix) into DP/16 A fragments kept in registers.
//   K, V: BC keys per tile, two shared stages, tile i+1 copied by cp.async while tile i computes.
//   S = Q·Kᵀ: mma.m16n8k16 (fp32 accumulate), K rows as B fragments by ldmatrix (a K row is a
//   column of Kᵀ, so no transpose). Softmax on the accumulator fragments: each thread holds rows
//   g and g+8 of every n8 tile; row max/sum across the quad with two shuffles; exp2 with the scale
//   folded into log2(e)·scale; the row sum stays per thread until the end.
//   O += P·V: the S accumulators of two n8 tiles are exactly one m16k16 A fragment once rounded to
//   f16x2 (FA2's register re-use, no shared round trip); V as B fragments by ldmatrix.trans.
// Shared rows are DP + 8 halves: the 8 rows an ldmatrix reads then start in 8 distinct 16-byte
// bank groups (pitch/16 is odd for every DP here), so no swizzle is needed. Q lives in the second
// stage's K/V space until its fragments are loaded, so a block needs 4·BC·(DP+8)·2 bytes (≤ 43 KiB).
#include "common.cuh"
#include "pipeline.cuh"

#if __CUDA_ARCH__ >= 800

#define FA_WARPS 4
#define FA_THREADS (FA_WARPS * 32)
#define FA_BR (FA_WARPS * 16)  // queries per block

// rows [r0, r0 + R) ∩ [0, rows) of a [rows, ld] fp16 matrix, columns [0, DP) ∩ [0, D), into s.
template <int R, int DP>
__device__ __forceinline__ void fa_load_tile(f16* s, const f16* g, long long ld, int r0, int rows, int D) {
    constexpr int CH = DP / 8, PITCH = DP + 8;
#pragma unroll 2
    for (int i = threadIdx.x; i < R * CH; i += FA_THREADS) {
        const int r = i / CH, c = (i - r * CH) * 8;
        const bool ok = r0 + r < rows && c < D;
        cp_async16(smem_addr(s + r * PITCH + c), ok ? g + (long long)(r0 + r) * ld + c : g, ok);
    }
}

template <int DP, int BC>
__device__ __forceinline__ void flash_attention_v2(const f16* q, const f16* k, const f16* v, f16* out, int Sq,
                                                   int Sk, int H, int D, float scaleLog2, int causal) {
    constexpr int PITCH = DP + 8, KT = DP / 16, NT = DP / 8, ST = BC / 8;
    static_assert(DP % 16 == 0 && BC % 16 == 0 && FA_BR <= 2 * BC, "tile shape");
    extern __shared__ uint4 fa_smem[];
    f16* const sbase = (f16*)fa_smem;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int h = blockIdx.y, b = blockIdx.z, q0 = blockIdx.x * FA_BR;
    const long long ldx = (long long)H * D;
    const f16* qb = q + (long long)b * Sq * ldx + (long long)h * D;
    const f16* kb = k + (long long)b * Sk * ldx + (long long)h * D;
    const f16* vb = v + (long long)b * Sk * ldx + (long long)h * D;
    // stage s: K at sbase + 2s·BC·PITCH, V right after it
    const int kvEnd = causal ? min(Sk, q0 + FA_BR) : Sk;
    const int tiles = (kvEnd + BC - 1) / BC;

    fa_load_tile<FA_BR, DP>(sbase + 2 * BC * PITCH, qb, ldx, q0, Sq, D);
    fa_load_tile<BC, DP>(sbase, kb, ldx, 0, Sk, D);
    fa_load_tile<BC, DP>(sbase + BC * PITCH, vb, ldx, 0, Sk, D);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    unsigned qf[KT][4];
    {
        const f16* qrow = sbase + 2 * BC * PITCH + (warp * 16 + (lane & 15)) * PITCH + (lane >> 4) * 8;
#pragma unroll
        for (int kt = 0; kt < KT; kt++) ldsm_x4(qf[kt], smem_addr(qrow + kt * 16));
    }
    __syncthreads();  // Q's shared space is stage 1, refilled below

    float o[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float m[2] = {-LATTE_INF, -LATTE_INF}, l[2] = {0.f, 0.f};
    const int row0 = q0 + warp * 16 + g;  // this thread's rows: row0 and row0 + 8

    for (int it = 0; it < tiles; it++) {
        const int cur = it & 1;
        if (it + 1 < tiles) {
            f16* nxt = sbase + 2 * (cur ^ 1) * BC * PITCH;
            fa_load_tile<BC, DP>(nxt, kb, ldx, (it + 1) * BC, Sk, D);
            fa_load_tile<BC, DP>(nxt + BC * PITCH, vb, ldx, (it + 1) * BC, Sk, D);
        }
        cp_async_commit();  // possibly empty: keeps "all but the newest group" meaning tile it
        cp_async_wait<1>();
        __syncthreads();
        const f16* Ks = sbase + 2 * cur * BC * PITCH;
        const f16* Vs = Ks + BC * PITCH;

        float s[ST][4];
#pragma unroll
        for (int j = 0; j < ST; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
        {
            // matrices: keys j·8.. at d, keys j·8.. at d+8, keys (j+1)·8.. at d, keys (j+1)·8.. at d+8
            const f16* krow = Ks + ((lane & 7) + ((lane >> 4) << 3)) * PITCH + ((lane >> 3) & 1) * 8;
#pragma unroll
            for (int kt = 0; kt < KT; kt++)
#pragma unroll
                for (int j = 0; j < ST; j += 2) {
                    unsigned kf[4];
                    ldsm_x4(kf, smem_addr(krow + j * 8 * PITCH + kt * 16));
                    mma_f16_16816(s[j], qf[kt], kf);
                    mma_f16_16816(s[j + 1], qf[kt], kf + 2);
                }
        }

        const int kv0 = it * BC;
        const bool edge = kv0 + BC > Sk || (causal && kv0 + BC - 1 > q0 + warp * 16);
#pragma unroll
        for (int j = 0; j < ST; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float x = s[j][e] * scaleLog2;
                if (edge) {
                    const int key = kv0 + j * 8 + 2 * t + (e & 1), row = row0 + (e >> 1) * 8;
                    if (key >= Sk || (causal && key > row)) x = -LATTE_INF;
                }
                s[j][e] = x;
            }

        float mx[2] = {m[0], m[1]};
#pragma unroll
        for (int j = 0; j < ST; j++) {
            mx[0] = fmaxf(mx[0], fmaxf(s[j][0], s[j][1]));
            mx[1] = fmaxf(mx[1], fmaxf(s[j][2], s[j][3]));
        }
        float alpha[2], base[2], rs[2] = {0.f, 0.f};
#pragma unroll
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            base[r] = mx[r] == -LATTE_INF ? 0.f : mx[r];  // a row with no visible key yet: keep zeros
            alpha[r] = exp2f(m[r] - base[r]);               // 0 on the first tile (m = −∞)
            m[r] = mx[r];
        }
#pragma unroll
        for (int j = 0; j < ST; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                s[j][e] = exp2f(s[j][e] - base[e >> 1]);
                rs[e >> 1] += s[j][e];
            }
#pragma unroll
        for (int r = 0; r < 2; r++) l[r] = l[r] * alpha[r] + rs[r];
#pragma unroll
        for (int n = 0; n < NT; n++) {
            o[n][0] *= alpha[0];
            o[n][1] *= alpha[0];
            o[n][2] *= alpha[1];
            o[n][3] *= alpha[1];
        }

        {
            // matrices (transposed): keys kk·16.. at d, keys kk·16+8.. at d, the same at d+8
            const f16* vrow = Vs + ((lane & 7) + ((lane >> 3) & 1) * 8) * PITCH + (lane >> 4) * 8;
#pragma unroll
            for (int kk = 0; kk < BC / 16; kk++) {
                const unsigned pa[4] = {pack_f16x2(s[2 * kk][0], s[2 * kk][1]), pack_f16x2(s[2 * kk][2], s[2 * kk][3]),
                                        pack_f16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                        pack_f16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
                for (int n = 0; n < NT; n += 2) {
                    unsigned vf[4];
                    ldsm_x4_trans(vf, smem_addr(vrow + kk * 16 * PITCH + n * 8));
                    mma_f16_16816(o[n], pa, vf);
                    mma_f16_16816(o[n + 1], pa, vf + 2);
                }
            }
        }
        __syncthreads();  // this stage is refilled by the next iteration's prefetch
    }

    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        inv[r] = 1.f / l[r];
    }
    f16* ob = out + (long long)b * Sq * ldx + (long long)h * D;
#pragma unroll
    for (int n = 0; n < NT; n++) {
        const int col = n * 8 + 2 * t;  // D % 8 == 0: col < D implies col + 1 < D
        if (col >= D) continue;
        if (row0 < Sq) *(unsigned*)(ob + (long long)row0 * ldx + col) = pack_f16x2(o[n][0] * inv[0], o[n][1] * inv[0]);
        if (row0 + 8 < Sq)
            *(unsigned*)(ob + (long long)(row0 + 8) * ldx + col) = pack_f16x2(o[n][2] * inv[1], o[n][3] * inv[1]);
    }
}

// grid (ceil(Sq / 64), H, B), block 128, dynamic shared 4·BC·(DP+8)·2 bytes; D % 8 == 0, D ≤ DP,
// q/k/v/out 16-byte aligned; scaleLog2 = scale·log2(e).
#define ATTENTION_V2_ENTRY(DP, BC)                                                                             \
    extern "C" __global__ void __launch_bounds__(FA_THREADS)                                                   \
    attention_v2_dp##DP##_f16(const f16* q, const f16* k, const f16* v, f16* out, int Sq, int Sk, int H, int D, \
                              float scaleLog2, int causal) {                                                   \
        flash_attention_v2<DP, BC>(q, k, v, out, Sq, Sk, H, D, scaleLog2, causal);                             \
    }

ATTENTION_V2_ENTRY(32, 64)
ATTENTION_V2_ENTRY(48, 64)   // SD1.5 head dim 40
ATTENTION_V2_ENTRY(64, 64)
ATTENTION_V2_ENTRY(80, 64)   // SD1.5 head dim 80
ATTENTION_V2_ENTRY(96, 32)
ATTENTION_V2_ENTRY(128, 32)
ATTENTION_V2_ENTRY(160, 32)  // SD1.5 head dim 160

#endif
