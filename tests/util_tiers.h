/* util_tiers.h - run a kernel test once per tier (src/kernels/cpu.h).
 *
 * Every kernel test that compares a tier's kernels with the scalar
 * reference is registered once per tier above scalar with UTIL_TIER_TESTS;
 * each run gets its tier through util_tier(state), which skips the run,
 * printing "skipped: <test>[<tier>]: this CPU lacks the <tier> tier", where
 * the hardware lacks it. So a tier the CPU lacks shows as cmocka's SKIPPED
 * (counted by tests/run-tests.sh), never as a silent pass. The amx tier
 * runs the avx512 kernels until AMX kernels exist (sk_isa_note). */
#ifndef SK_TEST_UTIL_TIERS_H
#define SK_TEST_UTIL_TIERS_H

#include "kernels/cpu.h"

/* the tiers above scalar, as cmocka initial states */
extern const sk_isa util_tier_list[SK_ISA_COUNT];

/* The tier of a UTIL_TIER_TESTS run; calls cmocka's skip() (with the line
 * above) where the CPU lacks it. */
sk_isa util_tier(void **state, const char *test);

/* One cmocka test per tier above scalar, named "fn[tier]". */
#define UTIL_TIER_TESTS(fn)                                                                        \
    {#fn "[avx2]", fn, NULL, NULL, (void *)&util_tier_list[SK_ISA_AVX2]},                          \
    {#fn "[avx512]", fn, NULL, NULL, (void *)&util_tier_list[SK_ISA_AVX512VNNI]},                  \
    {#fn "[amx]", fn, NULL, NULL, (void *)&util_tier_list[SK_ISA_AMX]}

#endif
