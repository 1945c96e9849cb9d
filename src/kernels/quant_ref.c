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

/* ---- Q4_0: x = (q - 8) * d ------------------------------------------------ */

static void q4_0_to_float(const void *vx, float *y, int64_t n) {
    const sk_block_q4_0 *x = vx;
    for (int64_t i = 0; i < n / SK_QK; i++, y += SK_QK) {
        float d = sk_h2f(x[i].d);
        for (int j = 0; j < SK_QK / 2; j++) {
            y[j] = ((x[i].qs[j] & 15) - 8) * d;
            y[j + 16] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

/* d = max / -8 where max is the signed element of largest magnitude, so that
 * it maps to q = 0 exactly; q = min(15, trunc(x / d + 8.5)). */
static void q4_0_from_float(const float *x, void *vy, int64_t n) {
    sk_block_q4_0 *y = vy;
    for (int64_t i = 0; i < n / SK_QK; i++, x += SK_QK) {
        float amax = 0, max = 0;
        for (int j = 0; j < SK_QK; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -8, id = d ? 1.0f / d : 0.0f;
        y[i].d = sk_f32_to_f16(d);
        for (int j = 0; j < SK_QK / 2; j++) {
            int q0 = (int8_t)(x[j] * id + 8.5f), q1 = (int8_t)(x[j + 16] * id + 8.5f);
            q0 = q0 > 15 ? 15 : q0;
            q1 = q1 > 15 ? 15 : q1;
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void q4_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const sk_block_q4_0 *x = vx;
    const sk_block_q8_0 *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / SK_QK; i++) {
        int sumi = 0;
        for (int j = 0; j < SK_QK / 2; j++)
            sumi += ((x[i].qs[j] & 15) - 8) * y[i].qs[j] + ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        sumf += (float)sumi * (sk_h2f(x[i].d) * sk_h2f(y[i].d));
    }
    *s = sumf;
}

/* ---- Q4_1: x = q * d + m -------------------------------------------------- */

static void q4_1_to_float(const void *vx, float *y, int64_t n) {
    const sk_block_q4_1 *x = vx;
    for (int64_t i = 0; i < n / SK_QK; i++, y += SK_QK) {
        float d = sk_h2f(x[i].d), m = sk_h2f(x[i].m);
        for (int j = 0; j < SK_QK / 2; j++) {
            y[j] = (x[i].qs[j] & 15) * d + m;
            y[j + 16] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

/* m = min, d = (max - min) / 15, q = min(15, trunc((x - m) / d + 0.5)) */
static void q4_1_from_float(const float *x, void *vy, int64_t n) {
    sk_block_q4_1 *y = vy;
    for (int64_t i = 0; i < n / SK_QK; i++, x += SK_QK) {
        float min = INFINITY, max = -INFINITY;
        for (int j = 0; j < SK_QK; j++) {
            min = x[j] < min ? x[j] : min;
            max = x[j] > max ? x[j] : max;
        }
        float d = (max - min) / 15, id = d ? 1.0f / d : 0.0f;
        y[i].d = sk_f32_to_f16(d);
        y[i].m = sk_f32_to_f16(min);
        for (int j = 0; j < SK_QK / 2; j++) {
            int q0 = (int8_t)((x[j] - min) * id + 0.5f), q1 = (int8_t)((x[j + 16] - min) * id + 0.5f);
            q0 = q0 > 15 ? 15 : q0;
            q1 = q1 > 15 ? 15 : q1;
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* x . y = sum_b (dx dy sum(qx qy) + mx sy), sy = dy sum(qy) from the Q8_1 block */
static void q4_1_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const sk_block_q4_1 *x = vx;
    const sk_block_q8_1 *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / SK_QK; i++) {
        int sumi = 0;
        for (int j = 0; j < SK_QK / 2; j++)
            sumi += (x[i].qs[j] & 15) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
        sumf += (float)sumi * (sk_h2f(x[i].d) * sk_h2f(y[i].d)) + sk_h2f(x[i].m) * sk_h2f(y[i].s);
    }
    *s = sumf;
}

/* ---- Q5_0: q = nibble | (bit j of qh) << 4, x = (q - 16) * d ----------- */

static void q5_0_to_float(const void *vx, float *y, int64_t n) {
    const sk_block_q5_0 *x = vx;
    for (int64_t i = 0; i < n / SK_QK; i++, y += SK_QK) {
        float d = sk_h2f(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < SK_QK / 2; j++) {
            int q0 = (x[i].qs[j] & 15) | (((qh >> j) & 1) << 4);
            int q1 = (x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
            y[j] = (q0 - 16) * d;
            y[j + 16] = (q1 - 16) * d;
        }
    }
}

/* d = max / -16 (signed element of largest magnitude), q = min(31, trunc(x / d + 16.5)) */
static void q5_0_from_float(const float *x, void *vy, int64_t n) {
    sk_block_q5_0 *y = vy;
    for (int64_t i = 0; i < n / SK_QK; i++, x += SK_QK) {
        float amax = 0, max = 0;
        for (int j = 0; j < SK_QK; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -16, id = d ? 1.0f / d : 0.0f;
        y[i].d = sk_f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < SK_QK / 2; j++) {
            int q0 = (int8_t)(x[j] * id + 16.5f), q1 = (int8_t)(x[j + 16] * id + 16.5f);
            q0 = q0 > 31 ? 31 : q0;
            q1 = q1 > 31 ? 31 : q1;
            y[i].qs[j] = (uint8_t)((q0 & 15) | ((q1 & 15) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + 16);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

static void q5_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const sk_block_q5_0 *x = vx;
    const sk_block_q8_0 *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / SK_QK; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        int sumi = 0;
        for (int j = 0; j < SK_QK / 2; j++) {
            int q0 = (x[i].qs[j] & 15) | (((qh >> j) & 1) << 4);
            int q1 = (x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
            sumi += (q0 - 16) * y[i].qs[j] + (q1 - 16) * y[i].qs[j + 16];
        }
        sumf += (float)sumi * (sk_h2f(x[i].d) * sk_h2f(y[i].d));
    }
    *s = sumf;
}

/* ---- Q5_1: x = q * d + m, q 5 bits as in Q5_0 ---------------------------- */

static void q5_1_to_float(const void *vx, float *y, int64_t n) {
    const sk_block_q5_1 *x = vx;
    for (int64_t i = 0; i < n / SK_QK; i++, y += SK_QK) {
        float d = sk_h2f(x[i].d), m = sk_h2f(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < SK_QK / 2; j++) {
            int q0 = (x[i].qs[j] & 15) | (((qh >> j) & 1) << 4);
            int q1 = (x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
            y[j] = q0 * d + m;
            y[j + 16] = q1 * d + m;
        }
    }
}

/* m = min, d = (max - min) / 31, q = min(31, trunc((x - m) / d + 0.5)) */
static void q5_1_from_float(const float *x, void *vy, int64_t n) {
    sk_block_q5_1 *y = vy;
    for (int64_t i = 0; i < n / SK_QK; i++, x += SK_QK) {
        float min = INFINITY, max = -INFINITY;
        for (int j = 0; j < SK_QK; j++) {
            min = x[j] < min ? x[j] : min;
            max = x[j] > max ? x[j] : max;
        }
        float d = (max - min) / 31, id = d ? 1.0f / d : 0.0f;
        y[i].d = sk_f32_to_f16(d);
        y[i].m = sk_f32_to_f16(min);
        uint32_t qh = 0;
        for (int j = 0; j < SK_QK / 2; j++) {
            int q0 = (int8_t)((x[j] - min) * id + 0.5f), q1 = (int8_t)((x[j + 16] - min) * id + 0.5f);
            q0 = q0 > 31 ? 31 : q0;
            q1 = q1 > 31 ? 31 : q1;
            y[i].qs[j] = (uint8_t)((q0 & 15) | ((q1 & 15) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + 16);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

static void q5_1_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const sk_block_q5_1 *x = vx;
    const sk_block_q8_1 *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / SK_QK; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        int sumi = 0;
        for (int j = 0; j < SK_QK / 2; j++) {
            int q0 = (x[i].qs[j] & 15) | (((qh >> j) & 1) << 4);
            int q1 = (x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
            sumi += q0 * y[i].qs[j] + q1 * y[i].qs[j + 16];
        }
        sumf += (float)sumi * (sk_h2f(x[i].d) * sk_h2f(y[i].d)) + sk_h2f(x[i].m) * sk_h2f(y[i].s);
    }
    *s = sumf;
}

/* ---- Q8_0 / Q8_1: x = q * d ----------------------------------------------- */

static void q8_0_to_float(const void *vx, float *y, int64_t n) {
    const sk_block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / SK_QK; i++, y += SK_QK) {
        float d = sk_h2f(x[i].d);
        for (int j = 0; j < SK_QK; j++)
            y[j] = x[i].qs[j] * d;
    }
}

/* d = amax / 127, q = roundf(x / d) (ggml's quantize_row_q8_0_ref) */
static void q8_0_from_float(const float *x, void *vy, int64_t n) {
    sk_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / SK_QK; i++, x += SK_QK) {
        float amax = 0;
        for (int j = 0; j < SK_QK; j++)
            amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        y[i].d = sk_f32_to_f16(d);
        for (int j = 0; j < SK_QK; j++)
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
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
    for (int64_t i = 0; i < n / SK_QK; i++, y += SK_QK) {
        float d = sk_h2f(x[i].d);
        for (int j = 0; j < SK_QK; j++)
            y[j] = x[i].qs[j] * d;
    }
}

/* as Q8_0, plus s = f16(d * sum(q)) with d the float (not the rounded f16) */
static void q8_1_from_float(const float *x, void *vy, int64_t n) {
    sk_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / SK_QK; i++, x += SK_QK) {
        float amax = 0;
        for (int j = 0; j < SK_QK; j++)
            amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        int sum = 0;
        y[i].d = sk_f32_to_f16(d);
        for (int j = 0; j < SK_QK; j++) {
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
            sum += y[i].qs[j];
        }
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
        float amax = 0, max = 0;
        for (int j = 0; j < SK_QK_K; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
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

static void q4_K_to_float(const void *vx, float *y, int64_t n) {
    const sk_block_q4_K *x = vx;
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        float d = sk_h2f(x[i].d), dmin = sk_h2f(x[i].dmin);
        for (int j = 0; j < 8; j++, y += 32) {
            int sc, m;
            sk_q4k_scale_min(j, x[i].scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            const uint8_t *q = x[i].qs + 32 * (j / 2);
            int shift = 4 * (j & 1);
            for (int l = 0; l < 32; l++)
                y[l] = d1 * ((q[l] >> shift) & 15) - m1;
        }
    }
}

static void q5_K_to_float(const void *vx, float *y, int64_t n) {
    const sk_block_q5_K *x = vx;
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        float d = sk_h2f(x[i].d), dmin = sk_h2f(x[i].dmin);
        for (int j = 0; j < 8; j++, y += 32) {
            int sc, m;
            sk_q4k_scale_min(j, x[i].scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            const uint8_t *q = x[i].qs + 32 * (j / 2);
            int shift = 4 * (j & 1);
            for (int l = 0; l < 32; l++)
                y[l] = d1 * (((q[l] >> shift) & 15) | (((x[i].qh[l] >> j) & 1) << 4)) - m1;
        }
    }
}

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

/* sum over blocks of d dy sum_j(sc_j sum(q qy)) - dmin dy sum_j(m_j (bsum_2j + bsum_2j+1)) */
static void q4_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const sk_block_q4_K *x = vx;
    const sk_block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        int sumq = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m, si = 0;
            sk_q4k_scale_min(j, x[i].scales, &sc, &m);
            const uint8_t *q = x[i].qs + 32 * (j / 2);
            const int8_t *q8 = y[i].qs + 32 * j;
            int shift = 4 * (j & 1);
            for (int l = 0; l < 32; l++)
                si += ((q[l] >> shift) & 15) * q8[l];
            sumq += sc * si;
            summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        sumf += sk_h2f(x[i].d) * y[i].d * (float)sumq - sk_h2f(x[i].dmin) * y[i].d * (float)summ;
    }
    *s = sumf;
}

static void q5_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const sk_block_q5_K *x = vx;
    const sk_block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / SK_QK_K; i++) {
        int sumq = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m, si = 0;
            sk_q4k_scale_min(j, x[i].scales, &sc, &m);
            const uint8_t *q = x[i].qs + 32 * (j / 2);
            const int8_t *q8 = y[i].qs + 32 * j;
            int shift = 4 * (j & 1);
            for (int l = 0; l < 32; l++)
                si += (((q[l] >> shift) & 15) | (((x[i].qh[l] >> j) & 1) << 4)) * q8[l];
            sumq += sc * si;
            summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        sumf += sk_h2f(x[i].d) * y[i].d * (float)sumq - sk_h2f(x[i].dmin) * y[i].d * (float)summ;
    }
    *s = sumf;
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
