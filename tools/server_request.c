/* server_request.c - request bodies of `sinkllm serve` -> plain C structs.
 *
 * Error convention: every parser returns 0, or -1 with a srv_perr filled
 * (status 400 naming the field, or 500 when memory runs out); nothing here
 * answers HTTP, touches a slot or prints.
 *
 * Generation fields (POST /v1/chat/completions, /v1/completions):
 *   messages (chat: roles system, developer, user, assistant, tool; content
 *   a string or an array of {"type":"text","text"} parts; assistant
 *   tool_calls), tools, tool_choice, parallel_tool_calls (chat: tool calls,
 *   server_tools.h), prompt (completion: a string,
 *   an array of token ids, or an array of such prompts), suffix
 *   (completion: fill in the middle), echo (completion);
 *   sampling: temperature, top_p, top_k, min_p, presence_penalty,
 *   frequency_penalty, repeat_penalty, repeat_last_n, seed, max_tokens
 *   (max_completion_tokens, n_predict), n (choices per prompt), stop, logit_bias
 *   (OpenAI's object or llama.cpp's [[id, bias]] pairs; false bans a token)
 *   and ignore_eos; stream, stream_options.include_usage; session_id (or
 *   the X-Session-Id header). A leading run of system messages is pinned:
 *   it stays at the start of the cache when a long prompt is truncated.
 *   Constrained output, at most one of: response_format {"type": "text"},
 *   {"type": "json_object"} (any JSON object) or {"type": "json_schema",
 *   "json_schema": {"name", "schema", "strict", "description"}}; llama.cpp's
 *   grammar (GBNF text) and json_schema (a schema object). Compiled here,
 *   so a bad schema or grammar is a 400 naming the field with the
 *   compiler's message. */
#include "server_request.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define fail srv_perr_set
#define MAX_MESSAGES 65536 /* an endless chat resends its whole history; the body limit bounds it too */
#define MAX_LOGIT_BIAS 1024
#define MAX_STOP_LEN 256
#define MAX_GEN_TOKENS (1 << 20)

int srv_perr_set(srv_perr *e, unsigned status, const char *param, const char *fmt, ...) {
    e->status = status;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* A number field: absent or null leaves *out. Range [lo, hi]. */
static int get_num(json_t *o, const char *key, double lo, double hi, float *out, srv_perr *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return fail(e, 400, key, "'%s' must be a number", key);
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi)
        return fail(e, 400, key, "'%s' must be between %g and %g, got %g", key, lo, hi, x);
    *out = (float)x;
    return 0;
}

/* An integer field (a real with an integral value is accepted). */
static int get_int(json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *out, int *set,
                   srv_perr *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    int64_t x;
    if (json_is_integer(v)) x = json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
             fabs(json_real_value(v)) < 9e18)
        x = (int64_t)json_real_value(v);
    else return fail(e, 400, key, "'%s' must be an integer", key);
    if (x < lo || x > hi)
        return fail(e, 400, key, "'%s' must be between %lld and %lld, got %lld", key,
                    (long long)lo, (long long)hi, (long long)x);
    *out = x;
    if (set) *set = 1;
    return 0;
}

int srv_check_session_id(const char *id, srv_perr *e) {
    if (sk_store_valid_name(id)) return 0;
    return fail(e, 400, "session_id", "session ids are 1-64 characters of A-Z a-z 0-9 _ -");
}

void srv_gen_req_free(srv_gen_req *r) {
    for (int i = 0; i < r->n_rest; i++) {
        free(r->rest[i].ids);
        free(r->rest[i].echo);
    }
    free(r->rest);
    r->rest = NULL;
    r->n_rest = 0;
    free(r->echo);
    r->echo = NULL;
    r->echo_len = 0;
    for (int i = 0; i < r->n_stop; i++) free(r->stops[i]);
    r->n_stop = 0;
    free(r->prompt);
    r->prompt = NULL;
    free(r->bias_id);
    free(r->bias);
    r->bias_id = NULL;
    r->bias = NULL;
    r->n_bias = 0;
    sk_grammar_free(r->grammar);
    r->grammar = NULL;
    srv_tools_free(&r->tools);
}

/* Append one (token, bias) pair; a later entry for the same token wins. */
static int bias_add(srv_gen_req *r, int32_t id, float b, srv_perr *e) {
    for (int i = 0; i < r->n_bias; i++)
        if (r->bias_id[i] == id) {
            r->bias[i] = b;
            return 0;
        }
    if (r->n_bias % 64 == 0) {
        int32_t *ni = realloc(r->bias_id, sizeof *ni * (size_t)(r->n_bias + 64));
        if (ni) r->bias_id = ni;
        float *nb = realloc(r->bias, sizeof *nb * (size_t)(r->n_bias + 64));
        if (nb) r->bias = nb;
        if (!ni || !nb) return fail(e, 500, NULL, "out of memory");
    }
    r->bias_id[r->n_bias] = id;
    r->bias[r->n_bias++] = b;
    return 0;
}

/* One logit_bias entry: token id (id < 0: not a valid id) and a bias in
 * [-100, 100], or false (llama.cpp: never this token). */
