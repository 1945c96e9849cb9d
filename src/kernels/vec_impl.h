/* vec_impl.h - internals of the attention kernels (vec*.c and the tests).
 *
 * The dispatch hooks, in the style of quant_impl.h: sk_vec_fill (vec.c)
 * fills a table with sk_vec_ref_fill, then calls sk_vec_register_avx2 if
 * the tier (cpu.h) is at least SK_ISA_AVX2, then sk_vec_register_avx512
 * on the avx512 and amx tiers where the CPU runs 512-bit operations at
 * full width (sk_cpu_wide512: Zen 5, Intel). Every set gives the
 * reference's bits. On Zen 4, which splits 512-bit operations in two, the
 * AVX2 kernels stay: earlier 16-key AVX-512 versions (with a polynomial
 * exp, other bits) measured slower there, SmolLM2 tg64 after 2,048 tokens
 * 111-122 vs 150-157 tokens/s. The SIMD kernels call the reference kq/av
 * below for shapes they do not handle. */
#ifndef SK_VEC_IMPL_H
#define SK_VEC_IMPL_H

#include "vec.h"

/* Fill every entry of t with the scalar reference (vec_ref.c). */
void sk_vec_ref_fill(sk_vec_kernels *t);

/* t = the kernels of tier isa (an int holding an sk_isa, cpu.h), as above:
 * the dispatcher's table for the chosen tier, the tests' for each tier the
 * CPU has. The caller must have checked the CPU (sk_cpu_has_isa). */
void sk_vec_fill(sk_vec_kernels *t, int isa);

/* Override every entry with the AVX2 kernels; the caller must have checked
 * the CPU (sk_cpu_has_*, cpu.h). */
void sk_vec_register_avx2(sk_vec_kernels *t);

/* Override kq, av, max, exp_sum and SwiGLU with the AVX-512 kernels
 * (vec_avx512.c, the same bits as AVX2's); the caller must have checked
 * the CPU (sk_cpu_has_avx512vnni). */
void sk_vec_register_avx512(sk_vec_kernels *t);

/* bits(2^(i/32)) - (i << 47), i < 32: the table of the SIMD expf that
 * gives libm's bits (vec_avx2.c explains it; vec_avx512.c uses it too) */
extern const uint64_t sk_vec_exp2_tab[32];

/* AVX2's av_f16 (vec_avx2.c), which the AVX-512 file runs for fewer than
 * four queries (vec_avx512.c says why); the caller must have checked the
 * CPU. */
void sk_vec_av_f16_avx2(int64_t n, int w, const uint16_t *V, size_t vs, int n_rep, const float *a, size_t as,
                        float *out, size_t os);

/* The reference kq_f16 and av_f16 (contracts in vec.h), for fallbacks. */
void sk_vec_kq_f16_ref(int64_t n, int hd, const uint16_t *K, int n_rep, const float *q, float scale,
                       float *s, size_t ss);
void sk_vec_av_f16_ref(int64_t n, int w, const uint16_t *V, size_t vs, int n_rep, const float *a,
                       size_t as, float *out, size_t os);

#endif
