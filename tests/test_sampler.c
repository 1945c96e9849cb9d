/* test_sampler.c - the sampler chain against hand-computed expectations.
 *
 * Each stage (penalties, top-k, top-p, min-p, temperature, draw) is checked
 * on hand-built logits whose surviving set or changed values are worked out
 * in the comments; the draw is checked empirically against the softmax. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "text/sampler.h"

static sk_sampler_params params_plain(void) {
    sk_sampler_params p;
    sk_sampler_params_default(&p);
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.temp = 1.0f;
    p.seed = 42;
    return p;
}

static sk_sampler *make(const sk_sampler_params *p, int64_t n_vocab) {
    sk_sampler *s = NULL;
    sk_error err = {0};
    sk_status st = sk_sampler_new(p, n_vocab, &s, &err);
    if (st != SK_OK) fail_msg("sk_sampler_new: %s", err.msg);
    assert_non_null(s);
    return s;
}

/* Tiny deterministic generator for test inputs (independent of the
 * sampler's own). */
static uint64_t lcg_state = 1;
static float rand_logit(void) {
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(lcg_state >> 40) / (double)(1 << 24) * 20.0 - 10.0);
}

/* The five-token distribution used below: probabilities 0.4 .. 0.05, spread
 * over a vocabulary of 10 at scrambled ids; the rest are negligible. */
enum { NV = 10 };
static const int32_t ids5[5] = {7, 2, 9, 0, 4};
/* the full best-first order: the five, then the tied rest by id */
static const int32_t order10[NV] = {7, 2, 9, 0, 4, 1, 3, 5, 6, 8};
static const double probs5[5] = {0.40, 0.30, 0.15, 0.10, 0.05};

static void fill5(float *l) {
    for (int i = 0; i < NV; i++) l[i] = -40.0f;
    for (int i = 0; i < 5; i++) l[ids5[i]] = (float)log(probs5[i]);
}

/* Run the chain on the five-token logits; return the survivor count and
 * check that the survivors are exactly the best `want` of order10, in order. */
static void expect_set(sk_sampler_params p, int64_t want) {
    sk_sampler *s = make(&p, NV);
    float l[NV];
    fill5(l);
    int32_t ids[NV];
    float pr[NV];
    int64_t n = sk_sampler_candidates(s, l, ids, pr, NV);
    assert_int_equal(n, want);
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        assert_int_equal(ids[i], order10[i]);
        sum += pr[i];
    }
    assert_true(fabs(sum - 1.0) < 1e-5);
    sk_sampler_free(s);
}

/* ---- greedy ------------------------------------------------------------ */

static void test_greedy_argmax(void **state) {
    (void)state;
    sk_sampler_params p = params_plain();
    p.temp = 0.0f;
    sk_sampler *s = make(&p, 1000);
    float l[1000];
    for (int trial = 0; trial < 50; trial++) {
        int best = 0;
        for (int i = 0; i < 1000; i++) {
            l[i] = rand_logit();
            if (l[i] > l[best]) best = i;
        }
        assert_int_equal(sk_sampler_sample(s, l), best);
    }
    /* ties -> lowest id */
    for (int i = 0; i < 1000; i++) l[i] = 0.0f;
    l[700] = 3.0f;
    l[300] = 3.0f;
    l[999] = 3.0f;
    assert_int_equal(sk_sampler_sample(s, l), 300);
    sk_sampler_free(s);

    /* negative temperature is greedy too (llama.cpp) */
    p.temp = -1.0f;
    s = make(&p, 1000);
    l[5] = 9.0f;
    assert_int_equal(sk_sampler_sample(s, l), 5);
    int32_t id;
    float pr;
    assert_int_equal(sk_sampler_candidates(s, l, &id, &pr, 1), 1);
    assert_int_equal(id, 5);
    assert_true(pr == 1.0f);
    sk_sampler_free(s);
}

