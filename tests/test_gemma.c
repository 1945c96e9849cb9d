/* test_gemma.c - sinkllm against llama.cpp on real Gemma 3 weights
 * (gemma-3-270m-Q4_K_M.gguf, $SINKLLM_GEMMA_MODEL; `make model
 * MODEL=gemma3-270m` fetches it).
 *
 * tests/golden/gemma3/{logits,greedy}.json were written by llama.cpp
 * (llama-cpp-python 0.3.36, `scripts/make_golden.py --prompt-set gemma3`,
 * meta.json): six prompts with BOS, two of them (moby_long, chat_long)
 * longer than Gemma 3's 512-token sliding window, so that the local layers'
 * window cache and the global layers' full attention are both exercised;
 * two are Gemma turns (<start_of_turn>). One cmocka test per prompt, through
 * the public API (sinkllm.h):
 *   - dense cache (n_ctx 2048): the top-20 logits of the last prompt
 *     position against llama.cpp's, both relative to their mean over the
 *     vocabulary (MEAN_SHIFT_TOL says why), with the rules and limits of
 *     test_golden.c: each within LOGIT_TOL, mean within LOGIT_MEAN_TOL,
 *     >= 15 of llama.cpp's top-20 in ours, top-1 equal unless llama.cpp's
 *     top-2 gap is a tie), then 32 greedy steps: our argmax equals
 *     llama.cpp's token except at near-ties (both gaps < TIE_TOL), at most
 *     MAX_TIE_PCT % of all steps (test_ties, last);
 *   - the default sink cache (4 sinks + 2044 window; nothing is evicted,
 *     since every prompt plus its 32 steps fits in 2048) passes the same
 *     checks against the same goldens, with the same limits. Not bit for
 *     bit against dense: fed one token at a time the two caches give the
 *     same logits exactly, and so do chunks of up to 24 tokens, but longer
 *     chunks take the blocked attention path, which sums the sinks and the
 *     window in another order than one run of keys (precise mode, 1fe2666:
 *     1.7e-3 apart after 32 tokens, as far as dense chunked is from dense
 *     token by token, 2.1e-3), and the 8-bit activations of the fast path
 *     magnify that to 0.6-0.9 on single logits (918aa78: 0.87 and 0.88 on
 *     the long prompts; dense chunked vs dense token by token, 1fe2666:
 *     up to 1.15); the printout gives the figure per prompt.
 *
 * Without $SINKLLM_GEMMA_MODEL, or when the file is missing, every test is
 * skipped with a message that names the variable or the path.
 *
 * Limits = measured error + a margin (docs/testing.md); the measured
 * figures are in this file's printout and below at each limit. */
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sinkllm.h"
#include "util_logits.h"
#include "util_model.h"

#define LOGIT_TOL 0.6       /* max |logit diff| over llama.cpp's top-20 (as test_golden.c) */
#define LOGIT_MEAN_TOL 0.35 /* mean |logit diff| over the top-20 (as test_golden.c) */
#define TOP1_TIE 0.05       /* a real tie: llama.cpp's top-1/top-2 gap below this */
/* Greedy near-ties: both gaps below TIE_TOL, at most MAX_TIE_PCT % of the
 * steps of each cache. test_golden.c has 0.25 and 2% (SmolLM2); Gemma 3
 * needs more, measured: at step 2 of moby_long llama.cpp's gap is 0.301,
 * a float64 numpy forward pass gives 0.250 and sinkllm's precise mode
 * 0.251, while sinkllm's fast path gives -0.063 with chunks of 256, +0.283
 * fed token by token and +0.197 with an F32 KV cache: its 8-bit
 * activations alone move this gap by 0.35, so 0.4. Gemma's distributions
 * are flatter: llama.cpp's gap is below 0.05 at 2.6% of the 192 steps
 * (SmolLM2: 1.3% of 384) and below 0.4 at 14% (SmolLM2: 11%). Measured
 * near-ties on 918aa78: dense 5 of 192, sink 6 (3.1%; llama.cpp's gap
 * <= 0.263 at each), on 1fe2666 dense 6; limit 5%. */