static int bias_entry(const srv_parse_env *env, srv_gen_req *r, long long id, json_t *val,
                      srv_perr *e) {
    if (id < 0 || id >= env->n_vocab)
        return fail(e, 400, "logit_bias", "logit_bias: token ids are integers in [0, %lld)",
                    (long long)env->n_vocab);
    float b;
    if (json_is_false(val)) b = -INFINITY;
    else if (json_is_number(val) && isfinite(json_number_value(val)) &&
             fabs(json_number_value(val)) <= 100)
        b = (float)json_number_value(val);
    else return fail(e, 400, "logit_bias", "logit_bias: a bias is a number in [-100, 100] or false");
    return bias_add(r, (int32_t)id, b, e);
}

/* logit_bias (OpenAI: {"id": bias}; llama.cpp also [[id, bias], ...]) and
 * ignore_eos (llama.cpp: end-of-generation tokens are never sampled). */
static int parse_bias(const srv_parse_env *env, json_t *body, srv_gen_req *r, srv_perr *e) {
    json_t *v = json_object_get(body, "logit_bias");
    if (v && !json_is_null(v)) {
        if (!json_is_object(v) && !json_is_array(v))
            return fail(e, 400, "logit_bias", "'logit_bias' must be an object or an array of pairs");
        size_t n = json_is_object(v) ? json_object_size(v) : json_array_size(v);
        if (n > MAX_LOGIT_BIAS)
            return fail(e, 400, "logit_bias", "at most %d logit_bias entries, got %zu",
                        MAX_LOGIT_BIAS, n);
        if (json_is_object(v)) {
            const char *k;
            json_t *val;
            json_object_foreach(v, k, val) {
                char *end;
                errno = 0;
                long long id = strtoll(k, &end, 10);
                if (!*k || *end || errno) id = -1;
                if (bias_entry(env, r, id, val, e)) return -1;
            }
        } else {
            for (size_t i = 0; i < n; i++) {
                json_t *pair = json_array_get(v, i);
                if (!json_is_array(pair) || json_array_size(pair) != 2 ||
                    !json_is_integer(json_array_get(pair, 0)))
                    return fail(e, 400, "logit_bias", "logit_bias pairs are [token id, bias]");
                if (bias_entry(env, r, json_integer_value(json_array_get(pair, 0)),
                               json_array_get(pair, 1), e))
                    return -1;
            }
        }
    }
    v = json_object_get(body, "ignore_eos");
    if (v && !json_is_null(v) && !json_is_boolean(v))
        return fail(e, 400, "ignore_eos", "'ignore_eos' must be a boolean");
    if (v && json_is_true(v))
        for (int64_t t = 0; t < env->n_vocab; t++)
            if (sk_token_is_eog(env->tok, (int32_t)t) && bias_add(r, (int32_t)t, -INFINITY, e))
                return -1;
    return 0;
}

