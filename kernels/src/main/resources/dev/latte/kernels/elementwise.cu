// Element-wise and data-movement ops. All are memory-bound: one grid-stride loop over the output,
// fp32 arithmetic, one load and one store per element (transposes go through a shared tile so
// both sides are coalesced). Launch: grid ≈ min(ceil(total / 256), 65535·k), block 256, unless
// noted.
#include "common.cuh"

#define GRID_STRIDE(i, total) \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (total); i += (long long)gridDim.x * blockDim.x)

#define UNARY(NAME, EXPR)                                                                          \
    template <class T> __device__ void NAME(const T* x, T* out, long long n) {                  \
        GRID_STRIDE(i, n) { float v = ld(x, i); st(out, i, (EXPR)); }                              \
    }                                                                                              \
    extern "C" __global__ void NAME##_f32(const float* x, float* out, long long n) { NAME(x, out, n); } \
    extern "C" __global__ void NAME##_f16(const f16* x, f16* out, long long n) { NAME(x, out, n); }

UNARY(silu, silu_f(v))
UNARY(gelu, gelu_f(v))
UNARY(quick_gelu, v / (1.0f + expf(-1.702f * v)))  // CLIP's quick_gelu: x·sigmoid(1.702·x)

// out [B, L, D] = table[ids[b, l]] (+ positions[l]) for n = B·L·D outputs. ids are integral values
// in fp32 whatever the table's storage (exact below 2^24; fp16 is exact only to 2048); one that is not a row of the table gives a NaN row, which the caller's
// finiteness check names, rather than a read out of bounds.
template <class T>
__device__ void embedding(const float* ids, const T* table, const T* pos, T* out, int L, int D, int V, long long n) {
    GRID_STRIDE(i, n) {
        long long row = i / D;
        int c = (int)(i - row * D);
        float idf = ids[row];
        int id = (int)idf;
        float v = idf >= 0.f && idf < (float)V && (float)id == idf ? ld(table, (long long)id * D + c) : __int_as_float(0x7fc00000);
        if (pos) v += ld(pos, (long long)(row % L) * D + c);
        st(out, i, v);
    }
}
extern "C" __global__ void embedding_f32(const float* ids, const float* table, const float* pos, float* out, int L,
                                         int D, int V, long long n) {
    embedding(ids, table, pos, out, L, D, V, n);
}
extern "C" __global__ void embedding_f16(const float* ids, const f16* table, const f16* pos, f16* out, int L, int D,
                                         int V, long long n) {
    embedding(ids, table, pos, out, L, D, V, n);
}

// out = x·s; out may be x
template <class T> __device__ void scale(const T* x, T* out, float s, long long n) {
    GRID_STRIDE(i, n) st(out, i, ld(x, i) * s);
}
extern "C" __global__ void scale_f32(const float* x, float* out, float s, long long n) { scale(x, out, s, n); }
extern "C" __global__ void scale_f16(const f16* x, f16* out, float s, long long n) { scale(x, out, s, n); }

// out = a + b; out may alias either
template <class T> __device__ void add(const T* a, const T* b, T* out, long long n) {
    GRID_STRIDE(i, n) st(out, i, ld(a, i) + ld(b, i));
}
extern "C" __global__ void add_f32(const float* a, const float* b, float* out, long long n) { add(a, b, out, n); }
extern "C" __global__ void add_f16(const f16* a, const f16* b, f16* out, long long n) { add(a, b, out, n); }

// x [rows, 2f] → out [rows, f] = a · gelu(gate), a = x[:, :f], gate = x[:, f:]
template <class T> __device__ void geglu(const T* x, T* out, int f, long long n) {
    GRID_STRIDE(i, n) {
        long long r = i / f, c = i - r * f;
        st(out, i, ld(x, r * 2 * f + c) * gelu_f(ld(x, r * 2 * f + f + c)));
    }
}
extern "C" __global__ void geglu_f32(const float* x, float* out, int f, long long n) { geglu(x, out, f, n); }
extern "C" __global__ void geglu_f16(const f16* x, f16* out, int f, long long n) { geglu(x, out, f, n); }

// out[p, i] = x[p, i] + v[p] for planes p = (n, c) of hw elements; out may be x
template <class T> __device__ void add_channel_bias(const T* x, const T* v, T* out, int hw, long long n) {
    GRID_STRIDE(i, n) st(out, i, ld(x, i) + ld(v, i / hw));
}
extern "C" __global__ void add_channel_bias_f32(const float* x, const float* v, float* out, int hw, long long n) {
    add_channel_bias(x, v, out, hw, n);
}
extern "C" __global__ void add_channel_bias_f16(const f16* x, const f16* v, f16* out, int hw, long long n) {
    add_channel_bias(x, v, out, hw, n);
}