static void test_greedy_nan_is_lowest(void **state) {
    (void)state;
    sk_sampler_params p = params_plain();
    p.temp = 0.0f;
    sk_sampler *s = make(&p, 4);
    float l[4] = {NAN, -1.0f, NAN, -2.0f};
    assert_int_equal(sk_sampler_sample(s, l), 1);
    sk_sampler_free(s);
}

static void test_top_k1_is_greedy(void **state) {
    (void)state;
    enum { N = 5000 };
    static float l[N], l2[N];
    sk_sampler_params pg = params_plain(), pk;
    sk_sampler_params_default(&pk);
    pg.temp = 0.0f;
    pk.top_k = 1;
    pk.seed = 7;
    const float temps[] = {0.1f, 1.0f, 5.0f, 100.0f};
    sk_sampler *g = make(&pg, N);
    for (size_t t = 0; t < sizeof temps / sizeof temps[0]; t++) {
        pk.temp = temps[t];
        sk_sampler *k = make(&pk, N);
        for (int trial = 0; trial < 20; trial++) {
            for (int i = 0; i < N; i++) l[i] = l2[i] = rand_logit();
            l[trial * 17 + 5] = l2[trial * 17 + 5] = 10.0f; /* a tied max: lowest id */
            l[trial * 17] = l2[trial * 17] = 10.0f;
            assert_int_equal(sk_sampler_sample(k, l), sk_sampler_sample(g, l2));
        }
        sk_sampler_free(k);
    }
    sk_sampler_free(g);
}

/* ---- determinism ------------------------------------------------------- */

static void draw_seq(uint64_t seed, int32_t *out, int n) {
    sk_sampler_params p = params_plain();
    p.seed = seed;
    sk_sampler *s = make(&p, 64);
    float l[64];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < 64; j++) l[j] = (float)(j % 7) * 0.1f;
        out[i] = sk_sampler_sample(s, l);
    }
    /* reset with the same seed replays the sequence */
    sk_sampler_reset(s, seed);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < 64; j++) l[j] = (float)(j % 7) * 0.1f;
        assert_int_equal(sk_sampler_sample(s, l), out[i]);
    }
    assert_true(sk_sampler_seed(s) == seed);
    sk_sampler_free(s);
}

static void test_seed_determinism(void **state) {
    (void)state;
    int32_t a[200], b[200], c[200];
    draw_seq(1234, a, 200);
    draw_seq(1234, b, 200);
    draw_seq(1235, c, 200);
    assert_memory_equal(a, b, sizeof a);
    int differ = 0;
    for (int i = 0; i < 200; i++) differ += a[i] != c[i];
    assert_true(differ > 100); /* 64 near-uniform choices: ~197 expected */

    /* SK_SEED_RANDOM picks a concrete seed that can be read back */
    sk_sampler_params p = params_plain();
    p.seed = SK_SEED_RANDOM;
    sk_sampler *s = make(&p, 8);
    assert_true(sk_sampler_seed(s) != SK_SEED_RANDOM);
    sk_sampler_free(s);
}

/* ---- the draw: empirical distribution ---------------------------------- */

static void check_distribution(float temp, int top_k) {
    enum { DRAWS = 100000 };
    sk_sampler_params p = params_plain();
    p.temp = temp;
    p.top_k = top_k;
    p.seed = 99;
    sk_sampler *s = make(&p, NV);
    /* expected: softmax(log(p) / temp) over the five */
    double expect[5], z = 0.0;
    for (int i = 0; i < 5; i++) z += expect[i] = pow(probs5[i], 1.0 / temp);
    for (int i = 0; i < 5; i++) expect[i] /= z;

    long count[NV] = {0};
    float l[NV];
    for (int d = 0; d < DRAWS; d++) {
        fill5(l);
        int32_t t = sk_sampler_sample(s, l);
        assert_true(t >= 0 && t < NV);
        count[t]++;
    }
    double chi2 = 0.0;
    long in5 = 0;
    for (int i = 0; i < 5; i++) {
        double f = (double)count[ids5[i]] / DRAWS;
        in5 += count[ids5[i]];
        if (fabs(f - expect[i]) > 0.01)
            fail_msg("temp %g token %d: frequency %.4f, expected %.4f", (double)temp, ids5[i], f,
                     expect[i]);
        double e = expect[i] * DRAWS;
        chi2 += (count[ids5[i]] - e) * (count[ids5[i]] - e) / e;
    }
    assert_int_equal(in5, DRAWS); /* the -40 tokens (~1e-17) never come up */
    /* 4 degrees of freedom: P(chi2 > 18.47) = 0.001 */
    if (chi2 > 18.47) fail_msg("temp %g: chi2 %.2f over 4 dof", (double)temp, chi2);
    sk_sampler_free(s);
}

