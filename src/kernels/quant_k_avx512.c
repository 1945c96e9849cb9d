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
 * two, while this one is 3-10% faster for vec_dot and ~15% for gemm. The
 * exception, on CPUs that run 512 bits whole: Q6_K's vec_dot (below).
 */
#include <immintrin.h>

/* acc + 8 i32: lane k = sc * (sum of the four products u * s in bytes
 * 4k..4k+3), the scaling and the accumulation in one vpdpwssd */
#define K_DOT(acc, u, s, sc) _mm256_dpwssd_epi32((acc), _mm256_maddubs_epi16((u), (s)), (sc))

#include "quant_k_simd.h"

#include "cpu.h"

/* ---- 512-bit vec_dot of Q6_K (decode) --------------------------------------------
 * For CPUs that run 512-bit operations whole (sk_cpu_wide512: Zen 5,
 * Intel). Two 32-element groups to a register, groups 0-1 and 2-3 of a
 * half, laid out so that the activations are one contiguous 64-byte
 * load: ql contiguous, qh broadcast to both halves and its bits shifted
 * per half; the sub-block scales by vpermw. Integer sums are exact
 * whatever the order and the float part is quant_k_simd.h's, so the
 * results are the reference's bits, as the 256-bit kernel's are
 * (tests/test_quant.c). Measured (bench/quant-bench.c, one thread, Zen 5,
 * 512 x 2048 and 8192 x 2048): 38.5 -> 45.9 and 35.7 -> 43.6 GB/s. The
 * same layout for Q4_K (one 32-byte load broadcast, the high half shifted
 * by 4) measured no faster (28.6 GB/s both), so Q4_K keeps the 256-bit
 * kernel. */

/* i16 a in the first 128-bit lane, b, c, d in the next ones: vpermw
 * indices that give each lane one scale */
static inline __m512i lanes16(int a, int b, int c, int d) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_setr_m128i(_mm_set1_epi16((short)a), _mm_set1_epi16((short)b))),
                              _mm256_setr_m128i(_mm_set1_epi16((short)c), _mm_set1_epi16((short)d)), 1);
}

/* the 16 i32 lanes of q as 8 (low half + high half), for k_reduce */
static inline __m256i fold512(__m512i q) {
    return _mm256_add_epi32(_mm512_castsi512_si256(q), _mm512_extracti64x4_epi64(q, 1));
}

static void q6_K_vec_dot_512(int64_t n, float *s, const void *vx, const void *vy) {
    const sk_block_q6_K *x = vx;
    const sk_block_q8_K *y = vy;
    const __m512i m4 = _mm512_set1_epi8(15), m2 = _mm512_set1_epi8(0x30);
    const __m512i sl01 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);  /* qh << 4, << 2 */
    const __m512i sr23 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1); /* qh, qh >> 2 */
    __m128 acc = _mm_setzero_ps();
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        K_PREFETCH(&x[i], sizeof(sk_block_q6_K));
        const __m256i sc16 = _mm256_cvtepi8_epi16(load16(x[i].scales)); /* all 16 scales as i16 */
        const __m512i sc = _mm512_castsi256_si512(sc16);
        __m512i sumq = _mm512_setzero_si512();
        UNROLL
        for (int h = 0; h < 2; h++) {
            const __m512i ql = _mm512_loadu_si512(x[i].ql + 64 * h); /* ql0 | ql1 */
            const __m512i qh = _mm512_broadcast_i64x4(load32(x[i].qh + 32 * h));
            const __m512i q01 = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_sllv_epi16(qh, sl01), m2));
            const __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                                _mm512_and_si512(_mm512_srlv_epi16(qh, sr23), m2));
            const int b = 8 * h;
            sumq = _mm512_dpwssd_epi32(sumq, _mm512_maddubs_epi16(q01, _mm512_loadu_si512(y[i].qs + 128 * h)),
                                       _mm512_permutexvar_epi16(lanes16(b, b + 1, b + 2, b + 3), sc));
            sumq = _mm512_dpwssd_epi32(sumq, _mm512_maddubs_epi16(q23, _mm512_loadu_si512(y[i].qs + 128 * h + 64)),
                                       _mm512_permutexvar_epi16(lanes16(b + 4, b + 5, b + 6, b + 7), sc));
        }
        /* less 32 sum_g sc_g bsum_g, the -32 offset of every q */
        const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc16, load32(y[i].bsums)), 5);
        acc = k_accum(acc, _mm_set_ss(h2f(x[i].d)), y[i].d,
                      k_reduce(_mm256_sub_epi32(fold512(sumq), off), _mm256_setzero_si256()));
    }
    *s = _mm_cvtss_f32(acc);
}

/* Override the AVX-512 VNNI K-quant entries of table (applied after the
 * AVX2 ones). */
void sk_quant_register_k_avx512(sk_type_traits *t) {
    k_register(t);
    sk_quant_register_k16_avx512(t); /* pre-fill: 16 rows at a time (quant_k16_avx512.c) */
    if (sk_cpu_wide512()) sk_quant_register_k_wide_avx512(t); /* decode: whole 512-bit registers */
}

void sk_quant_register_k_wide_avx512(sk_type_traits *t) { t[SK_TYPE_Q6_K].vec_dot = q6_K_vec_dot_512; }
