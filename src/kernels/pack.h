/* pack.h - interleaved ("packed") weight layouts for the matmul.
 *
 * At load, a Q4_0, Q4_1, Q5_0 or Q8_0 matrix whose row count is a multiple of 16
 * is copied into groups of 16 rows interleaved block by block, so that one
 * 512-bit register holds four weight bytes of each of the 16 rows and a
 * single vpdpbusd multiplies them with four activation bytes broadcast from
 * memory: 16 outputs per instruction, no horizontal sums, every weight byte
 * loaded once per tile of activation columns. The layouts hold exactly the
 * bytes of the original blocks (16 x block size per group-block).
 *
 * Group g (rows 16g .. 16g+15), block i (elements 32i .. 32i+31):
 *   Q4_0x16  { f16 d[16];            u8 qs[4][16][4]; }  288 bytes
 *   Q4_1x16  { f16 d[16]; f16 m[16]; u8 qs[4][16][4]; }  320 bytes
 *   Q5_0x16  { f16 d[16]; u8 hb[16][4]; u8 qs[4][16][4]; }  352 bytes
 *   Q8_0x16  { f16 d[16];            u8 qs[8][16][4]; }  544 bytes
 * qs[k][r][j] is byte 4k + j of row r's block i. For the nibble formats that
 * byte holds element 4k + j (low nibble) and 4k + j + 16 (high nibble); for
 * Q8_0 it is element 4k + j plus 128 (unsigned, as vpdpbusd wants).
 * Register k of a block therefore pairs with activation bytes 4k .. 4k+3,
 * k < 8, in every format (for nibbles: k < 4 low, k >= 4 high). Q5_0's
 * fifth bits are regrouped by register: bit k of hb[r][j] is the fifth bit
 * of the element that register k holds in byte j of row r (bit 4k + j of
 * the file's qh), so register k's bits are one shift and one mask away.
 *
 * Every weight then reads w = u * d + m with u unsigned and
 *   Q4_0: m = -8 d,  Q4_1: m = m,  Q5_0: m = -16 d,  Q8_0: m = -128 d,
 * so one kernel serves all four: with activations in Q8P (f32 scale, the
 * exact integer sum of the block's quants)
 *   x_r . y = sum_i d_r dy_i (sum_e u_re q_e - K sum_i) + [Q4_1] m_r dy_i sum_i
 * with K = 8 (Q4_0), 0 (Q4_1), 16 (Q5_0), 128 (Q8_0): the corrections are
 * exact integers.
 *
 * The packed kernels run on the avx2 tier and up (cpu.h): pack_avx2.c
 * takes a group as two 8-row halves with vpmaddubsw, pack_avx512.c whole
 * with vpdpbusd; both give the same bits (the same exact integer dots, the
 * same float operations per block) and, for every column, the same bits
 * whatever the column count and the column's place in a tile (batch
 * invariance: decode and pre-fill agree). pack_ref.c holds the scalar
 * reference of each, which tests compare against. pack.c dispatches as the
 * other kernel families do (a reference table, the chosen tier's entries
 * written over it, once). SINKLLM_NOPACK=1 (or the scalar tier) keeps the
 * original layout. */
#ifndef SK_PACK_H
#define SK_PACK_H

#include <stddef.h>
#include <stdint.h>

#define SK_PACK_ROWS 16

/* Activation block for the packed kernels: x = q * d. 40 bytes. */
typedef struct {
    float d;
    int32_t sum; /* sum of qs */
    int8_t qs[32];
} sk_block_q8p;

/* Tile of products with packed weights: for g < ng, c < nc, r < 16
 *   s[c * ss + 16 g + r] = W_{16 g + r} . y_c
 * w: ng groups of gs bytes each; y_c = (char *)y + c * ys, rows of Q8P
 * blocks; n a multiple of 32. */
typedef void (*sk_packed_gemm_fn)(int type, int64_t n, int64_t ng, int nc, const void *w,
                                  size_t gs, const void *y, size_t ys, float *s, size_t ss);

/* Quantizer of activations to Q8P (see sk_q8p_quantize). */
typedef void (*sk_q8p_quantize_fn)(const float *x, sk_block_q8p *y, int64_t n);

/* One kernel set. */
typedef struct sk_pack_kernels {
    sk_packed_gemm_fn gemm;
    sk_q8p_quantize_fn quantize;
} sk_pack_kernels;

/* The kernels of the chosen instruction set, and the scalar reference;
 * static tables, filled on first call. */
const sk_pack_kernels *sk_pack_get(void);
const sk_pack_kernels *sk_pack_get_ref(void);

/* 1 if packed layouts are in use: the avx2 tier or above (cpu.h) and
 * SINKLLM_NOPACK not set. Decided once. */
int sk_pack_enabled(void);

/* 1 if matrices of this type and shape can be packed (type Q4_0, Q4_1,
 * Q5_0 or Q8_0, n % 32 == 0, rows % 16 == 0, rows > 0). */
int sk_pack_supported(int type, int64_t n, int64_t rows);

/* Bytes of one packed group of 16 rows of n elements. */
size_t sk_pack_group_size(int type, int64_t n);

/* Pack 16 rows (src, row stride src_rs bytes, original layout) into one
 * group at dst (sk_pack_group_size bytes); sk_pack_rows packs ng
 * consecutive groups (16 ng rows). Plain copies: an AVX-512 gather version
 * measured 2x slower on this CPU. */
void sk_pack_rows(int type, int64_t n, int64_t ng, const void *src, size_t src_rs, void *dst);
void sk_pack_group(int type, int64_t n, const void *src, size_t src_rs, void *dst);

/* The inverse: one group back to 16 rows of the original layout; and one
 * row r (< 16) of a group back to its original bytes (embedding lookups in
 * a packed tied output matrix). */
void sk_unpack_group(int type, int64_t n, const void *src, void *dst, size_t dst_rs);
void sk_unpack_row(int type, int64_t n, const void *group, int r, void *dst);

/* Quantize n floats (n % 32 == 0) to Q8P: d = max|x| / 127, q = round(x / d);
 * sk_pack_get()->quantize; the reference. */
void sk_q8p_quantize(const float *x, sk_block_q8p *y, int64_t n);
void sk_q8p_quantize_ref(const float *x, sk_block_q8p *y, int64_t n);

/* The packed product: sk_pack_get()->gemm; the reference. */
void sk_packed_gemm(int type, int64_t n, int64_t ng, int nc, const void *w, size_t gs,
                    const void *y, size_t ys, float *s, size_t ss);
void sk_packed_gemm_ref(int type, int64_t n, int64_t ng, int nc, const void *w, size_t gs,
                        const void *y, size_t ys, float *s, size_t ss);

#endif
