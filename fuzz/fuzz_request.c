/* fuzz_request.c - libFuzzer entry point for the request-body parsers of
 * `sinkllm serve` (tools/server_request.c), route by route, the way a
 * client that can send any body would reach them.
 *
 * Input layout:
 *   byte 0   the route: 0 POST /v1/chat/completions, 1 POST /v1/completions,
 *            2 POST /tokenize, 3 POST /detokenize, 4 the session id of
 *            POST /v1/sessions/ID/save and DELETE /v1/sessions/ID (and
 *            X-Session-Id), 5 POST /v1/embeddings (byte 0 modulo 6)
 *   byte 1   bit 0 the vocabulary (SmolLM2, Gemma 3), bits 1-3 the chat
 *            kind, bits 4-5 the X-Session-Id header: none, a valid id, an
 *            invalid one
 *   the rest the body: parsed as the server does (json_loadb with
 *            JSON_REJECT_DUPLICATES; the server answers 400 itself to what
 *            is not a JSON object, so only objects reach the parsers); for
 *            route 4 the id itself (up to a NUL byte).
 * Asserted (a violation aborts), from tools/server_request.h:
 *   - a parser returns 0 or -1; on -1 the status is 400 or 500, the message
 *     is not empty and both strings are terminated;
 *   - a parsed generation request holds what the server may rely on: a
 *     non-empty prompt of ids in [0, n_vocab), 0 <= n_pin <= n_prompt,
 *     at most SRV_MAX_STOPS stop strings of 1-256 bytes and their longest
 *     length, logit biases on distinct ids in range with a finite bias in
 *     [-100, 100] or -inf, sampling parameters that
 *     sk_sampler_params_validate accepts, 1 <= max_tokens <= 2^20, and a
 *     session id that is empty or valid (the header's when there is one);
 *     srv_gen_req_free leaves it empty;
 *   - /tokenize: a NUL-terminated text and 0/1 flags; /detokenize: every id in
 *     range; the library calls the handler makes next (sk_tokenize,
 *     sk_detokenize) are run on what was parsed;
 *   - a completion with a suffix ends its prompt (each of a list) with the
 *     middle token, and a list of prompts holds what the server relies on;
 *   - the session id check agrees with [A-Za-z0-9_-]{1,64}.
 * The tokenizers are read once, on the first input (fuzz/fuzz_vocab.c). */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tools/server_request.h"
#include "fuzz_vocab.h"
#include "text/tokenizer.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_request: %s:%d: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_perr(const srv_perr *e) {
    CHECK(e->status == 400 || e->status == 500);
    CHECK(memchr(e->param, 0, sizeof e->param) && memchr(e->msg, 0, sizeof e->msg));
    CHECK(e->msg[0] != 0);
}

