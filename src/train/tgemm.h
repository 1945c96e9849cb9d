/* tgemm.h - the trainer's f32 matrix product: C (M x N) = or += A (M x K) B (K x N)
 * for operands of any strides, cache-blocked with packed panels (GotoBLAS's
 * loop nest) around a register-tiled micro-kernel of TG_MR x TG_NR outputs:
 * the AVX2+FMA one (tgemm_avx2.c) or its scalar twin (tgemm.c), chosen once
 * from the CPU tier (SINKLLM_ISA=scalar forces the twin).
 *
 * Loop nest: columns in blocks of TG_NC, then K in blocks of TG_KC (a
 * (TG_KC, TG_NC) panel of B packed), rows in blocks of TG_MC (a (TG_MC,
 * TG_KC) panel of A packed, unless A's rows are contiguous: the kernel then
 * reads them in place, and only a last panel of fewer than TG_MR rows is
 * packed), then micro-tiles. Packing pads the edges with zeros; an edge tile
 * runs the same micro-kernel on a tile-sized copy.
 *
 * The same arithmetic per element wherever it falls: for each K block
 * [b TG_KC, (b + 1) TG_KC) of the call's K range in order, the micro-kernel
 * sums the block's terms in a chain of fused multiply-adds from 0, k
 * ascending (the scalar twin: a multiply then an add), and adds the sum to
 * C (accumulate, or any block after the first) or stores it. So
 * C(m, n) = ((C0 + s_0) + s_1) + ... whatever the tile position, the M and
 * N blocking and the split of the output over threads: a run on 1 thread
 * and on 2 gives the same bits. (C joins at the end so that its load
 * overlaps the products.) Splitting K into several calls gives the same
 * bits only at multiples of TG_KC.
 *
 * BF16 mixed precision (the tg_get_bf16 tables): A and B are rounded to
 * BF16 as they are packed (tg_bf16: nearest even, subnormals to zero) and
 * each K block is taken in pairs of k (2q, 2q + 1) from the block's start
 * (the pair past an odd K padded with zero); per pair, from 0 and q
 * ascending, s = ftz(s + a(2q+1) b(2q+1)) then s = ftz(s + a(2q) b(2q)),
 * each rounded once (the product of two BF16 is exact in F32), ftz a
 * result below FLT_MIN to a signed zero: AVX512-BF16's VDPBF16PS, whose
 * bits the scalar twin reproduces. C joins as above, in F32. Weights,
 * gradients and C stay F32: only the products' operands are narrowed.
 *
 * Nothing is allocated here: the caller passes pack buffers (TG_BUF_FLOATS
 * per thread, 64-byte aligned). */
#ifndef SK_TRAIN_TGEMM_H
#define SK_TRAIN_TGEMM_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/threadpool.h"

#define TG_MR 6    /* rows of a micro-tile */
#define TG_NR 16   /* columns of a micro-tile (two AVX2 vectors) */
#ifndef TG_KC
#define TG_KC 256  /* K block: a B micro-panel (TG_KC x TG_NR) is 16 KiB, in L1 */
#endif
#ifndef TG_MC
#define TG_MC 96   /* rows of a packed A block: 96 KiB, in L2 */
#endif
#ifndef TG_NC
#define TG_NC 1024 /* columns of a packed B block: 1 MiB, in L2/L3 */
#endif
#define TG_BUF_FLOATS ((size_t)TG_MC * TG_KC + (size_t)TG_KC * TG_NC)

/* A matrix view: element (r, c) at p[r * rs + c * cs] */
typedef struct tg_mat {
    const float *p;
    int64_t rs, cs;
} tg_mat;

/* Structure of the product that lets whole micro-tiles or K ranges be
 * skipped (the attention's triangles); skipped terms are exact zeros. */
enum {
    TG_FULL = 0,
    TG_C_LOWER = 1, /* only C(m, n) with n <= m is wanted (the rest is left unspecified) */
    TG_A_LOWER = 2, /* A(m, k) = 0 for k > m */
    TG_A_UPPER = 4, /* A(m, k) = 0 for k < m */
};

