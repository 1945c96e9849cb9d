/* vec_avx512.c - AVX-512 attention kernels (see vec.h): the AVX2 kernels'
 * design 16 lanes wide, with the reference's bits.
 *
 * Every lane repeats the scalar reference's operations (vec_ref.c) as the
 * AVX2 kernels do (vec_avx2.c, whose comments give the order): a score is
 * sum_i q_i k_i in index order, one rounded multiply and one rounded add a
 * term (no FMA: the file is compiled -std=c11, which does not contract);
 * an output element adds w v key by key; exp is libm's expf computed in
 * double, now 8 lanes to a register with the 32-entry table held in four
 * registers (permutes, not gathers); the exp sum keeps the reference's
 * eight partial sums, one per lane of a double register. So this file and
 * vec_avx2.c return the same bits (tests/test_vec.c holds both to the
 * reference) and the choice between them (vec.c) changes speed only.
 *
 * Where it pays: a CPU that runs 512-bit operations at full width (Zen 5,
 * Intel's AVX-512 cores) does twice the lanes a cycle. Zen 4 splits them
 * in two, and its numbers for the earlier 16-key kernels were slower there
 * (vec_impl.h), so vec.c keeps the AVX2 kernels on it. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "simd256.h"
#include "vec_exp.h"
#include "vec_impl.h"

#define INLINE static inline __attribute__((always_inline))
#define VF_LOADH(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))

/* ---- scores -------------------------------------------------------------------
 * Keys 16 to a register, KG registers (32 keys) per block, widened and
 * transposed once into kt (hd, 16) per group and used by every query. A
 * tile runs NQ queries x KG groups = up to 8 independent add chains. */
#define KG 2

/* keys [j0, j0 + nb) of K (F16, (n, hd)) widened and transposed into kt
 * (hd, 16): kt[i * 16 + j] = K[j0 + j][i]; lanes nb..15 zero. Two 8 x 8
 * dword transposes per 8 columns (simd256.h). */
static void widen_t16(const uint16_t *K, int64_t j0, int nb, int hd, float *kt) {
    for (int c = 0; c < hd; c += 8)
        for (int h = 0; h < 2; h++) {
            __m256i r[8];
            for (int j = 0; j < 8; j++) {
                const int key = 8 * h + j;
                r[j] = key < nb ? _mm256_castps_si256(VF_LOADH(K + (size_t)(j0 + key) * hd + c))
                                : _mm256_setzero_si256();
            }
            transpose8_epi32(r);
            for (int e = 0; e < 8; e++) _mm256_store_si256((__m256i *)(kt + (size_t)(c + e) * 16 + 8 * h), r[e]);
        }
}

/* scores of NQ queries against KG groups of 16 keys (group g's (hd, 16)
 * tile at kt + g * hd * 16); nk (<= 16 KG) keys are real, the other
 * lanes are not stored */
INLINE void kq_tile(const int NQ, int hd, const float *kt, const float *q, float scale, float *s, size_t ss,
                    int nk) {
    __m512 acc[4][KG];
    for (int k = 0; k < NQ; k++)
        for (int g = 0; g < KG; g++) acc[k][g] = _mm512_setzero_ps();
    for (int i = 0; i < hd; i++) {
        __m512 kv[KG];
        for (int g = 0; g < KG; g++) kv[g] = _mm512_load_ps(kt + (size_t)g * hd * 16 + (size_t)i * 16);
        for (int k = 0; k < NQ; k++) {
            const __m512 qb = _mm512_set1_ps(q[(size_t)k * hd + i]);
            for (int g = 0; g < KG; g++) acc[k][g] = _mm512_add_ps(acc[k][g], _mm512_mul_ps(qb, kv[g]));
        }
    }
    const __m512 sc = _mm512_set1_ps(scale);
    for (int k = 0; k < NQ; k++)
        for (int g = 0; g < KG && 16 * g < nk; g++) {
            const int m = nk - 16 * g >= 16 ? 16 : nk - 16 * g;
            _mm512_mask_storeu_ps(s + (size_t)k * ss + 16 * g, (__mmask16)((1u << m) - 1), _mm512_mul_ps(acc[k][g], sc));
        }
}

