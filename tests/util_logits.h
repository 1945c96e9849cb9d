/* util_logits.h - what the golden tests (test_golden, test_gemma,
 * test_families) do with logits and golden token lists. */
#ifndef SK_TEST_UTIL_LOGITS_H
#define SK_TEST_UTIL_LOGITS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sinkllm.h"

/* Index of the largest of x[0..n) (the first on ties). */
int logits_argmax(const float *x, int64_t n);

/* The 20th largest value of x[0..n) (n >= 20). */
float logits_top20_threshold(const float *x, int64_t n);

/* A JSON array of token ids as a malloc'd int32 array (one spare slot);
 * *n = its length. Aborts the test on allocation failure. */
int32_t *json_ids(json_t *arr, size_t *n);

/* Greedy steps of c against llama.cpp's continuation want[0..nc): at each
 * step the argmax of c's logits (nv of them) is compared with want[k]; a
 * different token is a near-tie when both gaps (llama.cpp's gaps[k], and
 * ours between the two tokens) are below tie_tol (counted in *ties), else a
 * failure (*fails); either is printed after label. llama.cpp's token is
 * fed in every case, so that every step is checked. Returns SK_OK or
 * sk_decode's status (err set). */
sk_status greedy_follow(sk_context *c, int64_t nv, const int32_t *want, json_t *gaps, size_t nc,
                        double tie_tol, const char *label, int *ties, int *fails, sk_error *err);

#endif
