/* quant.c - the type table and its dispatch.
 *
 * Owns two tables of SK_TYPE_COUNT entries: the scalar reference (filled by
 * quant_ref.c) and the selected one (the reference with the entries of the
 * kernel set cpu.h chose written over it). Both are filled once, under
 * pthread_once, by sk_quant_init(); every getter calls it first, so no
 * caller can see an empty table. It also fills the f16 table (half.h)
 * that the kernels use for block scales.
 */
#include "quant.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "cpu.h"
#include "quant_impl.h"

static sk_type_traits g_ref[SK_TYPE_COUNT];
static sk_type_traits g_sel[SK_TYPE_COUNT];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

void sk_quant_fill(sk_type_traits *table, int isa) {
    sk_quant_ref_fill(table);
    if (isa >= SK_ISA_AVX2) {
        sk_quant_register_avx2(table);
        sk_quant_register_k_avx2(table);
    }
    if (isa >= SK_ISA_AVX512VNNI) {
        sk_quant_register_avx512(table);
        sk_quant_register_k_avx512(table);
    }
}

static void quant_init_once(void) {
    sk_f16_table_init();
    sk_quant_ref_fill(g_ref);
    sk_quant_fill(g_sel, sk_cpu_level());
}

/* Fill the tables once; safe to call from any thread, any number of times. */
void sk_quant_init(void) { pthread_once(&g_once, quant_init_once); }

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

/* y[0..n) = x as floats; SIMD through the selected F16 to_float. */
void sk_f16_to_f32_row(const uint16_t *x, float *y, int64_t n) {
    sk_type_get(SK_TYPE_F16)->to_float(x, y, n);
}

/* y[0..n) = x rounded to halves (nearest even); SIMD through F16 from_float. */
void sk_f32_to_f16_row(const float *x, uint16_t *y, int64_t n) {
    sk_type_get(SK_TYPE_F16)->from_float(x, y, n);
}