static int valid_id(const char *s, size_t n) {
    if (n < 1 || n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static void check_generate(const srv_parse_env *env, json_t *body, int chat, const char *hdr) {
    srv_gen_req r;
    memset(&r, 0, sizeof r);
    srv_perr e;
    memset(&e, 0, sizeof e);
    int rc = srv_parse_generate(env, body, chat, hdr, &r, &e);
    CHECK(rc == 0 || rc == -1);
    if (rc) {
        check_perr(&e);
    } else {
        CHECK(r.chat == chat);
        CHECK(r.prompt && r.n_prompt >= 1);
        for (int64_t i = 0; i < r.n_prompt; i++) CHECK(r.prompt[i] >= 0 && r.prompt[i] < env->n_vocab);
        CHECK(r.n_pin >= 0 && r.n_pin <= r.n_prompt);
        CHECK(r.n_stop >= 0 && r.n_stop <= SRV_MAX_STOPS);
        size_t longest = 0;
        for (int i = 0; i < r.n_stop; i++) {
            CHECK(r.stops[i] && r.stop_len[i] >= 1 && r.stop_len[i] <= 256);
            if (r.stop_len[i] > longest) longest = r.stop_len[i];
        }
        CHECK(r.max_stop_len == longest);
        CHECK(r.n_bias >= 0 && (r.n_bias == 0 || (r.bias_id && r.bias)));
        for (int i = 0; i < r.n_bias; i++) {
            CHECK(r.bias_id[i] >= 0 && r.bias_id[i] < env->n_vocab);
            CHECK((isfinite(r.bias[i]) && fabsf(r.bias[i]) <= 100) || r.bias[i] == -INFINITY);
            for (int j = 0; j < i; j++) CHECK(r.bias_id[j] != r.bias_id[i]);
        }
        sk_error err = {0};
        CHECK(sk_sampler_params_validate(&r.sp, &err) == SK_OK);
        CHECK(r.max_tokens >= 1 && r.max_tokens <= (1 << 20));
        CHECK(memchr(r.session, 0, sizeof r.session));
        CHECK(r.session[0] == 0 || sk_store_valid_name(r.session));
        if (hdr) CHECK(!strcmp(r.session, hdr));
        CHECK(r.stream == 0 || r.stream == 1);
        CHECK(!r.echo || (!chat && !r.stream && !r.logprobs && memchr(r.echo, 0, r.echo_len + 1)));
        json_t *sv = json_object_get(body, "suffix");
        if (json_is_string(sv) && json_string_length(sv) > 0) { /* fill in the middle: FIM_MID last */
            int32_t fim[3];
            CHECK(!chat && sk_tokenizer_fim(env->tok, fim) && r.prompt[r.n_prompt - 1] == fim[2]);
            for (int i = 0; i < r.n_rest; i++) CHECK(r.rest[i].ids[r.rest[i].n - 1] == fim[2]);
        }
        CHECK(r.n_choices >= 1 && r.n_choices <= SRV_MAX_CHOICES);
        CHECK(r.n_rest >= 0 && (r.n_rest == 0 || (!chat && r.rest)) &&
              (r.n_rest + 1) * r.n_choices <= (r.n_rest ? SRV_MAX_PROMPTS : SRV_MAX_CHOICES));
        for (int i = 0; i < r.n_rest; i++) {
            CHECK(r.rest[i].ids && r.rest[i].n >= 1);
            for (int64_t k = 0; k < r.rest[i].n; k++) CHECK(r.rest[i].ids[k] >= 0 && r.rest[i].ids[k] < env->n_vocab);
            CHECK(!r.rest[i].echo == !r.echo);
        }
        CHECK((r.logprobs == 0 || r.logprobs == 1) && r.top_logprobs >= 0 &&
              r.top_logprobs <= SRV_MAX_TOP_LOGPROBS && (r.logprobs || r.top_logprobs == 0));
        /* tools: chat only; a call that must be made is constrained; the
         * block is listed exactly when calls are read back */
        const srv_tools *t = &r.tools;
        CHECK(chat || (t->mode == SRV_TOOLS_OFF && t->n == 0));
        CHECK(t->n >= 0 && t->n <= SRV_MAX_TOOLS && (t->n == 0 || t->names));
        for (int i = 0; i < t->n; i++) CHECK(t->names[i] && strlen(t->names[i]) >= 1 && strlen(t->names[i]) <= 64);
        CHECK(!t->block == (t->mode == SRV_TOOLS_OFF));
        CHECK(t->mode == SRV_TOOLS_OFF || t->n >= 1);
        CHECK((t->mode != SRV_TOOLS_REQUIRED && t->mode != SRV_TOOLS_NAMED) || r.grammar);
    }
    srv_gen_req_free(&r);
    CHECK(r.n_stop == 0 && !r.prompt && !r.bias_id && !r.bias && r.n_bias == 0 && !r.echo && !r.rest &&
          r.n_rest == 0 && !r.tools.names && !r.tools.block && r.tools.n == 0);
}

static void check_tokenize(const srv_parse_env *env, json_t *body) {
    const char *text = NULL;
    size_t len = 0;
    int add = -1, ps = -1;
    srv_perr e;
    memset(&e, 0, sizeof e);
    if (srv_parse_tokenize(body, &text, &len, &add, &ps, &e)) {
        check_perr(&e);
        return;
    }
    CHECK(text && (add == 0 || add == 1) && (ps == 0 || ps == 1));
    CHECK(text[len] == 0);
    int64_t need = 0;
    sk_error err = {0};
    if (sk_tokenize(env->tok, text, len, add, ps, NULL, 0, &need, &err)) return;
    int32_t *ids = malloc(sizeof *ids * (size_t)(need ? need : 1));
    CHECK(ids);
    CHECK(sk_tokenize(env->tok, text, len, add, ps, ids, need, &need, &err) == SK_OK);
    free(ids);
}

static void check_detokenize(const srv_parse_env *env, json_t *body) {
    int32_t *ids = (int32_t *)1;
    size_t n = 7;
    srv_perr e;
    memset(&e, 0, sizeof e);
    if (srv_parse_detokenize(env, body, &ids, &n, &e)) {
        check_perr(&e);
        CHECK(!ids && n == 0);
        return;
    }
    CHECK(ids);
    for (size_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < env->n_vocab);
    size_t len = 0;
    sk_error err = {0};
    CHECK(sk_detokenize(env->tok, ids, (int64_t)n, 1, NULL, 0, &len, &err) == SK_OK);
    char *out = malloc(len + 1);
    CHECK(out);
    CHECK(sk_detokenize(env->tok, ids, (int64_t)n, 1, out, len + 1, &len, &err) == SK_OK);
    free(out);
    free(ids);
}

static void check_embeddings(const srv_parse_env *env, json_t *body) {
    srv_embed_req r;
    srv_perr e;
    memset(&e, 0, sizeof e);
    int rc = srv_parse_embeddings(env, body, &r, &e);
    CHECK(rc == 0 || rc == -1);
    if (rc) check_perr(&e);
    else CHECK(r.n >= 1);
    CHECK(r.n >= 0 && r.n <= SRV_MAX_EMBED_INPUTS);
    for (int i = 0; i < r.n; i++) {
        CHECK(r.ids[i] && r.n_ids[i] >= 1 && r.n_ids[i] <= SRV_MAX_EMBED_TOKENS);
        for (int64_t k = 0; k < r.n_ids[i]; k++) CHECK(r.ids[i][k] >= 0 && r.ids[i][k] < env->n_vocab);
    }
    srv_embed_req_free(&r);
    CHECK(r.n == 0);
}

static void check_session_id(const uint8_t *p, size_t n) {
    char *id = malloc(n + 1);
    CHECK(id);
    memcpy(id, p, n);
    id[n] = 0;
    srv_perr e;
    memset(&e, 0, sizeof e);
    int rc = srv_check_session_id(id, &e);
    CHECK(rc == (valid_id(id, strlen(id)) ? 0 : -1));
    if (rc) {
        check_perr(&e);
        CHECK(e.status == 400 && !strcmp(e.param, "session_id"));
    }
    free(id);
}

/* One input: the route, the environment, the body; see the layout above. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const int route = data[0] % 6;
    srv_parse_env env;
    memset(&env, 0, sizeof env);
    /* SmolLM2's vocabulary is given fill-in-the-middle tokens (three of its
     * control tokens, as tests/integration/test_api_surface.py's copy of the
     * model), Gemma 3's has none: suffix is parsed both ways */
    static int fim_set;
    if (!fim_set) {
        sk_tokenizer_set_fim((sk_tokenizer *)fuzz_vocab(0), (const int32_t[3]){8, 9, 10});
        fim_set = 1;
    }
    env.tok = fuzz_vocab(data[1] & 1);
    env.kind = (sk_chat_kind)((data[1] >> 1) & 7);
    env.n_vocab = sk_tokenizer_n_vocab(env.tok);
    sk_sampler_params_default(&env.sp);
    env.max_tokens = 256;
    static const char *const hdrs[] = {NULL, "hdr-Session_1", "bad id!"};
    const char *hdr = hdrs[((data[1] >> 4) & 3) % 3];
    if (route == 4) {
        const uint8_t *end = memchr(data + 2, 0, size - 2);
        check_session_id(data + 2, end ? (size_t)(end - (data + 2)) : size - 2);
        return 0;
    }
    json_error_t jerr;
    json_t *body = json_loadb((const char *)data + 2, size - 2, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) return 0;
    if (json_is_object(body)) {
        if (route <= 1) check_generate(&env, body, route == 0, hdr);
        else if (route == 2) check_tokenize(&env, body);
        else if (route == 3) check_detokenize(&env, body);
        else check_embeddings(&env, body);
    }
    json_decref(body);
    return 0;
}
