/* quant_ref.c - scalar reference implementation of every tensor format.
 *
 * This file is the definition of each format: the SIMD files must agree with
 * it (tests/test_quant.c checks they do). Block layouts and numerics follow
 * ggml's so that results match llama.cpp's CPU backend:
 *   - Q8_0/Q8_1 activations: d = amax / 127, q = roundf(x / d) (ggml's
 *     quantize_row_q8_0_ref; note ggml's x86 SIMD quantizer, which our
 *     SIMD files copy numerically, uses q = rint(x * (127 / amax)) instead,
 *     so the two may differ by one in rare ties);
 *     Q8_1's s = f16(d * sum(q)).
 *   - Q8_K activations: iscale = -127 / max (max = the signed element of
 *     largest magnitude), q = min(127, rint(iscale * x)), d = 1 / iscale.
 *   - dot types: Q4_0, Q5_0, Q8_0 -> Q8_0; Q4_1, Q5_1 -> Q8_1; K-quants ->
 *     Q8_K; F32 -> F32; F16 -> F16; BF16 -> BF16 (as in ggml: the
 *     activations are rounded to bf16 too).
 *   - block dot: integer sum of q products, then sumf += sumi * (dx * dy)
 *     (+ mx * sy for the _1 formats, - dmin * dy * sum(m * bsums) for K).
 * The weight quantizers (from_float of Q4_0..Q5_1 follow ggml's reference
 * exactly; those of the K-quants are a simple min/max fit, not ggml's
 * search) exist to make test data.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "quant_impl.h"

/* round to nearest, ties to even (the default rounding mode) */
static inline int nearest_int(float v) { return (int)lrintf(v); }

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The element of largest magnitude of x[0..n) with its sign (the first such,
 * 0 if all are 0); *amax = its magnitude. */
static inline float signed_max(const float *x, int n, float *amax) {
    float a = 0, max = 0;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > a) {
            a = fabsf(x[j]);
            max = x[j];
        }
    *amax = a;
    return max;
}

/* smallest and largest of x[0..SK_QK) */
static inline void min_max(const float *x, float *min, float *max) {
    float mn = INFINITY, mx = -INFINITY;
    for (int j = 0; j < SK_QK; j++) {
        mn = x[j] < mn ? x[j] : mn;
        mx = x[j] > mx ? x[j] : mx;
    }
    *min = mn;
    *max = mx;
}

/* q[j] = min(qmax, trunc((x[j] - sub) * id + off)) for j < 32 (the weight
 * quantizers' rounding; sub = 0 for the symmetric formats). */
static inline void block_quants(const float *x, float sub, float id, float off, int qmax, int q[SK_QK]) {
    for (int j = 0; j < SK_QK; j++) {
        int v = (int8_t)((x[j] - sub) * id + off);
        q[j] = v > qmax ? qmax : v;
    }
}

/* Low nibbles of q[0..32) into qs (element j and j + 16 share byte j) and,
 * where qh4 is not NULL, bit 4 of each into the 32 bits of qh4. */
static inline void pack_nibbles(const int q[SK_QK], uint8_t qs[SK_QK / 2], uint8_t *qh4) {
    uint32_t qh = 0;
    for (int j = 0; j < SK_QK / 2; j++) {
        qs[j] = (uint8_t)((q[j] & 15) | ((q[j + 16] & 15) << 4));
        qh |= (uint32_t)(q[j] >> 4) << j;
        qh |= (uint32_t)(q[j + 16] >> 4) << (j + 16);
    }
    if (qh4)
        memcpy(qh4, &qh, 4);
}

/* ---- F32, F16, BF16 ----------------------------------------------------- */

static void f32_to_float(const void *x, float *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof *y); }
static void f32_from_float(const float *x, void *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof *x); }

/* *s = sum x[i] * y[i], accumulated in double */
static void f32_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    double sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)x[i] * y[i];
    *s = (float)sum;
}

/* F16 and BF16: to_float and from_float element by element (TO, FROM);
 * *s = sum f32(x[i]) * f32(y[i]) accumulated in double (DOT_TO widens). */