static void test_distribution_temp1(void **state) {
    (void)state;
    check_distribution(1.0f, 0); /* whole vocabulary, nothing sorted */
}

static void test_distribution_temp_half_and_two(void **state) {
    (void)state;
    check_distribution(0.5f, 0);
    check_distribution(2.0f, 5); /* through the sorted (top-k) path */
}

/* ---- truncation: exact survivor sets ----------------------------------- */

static void test_top_k_set(void **state) {
    (void)state;
    sk_sampler_params p = params_plain();
    for (int k = 1; k <= 5; k++) {
        p.top_k = k;
        expect_set(p, k);
    }
    p.top_k = 0; /* disabled: all ten survive */
    {
        sk_sampler *s = make(&p, NV);
        float l[NV];
        fill5(l);
        assert_int_equal(sk_sampler_candidates(s, l, NULL, NULL, 0), NV);
        sk_sampler_free(s);
    }
    p.top_k = 1000; /* larger than the vocabulary: all survive */
    {
        sk_sampler *s = make(&p, NV);
        float l[NV];
        fill5(l);
        assert_int_equal(sk_sampler_candidates(s, l, NULL, NULL, 0), NV);
        sk_sampler_free(s);
    }
    /* ties at the cut: lowest id wins */
    p.top_k = 2;
    sk_sampler *s = make(&p, 6);
    float l[6] = {0.0f, 1.0f, 0.0f, 2.0f, 1.0f, 1.0f};
    int32_t ids[6];
    assert_int_equal(sk_sampler_candidates(s, l, ids, NULL, 6), 2);
    assert_int_equal(ids[0], 3);
    assert_int_equal(ids[1], 1);
    sk_sampler_free(s);
}

static void test_top_p_set(void **state) {
    (void)state;
    /* cumulative: 0.40, 0.70, 0.85, 0.95, 1.00; keep through the token
     * that reaches top_p */
    sk_sampler_params p = params_plain();
    const struct { float top_p; int64_t n; } c[] = {
        {0.0f, 1}, {0.3f, 1}, {0.45f, 2}, {0.65f, 2}, {0.72f, 3}, {0.8f, 3}, {0.9f, 4}, {0.97f, 5},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        p.top_p = c[i].top_p;
        expect_set(p, c[i].n);
    }
    /* after top-k the softmax is renormalised over the k survivors:
     * k = 2: 0.571, 0.429 -> top_p 0.8 keeps both;
     * k = 3: 0.471, 0.353, 0.176 (cumulative 0.471, 0.824) -> top_p 0.8
     * keeps two, where over the whole vocabulary it keeps three. */
    p.top_p = 0.8f;
    p.top_k = 2;
    expect_set(p, 2);
    p.top_k = 3;
    expect_set(p, 2);
    p.top_p = 0.5f; /* k = 3: 0.471 < 0.5 -> two */
    expect_set(p, 2);
    p.top_p = 0.45f; /* 0.471 >= 0.45 -> one */
    expect_set(p, 1);
}