/* Sampling fields, stop strings, max_tokens, stream flags, session id. */
static int parse_common(const srv_parse_env *env, json_t *body, const char *hdr_session,
                        srv_gen_req *r, srv_perr *e) {
    r->sp = env->sp;
    r->max_tokens = env->max_tokens;
    if (get_num(body, "temperature", 0, 100, &r->sp.temp, e)) return -1;
    if (get_num(body, "top_p", 0, 1, &r->sp.top_p, e)) return -1;
    if (get_num(body, "min_p", 0, 1, &r->sp.min_p, e)) return -1;
    if (get_num(body, "presence_penalty", -2, 2, &r->sp.presence_penalty, e)) return -1;
    if (get_num(body, "frequency_penalty", -2, 2, &r->sp.frequency_penalty, e)) return -1;
    if (get_num(body, "repeat_penalty", 1e-6, 1e6, &r->sp.repeat_penalty, e)) return -1;
    int64_t x;
    int set = 0;
    if (get_int(body, "top_k", -1, INT32_MAX, &x, &set, e)) return -1;
    if (set) r->sp.top_k = (int32_t)x;
    set = 0;
    if (get_int(body, "repeat_last_n", -1, SK_SAMPLER_MAX_LAST_N, &x, &set, e)) return -1;
    if (set) r->sp.repeat_last_n = (int32_t)x;
    set = 0;
    if (get_int(body, "seed", INT64_MIN, INT64_MAX, &x, &set, e)) return -1;
    if (set) r->sp.seed = x < 0 ? SK_SEED_RANDOM : (uint64_t)x;
    set = 0;
    if (get_int(body, "n_predict", -1, MAX_GEN_TOKENS, &x, &set, e)) return -1;
    if (set) r->max_tokens = x < 0 ? MAX_GEN_TOKENS : x;
    if (set && x == 0) return fail(e, 400, "n_predict", "'n_predict' must be -1 or positive");
    if (get_int(body, "max_tokens", 1, MAX_GEN_TOKENS, &r->max_tokens, NULL, e)) return -1;
    if (get_int(body, "max_completion_tokens", 1, MAX_GEN_TOKENS, &r->max_tokens, NULL, e))
        return -1;
    x = 1;
    if (get_int(body, "n", 1, SRV_MAX_CHOICES, &x, NULL, e)) return -1;
    r->n_choices = (int)x;
    if (parse_bias(env, body, r, e)) return -1;
    sk_error err = {0};
    if (sk_sampler_params_validate(&r->sp, &err))
        return fail(e, 400, "temperature", "%s", err.msg);

    json_t *v = json_object_get(body, "stream");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) return fail(e, 400, "stream", "'stream' must be a boolean");
        r->stream = json_is_true(v);
    }
    v = json_object_get(body, "stream_options");
    if (v && !json_is_null(v)) {
        if (!json_is_object(v))
            return fail(e, 400, "stream_options", "'stream_options' must be an object");
        json_t *u = json_object_get(v, "include_usage");
        if (u && !json_is_null(u) && !json_is_boolean(u))
            return fail(e, 400, "stream_options", "'include_usage' must be a boolean");
        r->include_usage = u && json_is_true(u);
    }
    v = json_object_get(body, "stop");
    if (v && !json_is_null(v)) {
        json_t *one[1] = {v};
        json_t **items = one;
        size_t n = 1;
        if (json_is_array(v)) {
            n = json_array_size(v);
            if (n > SRV_MAX_STOPS)
                return fail(e, 400, "stop", "at most %d stop strings, got %zu", SRV_MAX_STOPS, n);
            items = NULL;
        } else if (!json_is_string(v)) {
            return fail(e, 400, "stop", "'stop' must be a string or an array of strings");
        }
        for (size_t i = 0; i < n; i++) {
            json_t *it = items ? items[i] : json_array_get(v, i);
            if (!json_is_string(it))
                return fail(e, 400, "stop", "'stop' must be a string or an array of strings");
            size_t len = json_string_length(it);
            if (len > MAX_STOP_LEN)
                return fail(e, 400, "stop", "stop strings are at most %d bytes", MAX_STOP_LEN);
            if (len == 0) continue;
            char *copy = malloc(len);
            if (!copy) return fail(e, 500, NULL, "out of memory");
            memcpy(copy, json_string_value(it), len);
            r->stops[r->n_stop] = copy;
            r->stop_len[r->n_stop++] = len;
            if (len > r->max_stop_len) r->max_stop_len = len;
        }
    }
    const char *sid = hdr_session;
    v = json_object_get(body, "session_id");
    if (!sid && v && !json_is_null(v)) {
        if (!json_is_string(v)) return fail(e, 400, "session_id", "'session_id' must be a string");
        sid = json_string_value(v);
    }
    if (sid) {
        if (srv_check_session_id(sid, e)) return -1;
        snprintf(r->session, sizeof r->session, "%s", sid);
    }
    return 0;
}

/* Render msgs with the chat template into *out (malloc'ed, *n_out tokens).
 * A template error is a 400 naming "messages". */
static int render_chat(const srv_parse_env *env, const sk_chat_msg *msgs, int n, int flags,
                       int32_t **out, int64_t *n_out, srv_perr *e) {
    int64_t cap = 1024, need = 0;
    int32_t *buf = NULL;
    for (int pass = 0; pass < 3; pass++) {
        int32_t *nb = realloc(buf, sizeof(int32_t) * (size_t)(cap ? cap : 1));
        if (!nb) {
            free(buf);
            return fail(e, 500, "messages", "out of memory");
        }
        buf = nb;
        sk_error err = {0};
        if (sk_chat_render(env->tok, env->kind, msgs, n, flags, buf, cap, &need, &err)) {
            free(buf);
            return fail(e, err.code == SK_ERR_NOMEM ? 500 : 400, "messages", "%s", err.msg);
        }
        if (need <= cap) {
            *out = buf;
            *n_out = need;
            return 0;
        }
        cap = need;
    }
    free(buf);
    return fail(e, 400, "messages", "chat template render did not converge");
}

/* A message content: a string, or an array of {"type":"text","text":...}
 * parts (joined); NULL content only for assistant turns. Returns a
 * malloc'ed NUL-terminated copy, or NULL with e filled. */
static char *message_text(json_t *content, int is_assistant, int idx, srv_perr *e) {
    char param[64];
    snprintf(param, sizeof param, "messages[%d].content", idx);
    if (!content || json_is_null(content)) {
        if (is_assistant) return strdup("");
        fail(e, 400, param, "message %d has no content", idx);
        return NULL;
    }
    if (json_is_string(content)) {
        size_t len = json_string_length(content);
        if (memchr(json_string_value(content), 0, len)) {
            fail(e, 400, param, "message %d contains a NUL character", idx);
            return NULL;
        }
        return strdup(json_string_value(content));
    }
    if (!json_is_array(content)) {
        fail(e, 400, param, "message %d: content must be a string or an array of text parts", idx);
        return NULL;
    }
    size_t total = 0, i;
    json_t *part;
    json_array_foreach(content, i, part) {
        json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type) ||
            strcmp(json_string_value(type), "text") != 0 || !json_is_string(text)) {
            fail(e, 400, param, "message %d: only text content parts are supported", idx);
            return NULL;
        }
        if (memchr(json_string_value(text), 0, json_string_length(text))) {
            fail(e, 400, param, "message %d contains a NUL character", idx);
            return NULL;
        }
        total += json_string_length(text);
    }
    char *outp = malloc(total + 1), *p = outp;
    if (!outp) {
        fail(e, 500, NULL, "out of memory");
        return NULL;
    }
    json_array_foreach(content, i, part) {
        json_t *text = json_object_get(part, "text");
        size_t len = json_string_length(text);
        memcpy(p, json_string_value(text), len);
        p += len;
    }
    *p = 0;
    return outp;
}

