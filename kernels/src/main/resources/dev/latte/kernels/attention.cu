// Flash-style multi-head attention: out = softmax(q·kᵀ·scale)·v per (batch, head), with an online
// softmax, so the [Sq, Sk] score matrix never exists. Layout as Backend.attention says:
// q, out [B, Sq, H·D], k, v [B, Sk, H·D]; head h owns channels [h·D, (h+1)·D).
//
// Tiling: one block = 4 warps = 32 queries of one (batch, head) (8 per warp); K and V stream
// through shared memory 32 keys at a time, shared by the 32 queries. For each query a warp
// scores the 32 keys of the tile one key per lane (lane j: q·K[j], K rows padded to D+1 floats so
// the 32 lanes hit 32 banks), folds them into the running max m and sum l with warp shuffles,
// rescales its output accumulator by exp(m_old − m_new) and adds Σ_j p_j·V[j], lanes splitting
// the D output channels (channel lane + 32·i). Scores, softmax and accumulators are fp32 in both
// storage types; expf (not __expf) so the fp32 path reaches 100 dB against the CPU reference.
// The head dim is a template parameter (40, 64, 80, 160 in SD); D = 0 is the generic kernel for
// any d ≤ 256. causal ≠ 0 (CLIP's text encoder): query i sees keys j ≤ i + Sk − Sq only; later keys
// score −∞ and key tiles past the block's last query are never loaded, so no mask exists.
#include "common.cuh"

#define ATT_WARPS 4
#define ATT_QPW 8                        // queries per warp
#define ATT_QB (ATT_WARPS * ATT_QPW)     // queries per block
#define ATT_KB 32                        // keys per shared tile (one per lane)
#define ATT_MAX_D 256                    // the generic kernel: ATT_MAX_D / 32 values per lane

template <class T, int DT, int DPL>
__device__ void attention(const T* q, const T* k, const T* v, T* out, int Sq, int Sk, int H, int dArg,
                          float scale, int causal) {
    extern __shared__ float smem[];
    const int D = DT > 0 ? DT : dArg;
    float* Ks = smem;                    // [ATT_KB][D + 1]
    float* Vs = Ks + ATT_KB * (D + 1);   // [ATT_KB][D]
    float* Qs = Vs + ATT_KB * D;         // [ATT_QB][D]
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int h = blockIdx.y, b = blockIdx.z, q0 = blockIdx.x * ATT_QB;
    const long long ld_ = (long long)H * D;  // row pitch of q, k, v, out
    const T* qb = q + (long long)b * Sq * ld_ + (long long)h * D;
    const T* kb = k + (long long)b * Sk * ld_ + (long long)h * D;
    const T* vb = v + (long long)b * Sk * ld_ + (long long)h * D;

    for (int i = threadIdx.x; i < ATT_QB * D; i += blockDim.x) {
        int r = i / D, c = i - r * D;
        Qs[i] = q0 + r < Sq ? ld(qb, (q0 + r) * ld_ + c) : 0.f;
    }

    float o[ATT_QPW][DPL], m[ATT_QPW], l[ATT_QPW];
#pragma unroll
    for (int qi = 0; qi < ATT_QPW; qi++) {
        m[qi] = -LATTE_INF;
        l[qi] = 0.f;
#pragma unroll
        for (int e = 0; e < DPL; e++) o[qi][e] = 0.f;
    }

    // causal: keys past the block's last query are masked for every query of the block
    const int kvEnd = causal ? min(Sk, q0 + ATT_QB + Sk - Sq) : Sk;
    for (int kv0 = 0; kv0 < kvEnd; kv0 += ATT_KB) {
        __syncthreads();  // the previous tile is consumed (and Qs written, on the first pass)
        for (int i = threadIdx.x; i < ATT_KB * D; i += blockDim.x) {
            int r = i / D, c = i - r * D;
            bool in = kv0 + r < Sk;
            Ks[r * (D + 1) + c] = in ? ld(kb, (kv0 + r) * ld_ + c) : 0.f;
            Vs[i] = in ? ld(vb, (kv0 + r) * ld_ + c) : 0.f;
        }
        __syncthreads();
        const bool keyValid = kv0 + lane < Sk;
#pragma unroll
        for (int qi = 0; qi < ATT_QPW; qi++) {
            const float* qrow = Qs + (warp * ATT_QPW + qi) * D;
            const float* krow = Ks + lane * (D + 1);
            const bool seen = keyValid && (!causal || kv0 + lane <= q0 + warp * ATT_QPW + qi + Sk - Sq);
            float s = 0.f;
#pragma unroll 8
            for (int c = 0; c < D; c++) s = fmaf(qrow[c], krow[c], s);
            s = seen ? s * scale : -LATTE_INF;
            float tmax = s;
            for (int off = 16; off > 0; off >>= 1) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, off));
            // finite: the first tile holds key 0, which every query sees; a later tile a causal query
            // sees none of keeps m (alpha 1, p 0)
            float mNew = fmaxf(m[qi], tmax);
            float alpha = mNew == -LATTE_INF ? 1.f : expf(m[qi] - mNew);  // 0 on the first tile (m = −∞)
            float p = seen ? expf(s - mNew) : 0.f;
            float psum = p;
            for (int off = 16; off > 0; off >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, off);
            l[qi] = l[qi] * alpha + psum;
            m[qi] = mNew;
#pragma unroll
            for (int e = 0; e < DPL; e++) o[qi][e] *= alpha;
#pragma unroll 4
            for (int j = 0; j < ATT_KB; j++) {
                float pj = __shfl_sync(0xffffffffu, p, j);
                const float* vrow = Vs + j * D;
#pragma unroll
                for (int e = 0; e < DPL; e++) {
                    int c = lane + 32 * e;
                    if (c < D) o[qi][e] = fmaf(pj, vrow[c], o[qi][e]);
                }
            }
        }
    }

    T* ob = out + (long long)b * Sq * ld_ + (long long)h * D;