#define HALF_FORMAT(name, TO, FROM, DOT_TO)                                                        \
    static void name##_to_float(const void *vx, float *y, int64_t n) {                             \
        const uint16_t *x = vx;                                                                    \
        for (int64_t i = 0; i < n; i++)                                                            \
            y[i] = TO(x[i]);                                                                       \
    }                                                                                              \
    static void name##_from_float(const float *x, void *vy, int64_t n) {                           \
        uint16_t *y = vy;                                                                          \
        for (int64_t i = 0; i < n; i++)                                                            \
            y[i] = FROM(x[i]);                                                                     \
    }                                                                                              \
    static void name##_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {              \
        const uint16_t *x = vx, *y = vy;                                                           \
        double sum = 0;                                                                            \
        for (int64_t i = 0; i < n; i++)                                                            \
            sum += (double)DOT_TO(x[i]) * DOT_TO(y[i]);                                            \
        *s = (float)sum;                                                                           \
    }

HALF_FORMAT(f16, sk_f16_to_f32, sk_f32_to_f16, sk_h2f)
HALF_FORMAT(bf16, sk_bf16_to_f32, sk_f32_to_bf16, sk_bf16_to_f32)

/* ---- Q4_0, Q4_1, Q5_0, Q5_1 ------------------------------------------------
 * 32 quants q, element j and j + 16 in the low and high nibble of qs[j];
 * Q5_x add bit j of the 32-bit qh as bit 4 of q.
 *   Q4_0: x = (q - 8) d        Q4_1: x = q d + m
 *   Q5_0: x = (q - 16) d       Q5_1: x = q d + m
 * vec_dot: per block, the exact integer sum of (q - off) qy, then
 * sumf += sumi (dx dy) (+ mx sy for the _1 formats, sy = dy sum(qy)). */

/* The quants of elements j and j + 16 (j < 16): nibbles of qs[j], and bit
 * 4 from bits j and j + 16 of qh4 where it is not NULL (Q5_x). */
static inline void nibble_pair(const uint8_t *qs, const uint8_t *qh4, int j, int *q0, int *q1) {
    *q0 = qs[j] & 15;
    *q1 = qs[j] >> 4;
    if (qh4) {
        uint32_t qh;
        memcpy(&qh, qh4, 4);
        *q0 |= ((qh >> j) & 1) << 4;
        *q1 |= ((qh >> (j + 16)) & 1) << 4;
    }
}

/* y[0..32): (q - off) d where m is NULL, else q d + *m */
static inline void nibble_block_to_float(const uint8_t *qs, const uint8_t *qh4, int off, float d,
                                         const float *m, float *y) {
    for (int j = 0; j < SK_QK / 2; j++) {
        int q0, q1;
        nibble_pair(qs, qh4, j, &q0, &q1);
        y[j] = m ? q0 * d + *m : (q0 - off) * d;
        y[j + 16] = m ? q1 * d + *m : (q1 - off) * d;
    }
}

/* sum over the block of (q - off) * qy */
static inline int nibble_block_dot(const uint8_t *qs, const uint8_t *qh4, int off, const int8_t *qy) {
    int sumi = 0;
    for (int j = 0; j < SK_QK / 2; j++) {
        int q0, q1;
        nibble_pair(qs, qh4, j, &q0, &q1);
        sumi += (q0 - off) * qy[j] + (q1 - off) * qy[j + 16];
    }
    return sumi;
}

/* to_float, from_float and vec_dot of a symmetric (_0, activations Q8_0)
 * format, q in 0..QMAX, x = (q - OFF) d. from_float: d = max / -OFF with
 * max the signed element of largest magnitude, so that it maps to q = 0
 * exactly; q = min(QMAX, trunc(x / d + OFF + 0.5)). */