#define TIE_TOL 0.4
#define MAX_TIE_PCT 5
/* Logits are compared relative to each engine's mean over the vocabulary
 * (llama.cpp's is in logits.json, stats.mean): a shift of every logit by
 * one constant changes no probability, and on Gemma 3 that constant is
 * chaotic. Measured on the prompt "chat": against a float64 numpy forward
 * pass over the dequantized weights (a diagnostic written for this test,
 * which sinkllm's precise mode matches within 0.01) llama.cpp's top-20
 * logits are all lower by 1.03-1.45 (mean 1.24) with the settings of the
 * goldens, and llama.cpp's own vocabulary mean moves by 0.39 between F16
 * and F32 KV and batch 512 or 1; relative to the means it is within 0.48 of
 * the f64 pass on "chat" and "plain" in all four settings. The offset of
 * the means itself is bounded by MEAN_SHIFT_TOL (measured <= 0.79 on
 * these prompts; f64 vs llama.cpp 1.24): a missing embedding scale or norm
 * moves it by whole units. Measured on 918aa78 (AVX2, both caches): max
 * |centred logit diff| 0.48 (code), mean per prompt 0.06-0.27, offsets
 * -0.27..+0.78. Sensitivity: the f64 pass with the sliding window left out
 * (every layer global) is 5.6 (chat_long) and 11.4 (moby_long) away from
 * llama.cpp's top-20 and changes the top-1 of both; with the window it is
 * within 0.16 and 0.20. */
#define MEAN_SHIFT_TOL 1.5
#define N_CTX 2048

static sk_model *g_model;
static int g_tried;
static json_t *g_logits, *g_greedy;
static int g_steps[2], g_ties[2], g_fail_steps[2]; /* per cache: dense, sink */
static double g_worst, g_worst_sink, g_worst_shift;

static void free_all(void) {
    sk_model_free(g_model);
    json_decref(g_logits);
    json_decref(g_greedy);
}

/* Gemma 3 270M, loaded once; NULL (the test then skips) when
 * $SINKLLM_GEMMA_MODEL is unset or names no readable file. */
static sk_model *gemma_model(void) {
    if (g_tried) return g_model;
    g_tried = 1;
    const char *p = getenv("SINKLLM_GEMMA_MODEL");
    if (!p || !*p) {
        printf("skipped: test_gemma: SINKLLM_GEMMA_MODEL is not set (make test sets it; "
               "make model MODEL=gemma3-270m fetches the file)\n");
        return NULL;
    }
    if (access(p, R_OK) != 0) {
        printf("skipped: test_gemma: SINKLLM_GEMMA_MODEL=%s not found "
               "(make model MODEL=gemma3-270m fetches it)\n", p);
        return NULL;
    }
    sk_error err = {0};
    if (sk_model_load(p, &g_model, &err)) fail_msg("cannot load %s: %s", p, err.msg);
    atexit(free_all);
    json_error_t je;
    g_logits = json_load_file(test_data_path("golden/gemma3/logits.json"), 0, &je);
    if (!g_logits) fail_msg("golden/gemma3/logits.json: %s (line %d)", je.text, je.line);
    g_greedy = json_load_file(test_data_path("golden/gemma3/greedy.json"), 0, &je);
    if (!g_greedy) fail_msg("golden/gemma3/greedy.json: %s (line %d)", je.text, je.line);
    return g_model;
}

static sk_context *new_ctx(sk_model *m, int dense) {
    sk_context_params p;
    sk_context_params_default(&p); /* the default cache: sink 4 + 2044 */
    p.n_threads = 2;
    if (dense) {
        p.cache.policy = SK_CACHE_DENSE;
        p.cache.n_ctx = N_CTX;
    }
    sk_context *c = NULL;
    sk_error err = {0};
    if (sk_context_new(m, &p, &c, &err)) fail_msg("context: %s", err.msg);
    return c;
}

/* max |a - b| over the whole vocabulary */
static double max_diff(const float *a, const float *b, int64_t n) {
    double w = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= w)) w = d; /* NaN counts as worst */
    }
    return w;
}

static json_t *find_prompt(json_t *root, const char *name) {
    json_t *ps = json_object_get(root, "prompts");
    for (size_t i = 0; i < json_array_size(ps); i++) {
        json_t *p = json_array_get(ps, i);
        if (!strcmp(json_string_value(json_object_get(p, "name")), name)) return p;
    }
    fail_msg("prompt %s is not in the golden files", name);
    return NULL;
}

/* The top-20 check of test_golden.c on the logits after the prompt, each
 * engine's logits taken relative to its own mean over the vocabulary (see
 * MEAN_SHIFT_TOL); the offset between the two means is bounded apart. */