/* messages -> prompt tokens (generation prompt added) and the pinned count.
 * Tool calls are written into the messages first (server_tools.h): the
 * tools block into the system message (or one of its own), an assistant's
 * tool_calls after its text, a run of tool messages into one user message. */
static int parse_chat(const srv_parse_env *env, json_t *body, srv_gen_req *r, srv_perr *e) {
    json_t *msgs = json_object_get(body, "messages");
    if (!msgs) return fail(e, 400, "messages", "'messages' is required");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return fail(e, 400, "messages", "'messages' must be a non-empty array");
    size_t n = json_array_size(msgs);
    if (n > MAX_MESSAGES)
        return fail(e, 400, "messages", "at most %d messages, got %zu", MAX_MESSAGES, n);
    sk_chat_msg *cm = calloc(n + 1, sizeof *cm);   /* (m) rendered messages, m <= n + 1 */
    char **texts = calloc(n + 1, sizeof *texts);
    char *tool_run = NULL;                         /* consecutive tool messages, joined */
    int m = 0, rc = -1;
    if (!cm || !texts) {
        fail(e, 500, NULL, "out of memory");
        goto done;
    }
    if (r->tools.block) { /* the tools: a system message of their own, or after the first one's text */
        cm[m].role = "system";
        if (!(texts[m] = strdup(r->tools.block))) {
            fail(e, 500, NULL, "out of memory");
            goto done;
        }
        cm[m].content = texts[m];
        m++;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *msg = json_array_get(msgs, i);
        char param[64];
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_object(msg)) {
            fail(e, 400, "messages", "message %zu must be an object", i);
            goto done;
        }
        json_t *role = json_object_get(msg, "role");
        if (!json_is_string(role)) {
            fail(e, 400, param, "message %zu has no role", i);
            goto done;
        }
        const char *rs = json_string_value(role);
        if (!strcmp(rs, "developer")) rs = "system"; /* OpenAI's newer name for it */
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant") && strcmp(rs, "tool")) {
            fail(e, 400, param, "message %zu: role must be system, developer, user, assistant or tool", i);
            goto done;
        }
        const int assistant = !strcmp(rs, "assistant");
        json_t *calls = assistant ? json_object_get(msg, "tool_calls") : NULL;
        if (calls && json_is_null(calls)) calls = NULL;
        char *text = message_text(json_object_get(msg, "content"), assistant, (int)i, e);
        if (!text) goto done;
        if (!strcmp(rs, "tool")) {
            int st = srv_tools_append_response(&tool_run, text, e);
            free(text);
            if (st) goto done;
            continue;
        }
        if (tool_run) { /* the run of tool results before this message */
            cm[m].role = "user";
            cm[m].content = texts[m] = tool_run;
            tool_run = NULL;
            m++;
        }
        if (calls) {
            char *with = srv_tools_assistant_text(calls, text, (int)i, e);
            free(text);
            if (!with) goto done;
            text = with;
        }
        if (m == 1 && i == 0 && r->tools.block && !strcmp(rs, "system")) {
            /* the first system message: its text, then the tools block */
            size_t a = strlen(text), b = strlen(texts[0]);
            char *both = malloc(a + 2 + b + 1);
            if (!both) {
                free(text);
                fail(e, 500, NULL, "out of memory");
                goto done;
            }
            memcpy(both, text, a);
            memcpy(both + a, "\n\n", 2);
            memcpy(both + a + 2, texts[0], b + 1);
            free(text);
            free(texts[0]);
            cm[0].content = texts[0] = both;
            continue;
        }
        cm[m].role = rs;
        cm[m].content = texts[m] = text;
        m++;
    }
    if (tool_run) {
        cm[m].role = "user";
        cm[m].content = texts[m] = tool_run;
        tool_run = NULL;
        m++;
    }
    if (render_chat(env, cm, m, SK_CHAT_ADD_GEN, &r->prompt, &r->n_prompt, e)) goto done;
    /* pin the leading system turn when it renders as a prefix of the whole */
    int n_sys = 0;
    while (n_sys < m && !strcmp(cm[n_sys].role, "system")) n_sys++;
    r->n_pin = 0;
    if (n_sys > 0) {
        int32_t *sys = NULL;
        int64_t ns = 0;
        srv_perr ignored;
        if (!render_chat(env, cm, n_sys, 0, &sys, &ns, &ignored) && ns <= r->n_prompt &&
            !memcmp(sys, r->prompt, sizeof(int32_t) * (size_t)ns))
            r->n_pin = ns;
        free(sys);
    }
    rc = 0;
done:
    free(tool_run);
    if (texts)
        for (size_t i = 0; i < n + 1; i++) free(texts[i]);
    free(texts);
    free(cm);
    return rc;
}

