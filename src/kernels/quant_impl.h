/* quant_impl.h - internals of the tensor formats module (quant*.c only).
 *
 * The packed block structs that the layouts in quant.h describe, and the
 * hooks by which each instruction-set file overrides
 * entries of a type table. A type table is an array of SK_TYPE_COUNT
 * sk_type_traits indexed by type number; entries with name == NULL are
 * unsupported types.
 *
 * Dispatch order (sk_quant_fill, quant.c): sk_quant_ref_fill, then
 * sk_quant_register_avx2 and sk_quant_register_k_avx2 if the tier (cpu.h)
 * is at least SK_ISA_AVX2, then sk_quant_register_avx512 and
 * sk_quant_register_k_avx512 if it is at least SK_ISA_AVX512VNNI (the amx
 * tier has no kernels of its own yet). Each register function replaces only
 * the function pointers it accelerates, so the result is always a complete
 * table.
 */
#ifndef SK_QUANT_IMPL_H
#define SK_QUANT_IMPL_H

#include <stdint.h>

#include "quant.h"

/* ---- block layouts (see quant.h); every member has alignment <= 2 except
 * Q8_K's float, so arrays of blocks are packed without padding. ---------- */
typedef struct { uint16_t d; uint8_t qs[SK_QK / 2]; } sk_block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[SK_QK / 2]; } sk_block_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[SK_QK / 2]; } sk_block_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[SK_QK / 2]; } sk_block_q5_1;
typedef struct { uint16_t d; int8_t qs[SK_QK]; } sk_block_q8_0;
typedef struct { uint16_t d, s; int8_t qs[SK_QK]; } sk_block_q8_1;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];      /* 8 x (6-bit scale, 6-bit min), see sk_q4k_scale_min */
    uint8_t qs[SK_QK_K / 2]; /* 64 elements per 32 bytes: low nibbles, then high */
} sk_block_q4_K;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[SK_QK_K / 8]; /* bit 2k (low nibble) / 2k+1 (high) of qh[l], 64-group k */
    uint8_t qs[SK_QK_K / 2];
} sk_block_q5_K;
typedef struct {
    uint8_t ql[SK_QK_K / 2];
    uint8_t qh[SK_QK_K / 4];
    int8_t scales[SK_QK_K / 16];
    uint16_t d;
} sk_block_q6_K;
typedef struct {
    float d;
    int8_t qs[SK_QK_K];
    int16_t bsums[SK_QK_K / 16]; /* sum of each 16 consecutive qs */
} sk_block_q8_K;

_Static_assert(sizeof(sk_block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(sk_block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(sk_block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(sk_block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(sk_block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(sk_block_q8_1) == 36, "q8_1 layout");
_Static_assert(sizeof(sk_block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(sk_block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(sk_block_q6_K) == 210, "q6_K layout");
_Static_assert(sizeof(sk_block_q8_K) == 292, "q8_K layout");

/* 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block:
 *   j < 4:  sc = s[j] & 63,                      m = s[j+4] & 63
 *   j >= 4: sc = (s[j+4] & 15) | (s[j-4] >> 6) << 4,  m = (s[j+4] >> 4) | (s[j] >> 6) << 4 */
static inline void sk_q4k_scale_min(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* name##_gemm as name##_vec_dot in a loop (sk_gemm_fn's contract), for
 * the reference and for kernels already wide enough per row. */
#define SK_LOOP_GEMM(name)                                                                         \
    static void name##_gemm(int64_t n, int nr, int nc, const void *x, size_t xs, const void *y,     \
                            size_t ys, float *s, size_t ss) {                                      \
        for (int c = 0; c < nc; c++)                                                               \
            for (int r = 0; r < nr; r++)                                                           \
                name##_vec_dot(n, &s[(size_t)c * ss + r], (const char *)x + (size_t)r * xs,        \
                               (const char *)y + (size_t)c * ys);                                  \
    }

/* Fill table[0..SK_TYPE_COUNT) with the scalar reference implementation. */
void sk_quant_ref_fill(sk_type_traits *table);

/* Fill table with the kernels of tier isa (an int holding an sk_isa,
 * cpu.h), in the order above: what the dispatcher installs for the chosen
 * tier, and what the tests build for every tier the CPU has. The caller
 * must have checked the CPU (sk_cpu_has_isa). */
void sk_quant_fill(sk_type_traits *table, int isa);

/* Override the entries each instruction set accelerates. The caller must
 * have checked the CPU (sk_cpu_has_*, cpu.h). */
void sk_quant_register_avx2(sk_type_traits *table);
void sk_quant_register_avx512(sk_type_traits *table);
/* The K-quant kernels (Q4_K, Q5_K, Q6_K x Q8_K; the Q8_K quantizer), in
 * their own files quant_k_avx2.c and quant_k_avx512.c; same contract. */
void sk_quant_register_k_avx2(sk_type_traits *table);
/* quant_k8_avx2.c: the AVX2 8-row Q4_K/Q6_K gemm (called by the above) */
void sk_quant_register_k8_avx2(sk_type_traits *table);
/* quant_k16_avx512.c: the AVX-512 16-row Q4_K/Q6_K gemm (called by the
 * AVX-512 register function) */
void sk_quant_register_k16_avx512(sk_type_traits *table);
void sk_quant_register_k_avx512(sk_type_traits *table);
/* The K-quant kernels written for whole 512-bit registers (Q6_K's
 * vec_dot), which sk_quant_register_k_avx512 adds where sk_cpu_wide512();
 * tests/test_quant.c adds them on any AVX-512 CPU, so they are checked
 * where the dispatcher leaves them out. */
void sk_quant_register_k_wide_avx512(sk_type_traits *table);

#endif