#define NIBBLE_FORMAT_0(name, T, QH, OFF, QMAX)                                                    \
    static void name##_from_float(const float *x, void *vy, int64_t n) {                           \
        T *y = vy;                                                                                 \
        for (int64_t i = 0; i < n / SK_QK; i++, x += SK_QK) {                                      \
            float amax, max = signed_max(x, SK_QK, &amax);                                         \
            float d = max / -(OFF), id = d ? 1.0f / d : 0.0f;                                      \
            y[i].d = sk_f32_to_f16(d);                                                             \
            int q[SK_QK];                                                                          \
            block_quants(x, 0, id, (OFF) + 0.5f, QMAX, q);                                         \
            pack_nibbles(q, y[i].qs, QH(y[i]));                                                    \
        }                                                                                          \
    }                                                                                              \
    static void name##_to_float(const void *vx, float *y, int64_t n) {                             \
        const T *x = vx;                                                                           \
        for (int64_t i = 0; i < n / SK_QK; i++, y += SK_QK)                                        \
            nibble_block_to_float(x[i].qs, QH(x[i]), OFF, sk_h2f(x[i].d), NULL, y);                \
    }                                                                                              \
    static void name##_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {              \
        const T *x = vx;                                                                           \
        const sk_block_q8_0 *y = vy;                                                               \
        float sumf = 0;                                                                            \
        for (int64_t i = 0; i < n / SK_QK; i++)                                                    \
            sumf += (float)nibble_block_dot(x[i].qs, QH(x[i]), OFF, y[i].qs) * (sk_h2f(x[i].d) * sk_h2f(y[i].d)); \
        *s = sumf;                                                                                 \
    }

/* The same for a format with a min (_1, activations Q8_1), x = q d + m.
 * from_float: m = min, d = (max - min) / QMAX,
 * q = min(QMAX, trunc((x - m) / d + 0.5)). */
#define NIBBLE_FORMAT_1(name, T, QH, QMAX)                                                         \
    static void name##_from_float(const float *x, void *vy, int64_t n) {                           \
        T *y = vy;                                                                                 \
        for (int64_t i = 0; i < n / SK_QK; i++, x += SK_QK) {                                      \
            float min, max;                                                                        \
            min_max(x, &min, &max);                                                                \
            float d = (max - min) / (QMAX), id = d ? 1.0f / d : 0.0f;                              \
            y[i].d = sk_f32_to_f16(d);                                                             \
            y[i].m = sk_f32_to_f16(min);                                                           \
            int q[SK_QK];                                                                          \
            block_quants(x, min, id, 0.5f, QMAX, q);                                               \
            pack_nibbles(q, y[i].qs, QH(y[i]));                                                    \
        }                                                                                          \
    }                                                                                              \
    static void name##_to_float(const void *vx, float *y, int64_t n) {                             \
        const T *x = vx;                                                                           \
        for (int64_t i = 0; i < n / SK_QK; i++, y += SK_QK) {                                      \
            float m = sk_h2f(x[i].m);                                                              \
            nibble_block_to_float(x[i].qs, QH(x[i]), 0, sk_h2f(x[i].d), &m, y);                    \
        }                                                                                          \
    }                                                                                              \
    static void name##_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {              \
        const T *x = vx;                                                                           \
        const sk_block_q8_1 *y = vy;                                                               \
        float sumf = 0;                                                                            \
        for (int64_t i = 0; i < n / SK_QK; i++)                                                    \
            sumf += (float)nibble_block_dot(x[i].qs, QH(x[i]), 0, y[i].qs) * (sk_h2f(x[i].d) * sk_h2f(y[i].d)) + \
                    sk_h2f(x[i].m) * sk_h2f(y[i].s);                                               \
        *s = sumf;                                                                                 \
    }

/* QH(block): the block's qh, or NULL for the 4-bit formats */
#define NO_QH(b) NULL
#define Q5_QH(b) (b).qh
NIBBLE_FORMAT_0(q4_0, sk_block_q4_0, NO_QH, 8, 15)
NIBBLE_FORMAT_1(q4_1, sk_block_q4_1, NO_QH, 15)
NIBBLE_FORMAT_0(q5_0, sk_block_q5_0, Q5_QH, 16, 31)
NIBBLE_FORMAT_1(q5_1, sk_block_q5_1, Q5_QH, 31)

/* ---- Q8_0 / Q8_1: x = q * d ----------------------------------------------- */

/* y[0..32) = qs * d */
static inline void q8_block_to_float(const int8_t *qs, float d, float *y) {
    for (int j = 0; j < SK_QK; j++)
        y[j] = qs[j] * d;
}

