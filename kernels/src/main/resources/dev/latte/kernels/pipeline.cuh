// Tensor-core building blocks shared by the v2 kernels (sm_80+ only: every caller sits inside
// #if __CUDA_ARCH__ >= 800): shared-window addresses, cp.async 16-byte copies with zero fill,
// ldmatrix, packed fp16 pairs. Fragment layouts: common.cuh (mma_f16_16816) and the PTX ISA.
#pragma once
#include "common.cuh"

// The 32-bit shared-window address that ldmatrix and cp.async take.
__device__ __forceinline__ unsigned smem_addr(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }

// 16 bytes global → shared, bypassing L1; !valid writes 16 zero bytes and reads nothing (src-size 0),
// so padding columns and rows past a tensor's end arrive as zeros without a branch around the copy.
__device__ __forceinline__ void cp_async16(unsigned dst, const void* src, bool valid) {
    int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N)); }

// Four 8×8 b16 matrices; lane l gives the row address of matrix l/8, row l%8. Without .trans lane
// l receives row l/4, columns 2(l%4), 2(l%4)+1 of each matrix; with .trans the same of its transpose.
__device__ __forceinline__ void ldsm_x4(unsigned r[4], unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_trans(unsigned r[4], unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// Two floats rounded to one f16x2 register, lo in the low half (mma fragment order).
__device__ __forceinline__ unsigned pack_f16x2(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