// nearest resize of planes [h, w] → [oh, ow], src = floor(dst·in / out) as PyTorch's "nearest"
template <class T>
__device__ void upsample_nearest(const T* x, T* out, int h, int w, int oh, int ow, long long n) {
    GRID_STRIDE(i, n) {
        long long plane = i / ((long long)oh * ow);
        int rem = (int)(i - plane * oh * ow), oy = rem / ow, ox = rem - oy * ow;
        int iy = (int)((long long)oy * h / oh), ix = (int)((long long)ox * w / ow);
        st(out, i, ld(x, (plane * h + iy) * w + ix));
    }
}
extern "C" __global__ void upsample_nearest_f32(const float* x, float* out, int h, int w, int oh, int ow, long long n) {
    upsample_nearest(x, out, h, w, oh, ow, n);
}
extern "C" __global__ void upsample_nearest_f16(const f16* x, f16* out, int h, int w, int oh, int ow, long long n) {
    upsample_nearest(x, out, h, w, oh, ow, n);
}

// out [N, Ca + Cb, H, W] = cat(a, b) along channels; aLen = Ca·H·W, bLen = Cb·H·W per image
template <class T>
__device__ void concat_channels(const T* a, const T* b, T* out, long long aLen, long long bLen, long long n) {
    GRID_STRIDE(i, n) {
        long long img = i / (aLen + bLen), r = i - img * (aLen + bLen);
        st(out, i, r < aLen ? ld(a, img * aLen + r) : ld(b, img * bLen + (r - aLen)));
    }
}
extern "C" __global__ void concat_channels_f32(const float* a, const float* b, float* out, long long aLen,
                                               long long bLen, long long n) {
    concat_channels(a, b, out, aLen, bLen, n);
}
extern "C" __global__ void concat_channels_f16(const f16* a, const f16* b, f16* out, long long aLen,
                                               long long bLen, long long n) {
    concat_channels(a, b, out, aLen, bLen, n);
}

// out[b] = x[b]ᵀ for x [B, rows, cols] (NCHW ↔ tokens). A 32×32 tile through shared memory
// (33-float pitch: no bank conflicts), so reads and writes are both coalesced.
// grid (ceil(cols/TR_TILE), ceil(rows/TR_TILE), B), block (TR_TILE, TR_ROWS)
#define TR_TILE 32
#define TR_ROWS 8
template <class T>
__device__ void transpose(const T* x, T* out, int rows, int cols) {
    __shared__ float tile[TR_TILE][TR_TILE + 1];
    const long long base = (long long)blockIdx.z * rows * cols;
    int c = blockIdx.x * TR_TILE + threadIdx.x;
    for (int r = blockIdx.y * TR_TILE + threadIdx.y, j = threadIdx.y; j < TR_TILE; r += TR_ROWS, j += TR_ROWS)
        if (r < rows && c < cols) tile[j][threadIdx.x] = ld(x, base + (long long)r * cols + c);
    __syncthreads();
    int r = blockIdx.y * TR_TILE + threadIdx.x;
    for (int c2 = blockIdx.x * TR_TILE + threadIdx.y, j = threadIdx.y; j < TR_TILE; c2 += TR_ROWS, j += TR_ROWS)
        if (r < rows && c2 < cols) st(out, base + (long long)c2 * rows + r, tile[threadIdx.x][j]);
}
extern "C" __global__ void transpose_f32(const float* x, float* out, int rows, int cols) { transpose(x, out, rows, cols); }
extern "C" __global__ void transpose_f16(const f16* x, f16* out, int rows, int cols) { transpose(x, out, rows, cols); }

// diffusers' get_timestep_embedding: out[b, sinAt + i] = sin(t[b]·freq[i]), out[b, cosAt + i] =
// cos(...), i < half, a zero last column when dim is odd. freq [half] is fp32, made on the host
// with PyTorch's CPU exp rounding; the product is rounded to fp32 as PyTorch does, then sin/cos
// are taken in double and rounded once.
template <class T>
__device__ void timestep_embedding(const T* t, const float* freq, T* out, int dim, int half, int sinAt, int cosAt,
                                   long long n) {
    GRID_STRIDE(i, n) {
        int b = (int)(i / dim), col = (int)(i - (long long)b * dim);
        float v = 0.f;
        if (col < 2 * half) {
            int f = col >= half ? col - half : col;
            bool isSin = (col >= half) == (sinAt == half);
            double arg = (double)(ld(t, b) * freq[f]);
            v = (float)(isSin ? sin(arg) : cos(arg));
        }
        st(out, i, v);
    }
}
extern "C" __global__ void timestep_embedding_f32(const float* t, const float* freq, float* out, int dim, int half,
                                                  int sinAt, int cosAt, long long n) {
    timestep_embedding(t, freq, out, dim, half, sinAt, cosAt, n);
}
extern "C" __global__ void timestep_embedding_f16(const f16* t, const float* freq, f16* out, int dim, int half,
                                                  int sinAt, int cosAt, long long n) {
    timestep_embedding(t, freq, out, dim, half, sinAt, cosAt, n);
}