/* d = amax / 127, qs = roundf(x / d) (ggml's quantize_row_q8_0_ref); returns d */
static inline float q8_block_quantize(const float *x, int8_t *qs) {
    float amax = 0;
    for (int j = 0; j < SK_QK; j++)
        amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    float d = amax / 127, id = d ? 1.0f / d : 0.0f;
    for (int j = 0; j < SK_QK; j++)
        qs[j] = (int8_t)roundf(x[j] * id);
    return d;
}

static void q8_0_to_float(const void *vx, float *y, int64_t n) {
    const sk_block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / SK_QK; i++, y += SK_QK)
        q8_block_to_float(x[i].qs, sk_h2f(x[i].d), y);
}

static void q8_0_from_float(const float *x, void *vy, int64_t n) {
    sk_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / SK_QK; i++, x += SK_QK)
        y[i].d = sk_f32_to_f16(q8_block_quantize(x, y[i].qs));
}

static void q8_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const sk_block_q8_0 *x = vx, *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / SK_QK; i++) {
        int sumi = 0;
        for (int j = 0; j < SK_QK; j++)
            sumi += x[i].qs[j] * y[i].qs[j];
        sumf += (float)sumi * (sk_h2f(x[i].d) * sk_h2f(y[i].d));
    }
    *s = sumf;
}

static void q8_1_to_float(const void *vx, float *y, int64_t n) {
    const sk_block_q8_1 *x = vx;
    for (int64_t i = 0; i < n / SK_QK; i++, y += SK_QK)
        q8_block_to_float(x[i].qs, sk_h2f(x[i].d), y);
}

/* as Q8_0, plus s = f16(d * sum(q)) with d the float (not the rounded f16) */
static void q8_1_from_float(const float *x, void *vy, int64_t n) {
    sk_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / SK_QK; i++, x += SK_QK) {
        float d = q8_block_quantize(x, y[i].qs);
        int sum = 0;
        for (int j = 0; j < SK_QK; j++)
            sum += y[i].qs[j];
        y[i].d = sk_f32_to_f16(d);
        y[i].s = sk_f32_to_f16((float)sum * d);
    }
}

/* ---- Q8_K: x = q * d (f32 d), bsums = sums of 16 ------------------------- */

static void q8_K_to_float(const void *vx, float *y, int64_t n) {
    const sk_block_q8_K *x = vx;
    for (int64_t i = 0; i < n / SK_QK_K; i++, y += SK_QK_K)
        for (int j = 0; j < SK_QK_K; j++)
            y[j] = x[i].qs[j] * x[i].d;
}