/* s[i * ss + j] = scale * q_i . K_j, 16 KG keys at a time, 4 (then 3, 2,
 * 1) queries at a time. hd % 16 == 0, hd <= 256. */
static void kq_f16_blocked(int64_t n, int hd, const uint16_t *K, int nq, const float *q, float scale,
                           float *s, size_t ss) {
    _Alignas(64) float kt[KG * 256 * 16];
    for (int64_t j0 = 0; j0 < n; j0 += 16 * KG) {
        const int nk = n - j0 < 16 * KG ? (int)(n - j0) : 16 * KG;
        for (int g = 0; g < KG && 16 * g < nk; g++) {
            const int nb = nk - 16 * g > 16 ? 16 : nk - 16 * g;
            widen_t16(K, j0 + 16 * g, nb, hd, kt + (size_t)g * hd * 16);
        }
        int i = 0;
        for (; i + 4 <= nq; i += 4) kq_tile(4, hd, kt, q + (size_t)i * hd, scale, s + (size_t)i * ss + j0, ss, nk);
        const float *qi = q + (size_t)i * hd;
        float *si = s + (size_t)i * ss + j0;
        switch (nq - i) {
        case 3: kq_tile(3, hd, kt, qi, scale, si, ss, nk); break;
        case 2: kq_tile(2, hd, kt, qi, scale, si, ss, nk); break;
        case 1: kq_tile(1, hd, kt, qi, scale, si, ss, nk); break;
        default: break;
        }
    }
}

/* ---- weighted values ------------------------------------------------------------ */

/* columns [0, w) of rows [j0, j0 + nb) of V (F16, row stride vs) widened
 * into vb (nb, w) floats */
#define VB 16
static void widen16(const uint16_t *V, size_t vs, int64_t j0, int nb, int w, float *vb) {
    for (int j = 0; j < nb; j++)
        for (int c = 0; c < w; c += 16)
            _mm512_store_ps(vb + j * w + c,
                            _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(V + (size_t)(j0 + j) * vs + c))));
}

/* out_i[c .. c + 16 NV) += a_i[j] V_j for the NQ queries i of the tile and
 * its rows j in order: NQ x NV accumulators */
INLINE void av_tile(const int NQ, const int NV, int nb, int w, const float *vb, const float *a, size_t as,
                    float *o, size_t os, int c) {
    __m512 acc[4][4];
    for (int k = 0; k < NQ; k++)
        for (int t = 0; t < NV; t++) acc[k][t] = _mm512_loadu_ps(o + (size_t)k * os + c + 16 * t);
    for (int j = 0; j < nb; j++) {
        __m512 v[4];
        for (int t = 0; t < NV; t++) v[t] = _mm512_load_ps(vb + j * w + c + 16 * t);
        for (int k = 0; k < NQ; k++) {
            const __m512 wt = _mm512_set1_ps(a[(size_t)k * as + j]);
            for (int t = 0; t < NV; t++) acc[k][t] = _mm512_add_ps(acc[k][t], _mm512_mul_ps(wt, v[t]));
        }
    }
    for (int k = 0; k < NQ; k++)
        for (int t = 0; t < NV; t++) _mm512_storeu_ps(o + (size_t)k * os + c + 16 * t, acc[k][t]);
}

/* NQ queries over all w columns: 64 at a time, then 16 */
INLINE void av_rows(const int NQ, int nb, int w, const float *vb, const float *a, size_t as, float *o, size_t os) {
    int c = 0;
    for (; c + 64 <= w; c += 64) av_tile(NQ, 4, nb, w, vb, a, as, o, os, c);
    for (; c + 32 <= w; c += 32) av_tile(NQ, 2, nb, w, vb, a, as, o, os, c);
    for (; c < w; c += 16) av_tile(NQ, 1, nb, w, vb, a, as, o, os, c);
}