#pragma unroll
    for (int qi = 0; qi < ATT_QPW; qi++) {
        int row = q0 + warp * ATT_QPW + qi;
        if (row >= Sq) continue;
        float inv = 1.f / l[qi];
#pragma unroll
        for (int e = 0; e < DPL; e++) {
            int c = lane + 32 * e;
            if (c < D) st(ob, row * ld_ + c, o[qi][e] * inv);
        }
    }
}

// grid (ceil(Sq / 32), H, B), block 128, dynamic shared (32·(D+1) + 32·D + 32·D)·4 bytes
#define ATTENTION_ENTRY(NAME, T, DT, DPL)                                                            \
    extern "C" __global__ void __launch_bounds__(ATT_WARPS * 32)                                   \
    NAME(const T* q, const T* k, const T* v, T* out, int Sq, int Sk, int H, int d, float scale,      \
         int causal) {                                                                              \
        attention<T, DT, DPL>(q, k, v, out, Sq, Sk, H, d, scale, causal);                            \
    }

ATTENTION_ENTRY(attention_d40_f32, float, 40, 2)
ATTENTION_ENTRY(attention_d40_f16, f16, 40, 2)
ATTENTION_ENTRY(attention_d64_f32, float, 64, 2)
ATTENTION_ENTRY(attention_d64_f16, f16, 64, 2)
ATTENTION_ENTRY(attention_d80_f32, float, 80, 3)
ATTENTION_ENTRY(attention_d80_f16, f16, 80, 3)
ATTENTION_ENTRY(attention_d160_f32, float, 160, 5)
ATTENTION_ENTRY(attention_d160_f16, f16, 160, 5)
ATTENTION_ENTRY(attention_f32, float, 0, ATT_MAX_D / 32)  // generic: any d ≤ ATT_MAX_D
ATTENTION_ENTRY(attention_f16, f16, 0, ATT_MAX_D / 32)