typedef struct tg_kernels {
    /* ---- F32 tables (NULL in the BF16 ones) ---- */
    /* the TG_MR x TG_NR tile at c (row stride ldc) = (load ? c : 0) + a b over kc steps;
     * a: kc x TG_MR (k-major), b: kc x TG_NR (k-major) */
    void (*ukr)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int load);
    /* the same with A in place: A(i, k) = a[i * lda + k] */
    void (*ukr_rows)(int64_t kc, const float *a, int64_t lda, const float *b, float *c,
                     int64_t ldc, int load);
    /* a B micro-panel from the columns of B = W^T: d[k * TG_NR + j] = w[j * ldw + k] for
     * j < TG_NR, k < kc (a transpose; the same bits in both sets) */
    void (*pack_bt)(float *d, const float *w, int64_t ldw, int64_t kc);
    /* ---- BF16 tables (NULL in the F32 ones): operands in BF16 pairs ---- */
    /* the tile = (load ? c : 0) + a b over kp pairs of k (the BF16 arithmetic above);
     * a: kp x TG_MR pairs (k-major), b: kp x TG_NR pairs */
    void (*ukr_p)(int64_t kp, const uint32_t *a, const uint32_t *b, float *c, int64_t ldc,
                  int load);
    /* the same with A's rows at a + i * lda (pairs) */
    void (*ukr_rows_p)(int64_t kp, const uint32_t *a, int64_t lda, const uint32_t *b, float *c,
                       int64_t ldc, int load);
    /* d[i] = tg_pair(x0[i], x1 ? x1[i] : 0) for i < n */
    void (*cvt_pairs)(uint32_t *d, const float *x0, const float *x1, int64_t n);
    /* d[p] = tg_pair(x[2p], x[2p + 1]) for p < (n + 1) / 2, x[n] read as 0 */
    void (*cvt_row)(uint32_t *d, const float *x, int64_t n);
    const char *name;
} tg_kernels;

/* F32 to BF16: round to nearest even; below FLT_MIN (zero, subnormal) a
 * signed zero; NaN stays NaN (quiet). */
static inline uint32_t tg_bf16(float f) {
    uint32_t u;
    __builtin_memcpy(&u, &f, 4);
    if ((u & 0x7F800000u) == 0) return (u >> 16) & 0x8000u;
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (u >> 16) | 0x40u;
    return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}
/* the BF16 in the low 16 bits of h as a float; a subnormal reads as a
 * signed zero (VDPBF16PS's inputs) */
static inline float tg_bf16_f32(uint32_t h) {
    uint32_t u = (h & 0x7F80u) ? (h & 0xFFFFu) << 16 : (h & 0x8000u) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}
/* a pair of k: the even term in the low half */
static inline uint32_t tg_pair(float even, float odd) { return tg_bf16(even) | tg_bf16(odd) << 16; }

/* The kernels in use (chosen on first call). */
const tg_kernels *tg_get(void);
/* The scalar twin. */
const tg_kernels *tg_get_ref(void);
/* The AVX2 kernels, NULL when the CPU lacks AVX2 and FMA. */
const tg_kernels *tg_get_avx2(void);
/* tgemm_avx2.c's table, whatever the CPU (call only where it has AVX2). */
const tg_kernels *tg_avx2_table(void);

/* BF16 mixed precision: the AVX512-BF16 kernels where the tier in use is
 * avx512 or above and the CPU has AVX512_BF16, the scalar twin (the same
 * bits, far slower) otherwise. */
const tg_kernels *tg_get_bf16(void);
const tg_kernels *tg_get_bf16_ref(void);
/* The AVX512-BF16 kernels, NULL when the CPU lacks them (whatever SINKLLM_ISA). */
const tg_kernels *tg_get_bf16_avx512(void);
const tg_kernels *tg_bf16_avx512_table(void);

/* One thread: C = (acc ? C : 0) + A B, A (M x K), B (K x N), C row stride ldc.
 * buf: TG_BUF_FLOATS floats. kr NULL: tg_get(). */
void tg_gemm_st(const tg_kernels *kr, float *buf, int64_t M, int64_t N, int64_t K, tg_mat A,
                tg_mat B, float *C, int64_t ldc, int acc, int flags);

/* The same on the pool (NULL: one thread): the rows or the columns of C
 * (the longer side) split over the threads, thread i packing into
 * bufs + i * TG_BUF_FLOATS. flags must be TG_FULL. kr NULL: tg_get(). */
void tg_gemm(sk_pool *pool, const tg_kernels *kr, float *bufs, int64_t M, int64_t N, int64_t K, tg_mat A, tg_mat B,
             float *C, int64_t ldc, int acc);

#endif