static void test_min_p_set(void **state) {
    (void)state;
    /* keep p >= min_p * 0.40 */
    sk_sampler_params p = params_plain();
    const struct { float min_p; int64_t n; } c[] = {
        {1.0f, 1},   /* only the max */
        {0.8f, 1},   /* 0.32: 0.30 fails */
        {0.7f, 2},   /* 0.28 */
        {0.3f, 3},   /* 0.12 */
        {0.26f, 3},  /* 0.104: 0.10 fails */
        {0.2f, 4},   /* 0.08 */
        {0.1f, 5},   /* 0.04 */
        {1e-30f, NV}, /* e^-40 ~ 4e-18 relative 1e-17: survives */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        p.min_p = c[i].min_p;
        expect_set(p, c[i].n);
    }
    /* the threshold is inclusive: min_p 1 keeps every token tied with the max */
    {
        p.min_p = 1.0f;
        sk_sampler *s = make(&p, 4);
        float l[4] = {1.0f, 2.0f, 0.5f, 2.0f};
        int32_t ids[4];
        assert_int_equal(sk_sampler_candidates(s, l, ids, NULL, 4), 2);
        assert_int_equal(ids[0], 1);
        assert_int_equal(ids[1], 3);
        sk_sampler_free(s);
    }
    /* min-p runs after top-p: top_p 0.8 keeps three, min_p 0.7 cuts to two */
    p.top_p = 0.8f;
    p.min_p = 0.7f;
    expect_set(p, 2);
    /* min-p is on the logits before temperature: a high temp does not
     * change the set */
    p.top_p = 1.0f;
    p.min_p = 0.3f;
    p.temp = 10.0f;
    expect_set(p, 3);
}

static void test_temperature_probs(void **state) {
    (void)state;
    sk_sampler_params p = params_plain();
    p.top_k = 3;
    p.temp = 0.5f;
    sk_sampler *s = make(&p, NV);
    float l[NV];
    fill5(l);
    int32_t ids[3];
    float pr[3];
    assert_int_equal(sk_sampler_candidates(s, l, ids, pr, 3), 3);
    /* squares of 0.40, 0.30, 0.15 renormalised */
    const double z = 0.16 + 0.09 + 0.0225;
    assert_float_equal(pr[0], 0.16 / z, 1e-5);
    assert_float_equal(pr[1], 0.09 / z, 1e-5);
    assert_float_equal(pr[2], 0.0225 / z, 1e-5);
    /* cap smaller than the set: count still the whole set */
    fill5(l);
    assert_int_equal(sk_sampler_candidates(s, l, ids, pr, 1), 3);
    assert_int_equal(ids[0], 7);
    sk_sampler_free(s);
}

static void test_defaults_large_vocab(void **state) {
    (void)state;
    enum { N = 49152 };
    static float l[N], keep[N];
    sk_sampler_params p;
    sk_sampler_params_default(&p);
    p.seed = 3;
    sk_sampler *s = make(&p, N);
    int32_t ids[64];
    for (int trial = 0; trial < 100; trial++) {
        for (int i = 0; i < N; i++) keep[i] = rand_logit();
        memcpy(l, keep, sizeof l);
        int64_t n = sk_sampler_candidates(s, l, ids, NULL, 64);
        assert_true(n >= 1 && n <= 40);
        memcpy(l, keep, sizeof l);
        int32_t t = sk_sampler_sample(s, l);
        int found = 0;
        for (int64_t i = 0; i < n; i++) found |= ids[i] == t;
        assert_true(found);
        for (int64_t i = 1; i < n; i++) assert_true(keep[ids[i - 1]] >= keep[ids[i]]);
    }
    sk_sampler_free(s);
}

/* ---- penalties --------------------------------------------------------- */

static void apply(sk_sampler *s, float *l) { (void)sk_sampler_candidates(s, l, NULL, NULL, 0); }

static void test_repeat_penalty(void **state) {
    (void)state;
    sk_sampler_params p = params_plain();
    p.repeat_penalty = 2.0f;
    sk_sampler *s = make(&p, 5);
    sk_sampler_accept(s, 1);
    sk_sampler_accept(s, 2);
    sk_sampler_accept(s, 3);
    sk_sampler_accept(s, 3); /* counted twice: repeat penalty applies once */
    float l[5] = {4.0f, 4.0f, -1.5f, 0.0f, -3.0f};
    apply(s, l);
    assert_float_equal(l[0], 4.0f, 0);  /* unseen */
    assert_float_equal(l[1], 2.0f, 0);  /* positive: divided */
    assert_float_equal(l[2], -3.0f, 0); /* negative: multiplied */
    assert_float_equal(l[3], 0.0f, 0);  /* zero stays zero */
    assert_float_equal(l[4], -3.0f, 0); /* unseen */
    /* out-of-range ids are ignored */
    sk_sampler_accept(s, -1);
    sk_sampler_accept(s, 5);
    /* reset forgets the history */
    sk_sampler_reset(s, 1);
    float m[5] = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    apply(s, m);
    for (int i = 0; i < 5; i++) assert_float_equal(m[i], 1.0f, 0);
    sk_sampler_free(s);
}

