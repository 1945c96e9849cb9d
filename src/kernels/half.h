/* half.h - IEEE half and bfloat16 conversions, and the f16 lookup table.
 *
 * Scalar, exact definitions (round to nearest even) that every kernel file
 * may use; the SIMD row conversions are the F16 type's to_float/from_float
 * (quant.h). The 64K-entry table turns a half into a float with one load,
 * for block scales in the kernels' inner loops. */
#ifndef SK_HALF_H
#define SK_HALF_H

#include <stdint.h>

/* IEEE half and bfloat16 conversions (round to nearest even). */
float sk_f16_to_f32(uint16_t h);
uint16_t sk_f32_to_f16(float f);
float sk_bf16_to_f32(uint16_t h);
uint16_t sk_f32_to_bf16(float f);

/* f16 -> f32 for all 65536 halves; filled by sk_f16_table_init (which
 * sk_quant_init, and so sk_type_get and sk_type_get_ref, call first). */
extern float sk_f16_table[1 << 16];

/* Fill sk_f16_table; once, thread-safe, any number of calls. */
void sk_f16_table_init(void);

static inline float sk_h2f(uint16_t h) { return sk_f16_table[h]; }

#endif