/* out[i * os + d] += sum_j a[i * as + j] V[j * vs + d], d < w: values
 * widened VB rows at a time, queries 4 at a time. w % 16 == 0, w <= 256. */
static void av_f16_blocked(int64_t n, int w, const uint16_t *V, size_t vs, int nq, const float *a,
                           size_t as, float *out, size_t os) {
    _Alignas(64) float vb[VB * 256];
    for (int64_t j0 = 0; j0 < n; j0 += VB) {
        const int nb = n - j0 < VB ? (int)(n - j0) : VB;
        widen16(V, vs, j0, nb, w, vb);
        int i = 0;
        for (; i + 4 <= nq; i += 4) av_rows(4, nb, w, vb, a + (size_t)i * as + j0, as, out + (size_t)i * os, os);
        const float *ai = a + (size_t)i * as + j0;
        float *oi = out + (size_t)i * os;
        switch (nq - i) {
        case 3: av_rows(3, nb, w, vb, ai, as, oi, os); break;
        case 2: av_rows(2, nb, w, vb, ai, as, oi, os); break;
        case 1: av_rows(1, nb, w, vb, ai, as, oi, os); break;
        default: break;
        }
    }
}

static int blocked_fits(int w) { return w % 16 == 0 && w <= 256; }

static void kq_f16(int64_t n, int hd, const uint16_t *K, int n_rep, const float *q, float scale,
                   float *s, size_t ss) {
    if (blocked_fits(hd)) kq_f16_blocked(n, hd, K, n_rep, q, scale, s, ss);
    else sk_vec_kq_f16_ref(n, hd, K, n_rep, q, scale, s, ss);
}

/* Fewer than four queries (a decode token's group) take AVX2's kernel:
 * measured in decode after 2,048 tokens (SmolLM2, 2 threads, Zen 5), this
 * file's kernel with 3 queries over 32-column slices gave 192-215
 * tokens/s against AVX2's 220-250, though it is faster alone on the same
 * shape (bench/vec-bench.c: 5.6 against 7.4 us); with a chunk's queries
 * it is 2x AVX2's. Both give the reference's bits, so the switch does not
 * change a result. */
static void av_f16(int64_t n, int w, const uint16_t *V, size_t vs, int n_rep, const float *a, size_t as,
                   float *out, size_t os) {
    if (n_rep < 4) sk_vec_av_f16_avx2(n, w, V, vs, n_rep, a, as, out, os);
    else if (blocked_fits(w)) av_f16_blocked(n, w, V, vs, n_rep, a, as, out, os);
    else sk_vec_av_f16_ref(n, w, V, vs, n_rep, a, as, out, os);
}

/* ---- max: exact whatever the order ----------------------------------------------- */

/* max_ps(x, acc) keeps acc where x is NaN, as the reference's x > mx does */
static float vmax(const float *a, int64_t n) {
    __m512 acc = _mm512_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) acc = _mm512_max_ps(_mm512_loadu_ps(a + j), acc);
    float mx = _mm512_reduce_max_ps(acc);
    for (; j < n; j++) mx = a[j] > mx ? a[j] : mx;
    return mx;
}

/* ---- exp with libm's bits -----------------------------------------------------------
 * The method, constants and range (vec_exp.h) and table (sk_vec_exp2_tab)
 * of vec_avx2.c's expf4_libm, eight lanes of doubles to a register: the same double
 * operations per lane, so the same bits (libm's). */

