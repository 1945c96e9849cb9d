/* pack.c - packed weight layouts: packing, and the scalar reference of the
 * packed kernels (pack.h). */
#include "pack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "quant_impl.h"

static int g_enabled = -1;

int sk_pack_enabled(void) {
    if (g_enabled < 0) { /* a benign race: every thread computes the same value */
        sk_quant_init();
        const char *np = getenv("SINKLLM_NOPACK");
        g_enabled = !strcmp(sk_quant_isa(), "avx512vnni") && !(np && *np && strcmp(np, "0"));
    }
    return g_enabled;
}

/* bytes of the scales and of the quants of one group-block */
static int head_bytes(int type) { return type == SK_TYPE_Q4_1 ? 64 : 32; }
static int quant_bytes(int type) { return type == SK_TYPE_Q8_0 ? 512 : 256; }
static int block_bytes(int type) { return head_bytes(type) + quant_bytes(type); }

int sk_pack_supported(int type, int64_t n, int64_t rows) {
    if (type != SK_TYPE_Q4_0 && type != SK_TYPE_Q4_1 && type != SK_TYPE_Q8_0) return 0;
    return n > 0 && n % SK_QK == 0 && rows > 0 && rows % SK_PACK_ROWS == 0;
}

size_t sk_pack_group_size(int type, int64_t n) { return (size_t)(n / SK_QK) * (size_t)block_bytes(type); }

/* Where element byte b (0..15 for nibbles, 0..31 for Q8_0) of row r lives in
 * a packed group-block: qs[b / 4][r][b % 4]. */
static size_t qpos(int r, int b) { return (size_t)(b / 4) * 64 + (size_t)r * 4 + (size_t)(b % 4); }

void sk_pack_group(int type, int64_t n, const void *src, size_t src_rs, void *dst) {
    const int64_t nb = n / SK_QK;
    const size_t bs = sk_type_get_ref(type)->size;
    const int nq = type == SK_TYPE_Q8_0 ? 8 : 4;        /* 4-byte groups per row-block */
    const int qoff = type == SK_TYPE_Q4_1 ? 4 : 2;       /* quants after d (and m) */
    const uint32_t flip = type == SK_TYPE_Q8_0 ? 0x80808080u : 0; /* i8 -> u8 + 128 */
    /* row by row: the source is read in order, the group (<= a few tens of
     * KB) stays in cache while it fills */
    for (int r = 0; r < SK_PACK_ROWS; r++) {
        const uint8_t *b = (const uint8_t *)src + (size_t)r * src_rs;
        uint8_t *o = dst;
        for (int64_t i = 0; i < nb; i++, b += bs, o += block_bytes(type)) {
            memcpy(o + 2 * r, b, 2); /* d leads every block */
            if (type == SK_TYPE_Q4_1) memcpy(o + 32 + 2 * r, b + 2, 2);
            uint8_t *q = o + head_bytes(type) + 4 * r;
            for (int k = 0; k < nq; k++) {
                uint32_t v;
                memcpy(&v, b + qoff + 4 * k, 4);
                v ^= flip;
                memcpy(q + 64 * k, &v, 4);
            }
        }
    }
}

void sk_pack_rows(int type, int64_t n, int64_t ng, const void *src, size_t src_rs, void *dst) {
    size_t gs = sk_pack_group_size(type, n);
    for (int64_t g = 0; g < ng; g++)
        sk_pack_group(type, n, (const char *)src + (size_t)g * SK_PACK_ROWS * src_rs, src_rs,
                      (char *)dst + (size_t)g * gs);
}

void sk_unpack_row(int type, int64_t n, const void *group, int r, void *dst) {
    const int64_t nb = n / SK_QK;
    const size_t bs = sk_type_get_ref(type)->size;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *o = (const uint8_t *)group + (size_t)i * (size_t)block_bytes(type);
        const uint8_t *q = o + head_bytes(type);
        uint8_t *b = (uint8_t *)dst + (size_t)i * bs;
        memcpy(b, o + 2 * r, 2);
        if (type == SK_TYPE_Q4_1) {
            memcpy(b + 2, o + 32 + 2 * r, 2);
            for (int j = 0; j < 16; j++) b[4 + j] = q[qpos(r, j)];
        } else if (type == SK_TYPE_Q4_0) {
            for (int j = 0; j < 16; j++) b[2 + j] = q[qpos(r, j)];
        } else {
            for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(q[qpos(r, j)] ^ 0x80);
        }
    }
}

void sk_unpack_group(int type, int64_t n, const void *src, void *dst, size_t dst_rs) {
    for (int r = 0; r < SK_PACK_ROWS; r++) sk_unpack_row(type, n, src, r, (char *)dst + (size_t)r * dst_rs);
}

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
static int unsigned_quant(int type, const uint8_t *q, int r, int e) {
    if (type == SK_TYPE_Q8_0) return q[qpos(r, e)];
    return e < 16 ? q[qpos(r, e)] & 15 : q[qpos(r, e - 16)] >> 4;
}

void sk_packed_gemm_ref(int type, int64_t n, int64_t ng, int nc, const void *w, size_t gs,
                        const void *y, size_t ys, float *s, size_t ss) {
    const int64_t nb = n / SK_QK;
    const int K = type == SK_TYPE_Q4_0 ? 8 : type == SK_TYPE_Q8_0 ? 128 : 0;
    for (int64_t g = 0; g < ng; g++)
        for (int c = 0; c < nc; c++) {
            const sk_block_q8p *yb = (const sk_block_q8p *)((const char *)y + (size_t)c * ys);
            for (int r = 0; r < SK_PACK_ROWS; r++) {
                float acc = 0;
                for (int64_t i = 0; i < nb; i++) {
                    const uint8_t *o = (const uint8_t *)w + (size_t)g * gs +
                                       (size_t)i * (size_t)block_bytes(type);
                    uint16_t dh, mh;
                    memcpy(&dh, o + 2 * r, 2);
                    int32_t dot = -K * yb[i].sum;
                    for (int e = 0; e < SK_QK; e++)
                        dot += unsigned_quant(type, o + head_bytes(type), r, e) * yb[i].qs[e];
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

void sk_q8p_quantize(const float *x, sk_block_q8p *y, int64_t n) {
    if (sk_pack_enabled()) sk_q8p_quantize_avx512(x, y, n);
    else sk_q8p_quantize_ref(x, y, n);
}

void sk_packed_gemm(int type, int64_t n, int64_t ng, int nc, const void *w, size_t gs,
                    const void *y, size_t ys, float *s, size_t ss) {
    if (sk_pack_enabled()) sk_packed_gemm_avx512(type, n, ng, nc, w, gs, y, ys, s, ss);
    else sk_packed_gemm_ref(type, n, ng, nc, w, gs, y, ys, s, ss);
}