/* text -> tokens (malloc'ed into *ids, *n of them), with the vocabulary's
 * BOS/EOS when add_special, special-token texts recognised when
 * parse_special. A tokenizer error is a 400 naming param. */
static int tokenize_text(const srv_parse_env *env, const char *t, size_t len, int add_special,
                         int parse_special, const char *param, int32_t **ids, int64_t *n,
                         srv_perr *e) {
    int64_t need = 0;
    sk_error err = {0};
    *ids = NULL;
    *n = 0;
    if (sk_tokenize(env->tok, t, len, add_special, parse_special, NULL, 0, &need, &err))
        return fail(e, 400, param, "%s", err.msg);
    if (!(*ids = malloc(sizeof(int32_t) * (size_t)(need ? need : 1))))
        return fail(e, 500, NULL, "out of memory");
    if (sk_tokenize(env->tok, t, len, add_special, parse_special, *ids, need, n, &err))
        return fail(e, 400, param, "%s", err.msg);
    return 0;
}

/* An array of token ids, each in [0, n_vocab) -> *ids (malloc'ed). */
static int token_ids(const srv_parse_env *env, json_t *a, const char *param, int32_t **ids,
                     int64_t *n, srv_perr *e) {
    size_t m = json_array_size(a);
    if (!(*ids = malloc(sizeof(int32_t) * (m ? m : 1)))) return fail(e, 500, NULL, "out of memory");
    for (size_t i = 0; i < m; i++) {
        json_t *t = json_array_get(a, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= env->n_vocab)
            return fail(e, 400, param, "%s: token %zu is not an id in 0..%lld", param, i,
                        (long long)env->n_vocab - 1);
        (*ids)[i] = (int32_t)json_integer_value(t);
    }
    *n = (int64_t)m;
    return 0;
}

/* Fill in the middle: out = [LEAD] [BOS] FIM_PRE prefix FIM_SUF suffix FIM_MID
 * (prefix-suffix-middle, the order llama.cpp's /infill builds), BOS when
 * the vocabulary adds one, LEAD a sink token (sk_tokenizer_lead). prefix is consumed (freed); *out malloc'ed. */
static int fim_prompt(const srv_parse_env *env, int32_t *prefix, int64_t n_prefix, json_t *suffix,
                      int32_t **out, int64_t *n_out, srv_perr *e) {
    int32_t fim[3], *suf = NULL;
    int64_t n_suf = 0;
    sk_tokenizer_fim(env->tok, fim);
    int rc = tokenize_text(env, json_string_value(suffix), json_string_length(suffix), 0, 1,
                           "suffix", &suf, &n_suf, e);
    const int bos = sk_tokenizer_add_bos(env->tok);
    const int32_t lead = sk_tokenizer_lead(env->tok); /* a model's sink token */
    int32_t *p = rc ? NULL : malloc(sizeof(int32_t) * (size_t)(n_prefix + n_suf + 5));
    if (!rc && !p) rc = fail(e, 500, NULL, "out of memory");
    if (!rc) {
        int64_t k = 0;
        if (lead >= 0) p[k++] = lead;
        if (bos) p[k++] = sk_tokenizer_bos(env->tok);
        p[k++] = fim[0];
        memcpy(p + k, prefix, sizeof(int32_t) * (size_t)n_prefix);
        k += n_prefix;
        p[k++] = fim[1];
        memcpy(p + k, suf, sizeof(int32_t) * (size_t)n_suf);
        k += n_suf;
        p[k++] = fim[2];
        *out = p;
        *n_out = k;
    }
    free(prefix);
    free(suf);
    return rc;
}

/* ids -> their text, special tokens rendered (*out malloc'ed, NUL-terminated). */
static int ids_text(const srv_parse_env *env, const int32_t *ids, int64_t n, char **out, size_t *len,
                    srv_perr *e) {
    sk_error err = {0};
    size_t need = 0;
    if (sk_detokenize(env->tok, ids, n, 1, NULL, 0, &need, &err)) return fail(e, 400, "prompt", "%s", err.msg);
    if (!(*out = malloc(need + 1))) return fail(e, 500, NULL, "out of memory");
    if (sk_detokenize(env->tok, ids, n, 1, *out, need + 1, len, &err)) return fail(e, 400, "prompt", "%s", err.msg);
    return 0;
}

/* One prompt of a completion: a string or an array of token ids -> its
 * tokens (with suffix: the fill-in-the-middle layout) and, with echo, its
 * text (the string, or the ids detokenized). */