static void q8_K_from_float(const float *x, void *vy, int64_t n) {
    sk_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / SK_QK_K; i++, x += SK_QK_K) {
        float amax, max = signed_max(x, SK_QK_K, &amax);
        if (amax == 0) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float iscale = -127.f / max;
        for (int j = 0; j < SK_QK_K; j++) {
            int v = nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int g = 0; g < SK_QK_K / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += y[i].qs[g * 16 + l];
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- Q4_K / Q5_K ----------------------------------------------------------
 * 256 elements = 8 sub-blocks of 32. Sub-block j uses scale sc_j and min m_j
 * (6 bits each, sk_q4k_scale_min): x = d * sc_j * q - dmin * m_j.
 * Nibbles: qs[32 * (j / 2) + l], low nibble for even j, high for odd j.
 * Q5_K adds bit j of qh[l] as bit 4 of q. */

/* Quant l (< 32) of sub-block j (< 8) of a Q4_K block (qh NULL) or of a
 * Q5_K block (bit j of qh[l] is its bit 4). */
static inline int k45_q(const uint8_t *qs, const uint8_t *qh, int j, int l) {
    int q = (qs[32 * (j / 2) + l] >> (4 * (j & 1))) & 15;
    return qh ? q | (((qh[l] >> j) & 1) << 4) : q;
}

/* to_float: x = d sc_j q - dmin m_j. vec_dot: sum over blocks of
 * d dy sum_j(sc_j sum(q qy)) - dmin dy sum_j(m_j (bsum_2j + bsum_2j+1)). */
#define K45_FORMAT(name, T, QH)                                                                    \
    static void name##_to_float(const void *vx, float *y, int64_t n) {                             \
        const T *x = vx;                                                                           \
        for (int64_t i = 0; i < n / SK_QK_K; i++) {                                                \
            float d = sk_h2f(x[i].d), dmin = sk_h2f(x[i].dmin);                                    \
            for (int j = 0; j < 8; j++, y += 32) {                                                 \
                int sc, m;                                                                         \
                sk_q4k_scale_min(j, x[i].scales, &sc, &m);                                         \
                float d1 = d * sc, m1 = dmin * m;                                                  \
                for (int l = 0; l < 32; l++)                                                       \
                    y[l] = d1 * k45_q(x[i].qs, QH, j, l) - m1;                                     \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    static void name##_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {              \
        const T *x = vx;                                                                           \
        const sk_block_q8_K *y = vy;                                                               \
        float sumf = 0;                                                                            \
        for (int64_t i = 0; i < n / SK_QK_K; i++) {                                                \
            int sumq = 0, summ = 0;                                                                \
            for (int j = 0; j < 8; j++) {                                                          \
                int sc, m, si = 0;                                                                 \
                sk_q4k_scale_min(j, x[i].scales, &sc, &m);                                         \
                const int8_t *q8 = y[i].qs + 32 * j;                                               \
                for (int l = 0; l < 32; l++)                                                       \
                    si += k45_q(x[i].qs, QH, j, l) * q8[l];                                        \
                sumq += sc * si;                                                                   \
                summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);                           \
            }                                                                                      \
            sumf += sk_h2f(x[i].d) * y[i].d * (float)sumq - sk_h2f(x[i].dmin) * y[i].d * (float)summ; \
        }                                                                                          \
        *s = sumf;                                                                                 \
    }

K45_FORMAT(q4_K, sk_block_q4_K, NULL)
K45_FORMAT(q5_K, sk_block_q5_K, x[i].qh)

static void kq_pack_scales(uint8_t s[12], const int sc[8], const int m[8]) {
    memset(s, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] |= (uint8_t)(sc[j] & 63);
            s[j + 4] |= (uint8_t)(m[j] & 63);
        } else {
            s[j + 4] = (uint8_t)((sc[j] & 15) | ((m[j] & 15) << 4));
            s[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            s[j] |= (uint8_t)((m[j] >> 4) << 6);
        }
    }
}

/* Simple fit for test data: per sub-block, min clamped to <= 0 and
 * scale = (max - min) / nmax; super-block d, dmin = largest / 63. Fills
 * d, dmin, scales and q[256] (0..nmax). */
static void kq_fit(const float *x, int nmax, uint16_t *d16, uint16_t *dmin16, uint8_t scales[12],
                   uint8_t q[SK_QK_K]) {
    float fs[8], fm[8], maxs = 0, maxm = 0;
    for (int j = 0; j < 8; j++) {
        float mn = 0, mx = -INFINITY;
        for (int l = 0; l < 32; l++) {
            mn = x[32 * j + l] < mn ? x[32 * j + l] : mn;
            mx = x[32 * j + l] > mx ? x[32 * j + l] : mx;
        }
        fs[j] = (mx - mn) / nmax;
        fm[j] = -mn;
        maxs = fs[j] > maxs ? fs[j] : maxs;
        maxm = fm[j] > maxm ? fm[j] : maxm;
    }
    *d16 = sk_f32_to_f16(maxs / 63);
    *dmin16 = sk_f32_to_f16(maxm / 63);
    float d = sk_f16_to_f32(*d16), dmin = sk_f16_to_f32(*dmin16);
    int sc[8], m[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = d > 0 ? clampi(nearest_int(fs[j] / d), 0, 63) : 0;
        m[j] = dmin > 0 ? clampi(nearest_int(fm[j] / dmin), 0, 63) : 0;
        float step = d * sc[j], off = dmin * m[j];
        for (int l = 0; l < 32; l++)
            q[32 * j + l] = (uint8_t)(step > 0 ? clampi(nearest_int((x[32 * j + l] + off) / step), 0, nmax) : 0);
    }
    kq_pack_scales(scales, sc, m);
}

static void q4_K_from_float(const float *x, void *vy, int64_t n) {
    sk_block_q4_K *y = vy;
    uint8_t q[SK_QK_K];
    for (int64_t i = 0; i < n / SK_QK_K; i++, x += SK_QK_K) {
        kq_fit(x, 15, &y[i].d, &y[i].dmin, y[i].scales, q);
        for (int j = 0; j < 8; j += 2)
            for (int l = 0; l < 32; l++)
                y[i].qs[16 * j + l] = (uint8_t)(q[32 * j + l] | (q[32 * (j + 1) + l] << 4));
    }
}

static void q5_K_from_float(const float *x, void *vy, int64_t n) {
    sk_block_q5_K *y = vy;
    uint8_t q[SK_QK_K];
    for (int64_t i = 0; i < n / SK_QK_K; i++, x += SK_QK_K) {
        kq_fit(x, 31, &y[i].d, &y[i].dmin, y[i].scales, q);
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int j = 0; j < 8; j++)
            for (int l = 0; l < 32; l++)
                y[i].qh[l] |= (uint8_t)((q[32 * j + l] >> 4) << j);
        for (int j = 0; j < 8; j += 2)
            for (int l = 0; l < 32; l++)
                y[i].qs[16 * j + l] = (uint8_t)((q[32 * j + l] & 15) | ((q[32 * (j + 1) + l] & 15) << 4));
    }
}

