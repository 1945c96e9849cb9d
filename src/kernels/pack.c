/* pack.c - packed weight layouts (pack.h): packing and unpacking, and the
 * dispatch of the packed kernels: the reference table (pack_ref.c) and the
 * selected one (the reference with the entries of the kernel set cpu.h
 * chose written over it), both filled once under pthread_once. */
#include "pack.h"

#include <pthread.h>
#include <string.h>

#include "cpu.h"
#include "pack_impl.h"
#include "quant.h"

static sk_pack_kernels g_ref, g_sel;
static int g_enabled;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

void sk_pack_fill(sk_pack_kernels *t, int isa) {
    sk_pack_ref_fill(t);
    if (isa >= SK_ISA_AVX2) sk_pack_register_avx2(t);
    if (isa >= SK_ISA_AVX512VNNI) sk_pack_register_avx512(t);
}

static void pack_init_once(void) {
    sk_pack_ref_fill(&g_ref);
    sk_pack_fill(&g_sel, sk_cpu_level());
    g_enabled = sk_cpu_level() >= SK_ISA_AVX2 && !sk_cpu_nopack();
}

/* 1 where a packed kernel is installed (the avx2 tier and up) and
 * SINKLLM_NOPACK is not set. */
int sk_pack_enabled(void) {
    pthread_once(&g_once, pack_init_once);
    return g_enabled;
}

/* The selected packed kernels; the scalar reference. */
const sk_pack_kernels *sk_pack_get(void) {
    pthread_once(&g_once, pack_init_once);
    return &g_sel;
}

const sk_pack_kernels *sk_pack_get_ref(void) {
    pthread_once(&g_once, pack_init_once);
    return &g_ref;
}

int sk_pack_supported(int type, int64_t n, int64_t rows) {
    if (type != SK_TYPE_Q4_0 && type != SK_TYPE_Q4_1 && type != SK_TYPE_Q5_0 && type != SK_TYPE_Q8_0)
        return 0;
    return n > 0 && n % SK_QK == 0 && rows > 0 && rows % SK_PACK_ROWS == 0;
}

size_t sk_pack_group_size(int type, int64_t n) { return (size_t)(n / SK_QK) * (size_t)sk_pack_block_bytes(type); }

void sk_pack_group(int type, int64_t n, const void *src, size_t src_rs, void *dst) {
    const int64_t nb = n / SK_QK;
    const size_t bs = sk_type_get_ref(type)->size;
    const int nq = type == SK_TYPE_Q8_0 ? 8 : 4;        /* 4-byte groups per row-block */
    const int qoff = type == SK_TYPE_Q5_0 ? 6 : type == SK_TYPE_Q4_1 ? 4 : 2; /* quants after d (m, qh) */
    const uint32_t flip = type == SK_TYPE_Q8_0 ? 0x80808080u : 0; /* i8 -> u8 + 128 */
    /* row by row: the source is read in order, the group (<= a few tens of
     * KB) stays in cache while it fills */
    for (int r = 0; r < SK_PACK_ROWS; r++) {
        const uint8_t *b = (const uint8_t *)src + (size_t)r * src_rs;
        uint8_t *o = dst;
        for (int64_t i = 0; i < nb; i++, b += bs, o += sk_pack_block_bytes(type)) {
            memcpy(o + 2 * r, b, 2); /* d leads every block */
            if (type == SK_TYPE_Q4_1) memcpy(o + 32 + 2 * r, b + 2, 2);
            if (type == SK_TYPE_Q5_0) { /* fifth bits by register: bit k of hb[r][j] = qh bit 4k + j */
                uint32_t qh;
                memcpy(&qh, b + 2, 4);
                for (int j = 0; j < 4; j++) {
                    uint8_t v = 0;
                    for (int k = 0; k < 8; k++) v |= (uint8_t)(((qh >> (4 * k + j)) & 1) << k);
                    o[32 + 4 * r + j] = v;
                }
            }
            uint8_t *q = o + sk_pack_head_bytes(type) + 4 * r;
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
        const uint8_t *o = (const uint8_t *)group + (size_t)i * (size_t)sk_pack_block_bytes(type);
        const uint8_t *q = o + sk_pack_head_bytes(type);
        uint8_t *b = (uint8_t *)dst + (size_t)i * bs;
        memcpy(b, o + 2 * r, 2);
        if (type == SK_TYPE_Q4_1) {
            memcpy(b + 2, o + 32 + 2 * r, 2);
            for (int j = 0; j < 16; j++) b[4 + j] = q[sk_pack_qpos(r, j)];
        } else if (type == SK_TYPE_Q4_0) {
            for (int j = 0; j < 16; j++) b[2 + j] = q[sk_pack_qpos(r, j)];
        } else if (type == SK_TYPE_Q5_0) {
            uint32_t qh = 0;
            for (int j = 0; j < 4; j++)
                for (int k = 0; k < 8; k++) qh |= (uint32_t)((o[32 + 4 * r + j] >> k) & 1) << (4 * k + j);
            memcpy(b + 2, &qh, 4);
            for (int j = 0; j < 16; j++) b[6 + j] = q[sk_pack_qpos(r, j)];
        } else {
            for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(q[sk_pack_qpos(r, j)] ^ 0x80);
        }
    }
}

void sk_unpack_group(int type, int64_t n, const void *src, void *dst, size_t dst_rs) {
    for (int r = 0; r < SK_PACK_ROWS; r++) sk_unpack_row(type, n, src, r, (char *)dst + (size_t)r * dst_rs);
}

void sk_q8p_quantize(const float *x, sk_block_q8p *y, int64_t n) { sk_pack_get()->quantize(x, y, n); }

void sk_packed_gemm(int type, int64_t n, int64_t ng, int nc, const void *w, size_t gs,
                    const void *y, size_t ys, float *s, size_t ss) {
    sk_pack_get()->gemm(type, n, ng, nc, w, gs, y, ys, s, ss);
}