static int completion_prompt(const srv_parse_env *env, json_t *p, json_t *suffix, int echo,
                             srv_prompt *out, srv_perr *e) {
    int32_t *ids = NULL;
    int64_t n = 0;
    if (json_is_string(p)) {
        if (tokenize_text(env, json_string_value(p), json_string_length(p), !suffix, 1, "prompt",
                          &ids, &n, e)) {
            free(ids);
            return -1;
        }
    } else if (json_is_array(p)) {
        if (token_ids(env, p, "prompt", &ids, &n, e)) {
            free(ids);
            return -1;
        }
    } else {
        return fail(e, 400, "prompt", "a prompt is a string or an array of token ids");
    }
    if (n == 0) {
        free(ids);
        return fail(e, 400, "prompt", "the prompt is empty");
    }
    int rc = 0;
    if (echo && json_is_string(p)) {
        out->echo_len = json_string_length(p);
        if (!(out->echo = malloc(out->echo_len + 1))) rc = fail(e, 500, NULL, "out of memory");
        else memcpy(out->echo, json_string_value(p), out->echo_len + 1);
    } else if (echo) {
        rc = ids_text(env, ids, n, &out->echo, &out->echo_len, e);
    }
    if (rc) {
        free(ids);
        return -1;
    }
    if (suffix) return fim_prompt(env, ids, n, suffix, &out->ids, &out->n, e);
    out->ids = ids;
    out->n = n;
    return 0;
}

/* prompt: a string or an array of token ids (one prompt), or an array of
 * such prompts (each answered with n choices); suffix: fill in the middle,
 * where the vocabulary has the tokens for it. The first prompt goes to
 * r->prompt, the others to r->rest. */
static int parse_completion(const srv_parse_env *env, json_t *body, int echo, srv_gen_req *r,
                            srv_perr *e) {
    json_t *p = json_object_get(body, "prompt");
    if (!p) return fail(e, 400, "prompt", "'prompt' is required");
    json_t *suffix = json_object_get(body, "suffix");
    if (suffix && !json_is_null(suffix) && !json_is_string(suffix))
        return fail(e, 400, "suffix", "'suffix' must be a string");
    if (suffix && (json_is_null(suffix) || json_string_length(suffix) == 0)) suffix = NULL;
    int32_t fim[3];
    if (suffix && !sk_tokenizer_fim(env->tok, fim))
        return fail(e, 400, "suffix", "'suffix' needs a model with fill-in-the-middle tokens, and this one has none");
    /* a list of prompts: an array whose items are strings or arrays */
    size_t n = 1;
    int list = json_is_array(p) && json_array_size(p) > 0 && !json_is_integer(json_array_get(p, 0));
    if (list) {
        n = json_array_size(p);
        if (n > SRV_MAX_PROMPTS || n * (size_t)r->n_choices > SRV_MAX_PROMPTS)
            return fail(e, 400, "prompt", "at most %d prompts, and %d choices in all (prompts x n), got %zu x %d",
                        SRV_MAX_PROMPTS, SRV_MAX_PROMPTS, n, r->n_choices);
        if (n > 1 && !(r->rest = calloc(n - 1, sizeof *r->rest))) return fail(e, 500, NULL, "out of memory");
        r->n_rest = (int)n - 1;
    } else if (!json_is_string(p) && !json_is_array(p)) {
        return fail(e, 400, "prompt", "'prompt' must be a string, an array of token ids or an array of prompts");
    }
    for (size_t i = 0; i < n; i++) {
        srv_prompt one = {0};
        if (completion_prompt(env, list ? json_array_get(p, i) : p, suffix, echo, &one, e)) {
            free(one.echo);
            return -1;
        }
        if (i == 0) {
            r->prompt = one.ids;
            r->n_prompt = one.n;
            r->echo = one.echo;
            r->echo_len = one.echo_len;
        } else {
            r->rest[i - 1] = one;
        }
    }
    r->n_pin = 0;
    return 0;
}

/* logprobs: chat {"logprobs": bool, "top_logprobs": 0..20 (needs
 * logprobs)}; completions {"logprobs": 0..20 alternatives, null = none}. */
static int parse_logprobs(json_t *body, int chat, srv_gen_req *r, srv_perr *e) {
    json_t *v = json_object_get(body, "logprobs");
    int64_t x = 0;
    int set = 0;
    if (chat) {
        if (v && !json_is_null(v) && !json_is_boolean(v))
            return fail(e, 400, "logprobs", "'logprobs' must be a boolean");
        r->logprobs = v && json_is_true(v);
        if (get_int(body, "top_logprobs", 0, SRV_MAX_TOP_LOGPROBS, &x, &set, e)) return -1;
        if (set && !r->logprobs)
            return fail(e, 400, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
    } else {
        if (v && json_is_boolean(v)) return fail(e, 400, "logprobs", "'logprobs' must be an integer (alternatives per token)");
        if (get_int(body, "logprobs", 0, SRV_MAX_TOP_LOGPROBS, &x, &set, e)) return -1;
        r->logprobs = set;
    }
    r->top_logprobs = (int)x;
    return 0;
}

/* Fields of OpenAI's and llama.cpp's APIs that change the reply and that
 * this server does not implement: a 400 naming the field, never silently
 * ignored. A field counts when present with a value that asks for
 * something (false, null, "none", 1 or "text" ask for nothing). */
static int refuse_unimplemented(json_t *body, int chat, srv_perr *e) {
    static const char *const always[] = {"functions", "function_call", "audio", "prediction", "n_probs"};
    for (size_t i = 0; i < sizeof always / sizeof always[0]; i++) {
        json_t *v = json_object_get(body, always[i]);
        if (!v || json_is_null(v) || json_is_false(v)) continue;
        if (json_is_string(v) && !strcmp(json_string_value(v), "none")) continue; /* function_call */
        if (json_is_array(v) && json_array_size(v) == 0) continue;
        return fail(e, 400, always[i], "'%s' is not supported by this server%s", always[i],
                    i < 2 ? " (the deprecated form of 'tools' and 'tool_choice': use those)" : "");
    }
    static const char *const chat_only[] = {"tools", "tool_choice", "parallel_tool_calls"};
    for (size_t i = 0; i < sizeof chat_only / sizeof chat_only[0] && !chat; i++) {
        json_t *v = json_object_get(body, chat_only[i]);
        if (v && !json_is_null(v))
            return fail(e, 400, chat_only[i], "'%s' is a field of chat completions", chat_only[i]);
    }
    json_t *v = json_object_get(body, "best_of");
    if (v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 1))
        return fail(e, 400, "best_of", "'best_of' other than 1 is not supported by this server");
    v = json_object_get(body, "modalities");
    if (v && !json_is_null(v)) {
        size_t i;
        json_t *m;
        if (!json_is_array(v)) return fail(e, 400, "modalities", "'modalities' must be an array");
        json_array_foreach(v, i, m) if (!json_is_string(m) || strcmp(json_string_value(m), "text"))
            return fail(e, 400, "modalities", "only the \"text\" modality is supported");
    }
    return 0;
}