/* expf of 8 floats in libm's plain path, in double */
INLINE __m256 expf8_plain(__m256 x) {
    const __m512d inv = _mm512_set1_pd(SK_EXPF_INV), shift = _mm512_set1_pd(SK_EXPF_SHIFT);
    const __m512d xd = _mm512_cvtps_pd(x);
    __m512d kd = _mm512_fmadd_pd(xd, inv, shift);
    const __m512i ki = _mm512_castpd_si512(kd);
    kd = _mm512_sub_pd(kd, shift);
    const __m512d r = _mm512_fmsub_pd(xd, inv, kd);
    const uint64_t *tab = sk_vec_exp2_tab;
    const __m512i lo = _mm512_permutex2var_epi64(_mm512_loadu_si512(tab), ki, _mm512_loadu_si512(tab + 8));
    const __m512i hi = _mm512_permutex2var_epi64(_mm512_loadu_si512(tab + 16), ki, _mm512_loadu_si512(tab + 24));
    __m512i t = _mm512_mask_blend_epi64(_mm512_test_epi64_mask(ki, _mm512_set1_epi64(16)), lo, hi);
    t = _mm512_add_epi64(t, _mm512_slli_epi64(ki, 47));
    const __m512d c0 = _mm512_set1_pd(SK_EXPF_C0), c1 = _mm512_set1_pd(SK_EXPF_C1), c2 = _mm512_set1_pd(SK_EXPF_C2);
    const __m512d z = _mm512_fmadd_pd(c0, r, c1), r2 = _mm512_mul_pd(r, r);
    __m512d y = _mm512_fmadd_pd(c2, r, _mm512_set1_pd(1.0));
    y = _mm512_fmadd_pd(z, r2, y);
    return _mm512_cvtpd_ps(_mm512_mul_pd(y, _mm512_castsi512_pd(t)));
}

/* expf of 8 floats: libm's bits (libm itself for all 8 when a lane is off
 * the plain path, as vec_avx2.c does) */
INLINE __m256 expf8_libm(__m256 x) {
    return sk_expf8_plain_ok(x) ? expf8_plain(x) : sk_expf8_by_libm(x);
}

/* The reference's exp_sum: each block of 8 summed into the eight partial
 * sums p0..p7 (the lanes of one double register), joined as ((p0 + p4) +
 * (p2 + p6)) + ((p1 + p5) + (p3 + p7)), then the tail in order. */
static float exp_sum(float *a, int64_t n, float mx) {
    const __m256 m = _mm256_set1_ps(mx);
    __m512d p = _mm512_setzero_pd();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 e = expf8_libm(_mm256_sub_ps(_mm256_loadu_ps(a + j), m));
        _mm256_storeu_ps(a + j, e);
        p = _mm512_add_pd(p, _mm512_cvtps_pd(e));
    }
    const __m256d t = _mm256_add_pd(_mm512_castpd512_pd256(p), _mm512_extractf64x4_pd(p, 1));
    const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(t), _mm256_extractf128_pd(t, 1));
    double sum = _mm_cvtsd_f64(h) + _mm_cvtsd_f64(_mm_unpackhi_pd(h, h));
    for (; j < n; j++) sum += (a[j] = expf(a[j] - mx));
    return (float)sum;
}

/* The reference's SwiGLU, g / (1 + expf(-g)) * u, operation for operation */
static void swiglu(float *g, const float *u, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 x = _mm512_loadu_ps(g + i);
        const __m512 nx = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u)));
        const __m512 e = _mm512_insertf32x8(_mm512_castps256_ps512(expf8_libm(_mm512_castps512_ps256(nx))),
                                            expf8_libm(_mm512_extractf32x8_ps(nx, 1)), 1);
        _mm512_storeu_ps(g + i, _mm512_mul_ps(_mm512_div_ps(x, _mm512_add_ps(one, e)), _mm512_loadu_ps(u + i)));
    }
    for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* Override kq, av, max, exp_sum and SwiGLU of t with this file's kernels
 * (GELU stays AVX2's); the caller must have checked the CPU. */
void sk_vec_register_avx512(sk_vec_kernels *t) {
    t->kq_f16 = kq_f16;
    t->av_f16 = av_f16;
    t->exp_sum = exp_sum;
    t->max = vmax;
    t->swiglu = swiglu;
}
