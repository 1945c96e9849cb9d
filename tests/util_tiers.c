/* util_tiers.c - per-tier kernel test runs (util_tiers.h). */
#include "util_tiers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

const sk_isa util_tier_list[SK_ISA_COUNT] = {SK_ISA_SCALAR, SK_ISA_AVX2, SK_ISA_AVX512VNNI, SK_ISA_AMX};

sk_isa util_tier(void **state, const char *test) {
    sk_isa isa = *(const sk_isa *)*state;
    if (!sk_cpu_has_isa(isa)) {
        printf("skipped: %s[%s]: this CPU lacks the %s tier\n", test, sk_isa_name(isa), sk_isa_name(isa));
        skip();
    }
    return isa;
}