/* A JSON schema (a jansson value) compiled into r->grammar; errors name
 * field. */
static int compile_schema(json_t *schema, const char *field, srv_gen_req *r, srv_perr *e) {
    sk_error err = {0};
    char *text = NULL;
    if (schema && !(text = json_dumps(schema, JSON_COMPACT | JSON_ENCODE_ANY)))
        return fail(e, 500, NULL, "out of memory");
    sk_status st = sk_grammar_from_json_schema(text, text ? strlen(text) : 0, &r->grammar, &err);
    free(text);
    if (st == SK_ERR_NOMEM) return fail(e, 500, NULL, "out of memory");
    if (st) return fail(e, 400, field, "'%s': %s", field, err.msg);
    return 0;
}

/* response_format, grammar, json_schema -> r->grammar (NULL: none). */
static int parse_constraint(json_t *body, srv_gen_req *r, srv_perr *e) {
    json_t *rf = json_object_get(body, "response_format"), *gr = json_object_get(body, "grammar"),
           *js = json_object_get(body, "json_schema");
    const char *type = "text";
    if (rf && !json_is_null(rf)) {
        json_t *t = json_is_object(rf) ? json_object_get(rf, "type") : NULL;
        if (!t || !json_is_string(t))
            return fail(e, 400, "response_format", "'response_format' must be an object with a string 'type'");
        type = json_string_value(t);
        if (strcmp(type, "text") && strcmp(type, "json_object") && strcmp(type, "json_schema"))
            return fail(e, 400, "response_format", "'response_format' type '%.40s' is not supported (text, json_object, json_schema)", type);
    }
    int n = !!strcmp(type, "text") + (gr && !json_is_null(gr)) + (js && !json_is_null(js));
    if (n > 1)
        return fail(e, 400, gr && !json_is_null(gr) ? "grammar" : "json_schema",
                    "at most one of 'response_format' (other than text), 'grammar' and 'json_schema' may be given");
    if (gr && !json_is_null(gr)) {
        if (!json_is_string(gr)) return fail(e, 400, "grammar", "'grammar' must be a string (GBNF)");
        sk_error err = {0};
        sk_status st = sk_grammar_compile(json_string_value(gr), json_string_length(gr), &r->grammar, &err);
        if (st == SK_ERR_NOMEM) return fail(e, 500, NULL, "out of memory");
        if (st) return fail(e, 400, "grammar", "'grammar': %s", err.msg);
        return 0;
    }
    if (js && !json_is_null(js)) {
        if (!json_is_object(js) && !json_is_boolean(js))
            return fail(e, 400, "json_schema", "'json_schema' must be a JSON schema (an object)");
        return compile_schema(js, "json_schema", r, e);
    }
    if (!strcmp(type, "json_object")) return compile_schema(NULL, "response_format", r, e);
    if (!strcmp(type, "json_schema")) {
        json_t *w = json_object_get(rf, "json_schema");
        if (!json_is_object(w))
            return fail(e, 400, "response_format", "'response_format' json_schema needs a 'json_schema' object");
        json_t *name = json_object_get(w, "name"), *strict = json_object_get(w, "strict");
        if (name && !json_is_string(name))
            return fail(e, 400, "response_format", "'response_format': 'json_schema.name' must be a string");
        if (strict && !json_is_null(strict) && !json_is_boolean(strict))
            return fail(e, 400, "response_format", "'response_format': 'json_schema.strict' must be a boolean");
        json_t *schema = json_object_get(w, "schema");
        if (schema && !json_is_null(schema) && !json_is_object(schema) && !json_is_boolean(schema))
            return fail(e, 400, "response_format", "'response_format': 'json_schema.schema' must be an object");
        /* no schema: any JSON object, as json_object */
        return compile_schema(schema && !json_is_null(schema) ? schema : NULL, "response_format", r, e);
    }
    return 0;
}