/* ---- Q6_K -----------------------------------------------------------------
 * 256 elements = 2 halves of 128; in half h, element 32k + l (k < 4, l < 32):
 *   low 4 bits  ql[64h + l + 32 (k & 1)] >> 4 (k >> 1)
 *   high 2 bits qh[32h + l] >> 2k
 *   x = d * scales[e / 16] * (q - 32),  e = 128h + 32k + l. */

static inline int q6_K_q(const sk_block_q6_K *b, int e) {
    int h = e / 128, k = (e % 128) / 32, l = e % 32;
    int lo = (b->ql[64 * h + l + 32 * (k & 1)] >> (4 * (k >> 1))) & 15;
    int hi = (b->qh[32 * h + l] >> (2 * k)) & 3;
    return (lo | (hi << 4)) - 32;
}

static void q6_K_to_float(const void *vx, float *y, int64_t n) {
    const sk_block_q6_K *x = vx;
    for (int64_t i = 0; i < n / SK_QK_K; i++, y += SK_QK_K) {
        float d = sk_h2f(x[i].d);
        for (int e = 0; e < SK_QK_K; e++)
            y[e] = d * x[i].scales[e / 16] * q6_K_q(&x[i], e);
    }
}

/* Simple fit: per 16, scale = amax / 31 (q - 32 in [-31, 31]);
 * d = largest scale / 127. */
static void q6_K_from_float(const float *x, void *vy, int64_t n) {
    sk_block_q6_K *y = vy;
    for (int64_t i = 0; i < n / SK_QK_K; i++, x += SK_QK_K) {
        float fs[16], maxs = 0;
        for (int g = 0; g < 16; g++) {
            float amax = 0;
            for (int l = 0; l < 16; l++)
                amax = fabsf(x[16 * g + l]) > amax ? fabsf(x[16 * g + l]) : amax;
            fs[g] = amax / 31;
            maxs = fs[g] > maxs ? fs[g] : maxs;
        }
        y[i].d = sk_f32_to_f16(maxs / 127);
        float d = sk_f16_to_f32(y[i].d);
        memset(y[i].ql, 0, sizeof y[i].ql);
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int g = 0; g < 16; g++)
            y[i].scales[g] = (int8_t)(d > 0 ? clampi(nearest_int(fs[g] / d), 0, 127) : 0);
        for (int e = 0; e < SK_QK_K; e++) {
            float step = d * y[i].scales[e / 16];
            int q = (step > 0 ? clampi(nearest_int(x[e] / step), -32, 31) : 0) + 32;
            int h = e / 128, k = (e % 128) / 32, l = e % 32;
            y[i].ql[64 * h + l + 32 * (k & 1)] |= (uint8_t)((q & 15) << (4 * (k >> 1)));
            y[i].qh[32 * h + l] |= (uint8_t)((q >> 4) << (2 * k));
        }
    }
}

