/* quant_k_avx512.c - AVX-512 VL + VNNI kernels for the K-quant formats.
 *
 * Compiled with the AVX2 flags plus -mavx512f -mavx512bw -mavx512vl
 * -mavx512dq -mavx512vnni (Makefile, by file name); only called when quant.c
 * has seen those features in cpuid. Registered on top of the AVX2 table
 * (quant_k_avx2.c), so whatever is not here keeps its AVX2 kernel (the
 * Q8_K quantizer). Each kernel has its scalar twin in quant_ref.c;
 * tests/test_quant.c compares the two.
 *
 * Accelerated: vec_dot + gemm of Q4_K, Q5_K and Q6_K x Q8_K.
 *
 * The kernels are quant_k_simd.h's, as in quant_k_avx2.c (see the header
 * for the equations, the range argument and why the results are the
 * reference's bits), with one change in K_DOT: the vpmaddwd + vpaddd that scale the i16 pair sums by the
 * sub-block scale and accumulate them become one vpdpwssd. It stays at 256
 * bits: 512-bit versions (two sub-blocks per register, vpermw / vptestmb
 * for the scales and Q5_K's fifth bit) measured no faster than AVX2 for
 * vec_dot on the AMD Zen 4 we test on, which splits 512-bit operations in
 * two, while this one is 3-10% faster for vec_dot and ~15% for gemm.
 */
#include <immintrin.h>

/* acc + 8 i32: lane k = sc * (sum of the four products u * s in bytes
 * 4k..4k+3), the scaling and the accumulation in one vpdpwssd */
#define K_DOT(acc, u, s, sc) _mm256_dpwssd_epi32((acc), _mm256_maddubs_epi16((u), (s)), (sc))

#include "quant_k_simd.h"

/* Override the AVX-512 VNNI K-quant entries of table (applied after the
 * AVX2 ones). */
void sk_quant_register_k_avx512(sk_type_traits *t) {
    k_register(t);
    sk_quant_register_k16_avx512(t); /* pre-fill: 16 rows at a time (quant_k16_avx512.c) */
}
