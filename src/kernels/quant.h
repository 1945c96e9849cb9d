/* quant.h - tensor element formats: block layouts, conversion and dot products.
 *
 * Type numbers are GGUF's (ggml's) so that a tensor's type field indexes this
 * table directly. Every format has a scalar reference implementation
 * (quant_ref.c); instruction-set files (quant_avx2.c, quant_avx512.c, and
 * quant_k_avx2.c, quant_k_avx512.c for the K-quants) provide faster twins
 * that the tests compare against the reference. sk_quant_init() installs
 * the kernel tier cpu.h chose (sk_cpu_isa() names it; SINKLLM_ISA=scalar
 * forces the reference).
 *
 * Block layouts (all little-endian, packed, no padding), QK = 32, QK_K = 256:
 *   Q4_0 { f16 d; u8 qs[16]; }            x = (q - 8) * d, q = nibble; byte j holds
 *                                         element j (low nibble) and j+16 (high)
 *   Q4_1 { f16 d; f16 m; u8 qs[16]; }     x = q * d + m
 *   Q5_0 { f16 d; u8 qh[4]; u8 qs[16]; }  q = nibble | (bit j of qh) << 4; x = (q - 16) * d
 *   Q5_1 { f16 d; f16 m; u8 qh[4]; u8 qs[16]; }  x = q * d + m
 *   Q8_0 { f16 d; i8 qs[32]; }            x = q * d
 *   Q8_1 { f16 d; f16 s; i8 qs[32]; }     x = q * d, s = d * sum(q)   (activations only)
 *   Q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128]; }   8 sub-blocks of 32 with
 *                                         6-bit scale and min each
 *   Q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }
 *   Q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; }
 *   Q8_K { f32 d; i8 qs[256]; i16 bsums[16]; }             (activations only)
 */
#ifndef SK_QUANT_H
#define SK_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "half.h"

enum sk_type {
    SK_TYPE_F32 = 0,
    SK_TYPE_F16 = 1,
    SK_TYPE_Q4_0 = 2,
    SK_TYPE_Q4_1 = 3,
    SK_TYPE_Q5_0 = 6,
    SK_TYPE_Q5_1 = 7,
    SK_TYPE_Q8_0 = 8,
    SK_TYPE_Q8_1 = 9,
    SK_TYPE_Q4_K = 12,
    SK_TYPE_Q5_K = 13,
    SK_TYPE_Q6_K = 14,
    SK_TYPE_Q8_K = 15,
    SK_TYPE_BF16 = 30,
    SK_TYPE_COUNT = 31,
};

#define SK_QK 32
#define SK_QK_K 256

/* Dot product of one row x (in the weight type) with one row y (in that
 * type's dot_type), n elements, n a multiple of the block size: *s = x . y */
typedef void (*sk_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);

/* Tile of dot products for batched work (pre-fill): for r < nr, c < nc
 *   s[c * s_stride + r] = x_r . y_c
 * where x_r = (char *)x + r * x_stride and y_c = (char *)y + c * y_stride. */
typedef void (*sk_gemm_fn)(int64_t n, int nr, int nc, const void *x, size_t x_stride,
                           const void *y, size_t y_stride, float *s, size_t s_stride);

typedef struct sk_type_traits {
    const char *name;    /* "Q4_1" */
    int blck;            /* elements per block */
    size_t size;         /* bytes per block */
    int is_weight;       /* usable as a model tensor type */
    enum sk_type dot_type; /* format that activations are converted to for vec_dot */
    /* y[0..n) = dequantized x; n a multiple of blck */
    void (*to_float)(const void *x, float *y, int64_t n);
    /* y = quantized x[0..n); n a multiple of blck. NULL where not needed. */
    void (*from_float)(const float *x, void *y, int64_t n);
    sk_vec_dot_fn vec_dot; /* NULL for activation-only types */
    sk_gemm_fn gemm;       /* never NULL where vec_dot is set */
} sk_type_traits;

/* Fill the tables with the chosen kernel set (once; thread-safe). Called
 * by sk_model_load; tests call it directly. */
void sk_quant_init(void);

/* Traits of a type in the selected instruction set; NULL if type is unknown
 * or unsupported. */
const sk_type_traits *sk_type_get(int type);

/* Traits of the scalar reference implementation (tests compare against it). */
const sk_type_traits *sk_type_get_ref(int type);

/* Bytes needed for a row of n elements of type t; 0 if t is unknown or n is
 * not a multiple of its block size. */
size_t sk_row_size(int type, int64_t n);

/* Bulk half conversions (SIMD where available). */
void sk_f16_to_f32_row(const uint16_t *x, float *y, int64_t n);
void sk_f32_to_f16_row(const float *x, uint16_t *y, int64_t n);

#endif
