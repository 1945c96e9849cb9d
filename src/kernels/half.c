/* half.c - IEEE half and bfloat16 conversions; the f16 table (half.h). */
#include "half.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

float sk_f16_table[1 << 16];

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void table_fill(void) {
    for (uint32_t h = 0; h < (1u << 16); h++)
        sk_f16_table[h] = sk_f16_to_f32((uint16_t)h);
}

/* Fill sk_f16_table once; thread-safe. */
void sk_f16_table_init(void) { pthread_once(&g_once, table_fill); }

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Exact: every half is a float. Inf and NaN keep sign and payload. */
float sk_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f)
        return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) { /* zero or subnormal: man * 2^-24, exact in float */
        float f = (float)man * 0x1p-24f;
        return sign ? -f : f;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

/* Round to nearest, ties to even; overflow gives inf; NaN stays NaN with the
 * quiet bit set and the top payload bits kept (as F16C's vcvtps2ph does). */
uint16_t sk_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN */
        return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));
    if (ax >= 0x477ff000u) /* >= 65520 (halfway to 65536): inf */
        return (uint16_t)(sign | 0x7c00);
    if (ax >= 0x38800000u) { /* normal half: rebias exponent 127 -> 15 */
        uint32_t r = ax - 0x38000000u;
        r += 0xfff + ((r >> 13) & 1);
        return (uint16_t)(sign | (r >> 13));
    }
    uint32_t e = ax >> 23;
    if (e < 102) /* below 2^-25: rounds to zero (2^-25 itself ties to 0) */
        return sign;
    /* subnormal half: q = round(mantissa * 2^(e - 126)) */
    uint32_t m = (ax & 0x7fffff) | 0x800000, shift = 126 - e; /* 14..24 */
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1)))
        q++; /* may carry into the smallest normal, which is the right code */
    return (uint16_t)(sign | q);
}

float sk_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

/* Round to nearest even, NaN made quiet; the same bits as ggml's
 * GGML_FP32_TO_BF16 (subnormals are kept, not flushed). */
uint16_t sk_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 64);
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