static void check_top20(const char *name, json_t *p, const float *lg, int64_t nv) {
    json_t *top = json_object_get(p, "top");
    assert_int_equal(json_array_size(top), 20);
    double mean = 0;
    for (int64_t i = 0; i < nv; i++) mean += lg[i];
    mean /= (double)nv;
    double want_mean = json_number_value(json_object_get(json_object_get(p, "stats"), "mean"));
    double shift = mean - want_mean;
    if (fabs(shift) > g_worst_shift) g_worst_shift = fabs(shift);
    if (!(fabs(shift) <= MEAN_SHIFT_TOL))
        fail_msg("prompt %s: mean logit %.4f, llama.cpp %.4f", name, mean, want_mean);
    double sum_abs = 0, worst = 0;
    for (size_t k = 0; k < 20; k++) {
        json_t *e = json_array_get(top, k);
        int id = (int)json_integer_value(json_array_get(e, 0));
        double want = json_number_value(json_array_get(e, 1));
        double diff = fabs((lg[id] - mean) - (want - want_mean));
        sum_abs += diff;
        if (!(diff <= worst)) worst = diff;
        if (!(diff <= LOGIT_TOL))
            fail_msg("prompt %s: logit[%d] = %f (mean %f), llama.cpp %f (mean %f)", name, id,
                     lg[id], mean, want, want_mean);
    }
    if (worst > g_worst) g_worst = worst;
    int top1 = (int)json_integer_value(json_array_get(json_array_get(top, 0), 0));
    double gap = json_number_value(json_array_get(json_array_get(top, 0), 1)) -
                 json_number_value(json_array_get(json_array_get(top, 1), 1));
    float kth = logits_top20_threshold(lg, nv);
    int overlap = 0;
    for (size_t k = 0; k < 20; k++)
        overlap += lg[json_integer_value(json_array_get(json_array_get(top, k), 0))] >= kth;
    printf("  %-12s logits: max |diff| %.4f, mean %.4f (mean logit offset %+.4f), llama.cpp "
           "top-1 gap %.4f, top-20 overlap %d\n", name, worst, sum_abs / 20, shift, gap, overlap);
    if (sum_abs / 20 > LOGIT_MEAN_TOL)
        fail_msg("prompt %s: mean |logit diff| %.3f > %.2f", name, sum_abs / 20, LOGIT_MEAN_TOL);
    if (gap >= TOP1_TIE) assert_int_equal(logits_argmax(lg, nv), top1);
    if (overlap < 15) fail_msg("prompt %s: only %d of llama.cpp's top-20 in ours", name, overlap);
}

static const char *const CACHE_NAME[2] = {"dense", "sink"};

/* One prompt through one cache (0 dense, 1 the default sink cache): the
 * top-20 check after the prompt, then the greedy steps, following
 * llama.cpp's token after a near-tie so that every step is checked. The
 * logits after the prompt are copied into `after` (n_vocab). */
static void run_cache(const char *name, int cache, json_t *pl, json_t *pg, float *after) {
    sk_model *m = g_model;
    int64_t nv = sk_model_hparams(m)->n_vocab;
    size_t n, nc;
    int32_t *ids = json_ids(json_object_get(pl, "ids"), &n);
    int32_t *want = json_ids(json_object_get(pg, "continuation"), &nc);
    assert_true(n + nc <= N_CTX);
    sk_context *c = new_ctx(m, cache == 0);
    sk_error err = {0};
    if (sk_decode(c, ids, (int64_t)n, &err)) fail_msg("%s: %s: %s", name, CACHE_NAME[cache], err.msg);
    memcpy(after, sk_logits(c), sizeof(float) * (size_t)nv);
    char label[64];
    snprintf(label, sizeof label, "%s/%s", name, CACHE_NAME[cache]);
    check_top20(label, pl, after, nv);
    json_t *gaps = json_object_get(pg, "gaps");
    int ties = 0, fails = 0;
    if (greedy_follow(c, nv, want, gaps, nc, TIE_TOL, label, &ties, &fails, &err))
        fail_msg("%s: %s", label, err.msg);
    sk_context_stats st;
    sk_context_get_stats(c, &st);
    assert_int_equal(st.n_evicted, 0); /* the premise: nothing evicted, in either cache */
    printf("  %-18s %zu prompt tokens, greedy %zu steps: %d near-ties, %d failures\n", label, n,
           nc, ties, fails);
    g_steps[cache] += (int)nc;
    g_ties[cache] += ties;
    g_fail_steps[cache] += fails;
    sk_context_free(c);
    free(ids);
    free(want);
    assert_int_equal(fails, 0);
}

/* One prompt: dense, then the default sink cache, both against llama.cpp. */
static void run_prompt(const char *name) {
    sk_model *m = gemma_model();
    if (!m) skip();
    json_t *pl = find_prompt(g_logits, name), *pg = find_prompt(g_greedy, name);
    assert_true(json_equal(json_object_get(pl, "ids"), json_object_get(pg, "ids")));
    int64_t nv = sk_model_hparams(m)->n_vocab;
    float *dense = malloc(sizeof(float) * (size_t)nv), *sink = malloc(sizeof(float) * (size_t)nv);
    assert_true(dense && sink);
    run_cache(name, 0, pl, pg, dense);
    run_cache(name, 1, pl, pg, sink);
    double sd = max_diff(dense, sink, nv);
    printf("  %-18s sink vs dense after the prompt: max |logit diff| over the vocabulary %.3g\n",
           name, sd);
    if (sd > g_worst_sink) g_worst_sink = sd;
    free(dense);
    free(sink);
}