static void test_frequency_presence(void **state) {
    (void)state;
    sk_sampler_params p = params_plain();
    p.repeat_penalty = 1.5f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    sk_sampler *s = make(&p, 4);
    const int32_t hist[] = {0, 2, 0, 0, 3};
    for (size_t i = 0; i < sizeof hist / sizeof hist[0]; i++) sk_sampler_accept(s, hist[i]);
    float l[4] = {3.0f, 1.0f, -2.0f, 0.6f};
    apply(s, l);
    assert_float_equal(l[0], 3.0f / 1.5f - 3 * 0.5f - 0.25f, 1e-6);  /* 0.25 */
    assert_float_equal(l[1], 1.0f, 0);                                 /* unseen */
    assert_float_equal(l[2], -2.0f * 1.5f - 1 * 0.5f - 0.25f, 1e-6); /* -3.75 */
    assert_float_equal(l[3], 0.6f / 1.5f - 0.5f - 0.25f, 1e-6);       /* -0.35 */
    sk_sampler_free(s);
}

static void test_penalty_window(void **state) {
    (void)state;
    sk_sampler_params p = params_plain();
    p.frequency_penalty = 1.0f;
    const int32_t hist[] = {0, 0, 1, 2, 0, 3}; /* last 3: 2, 0, 3 */
    struct { int32_t last_n; float want[5]; } c[] = {
        {3, {-1, 0, -1, -1, 0}},
        {1, {0, 0, 0, -1, 0}},
        {6, {-3, -1, -1, -1, 0}},
        {100, {-3, -1, -1, -1, 0}},
        {-1, {-3, -1, -1, -1, 0}},
        {0, {0, 0, 0, 0, 0}},
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        p.repeat_last_n = c[k].last_n;
        sk_sampler *s = make(&p, 5);
        for (size_t i = 0; i < sizeof hist / sizeof hist[0]; i++) sk_sampler_accept(s, hist[i]);
        float l[5] = {0};
        apply(s, l);
        for (int i = 0; i < 5; i++) {
            if (l[i] != c[k].want[i])
                fail_msg("last_n %d token %d: %g, want %g", c[k].last_n, i, (double)l[i],
                         (double)c[k].want[i]);
        }
        sk_sampler_free(s);
    }
}

static void test_penalty_changes_greedy(void **state) {
    (void)state;
    sk_sampler_params p = params_plain();
    p.temp = 0.0f;
    p.repeat_penalty = 1.3f;
    sk_sampler *s = make(&p, 3);
    float l[3] = {1.0f, 1.2f, 0.5f};
    assert_int_equal(sk_sampler_sample(s, l), 1);
    sk_sampler_accept(s, 1); /* 1.2 / 1.3 = 0.923 < 1.0 */
    float m[3] = {1.0f, 1.2f, 0.5f};
    assert_int_equal(sk_sampler_sample(s, m), 0);
    sk_sampler_free(s);
}

/* ---- validation -------------------------------------------------------- */

static void expect_invalid(sk_sampler_params p, const char *field) {
    sk_error err = {0};
    assert_int_equal(sk_sampler_params_validate(&p, &err), SK_ERR_INVALID);
    assert_int_equal(err.code, SK_ERR_INVALID);
    if (!strstr(err.msg, field)) fail_msg("message '%s' does not name %s", err.msg, field);
    static int sentinel;
    sk_sampler *s = (sk_sampler *)&sentinel; /* must be reset to NULL */
    assert_int_equal(sk_sampler_new(&p, 100, &s, NULL), SK_ERR_INVALID);
    assert_null(s);
}

