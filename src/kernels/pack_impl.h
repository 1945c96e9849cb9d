/* pack_impl.h - internals of the packed layouts (pack*.c and the tests).
 *
 * The group-block geometry (pack.h describes the layouts) and the dispatch
 * hooks, in the style of quant_impl.h: sk_pack_fill builds the table of a
 * tier (cpu.h) from sk_pack_ref_fill, then sk_pack_register_avx2 from
 * SK_ISA_AVX2 up, then sk_pack_register_avx512 from SK_ISA_AVX512VNNI up,
 * each replacing the entries it accelerates; pack.c fills the selected
 * table with it, the tests one table per tier the CPU has. */
#ifndef SK_PACK_IMPL_H
#define SK_PACK_IMPL_H

#include <stddef.h>

#include "pack.h"
#include "quant.h"

/* bytes of the scales and of the quants of one group-block */
static inline int sk_pack_head_bytes(int type) {
    return type == SK_TYPE_Q5_0 ? 96 : type == SK_TYPE_Q4_1 ? 64 : 32;
}
static inline int sk_pack_quant_bytes(int type) { return type == SK_TYPE_Q8_0 ? 512 : 256; }
static inline int sk_pack_block_bytes(int type) { return sk_pack_head_bytes(type) + sk_pack_quant_bytes(type); }

/* Where element byte b (0..15 for nibbles, 0..31 for Q8_0) of row r lives in
 * the quants of a packed group-block: qs[b / 4][r][b % 4]. */
static inline size_t sk_pack_qpos(int r, int b) { return (size_t)(b / 4) * 64 + (size_t)r * 4 + (size_t)(b % 4); }

/* In an instruction-set file whose macro TYPE_GEMM(name, type) defines
 *   static void name(int64_t nb, int64_t ng, int nc, const uint8_t *w,
 *                    size_t gs, const char *y, size_t ys, float *s, size_t ss)
 * (nb blocks per row, the rest as sk_packed_gemm_fn): the per-type
 * instances of Q4_0, Q4_1, Q5_0 and Q8_0, and packed_gemm, the
 * sk_packed_gemm_fn that picks among them. */
#define SK_PACK_GEMMS(TYPE_GEMM)                                                                   \
    TYPE_GEMM(gemm_q4_0, SK_TYPE_Q4_0)                                                             \
    TYPE_GEMM(gemm_q4_1, SK_TYPE_Q4_1)                                                             \
    TYPE_GEMM(gemm_q5_0, SK_TYPE_Q5_0)                                                             \
    TYPE_GEMM(gemm_q8_0, SK_TYPE_Q8_0)                                                             \
    static void packed_gemm(int type, int64_t n, int64_t ng, int nc, const void *w, size_t gs,     \
                            const void *y, size_t ys, float *s, size_t ss) {                       \
        const int64_t nb = n / SK_QK;                                                              \
        if (type == SK_TYPE_Q4_1) gemm_q4_1(nb, ng, nc, w, gs, y, ys, s, ss);                      \
        else if (type == SK_TYPE_Q4_0) gemm_q4_0(nb, ng, nc, w, gs, y, ys, s, ss);                 \
        else if (type == SK_TYPE_Q5_0) gemm_q5_0(nb, ng, nc, w, gs, y, ys, s, ss);                 \
        else gemm_q8_0(nb, ng, nc, w, gs, y, ys, s, ss);                                           \
    }

/* Fill t with the scalar reference (pack_ref.c). */
void sk_pack_ref_fill(sk_pack_kernels *t);

/* Override the entries AVX2 (pack_avx2.c) and AVX-512 VNNI
 * (pack_avx512.c) accelerate; the caller must have checked the CPU
 * (sk_cpu_has_isa, cpu.h). */
void sk_pack_register_avx2(sk_pack_kernels *t);
void sk_pack_register_avx512(sk_pack_kernels *t);

/* t = the kernels of tier isa (an int holding an sk_isa, cpu.h): the
 * reference with the register functions of every tier up to isa applied.
 * The caller must have checked the CPU (sk_cpu_has_isa). */
void sk_pack_fill(sk_pack_kernels *t, int isa);

#endif
