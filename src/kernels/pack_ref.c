/* pack_ref.c - scalar reference of the packed kernels (pack.h): the
 * definition the AVX-512 twins in pack_avx512.c must agree with
 * (tests/test_pack.c). Straight from the layouts, one element at a time. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "half.h"
#include "pack_impl.h"

/* Per block: d = max|x| / 127, q = roundf(x / d), sum = sum of q. */
void sk_q8p_quantize_ref(const float *x, sk_block_q8p *y, int64_t n) {
    for (int64_t i = 0; i < n / SK_QK; i++, x += SK_QK) {
        float amax = 0;
        for (int j = 0; j < SK_QK; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < SK_QK; j++) {
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].d = d;
        y[i].sum = sum;
    }
}

/* Unsigned quant of element e (0..31) of row r in a packed group-block. */
static int unsigned_quant(int type, const uint8_t *o, int r, int e) {
    const uint8_t *q = o + sk_pack_head_bytes(type);
    if (type == SK_TYPE_Q8_0) return q[sk_pack_qpos(r, e)];
    int u = e < 16 ? q[sk_pack_qpos(r, e)] & 15 : q[sk_pack_qpos(r, e - 16)] >> 4;
    if (type == SK_TYPE_Q5_0) /* element e = 4k + j sits in register k, byte j */
        u |= ((o[32 + 4 * r + e % 4] >> (e / 4)) & 1) << 4;
    return u;
}

/* s[c * ss + 16 g + r] = W_{16 g + r} . y_c from the packed bytes, block by
 * block: exact integer dot with the -K sum correction, then the scales. */
void sk_packed_gemm_ref(int type, int64_t n, int64_t ng, int nc, const void *w, size_t gs,
                        const void *y, size_t ys, float *s, size_t ss) {
    const int64_t nb = n / SK_QK;
    const int K = type == SK_TYPE_Q4_0 ? 8 : type == SK_TYPE_Q5_0 ? 16 : type == SK_TYPE_Q8_0 ? 128 : 0;
    for (int64_t g = 0; g < ng; g++)
        for (int c = 0; c < nc; c++) {
            const sk_block_q8p *yb = (const sk_block_q8p *)((const char *)y + (size_t)c * ys);
            for (int r = 0; r < SK_PACK_ROWS; r++) {
                float acc = 0;
                for (int64_t i = 0; i < nb; i++) {
                    const uint8_t *o = (const uint8_t *)w + (size_t)g * gs +
                                       (size_t)i * (size_t)sk_pack_block_bytes(type);
                    uint16_t dh, mh;
                    memcpy(&dh, o + 2 * r, 2);
                    int32_t dot = -K * yb[i].sum;
                    for (int e = 0; e < SK_QK; e++)
                        dot += unsigned_quant(type, o, r, e) * yb[i].qs[e];
                    acc += (float)dot * (sk_f16_to_f32(dh) * yb[i].d);
                    if (type == SK_TYPE_Q4_1) {
                        memcpy(&mh, o + 32 + 2 * r, 2);
                        acc += sk_f16_to_f32(mh) * (yb[i].d * (float)yb[i].sum);
                    }
                }
                s[(size_t)c * ss + (size_t)g * SK_PACK_ROWS + (size_t)r] = acc;
            }
        }
}

/* Both entries of t: the reference kernels. */
void sk_pack_ref_fill(sk_pack_kernels *t) {
    t->gemm = sk_packed_gemm_ref;
    t->quantize = sk_q8p_quantize_ref;
}