static void test_plain(void **state) { (void)state; run_prompt("plain"); }
static void test_chat(void **state) { (void)state; run_prompt("chat"); }
static void test_code(void **state) { (void)state; run_prompt("code"); }
static void test_multilingual(void **state) { (void)state; run_prompt("multilingual"); }
static void test_moby_long(void **state) { (void)state; run_prompt("moby_long"); }
static void test_chat_long(void **state) { (void)state; run_prompt("chat_long"); }

/* the goldens are what the tests above assume: six prompts, two past the
 * sliding window, two Gemma turns, 32 steps each */
static void test_golden_shape(void **state) {
    (void)state;
    sk_model *m = gemma_model();
    if (!m) skip();
    json_t *ps = json_object_get(g_greedy, "prompts");
    assert_int_equal(json_array_size(ps), 6);
    assert_int_equal(json_array_size(json_object_get(g_logits, "prompts")), 6);
    int longer = 0, turns = 0;
    int32_t bos = sk_tokenizer_bos(sk_model_tokenizer(m));
    for (size_t i = 0; i < 6; i++) {
        json_t *p = json_array_get(ps, i);
        json_t *ids = json_object_get(p, "ids");
        longer += json_array_size(ids) > (size_t)sk_model_hparams(m)->n_swa;
        turns += strstr(json_string_value(json_object_get(p, "text")), "<start_of_turn>") != NULL;
        assert_int_equal(json_integer_value(json_array_get(ids, 0)), bos);
        assert_int_equal(json_array_size(json_object_get(p, "continuation")), 32);
    }
    assert_true(longer >= 2);
    assert_true(turns >= 2);
}

/* The logits after moby_long (657 tokens: causal attention blocks of
 * unequal cost, both caches' layers, pre-fill chunks of 256) are the same
 * bits at 1, 2 and 3 threads: work is split, never reduced in another
 * order (the pool deals attention blocks round-robin, norms by row,
 * activations by 64-element ranges). */
static void test_threads_invariant(void **state) {
    (void)state;
    sk_model *m = gemma_model();
    if (!m) skip();
    size_t n;
    int32_t *ids = json_ids(json_object_get(find_prompt(g_logits, "moby_long"), "ids"), &n);
    int64_t nv = sk_model_hparams(m)->n_vocab;
    float *ref = malloc(sizeof(float) * (size_t)nv);
    assert_non_null(ref);
    for (int t = 1; t <= 3; t++) {
        sk_context_params p;
        sk_context_params_default(&p);
        p.n_threads = t;
        sk_context *c = NULL;
        sk_error err = {0};
        if (sk_context_new(m, &p, &c, &err)) fail_msg("context: %s", err.msg);
        if (sk_decode(c, ids, (int64_t)n, &err)) fail_msg("decode: %s", err.msg);
        if (t == 1) memcpy(ref, sk_logits(c), sizeof(float) * (size_t)nv);
        else if (memcmp(ref, sk_logits(c), sizeof(float) * (size_t)nv) != 0)
            fail_msg("logits after %zu tokens differ between 1 and %d threads", n, t);
        sk_context_free(c);
    }
    free(ref);
    free(ids);
}

/* near-ties are rare: more would mean a systematic bias (runs last) */
static void test_ties(void **state) {
    (void)state;
    if (!gemma_model()) skip();
    for (int k = 0; k < 2; k++) {
        printf("  greedy, %s cache: %d steps, %d near-ties, %d failures\n", CACHE_NAME[k],
               g_steps[k], g_ties[k], g_fail_steps[k]);
        assert_int_equal(g_steps[k], 6 * 32);
        assert_true(g_ties[k] * 100 <= g_steps[k] * MAX_TIE_PCT);
    }
    printf("  max |logit diff| over the top-20s %.4f, max |mean logit offset| %.4f; sink vs dense "
           "after the prompts %.3g\n", g_worst, g_worst_shift, g_worst_sink);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_shape),
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_chat),
        cmocka_unit_test(test_code),
        cmocka_unit_test(test_multilingual),
        cmocka_unit_test(test_moby_long),
        cmocka_unit_test(test_chat_long),
        cmocka_unit_test(test_threads_invariant),
        cmocka_unit_test(test_ties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