static void test_validate(void **state) {
    (void)state;
    sk_sampler_params d;
    sk_sampler_params_default(&d);
    assert_int_equal(sk_sampler_params_validate(&d, NULL), SK_OK);
    assert_true(d.temp == 0.8f && d.top_k == 40 && d.top_p == 0.95f && d.min_p == 0.05f &&
                d.repeat_penalty == 1.0f && d.repeat_last_n == 64 &&
                d.presence_penalty == 0.0f && d.frequency_penalty == 0.0f &&
                d.seed == SK_SEED_RANDOM);

    sk_sampler_params p;
    p = d; p.temp = NAN; expect_invalid(p, "temp");
    p = d; p.temp = INFINITY; expect_invalid(p, "temp");
    p = d; p.top_p = 1.01f; expect_invalid(p, "top_p");
    p = d; p.top_p = -0.1f; expect_invalid(p, "top_p");
    p = d; p.top_p = NAN; expect_invalid(p, "top_p");
    p = d; p.min_p = -0.01f; expect_invalid(p, "min_p");
    p = d; p.min_p = 1.5f; expect_invalid(p, "min_p");
    p = d; p.min_p = NAN; expect_invalid(p, "min_p");
    p = d; p.repeat_penalty = 0.0f; expect_invalid(p, "repeat_penalty");
    p = d; p.repeat_penalty = -1.0f; expect_invalid(p, "repeat_penalty");
    p = d; p.repeat_penalty = NAN; expect_invalid(p, "repeat_penalty");
    p = d; p.repeat_last_n = -2; expect_invalid(p, "repeat_last_n");
    p = d; p.repeat_last_n = SK_SAMPLER_MAX_LAST_N + 1; expect_invalid(p, "repeat_last_n");
    p = d; p.presence_penalty = NAN; expect_invalid(p, "presence_penalty");
    p = d; p.frequency_penalty = -INFINITY; expect_invalid(p, "frequency_penalty");

    /* accepted edge values */
    p = d; p.temp = -1.0f; assert_int_equal(sk_sampler_params_validate(&p, NULL), SK_OK);
    p = d; p.top_p = 1.0f; p.min_p = 1.0f; p.top_k = -5; p.repeat_last_n = -1;
    assert_int_equal(sk_sampler_params_validate(&p, NULL), SK_OK);
    p = d; p.top_p = 0.0f; p.min_p = 0.0f; p.repeat_last_n = 0; p.presence_penalty = -2.0f;
    assert_int_equal(sk_sampler_params_validate(&p, NULL), SK_OK);

    /* n_vocab */
    sk_error err = {0};
    sk_sampler *s = NULL;
    assert_int_equal(sk_sampler_new(&d, 0, &s, &err), SK_ERR_INVALID);
    assert_non_null(strstr(err.msg, "n_vocab"));
    assert_null(s);
    assert_int_equal(sk_sampler_new(&d, (int64_t)INT32_MAX + 1, &s, &err), SK_ERR_INVALID);
    assert_int_equal(sk_sampler_new(NULL, 10, &s, &err), SK_ERR_INVALID);
    sk_sampler_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_argmax),
        cmocka_unit_test(test_greedy_nan_is_lowest),
        cmocka_unit_test(test_top_k1_is_greedy),
        cmocka_unit_test(test_seed_determinism),
        cmocka_unit_test(test_distribution_temp1),
        cmocka_unit_test(test_distribution_temp_half_and_two),
        cmocka_unit_test(test_top_k_set),
        cmocka_unit_test(test_top_p_set),
        cmocka_unit_test(test_min_p_set),
        cmocka_unit_test(test_temperature_probs),
        cmocka_unit_test(test_defaults_large_vocab),
        cmocka_unit_test(test_repeat_penalty),
        cmocka_unit_test(test_frequency_presence),
        cmocka_unit_test(test_penalty_window),
        cmocka_unit_test(test_penalty_changes_greedy),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
