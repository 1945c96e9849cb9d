/* util_logits.h - what the golden tests (test_golden, test_gemma,
 * test_families) do with logits and golden token lists. */
#ifndef SK_TEST_UTIL_LOGITS_H
#define SK_TEST_UTIL_LOGITS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Index of the largest of x[0..n) (the first on ties). */
int logits_argmax(const float *x, int64_t n);

/* The 20th largest value of x[0..n) (n >= 20). */
float logits_top20_threshold(const float *x, int64_t n);

/* A JSON array of token ids as a malloc'd int32 array (one spare slot);
 * *n = its length. Aborts the test on allocation failure. */
int32_t *json_ids(json_t *arr, size_t *n);

#endif
