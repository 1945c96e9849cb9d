/* quant.c - the type table and its dispatch; half-precision conversions.
 *
 * Owns two tables of SK_TYPE_COUNT entries: the scalar reference (filled by
 * quant_ref.c) and the selected one (the reference with the entries of the
 * best instruction set the CPU has written over it). Both are filled once,
 * under pthread_once, by sk_quant_init(); every getter calls it first, so no
 * caller can see an empty table. Also owns the 64K-entry f16 -> f32 table
 * that the kernels use for block scales.
 */
#include "quant.h"

#include <cpuid.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quant_impl.h"

float sk_f16_table[1 << 16];

static sk_type_traits g_ref[SK_TYPE_COUNT];
static sk_type_traits g_sel[SK_TYPE_COUNT];
static const char *g_isa = "scalar";
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* ---- CPU features ------------------------------------------------------ */

/* F16C is CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports does
 * not know "f16c"); the avx2 check already covers OS support of YMM state. */
static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}

int sk_quant_cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
}

int sk_quant_cpu_has_avx512vnni(void) {
    __builtin_cpu_init();
    return sk_quant_cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
}

/* ---- dispatch ---------------------------------------------------------- */

static void quant_init_once(void) {
    for (uint32_t h = 0; h < (1u << 16); h++)
        sk_f16_table[h] = sk_f16_to_f32((uint16_t)h);
    sk_quant_ref_fill(g_ref);
    memcpy(g_sel, g_ref, sizeof g_sel);

    const char *env = getenv("SINKLLM_SCALAR");
    int force_scalar = env && env[0] && strcmp(env, "0") != 0;
    g_isa = "scalar";
    if (force_scalar)
        return;
    if (sk_quant_cpu_has_avx2()) {
        sk_quant_register_avx2(g_sel);
        sk_quant_register_k_avx2(g_sel);
        g_isa = "avx2";
    }
    if (sk_quant_cpu_has_avx512vnni()) {
        sk_quant_register_avx512(g_sel);
        sk_quant_register_k_avx512(g_sel);
        g_isa = "avx512vnni";
    }
}

/* Fill the tables once; safe to call from any thread, any number of times. */
void sk_quant_init(void) { pthread_once(&g_once, quant_init_once); }

/* Name of the selected instruction set; valid for the life of the process. */
const char *sk_quant_isa(void) {
    sk_quant_init();
    return g_isa;
}

static const sk_type_traits *table_get(const sk_type_traits *t, int type) {
    if (type < 0 || type >= SK_TYPE_COUNT || t[type].name == NULL)
        return NULL;
    return &t[type];
}

/* Selected traits of type; NULL for unknown types. Points into a static
 * table that lives as long as the process. */
const sk_type_traits *sk_type_get(int type) {
    sk_quant_init();
    return table_get(g_sel, type);
}

/* Scalar reference traits of type; NULL for unknown types. */
const sk_type_traits *sk_type_get_ref(int type) {
    sk_quant_init();
    return table_get(g_ref, type);
}

/* Bytes in a row of n elements; 0 for an unknown type, n < 0, n not a
 * multiple of the block size, or a size that does not fit in size_t. */
size_t sk_row_size(int type, int64_t n) {
    const sk_type_traits *t = sk_type_get(type);
    if (t == NULL || n < 0 || n % t->blck != 0)
        return 0;
    uint64_t nb = (uint64_t)(n / t->blck);
    if (nb > SIZE_MAX / t->size)
        return 0;
    return (size_t)nb * t->size;
}

/* ---- half and bfloat16 -------------------------------------------------- */

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

/* y[0..n) = x as floats; SIMD through the selected F16 to_float. */
void sk_f16_to_f32_row(const uint16_t *x, float *y, int64_t n) {
    sk_type_get(SK_TYPE_F16)->to_float(x, y, n);
}

/* y[0..n) = x rounded to halves (nearest even); SIMD through F16 from_float. */
void sk_f32_to_f16_row(const float *x, uint16_t *y, int64_t n) {
    sk_type_get(SK_TYPE_F16)->from_float(x, y, n);
}