int srv_parse_generate(const srv_parse_env *env, json_t *body, int chat, const char *hdr_session,
                       srv_gen_req *r, srv_perr *e) {
    r->chat = chat;
    if (refuse_unimplemented(body, chat, e)) return -1;
    if (parse_common(env, body, hdr_session, r, e)) return -1;
    if (parse_logprobs(body, chat, r, e)) return -1;
    if (parse_constraint(body, r, e)) return -1;
    if (chat && srv_tools_parse(body, &r->tools, &r->grammar, e)) return -1;
    json_t *ev = json_object_get(body, "echo");
    if (ev && !json_is_null(ev) && !json_is_boolean(ev)) return fail(e, 400, "echo", "'echo' must be a boolean");
    const int echo = ev && json_is_true(ev);
    if (echo && chat) return fail(e, 400, "echo", "'echo' is a field of completions, not of chat");
    if (echo && (r->stream || r->logprobs))
        return fail(e, 400, "echo", "'echo' is supported without 'stream' and 'logprobs' only");
    json_t *sv = json_object_get(body, "suffix");
    if (chat && sv && !json_is_null(sv))
        return fail(e, 400, "suffix", "'suffix' is a field of completions, not of chat");
    return chat ? parse_chat(env, body, r, e) : parse_completion(env, body, echo, r, e);
}

/* one input: a string or an array of ids -> r->ids[r->n] */
static int embed_input(const srv_parse_env *env, json_t *v, size_t idx, srv_embed_req *r, srv_perr *e) {
    int32_t *ids = NULL;
    int64_t n = 0;
    int rc;
    if (json_is_string(v)) rc = tokenize_text(env, json_string_value(v), json_string_length(v), 1, 0, "input", &ids, &n, e);
    else if (json_is_array(v)) rc = token_ids(env, v, "input", &ids, &n, e);
    else rc = fail(e, 400, "input", "'input' must be a string, an array of strings or of token ids");
    if (!rc && n == 0) rc = fail(e, 400, "input", "input %zu is empty", idx);
    if (!rc && n > SRV_MAX_EMBED_TOKENS)
        rc = fail(e, 400, "input", "input %zu has %lld tokens, at most %d", idx, (long long)n, SRV_MAX_EMBED_TOKENS);
    if (rc) {
        free(ids);
        return -1;
    }
    r->ids[r->n] = ids;
    r->n_ids[r->n++] = n;
    return 0;
}

int srv_parse_embeddings(const srv_parse_env *env, json_t *body, srv_embed_req *r, srv_perr *e) {
    memset(r, 0, sizeof *r);
    json_t *v = json_object_get(body, "dimensions");
    if (v && !json_is_null(v)) return fail(e, 400, "dimensions", "'dimensions' is not supported by this server");
    v = json_object_get(body, "encoding_format");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || (strcmp(json_string_value(v), "float") && strcmp(json_string_value(v), "base64")))
            return fail(e, 400, "encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
        r->base64 = !strcmp(json_string_value(v), "base64");
    }
    v = json_object_get(body, "input");
    if (!v) return fail(e, 400, "input", "'input' is required");
    /* one input (a string or ids), or a list of them */
    int list = json_is_array(v) && json_array_size(v) > 0 && !json_is_integer(json_array_get(v, 0));
    if (!list) return embed_input(env, v, 0, r, e);
    if (json_array_size(v) > SRV_MAX_EMBED_INPUTS)
        return fail(e, 400, "input", "at most %d inputs", SRV_MAX_EMBED_INPUTS);
    for (size_t i = 0; i < json_array_size(v); i++)
        if (embed_input(env, json_array_get(v, i), i, r, e)) return -1;
    return 0;
}

void srv_embed_req_free(srv_embed_req *r) {
    for (int i = 0; i < r->n; i++) free(r->ids[i]);
    r->n = 0;
}

int srv_parse_tokenize(json_t *body, const char **text, size_t *len, int *add_special,
                       int *parse_special, srv_perr *e) {
    json_t *v = json_object_get(body, "content");
    if (!json_is_string(v)) return fail(e, 400, "content", "'content' must be a string");
    json_t *as = json_object_get(body, "add_special"), *ps = json_object_get(body, "parse_special");
    *add_special = as && json_is_true(as);
    *parse_special = ps && json_is_true(ps);
    *text = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

int srv_parse_detokenize(const srv_parse_env *env, json_t *body, int32_t **ids, size_t *n,
                         srv_perr *e) {
    *ids = NULL;
    *n = 0;
    json_t *v = json_object_get(body, "tokens");
    if (!json_is_array(v)) return fail(e, 400, "tokens", "'tokens' must be an array of ids");
    size_t cnt = json_array_size(v), i;
    json_t *t;
    json_array_foreach(v, i, t) {
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= env->n_vocab)
            return fail(e, 400, "tokens", "token %zu is not an id in 0..%lld", i,
                        (long long)env->n_vocab - 1);
    }
    int32_t *out = malloc(sizeof *out * (cnt ? cnt : 1));
    if (!out) return fail(e, 500, NULL, "out of memory");
    json_array_foreach(v, i, t) out[i] = (int32_t)json_integer_value(t);
    *ids = out;
    *n = cnt;
    return 0;
}