static void q6_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const sk_block_q6_K *x = vx;
    const sk_block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        int sumq = 0;
        for (int g = 0; g < 16; g++) {
            int si = 0;
            for (int l = 0; l < 16; l++)
                si += q6_K_q(&x[i], 16 * g + l) * y[i].qs[16 * g + l];
            sumq += x[i].scales[g] * si;
        }
        sumf += sk_h2f(x[i].d) * y[i].d * (float)sumq;
    }
    *s = sumf;
}

/* ---- gemm: the reference is vec_dot in a loop ----------------------------- */

SK_LOOP_GEMM(f32)
SK_LOOP_GEMM(f16)
SK_LOOP_GEMM(bf16)
SK_LOOP_GEMM(q4_0)
SK_LOOP_GEMM(q4_1)
SK_LOOP_GEMM(q5_0)
SK_LOOP_GEMM(q5_1)
SK_LOOP_GEMM(q8_0)
SK_LOOP_GEMM(q4_K)
SK_LOOP_GEMM(q5_K)
SK_LOOP_GEMM(q6_K)

/* ---- the table ------------------------------------------------------------ */

#define WEIGHT(T, nm, bl, sz, dt, p)                                                               \
    t[T] = (sk_type_traits){.name = nm, .blck = bl, .size = sz, .is_weight = 1, .dot_type = dt,    \
                            .to_float = p##_to_float, .from_float = p##_from_float,                \
                            .vec_dot = p##_vec_dot, .gemm = p##_gemm}
#define ACT(T, nm, bl, sz, p)                                                                      \
    t[T] = (sk_type_traits){.name = nm, .blck = bl, .size = sz, .is_weight = 0, .dot_type = T,     \
                            .to_float = p##_to_float, .from_float = p##_from_float}

/* Fill t[0..SK_TYPE_COUNT) with the reference; unsupported entries zeroed. */
void sk_quant_ref_fill(sk_type_traits *t) {
    memset(t, 0, SK_TYPE_COUNT * sizeof *t);
    WEIGHT(SK_TYPE_F32, "F32", 1, 4, SK_TYPE_F32, f32);
    WEIGHT(SK_TYPE_F16, "F16", 1, 2, SK_TYPE_F16, f16);
    WEIGHT(SK_TYPE_BF16, "BF16", 1, 2, SK_TYPE_BF16, bf16);
    WEIGHT(SK_TYPE_Q4_0, "Q4_0", SK_QK, sizeof(sk_block_q4_0), SK_TYPE_Q8_0, q4_0);
    WEIGHT(SK_TYPE_Q4_1, "Q4_1", SK_QK, sizeof(sk_block_q4_1), SK_TYPE_Q8_1, q4_1);
    WEIGHT(SK_TYPE_Q5_0, "Q5_0", SK_QK, sizeof(sk_block_q5_0), SK_TYPE_Q8_0, q5_0);
    WEIGHT(SK_TYPE_Q5_1, "Q5_1", SK_QK, sizeof(sk_block_q5_1), SK_TYPE_Q8_1, q5_1);
    WEIGHT(SK_TYPE_Q8_0, "Q8_0", SK_QK, sizeof(sk_block_q8_0), SK_TYPE_Q8_0, q8_0);
    WEIGHT(SK_TYPE_Q4_K, "Q4_K", SK_QK_K, sizeof(sk_block_q4_K), SK_TYPE_Q8_K, q4_K);
    WEIGHT(SK_TYPE_Q5_K, "Q5_K", SK_QK_K, sizeof(sk_block_q5_K), SK_TYPE_Q8_K, q5_K);
    WEIGHT(SK_TYPE_Q6_K, "Q6_K", SK_QK_K, sizeof(sk_block_q6_K), SK_TYPE_Q8_K, q6_K);
    ACT(SK_TYPE_Q8_1, "Q8_1", SK_QK, sizeof(sk_block_q8_1), q8_1);
    ACT(SK_TYPE_Q8_K, "Q8_K", SK_QK_K, sizeof(sk_block_q8_K), q8_K);
}
