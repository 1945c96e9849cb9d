/* server.c - `sinkllm serve`: an OpenAI-compatible HTTP API over StreamingLLM
 * slots (libmicrohttpd, thread per connection; JSON with jansson).
 *
 * Routes
 *   POST /v1/chat/completions, POST /v1/completions   (stream or not)
 *   GET  /v1/models, GET /health (never needs the key), GET /metrics
 *   GET  / and /index.html: the web chat page (tools/webui.c; never needs
 *        the key, the API calls it makes do)
 *   POST /tokenize {"content"}, POST /detokenize {"tokens"}
 *   POST /v1/sessions/{id}/save
 *
 * Slots. Each slot owns one sk_context and the transcript of the tokens it
 * represents. A request claims a free slot (or waits in a bounded queue;
 * full -> 503 + Retry-After), then pre-fills only what its prompt adds to
 * the transcript when the transcript is a prefix of the prompt; when the
 * prompt leaves the transcript within its last few hundred fed tokens (a
 * client that re-sends the last reply re-tokenized), the tokens from the
 * divergence on are taken back (sk_context_rollback, --rollback); otherwise
 * the slot is reset and rebuilt from the pinned start of the prompt (the
 * system turn, at least the n_sinks first tokens) plus at most one window
 * of its tail. The transcript always holds the logical token sequence (the
 * whole prompt, then every token fed), so the next turn of a conversation
 * is recognised as an extension even after such a truncated rebuild.
 *
 * Sessions. A request names a session with the X-Session-Id header or the
 * session_id field. A named session stays in its slot between requests;
 * when a slot is needed the least recently used idle session is evicted
 * (saved to --session-dir when set) and comes back from its file on its
 * next request. A request for a session that is generating gets 409.
 *
 * Sampling fields: temperature, top_p, top_k, min_p, presence_penalty,
 * frequency_penalty, repeat_penalty, repeat_last_n, seed, max_tokens
 * (max_completion_tokens, n_predict), stop, logit_bias (OpenAI's object or
 * llama.cpp's [[id, bias]] pairs; false bans a token) and ignore_eos.
 *
 * Generation runs in the connection's thread: for a non-streaming request
 * inside the access handler, for a streaming one inside the content-reader
 * callback, one token per call. Before each token the socket is polled, so
 * a client that hangs up frees its slot within one token.
 *
 * Extras in responses: usage.evicted_tokens (evicted during this request),
 * usage.sinks, usage.window, usage.prompt_tokens_details.cached_tokens (the
 * prompt tokens reused from the slot), and a top-level "sinkllm" object
 * (slot, session_id, prefill_tokens, reused_tokens, rolled_back_tokens (taken
 * back because the prompt left the transcript there), n_past, n_cached,
 * evicted_total, tokens_per_second, cancelled, timed_out). Non-streaming
 * and streaming responses also carry the header X-Prefill-Tokens. */
#include "server.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "text/tokenizer.h"
#include "webui.h"

#define MAX_MESSAGES 65536 /* an endless chat resends its whole history; the body limit bounds it too */
#define MAX_STOPS 8
#define MAX_LOGIT_BIAS 1024
#define MAX_STOP_LEN 256
#define MAX_GEN_TOKENS (1 << 20)
#define SESSION_MAGIC "SKSRV01"

typedef struct slot {
    int idx;
    sk_context *ctx;
    int busy;
    char session[65];  /* "" = anonymous */
    int32_t *tr;       /* transcript: (n_tr) token ids the context stands for */
    int64_t n_tr, cap_tr;
    int64_t tr_fed0;   /* transcript tokens [tr_fed0, n_tr) were all fed, in order: the
                          part that sk_context_rollback can take back */
    double last_used;  /* ms, for LRU eviction */
} slot;

struct sk_server {
    sk_server_config cfg;
    struct MHD_Daemon *d;
    MHD_socket listen_fd; /* returned by MHD_quiesce_daemon; closed by us */
    const sk_model *m;
    const sk_tokenizer *tok;
    int64_t n_vocab;
    sk_chat_kind kind;
    atomic_int loaded;
    atomic_int stopping;
    int shut_down;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot *slots;
    int n_slots;
    int n_waiting;
    atomic_ullong next_id;
    /* metrics (under mu) */
    uint64_t m_requests, m_errors, m_gen_tokens, m_prompt_tokens, m_prefill_tokens, m_evicted;
    uint64_t m_disconnects;
    double m_last_tps;
};

/* ---- small helpers ----------------------------------------------------- */

static double now_ms(void) { return sk_now_ms(); }

/* Constant-time comparison: the time depends only on the lengths. */
static int key_equal(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = (unsigned char)(na != nb);
    size_t n = na > nb ? na : nb;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < na ? (unsigned char)a[i] : 0;
        unsigned char y = i < nb ? (unsigned char)b[i] : 0;
        diff |= x ^ y;
    }
    return diff == 0;
}

static int tr_reserve(slot *sl, int64_t n) {
    if (n <= sl->cap_tr) return 0;
    int64_t cap = sl->cap_tr ? sl->cap_tr : 1024;
    while (cap < n) cap *= 2;
    int32_t *t = realloc(sl->tr, sizeof(int32_t) * (size_t)cap);
    if (!t) return -1;
    sl->tr = t;
    sl->cap_tr = cap;
    return 0;
}

static void slot_clear(slot *sl) {
    sk_context_reset(sl->ctx);
    sl->n_tr = 0;
    sl->tr_fed0 = 0;
}

/* ---- HTTP responses ---------------------------------------------------- */

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type,
                                 char *body, size_t len, const char *h1, const char *v1) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (h1) MHD_add_response_header(r, h1, v1);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Queue j (stolen) as a JSON body; an optional extra header. */
static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *j,
                                 const char *h1, const char *v1) {
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s) return MHD_NO;
    return send_text(c, status, "application/json", s, strlen(s), h1, v1);
}

/* Queue the web chat page (static, never copied); its scripts and styles
 * are inline and it may fetch only from this origin. */
static enum MHD_Result send_page(struct MHD_Connection *c) {
    struct MHD_Response *r = MHD_create_response_from_buffer(
        sk_webui_html_len, (void *)sk_webui_html, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; script-src 'unsafe-inline'; "
                            "style-src 'unsafe-inline'");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static json_t *error_body(const char *type, const char *param, const char *msg) {
    return json_pack("{s:{s:s,s:s,s:o,s:n}}", "error", "message", msg, "type", type, "param",
                     param ? json_string(param) : json_null(), "code");
}

static enum MHD_Result send_error(sk_server *s, struct MHD_Connection *c, unsigned status,
                                  const char *param, const char *h1, const char *v1,
                                  const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *type = status == 401   ? "authentication_error"
                       : status == 404 ? "not_found_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    pthread_mutex_lock(&s->mu);
    s->m_errors++;
    pthread_mutex_unlock(&s->mu);
    json_t *j = error_body(type, param, msg);
    if (!j) return MHD_NO;
    return send_json(c, status, j, h1, v1);
}

/* ---- request parsing --------------------------------------------------- */

typedef struct gen_req {
    int chat;                 /* chat completion (else text completion) */
    int stream, include_usage;
    sk_sampler_params sp;
    int64_t max_tokens;
    char *stops[MAX_STOPS];
    size_t stop_len[MAX_STOPS];
    int n_stop;
    size_t max_stop_len;
    char session[65];
    int32_t *prompt;          /* (n_prompt) rendered prompt */
    int64_t n_prompt;
    int64_t n_pin;            /* tokens kept at the start when the prompt is truncated */
    int32_t *bias_id;         /* (n_bias) logit_bias entries, and with ignore_eos */
    float *bias;              /*   every end-of-generation token at -inf */
    int n_bias;
} gen_req;

typedef struct perr {
    unsigned status;
    char param[64];
    char msg[400];
} perr;

static int fail(perr *e, unsigned status, const char *param, const char *fmt, ...) {
    e->status = status;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* A number field: absent or null leaves *out. Range [lo, hi]. */
static int get_num(json_t *o, const char *key, double lo, double hi, float *out, perr *e) {
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
                   perr *e) {
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

static void gen_req_free(gen_req *r) {
    for (int i = 0; i < r->n_stop; i++) free(r->stops[i]);
    r->n_stop = 0;
    free(r->prompt);
    r->prompt = NULL;
    free(r->bias_id);
    free(r->bias);
    r->bias_id = NULL;
    r->bias = NULL;
    r->n_bias = 0;
}

/* Append one (token, bias) pair; a later entry for the same token wins. */
static int bias_add(gen_req *r, int32_t id, float b, perr *e) {
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
static int bias_entry(sk_server *s, gen_req *r, long long id, json_t *val, perr *e) {
    if (id < 0 || id >= s->n_vocab)
        return fail(e, 400, "logit_bias", "logit_bias: token ids are integers in [0, %lld)",
                    (long long)s->n_vocab);
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
static int parse_bias(sk_server *s, json_t *body, gen_req *r, perr *e) {
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
                if (bias_entry(s, r, id, val, e)) return -1;
            }
        } else {
            for (size_t i = 0; i < n; i++) {
                json_t *pair = json_array_get(v, i);
                if (!json_is_array(pair) || json_array_size(pair) != 2 ||
                    !json_is_integer(json_array_get(pair, 0)))
                    return fail(e, 400, "logit_bias", "logit_bias pairs are [token id, bias]");
                if (bias_entry(s, r, json_integer_value(json_array_get(pair, 0)),
                               json_array_get(pair, 1), e))
                    return -1;
            }
        }
    }
    v = json_object_get(body, "ignore_eos");
    if (v && !json_is_null(v) && !json_is_boolean(v))
        return fail(e, 400, "ignore_eos", "'ignore_eos' must be a boolean");
    if (v && json_is_true(v))
        for (int64_t t = 0; t < s->n_vocab; t++)
            if (sk_token_is_eog(s->tok, (int32_t)t) && bias_add(r, (int32_t)t, -INFINITY, e))
                return -1;
    return 0;
}

/* Sampling fields, stop strings, max_tokens, stream flags, session id. */
static int parse_common(sk_server *s, json_t *body, const char *hdr_session, gen_req *r, perr *e) {
    r->sp = s->cfg.sp;
    r->max_tokens = s->cfg.max_tokens;
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
    set = 0;
    if (get_int(body, "n", 1, 1, &x, &set, e)) return -1;
    if (parse_bias(s, body, r, e)) return -1;
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
            if (n > MAX_STOPS)
                return fail(e, 400, "stop", "at most %d stop strings, got %zu", MAX_STOPS, n);
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
        if (!sk_cli_valid_session_name(sid))
            return fail(e, 400, "session_id",
                        "session ids are 1-64 characters of A-Z a-z 0-9 _ -");
        snprintf(r->session, sizeof r->session, "%s", sid);
    }
    return 0;
}

/* Render sk_chat_render output into a malloc'ed buffer. */
static int render_chat(sk_server *s, const sk_chat_msg *msgs, int n, int flags, int32_t **out,
                       int64_t *n_out, sk_error *err) {
    int64_t cap = 1024, need = 0;
    int32_t *buf = NULL;
    for (int pass = 0; pass < 3; pass++) {
        int32_t *nb = realloc(buf, sizeof(int32_t) * (size_t)(cap ? cap : 1));
        if (!nb) {
            free(buf);
            sk_error_set(err, SK_ERR_NOMEM, "out of memory");
            return -1;
        }
        buf = nb;
        if (sk_chat_render(s->tok, s->kind, msgs, n, flags, buf, cap, &need, err)) {
            free(buf);
            return -1;
        }
        if (need <= cap) {
            *out = buf;
            *n_out = need;
            return 0;
        }
        cap = need;
    }
    free(buf);
    sk_error_set(err, SK_ERR_INVALID, "chat template render did not converge");
    return -1;
}

/* A message content: a string, or an array of {"type":"text","text":...}
 * parts (joined); NULL content only for assistant turns. Returns a
 * malloc'ed NUL-terminated copy, or NULL with e filled. */
static char *message_text(json_t *content, int is_assistant, int idx, perr *e) {
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

/* messages -> prompt tokens (generation prompt added) and the pinned count. */
static int parse_chat(sk_server *s, json_t *body, gen_req *r, perr *e) {
    json_t *msgs = json_object_get(body, "messages");
    if (!msgs) return fail(e, 400, "messages", "'messages' is required");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return fail(e, 400, "messages", "'messages' must be a non-empty array");
    size_t n = json_array_size(msgs);
    if (n > MAX_MESSAGES)
        return fail(e, 400, "messages", "at most %d messages, got %zu", MAX_MESSAGES, n);
    sk_chat_msg *cm = calloc(n, sizeof *cm);
    char **texts = calloc(n, sizeof *texts);
    int rc = -1;
    if (!cm || !texts) {
        fail(e, 500, NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(msgs, i);
        char param[64];
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_object(m)) {
            fail(e, 400, "messages", "message %zu must be an object", i);
            goto done;
        }
        json_t *role = json_object_get(m, "role");
        if (!json_is_string(role)) {
            fail(e, 400, param, "message %zu has no role", i);
            goto done;
        }
        const char *rs = json_string_value(role);
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant")) {
            fail(e, 400, param, "message %zu: role must be system, user or assistant", i);
            goto done;
        }
        texts[i] = message_text(json_object_get(m, "content"), !strcmp(rs, "assistant"), (int)i, e);
        if (!texts[i]) goto done;
        cm[i].role = rs;
        cm[i].content = texts[i];
    }
    sk_error err = {0};
    if (render_chat(s, cm, (int)n, SK_CHAT_ADD_GEN, &r->prompt, &r->n_prompt, &err)) {
        fail(e, err.code == SK_ERR_NOMEM ? 500 : 400, "messages", "%s", err.msg);
        goto done;
    }
    /* pin the leading system turn when it renders as a prefix of the whole */
    int n_sys = 0;
    while (n_sys < (int)n && !strcmp(cm[n_sys].role, "system")) n_sys++;
    r->n_pin = 0;
    if (n_sys > 0) {
        int32_t *sys = NULL;
        int64_t ns = 0;
        if (!render_chat(s, cm, n_sys, 0, &sys, &ns, &err) && ns <= r->n_prompt &&
            !memcmp(sys, r->prompt, sizeof(int32_t) * (size_t)ns))
            r->n_pin = ns;
        free(sys);
    }
    rc = 0;
done:
    if (texts)
        for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(cm);
    return rc;
}

/* prompt: a string, an array holding one string, or an array of token ids. */
static int parse_completion(sk_server *s, json_t *body, gen_req *r, perr *e) {
    json_t *p = json_object_get(body, "prompt");
    if (!p) return fail(e, 400, "prompt", "'prompt' is required");
    if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
        p = json_array_get(p, 0);
    if (json_is_string(p)) {
        const char *t = json_string_value(p);
        size_t len = json_string_length(p);
        int64_t need = 0;
        sk_error err = {0};
        if (sk_tokenize(s->tok, t, len, 1, 1, NULL, 0, &need, &err))
            return fail(e, 400, "prompt", "%s", err.msg);
        r->prompt = malloc(sizeof(int32_t) * (size_t)(need ? need : 1));
        if (!r->prompt) return fail(e, 500, NULL, "out of memory");
        if (sk_tokenize(s->tok, t, len, 1, 1, r->prompt, need, &r->n_prompt, &err))
            return fail(e, 400, "prompt", "%s", err.msg);
    } else if (json_is_array(p)) {
        size_t n = json_array_size(p);
        r->prompt = malloc(sizeof(int32_t) * (n ? n : 1));
        if (!r->prompt) return fail(e, 500, NULL, "out of memory");
        for (size_t i = 0; i < n; i++) {
            json_t *t = json_array_get(p, i);
            if (!json_is_integer(t) || json_integer_value(t) < 0 ||
                json_integer_value(t) >= s->n_vocab)
                return fail(e, 400, "prompt", "prompt token %zu is not an id in 0..%lld", i,
                            (long long)s->n_vocab - 1);
            r->prompt[i] = (int32_t)json_integer_value(t);
        }
        r->n_prompt = (int64_t)n;
    } else {
        return fail(e, 400, "prompt", "'prompt' must be a string or an array of token ids");
    }
    if (r->n_prompt == 0) return fail(e, 400, "prompt", "the prompt is empty");
    r->n_pin = 0;
    return 0;
}

/* ---- slots ------------------------------------------------------------- */

/* Length of the transcript when it is a prefix of the prompt, else 0. */
static int64_t reusable(const slot *sl, const gen_req *r) {
    if (sl->n_tr == 0 || sl->n_tr > r->n_prompt) return 0;
    if (memcmp(sl->tr, r->prompt, sizeof(int32_t) * (size_t)sl->n_tr)) return 0;
    if (sl->n_tr == r->n_prompt && !sk_logits(sl->ctx)) return 0;
    return sl->n_tr;
}

static void session_path(const sk_server *s, const char *id, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s.session", s->cfg.session_dir, id);
}

/* Save a slot's session (blob: magic, token count, transcript). */
static int slot_save(sk_server *s, slot *sl, const char *id, sk_error *err) {
    if (!s->cfg.session_dir) return sk_error_set(err, SK_ERR_INVALID, "no --session-dir");
    char path[4096];
    session_path(s, id, path, sizeof path);
    size_t len = 16 + sizeof(int32_t) * (size_t)sl->n_tr;
    unsigned char *blob = malloc(len);
    if (!blob) return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    memcpy(blob, SESSION_MAGIC, 8);
    uint64_t n = (uint64_t)sl->n_tr;
    memcpy(blob + 8, &n, 8);
    if (n) memcpy(blob + 16, sl->tr, sizeof(int32_t) * (size_t)n);
    sk_status st = sk_context_save(sl->ctx, path, blob, len, err);
    free(blob);
    return st;
}

/* Bring session id back from its file into sl (left clear when there is
 * none or it does not fit). Returns 1 when loaded. */
static int slot_load(sk_server *s, slot *sl, const char *id) {
    if (!s->cfg.session_dir) return 0;
    char path[4096];
    session_path(s, id, path, sizeof path);
    struct stat stt;
    if (lstat(path, &stt) != 0) return 0;
    if (!S_ISREG(stt.st_mode)) {
        fprintf(stderr, "serve: session %s: not a regular file, ignored\n", id);
        return 0;
    }
    void *blob = NULL;
    size_t len = 0;
    sk_error err = {0};
    sk_cache_params cp;
    int n_batch = 0;
    if (sk_session_peek(path, &cp, &n_batch, &blob, &len, &err)) {
        fprintf(stderr, "serve: session %s not restored: %s\n", id, err.msg);
        return 0;
    }
    free(blob);
    blob = NULL;
    const sk_cache_params *want = &s->cfg.cache;
    if (cp.policy != want->policy || cp.n_sinks != want->n_sinks || cp.n_window != want->n_window ||
        cp.kv_type != want->kv_type || (cp.policy == SK_CACHE_DENSE && cp.n_ctx != want->n_ctx)) {
        fprintf(stderr, "serve: session %s was saved with another cache configuration; "
                "rebuilt from the prompt\n", id);
        return 0;
    }
    if (sk_context_load(sl->ctx, path, &blob, &len, &err)) {
        fprintf(stderr, "serve: session %s not restored: %s\n", id, err.msg);
        slot_clear(sl);
        free(blob);
        return 0;
    }
    uint64_t n = 0;
    const unsigned char *b = blob;
    if (len >= 16) memcpy(&n, b + 8, 8);
    int ok = len >= 16 && !memcmp(b, SESSION_MAGIC, 8) && n <= (len - 16) / 4 &&
             len == 16 + 4 * n && tr_reserve(sl, (int64_t)n) == 0;
    if (ok) {
        memcpy(sl->tr, b + 16, 4 * (size_t)n);
        for (uint64_t i = 0; i < n; i++)
            if (sl->tr[i] < 0 || sl->tr[i] >= s->n_vocab) ok = 0;
    }
    free(blob);
    if (!ok) {
        fprintf(stderr, "serve: session %s: bad transcript, ignored\n", id);
        slot_clear(sl);
        return 0;
    }
    sl->n_tr = (int64_t)n;
    sl->tr_fed0 = sl->n_tr; /* a restored cache cannot take tokens back */
    return 1;
}

/* Claim a slot for r (waiting in the queue when all are busy). On success
 * the slot is busy and carries r's session; *evicted receives the named
 * session that had to leave it ("" if none). Returns 0 or an HTTP status. */
static unsigned slot_acquire(sk_server *s, const gen_req *r, double deadline, slot **out,
                             char evicted[65], int *switched, perr *e) {
    pthread_mutex_lock(&s->mu);
    unsigned st = 0;
    for (;;) {
        if (s->stopping) {
            st = 503;
            fail(e, 503, NULL, "the server is shutting down");
            break;
        }
        slot *best = NULL;
        if (r->session[0]) {
            for (int i = 0; i < s->n_slots; i++)
                if (!strcmp(s->slots[i].session, r->session)) best = &s->slots[i];
            if (best && best->busy) {
                st = 409;
                fail(e, 409, "session_id", "session '%s' is generating a reply", r->session);
                break;
            }
        }
        if (!best) {
            /* rank: reusable prefix (anonymous requests), then empty, anonymous, LRU named */
            double best_score = -1;
            for (int i = 0; i < s->n_slots; i++) {
                slot *sl = &s->slots[i];
                if (sl->busy) continue;
                double score;
                if (sl->session[0]) score = 1.0 / (2.0 + sl->last_used);           /* (0, 0.5) */
                else if (sl->n_tr == 0) score = 2.0;
                else {
                    int64_t reuse = r->session[0] ? 0 : reusable(sl, r);
                    score = reuse ? 3.0 + (double)reuse : 1.0 + 1.0 / (2.0 + sl->last_used);
                }
                if (score > best_score) {
                    best_score = score;
                    best = sl;
                }
            }
        }
        if (best) {
            *switched = strcmp(best->session, r->session) != 0;
            snprintf(evicted, 65, "%s", *switched ? best->session : "");
            snprintf(best->session, sizeof best->session, "%s", r->session);
            best->busy = 1;
            *out = best;
            break;
        }
        if (s->n_waiting >= s->cfg.queue_max) {
            st = 503;
            fail(e, 503, NULL, "all %d slots are busy and the queue is full", s->n_slots);
            break;
        }
        s->n_waiting++;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double wait_ms = deadline - now_ms();
        if (wait_ms < 0) wait_ms = 0;
        ts.tv_sec += (time_t)(wait_ms / 1e3);
        ts.tv_nsec += (long)(fmod(wait_ms, 1e3) * 1e6);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        int w = pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        s->n_waiting--;
        if (w == ETIMEDOUT && now_ms() >= deadline) {
            st = 503;
            fail(e, 503, NULL, "timed out waiting for a free slot");
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static void slot_release(sk_server *s, slot *sl) {
    pthread_mutex_lock(&s->mu);
    sl->busy = 0;
    sl->last_used = now_ms();
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- generation -------------------------------------------------------- */

typedef struct job {
    sk_server *s;
    struct MHD_Connection *conn;
    int fd;
    gen_req r;
    slot *sl;
    sk_sampler *smp;
    float *logits;           /* (n_vocab) scratch */
    sk_detok dt;
    char *text;              /* reply text; [0, sent) already delivered */
    size_t text_len, text_cap, sent, text_base;
    int64_t n_gen, n_prefill, n_reused, evicted0, n_rolled;
    int finished, cancelled, timed_out, failed, released;
    const char *finish;
    char errmsg[300];
    double t0, deadline, t_gen0, tps;
    char id[48];
    long created;
    /* streaming */
    int phase;
    char *out;
    size_t out_len, out_pos, out_cap;
} job;

static int peer_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return 1;
    if (p.revents & (POLLIN | POLLRDHUP)) {
        char c;
        ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0) return 1;
    }
    return 0;
}

static int text_append(job *j, const char *p, size_t n) {
    if (j->text_len + n + 1 > j->text_cap) {
        size_t cap = j->text_cap ? j->text_cap : 1024;
        while (cap < j->text_len + n + 1) cap *= 2;
        char *t = realloc(j->text, cap);
        if (!t) return -1;
        j->text = t;
        j->text_cap = cap;
    }
    memcpy(j->text + j->text_len, p, n);
    j->text_len += n;
    j->text[j->text_len] = 0;
    return 0;
}

/* Feed tokens to the slot and append them to its transcript. */
static int feed(job *j, const int32_t *t, int64_t n, sk_error *err) {
    if (n <= 0) return 0;
    if (tr_reserve(j->sl, j->sl->n_tr + n)) return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    if (sk_decode(j->sl->ctx, t, n, err)) return -1;
    memcpy(j->sl->tr + j->sl->n_tr, t, sizeof(int32_t) * (size_t)n);
    j->sl->n_tr += n;
    return 0;
}

/* Switch the slot to the request's session, reuse or rebuild the cache,
 * pre-fill, set up the sampler. Returns 0 or fills e. */
static int job_prepare(job *j, int switched, const char *evicted, perr *e) {
    sk_server *s = j->s;
    slot *sl = j->sl;
    sk_error err = {0};
    if (switched) {
        if (evicted[0] && s->cfg.session_dir) {
            if (slot_save(s, sl, evicted, &err))
                fprintf(stderr, "serve: could not save session %s: %s\n", evicted, err.msg);
        }
        slot_clear(sl);
        if (j->r.session[0]) slot_load(s, sl, j->r.session);
    }
    gen_req *r = &j->r;
    int64_t reuse = reusable(sl, r);
    if (!reuse && sl->n_tr > 0) {
        /* the prompt leaves the transcript near its end (typically the last
         * reply, re-tokenized differently by the client's round trip): take
         * the diverging tokens back instead of rebuilding */
        int64_t L = 0, lim = sl->n_tr < r->n_prompt - 1 ? sl->n_tr : r->n_prompt - 1;
        while (L < lim && sl->tr[L] == r->prompt[L]) L++;
        sk_error rb = {0};
        if (L > 0 && L >= sl->tr_fed0 && !sk_context_rollback(sl->ctx, sl->n_tr - L, &rb)) {
            j->n_rolled = sl->n_tr - L;
            sl->n_tr = L;
            reuse = L;
        }
    }
    if (reuse) {
        j->n_reused = reuse;
        sk_context_stats st;
        sk_context_get_stats(sl->ctx, &st);
        j->evicted0 = st.n_evicted;
        j->n_prefill = r->n_prompt - reuse;
        if (feed(j, r->prompt + reuse, r->n_prompt - reuse, &err)) goto fail_decode;
    } else {
        slot_clear(sl);
        const sk_cache_params *cp = &s->cfg.cache;
        int64_t budget = cp->policy == SK_CACHE_DENSE ? cp->n_ctx - r->max_tokens : cp->n_window;
        int64_t pin = r->n_pin;
        int64_t min_pin = cp->policy == SK_CACHE_SINK ? cp->n_sinks : 0;
        if (pin < min_pin) pin = min_pin;
        if (pin > r->n_prompt) pin = r->n_prompt;
        if (budget < 1) budget = 1;
        if (r->n_prompt - pin > budget) {
            /* pinned start + one window of the tail; the transcript keeps the whole prompt */
            if (sk_decode(sl->ctx, r->prompt, pin, &err)) goto fail_decode;
            if (sk_decode(sl->ctx, r->prompt + r->n_prompt - budget, budget, &err)) goto fail_decode;
            if (tr_reserve(sl, r->n_prompt)) return fail(e, 500, NULL, "out of memory");
            memcpy(sl->tr, r->prompt, sizeof(int32_t) * (size_t)r->n_prompt);
            sl->n_tr = r->n_prompt;
            sl->tr_fed0 = r->n_prompt - budget;
            j->n_prefill = pin + budget;
        } else {
            if (feed(j, r->prompt, r->n_prompt, &err)) goto fail_decode;
            j->n_prefill = r->n_prompt;
        }
    }
    if (sk_sampler_new(&r->sp, s->n_vocab, &j->smp, &err))
        return fail(e, 400, "temperature", "%s", err.msg);
    int64_t hist = r->sp.repeat_last_n < 0 ? r->n_prompt : r->sp.repeat_last_n;
    if (hist > r->n_prompt) hist = r->n_prompt;
    if (r->sp.repeat_penalty != 1.0f || r->sp.presence_penalty != 0 || r->sp.frequency_penalty != 0)
        for (int64_t i = r->n_prompt - hist; i < r->n_prompt; i++)
            sk_sampler_accept(j->smp, r->prompt[i]);
    j->logits = malloc(sizeof(float) * (size_t)s->n_vocab);
    if (!j->logits) return fail(e, 500, NULL, "out of memory");
    j->t_gen0 = now_ms();
    return 0;
fail_decode:
    slot_clear(sl);
    return fail(e, err.code == SK_ERR_NOMEM ? 500 : 400, "messages", "%s", err.msg);
}

/* Bytes at the end of the text that could start a stop string. */
static size_t held_back(const job *j) {
    size_t held = 0;
    for (int k = 0; k < j->r.n_stop; k++) {
        size_t m = j->r.stop_len[k] - 1;
        if (m > j->text_len - j->sent) m = j->text_len - j->sent;
        for (; m > held; m--)
            if (!memcmp(j->text + j->text_len - m, j->r.stops[k], m)) {
                held = m;
                break;
            }
    }
    return held;
}

static void check_stops(job *j) {
    if (!j->r.n_stop) return;
    size_t from = j->sent > j->r.max_stop_len ? j->sent - j->r.max_stop_len : 0;
    size_t cut = (size_t)-1;
    for (int k = 0; k < j->r.n_stop; k++) {
        char *p = memmem(j->text + from, j->text_len - from, j->r.stops[k], j->r.stop_len[k]);
        if (p && (size_t)(p - j->text) < cut) cut = (size_t)(p - j->text);
    }
    if (cut != (size_t)-1) {
        j->text_len = cut < j->sent ? j->sent : cut;
        j->text[j->text_len] = 0;
        j->finished = 1;
        j->finish = "stop";
    }
}

static void job_end(job *j, const char *reason) {
    if (j->finished) return;
    char tail[16];
    size_t w = sk_detok_flush(&j->dt, tail, sizeof tail);
    if (w) text_append(j, tail, w);
    j->finished = 1;
    j->finish = reason;
    check_stops(j);
    j->finished = 1;
}

/* Generate one token (or end the job). */
static void job_step(job *j) {
    if (j->finished) return;
    sk_server *s = j->s;
    if (s->stopping) {
        j->cancelled = 1;
        job_end(j, "stop");
        return;
    }
    if (now_ms() > j->deadline) {
        j->timed_out = 1;
        job_end(j, "length");
        return;
    }
    if (peer_gone(j->fd)) {
        j->cancelled = 1;
        job_end(j, "stop");
        return;
    }
    const float *lg = sk_logits(j->sl->ctx);
    if (!lg) {
        j->failed = 1;
        snprintf(j->errmsg, sizeof j->errmsg, "no logits");
        job_end(j, "stop");
        return;
    }
    memcpy(j->logits, lg, sizeof(float) * (size_t)s->n_vocab);
    for (int i = 0; i < j->r.n_bias; i++) j->logits[j->r.bias_id[i]] += j->r.bias[i];
    int32_t t = sk_sampler_sample(j->smp, j->logits);
    if (sk_token_is_eog(s->tok, t)) {
        job_end(j, "stop");
        return;
    }
    sk_sampler_accept(j->smp, t);
    char piece[512];
    size_t w = sk_detok_push(&j->dt, s->tok, t, 0, piece, sizeof piece);
    if (text_append(j, piece, w)) {
        j->failed = 1;
        snprintf(j->errmsg, sizeof j->errmsg, "out of memory");
        job_end(j, "stop");
        return;
    }
    j->n_gen++;
    sk_error err = {0};
    if (feed(j, &t, 1, &err)) {
        j->failed = 1;
        snprintf(j->errmsg, sizeof j->errmsg, "%s", err.msg);
        job_end(j, "length");
        return;
    }
    check_stops(j);
    if (!j->finished && j->n_gen >= j->r.max_tokens) job_end(j, "length");
}

/* Bytes of text that may be delivered now. */
static size_t deliverable(const job *j) {
    if (j->finished) return j->text_len;
    return j->text_len - held_back(j);
}

/* Return the slot, account metrics; once. */
static void job_release(job *j) {
    if (j->released || !j->sl) return;
    j->released = 1;
    sk_server *s = j->s;
    double dt = (now_ms() - j->t_gen0) / 1e3;
    j->tps = j->n_gen > 0 && dt > 0 ? j->n_gen / dt : 0;
    sk_context_stats st;
    sk_context_get_stats(j->sl->ctx, &st);
    if (j->failed) {
        /* the cache may not match the transcript any more */
        slot_clear(j->sl);
    }
    pthread_mutex_lock(&s->mu);
    s->m_gen_tokens += (uint64_t)j->n_gen;
    s->m_prompt_tokens += (uint64_t)j->r.n_prompt;
    s->m_prefill_tokens += (uint64_t)j->n_prefill;
    if (st.n_evicted > j->evicted0) s->m_evicted += (uint64_t)(st.n_evicted - j->evicted0);
    if (j->cancelled && !s->stopping) s->m_disconnects++;
    if (j->n_gen > 0) s->m_last_tps = j->tps;
    pthread_mutex_unlock(&s->mu);
    fprintf(stderr, "serve: slot %d%s%s prompt %lld (prefill %lld) gen %lld %.1f tok/s %s%s\n",
            j->sl->idx, j->r.session[0] ? " session " : "", j->r.session, (long long)j->r.n_prompt,
            (long long)j->n_prefill, (long long)j->n_gen, j->tps, j->finish ? j->finish : "-",
            j->cancelled ? " (cancelled)" : "");
    slot_release(s, j->sl);
}

static void job_free(job *j) {
    if (!j) return;
    job_release(j);
    sk_sampler_free(j->smp);
    free(j->logits);
    free(j->text);
    free(j->out);
    gen_req_free(&j->r);
    free(j);
}

static json_t *usage_json(const job *j) {
    sk_context_stats st;
    sk_context_get_stats(j->sl->ctx, &st);
    const sk_cache_params *cp = &j->s->cfg.cache;
    return json_pack("{s:I,s:I,s:I,s:{s:I},s:I,s:i,s:i}", "prompt_tokens", (json_int_t)j->r.n_prompt,
                     "completion_tokens", (json_int_t)j->n_gen, "total_tokens",
                     (json_int_t)(j->r.n_prompt + j->n_gen), "prompt_tokens_details",
                     "cached_tokens", (json_int_t)j->n_reused, "evicted_tokens",
                     (json_int_t)(st.n_evicted - j->evicted0),
                     "sinks", cp->policy == SK_CACHE_SINK ? cp->n_sinks : 0, "window",
                     cp->policy == SK_CACHE_DENSE ? cp->n_ctx : cp->n_window);
}

static json_t *extra_json(const job *j) {
    sk_context_stats st;
    sk_context_get_stats(j->sl->ctx, &st);
    double dt = (now_ms() - j->t_gen0) / 1e3;
    double tps = j->n_gen > 0 && dt > 0 ? j->n_gen / dt : 0;
    return json_pack("{s:i,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:f,s:b,s:b}", "slot", j->sl->idx,
                     "session_id", j->r.session[0] ? json_string(j->r.session) : json_null(),
                     "prefill_tokens", (json_int_t)j->n_prefill, "reused_tokens",
                     (json_int_t)j->n_reused, "rolled_back_tokens", (json_int_t)j->n_rolled, "n_past", (json_int_t)st.n_past, "n_cached",
                     (json_int_t)st.n_cached, "evicted_total", (json_int_t)st.n_evicted,
                     "cache_capacity", (json_int_t)st.cache_capacity, "cache",
                     sk_cache_policy_name(j->s->cfg.cache.policy), "tokens_per_second", tps,
                     "cancelled", j->cancelled, "timed_out", j->timed_out);
}

static json_t *chunk_base(const job *j) {
    return json_pack("{s:s,s:s,s:I,s:s}", "id", j->id, "object",
                     j->r.chat ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)j->created, "model", j->s->cfg.model_id);
}

/* Append "data: <json>\n\n" (j stolen) to the stream buffer. */
static int out_event(job *j, json_t *ev) {
    char *s = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    if (!s) return -1;
    size_t n = strlen(s), need = j->out_len + n + 8;
    if (need > j->out_cap) {
        size_t cap = j->out_cap ? j->out_cap : 1024;
        while (cap < need) cap *= 2;
        char *b = realloc(j->out, cap);
        if (!b) {
            free(s);
            return -1;
        }
        j->out = b;
        j->out_cap = cap;
    }
    memcpy(j->out + j->out_len, "data: ", 6);
    memcpy(j->out + j->out_len + 6, s, n);
    memcpy(j->out + j->out_len + 6 + n, "\n\n", 2);
    j->out_len += n + 8;
    free(s);
    return 0;
}

static json_t *choice_delta(const job *j, const char *text, size_t len, const char *finish,
                            int role) {
    json_t *c = json_object();
    json_object_set_new(c, "index", json_integer(0));
    if (j->r.chat) {
        json_t *d = json_object();
        if (role) json_object_set_new(d, "role", json_string("assistant"));
        if (text) json_object_set_new(d, "content", json_stringn(text, len));
        json_object_set_new(c, "delta", d);
    } else {
        json_object_set_new(c, "text", json_stringn(text ? text : "", text ? len : 0));
    }
    json_object_set_new(c, "logprobs", json_null());
    json_object_set_new(c, "finish_reason", finish ? json_string(finish) : json_null());
    return c;
}

static int out_chunk(job *j, const char *text, size_t len, const char *finish, int role) {
    json_t *ev = chunk_base(j);
    json_t *choices = json_array();
    json_array_append_new(choices, choice_delta(j, text, len, finish, role));
    json_object_set_new(ev, "choices", choices);
    if (finish) json_object_set_new(ev, "sinkllm", extra_json(j));
    if (j->r.include_usage) json_object_set_new(ev, "usage", json_null());
    return out_event(j, ev);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    job *j = cls;
    while (j->out_pos == j->out_len) {
        j->out_pos = j->out_len = 0;
        if (j->phase == 0) {
            j->phase = 1;
            if (j->r.chat && out_chunk(j, "", 0, NULL, 1)) return MHD_CONTENT_READER_END_WITH_ERROR;
        } else if (j->phase == 1) {
            if (!j->finished) {
                job_step(j);
                if (j->cancelled && !j->s->stopping) return MHD_CONTENT_READER_END_WITH_ERROR;
                size_t upto = deliverable(j);
                if (!j->finished && upto > j->sent) {
                    if (out_chunk(j, j->text + j->sent, upto - j->sent, NULL, 0))
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                    j->sent = upto;
                }
                /* the held text is never more than the longest stop string */
                if (j->sent > 65536 && j->sent == j->text_len) j->sent = j->text_len = 0;
                continue;
            }
            if (j->text_len > j->sent && out_chunk(j, j->text + j->sent, j->text_len - j->sent, NULL, 0))
                return MHD_CONTENT_READER_END_WITH_ERROR;
            j->sent = j->text_len;
            if (j->failed) {
                json_t *ev = error_body("server_error", NULL, j->errmsg);
                if (out_event(j, ev)) return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            if (out_chunk(j, NULL, 0, j->finish, 0)) return MHD_CONTENT_READER_END_WITH_ERROR;
            if (j->r.include_usage) {
                json_t *ev = chunk_base(j);
                json_object_set_new(ev, "choices", json_array());
                json_object_set_new(ev, "usage", usage_json(j));
                json_object_set_new(ev, "sinkllm", extra_json(j));
                if (out_event(j, ev)) return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            static const char done[] = "data: [DONE]\n\n";
            if (j->out_len + sizeof done > j->out_cap) {
                char *b = realloc(j->out, j->out_len + sizeof done);
                if (!b) return MHD_CONTENT_READER_END_WITH_ERROR;
                j->out = b;
                j->out_cap = j->out_len + sizeof done;
            }
            memcpy(j->out + j->out_len, done, sizeof done - 1);
            j->out_len += sizeof done - 1;
            j->phase = 2;
            job_release(j);
        } else {
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
    }
    size_t n = j->out_len - j->out_pos;
    if (n > max) n = max;
    memcpy(buf, j->out + j->out_pos, n);
    j->out_pos += n;
    return (ssize_t)n;
}

/* MHD frees the stream; a job it drops unfinished lost its client (a failed
 * write can notice the hang-up before peer_gone does) */
static void stream_free(void *cls) {
    job *j = cls;
    if (j && !j->finished && !atomic_load(&j->s->stopping)) j->cancelled = 1;
    job_free(j);
}

/* POST /v1/chat/completions and /v1/completions. */
static enum MHD_Result handle_generate(sk_server *s, struct MHD_Connection *c, json_t *body,
                                       int chat) {
    perr e = {0};
    job *j = calloc(1, sizeof *j);
    if (!j) return send_error(s, c, 500, NULL, NULL, NULL, "out of memory");
    j->s = s;
    j->conn = c;
    j->r.chat = chat;
    j->t0 = now_ms();
    j->deadline = j->t0 + s->cfg.timeout_s * 1e3;
    j->created = (long)time(NULL);
    snprintf(j->id, sizeof j->id, "%s-%llx%04x", chat ? "chatcmpl" : "cmpl",
             (unsigned long long)atomic_fetch_add(&s->next_id, 1), (unsigned)(getpid() & 0xffff));
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    sk_detok_init(&j->dt);
    const char *hs = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Session-Id");
    pthread_mutex_lock(&s->mu);
    s->m_requests++;
    pthread_mutex_unlock(&s->mu);
    if (parse_common(s, body, hs, &j->r, &e) ||
        (chat ? parse_chat(s, body, &j->r, &e) : parse_completion(s, body, &j->r, &e)))
        goto error;
    char evicted[65];
    int switched = 0;
    if (slot_acquire(s, &j->r, j->deadline, &j->sl, evicted, &switched, &e)) goto error;
    if (job_prepare(j, switched, evicted, &e)) goto error;
    char pre[32];
    snprintf(pre, sizeof pre, "%lld", (long long)j->n_prefill);
    if (j->r.stream) {
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, j, stream_free);
        if (!resp) {
            job_free(j);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Prefill-Tokens", pre);
        enum MHD_Result ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    while (!j->finished) job_step(j);
    if (j->cancelled && !s->stopping) {
        job_free(j);
        return MHD_NO; /* the client is gone */
    }
    if (j->failed) {
        snprintf(e.msg, sizeof e.msg, "%s", j->errmsg);
        job_free(j);
        return send_error(s, c, 500, NULL, NULL, NULL, "%s", e.msg);
    }
    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(0));
    if (chat)
        json_object_set_new(choice, "message",
                            json_pack("{s:s,s:s%}", "role", "assistant", "content", j->text ? j->text : "",
                                      (size_t)j->text_len));
    else json_object_set_new(choice, "text", json_stringn(j->text ? j->text : "", j->text_len));
    json_object_set_new(choice, "logprobs", json_null());
    json_object_set_new(choice, "finish_reason", json_string(j->finish));
    json_t *resp = json_pack("{s:s,s:s,s:I,s:s,s:[o],s:o,s:o}", "id", j->id, "object",
                             chat ? "chat.completion" : "text_completion", "created",
                             (json_int_t)j->created, "model", s->cfg.model_id, "choices", choice,
                             "usage", usage_json(j), "sinkllm", extra_json(j));
    job_free(j);
    if (!resp) return send_error(s, c, 500, NULL, NULL, NULL, "cannot build the response");
    return send_json(c, 200, resp, "X-Prefill-Tokens", pre);
error:;
    unsigned st = e.status ? e.status : 500;
    char msg[400], param[64];
    snprintf(msg, sizeof msg, "%s", e.msg);
    snprintf(param, sizeof param, "%s", e.param);
    job_free(j);
    if (st == 503) return send_error(s, c, st, NULL, "Retry-After", "1", "%s", msg);
    return send_error(s, c, st, param[0] ? param : NULL, NULL, NULL, "%s", msg);
}

/* ---- other routes ------------------------------------------------------ */

static enum MHD_Result handle_tokenize(sk_server *s, struct MHD_Connection *c, json_t *body) {
    json_t *v = json_object_get(body, "content");
    if (!json_is_string(v))
        return send_error(s, c, 400, "content", NULL, NULL, "'content' must be a string");
    json_t *as = json_object_get(body, "add_special"), *ps = json_object_get(body, "parse_special");
    int add_special = as && json_is_true(as), parse_special = ps && json_is_true(ps);
    int64_t need = 0;
    sk_error err = {0};
    const char *t = json_string_value(v);
    size_t len = json_string_length(v);
    if (sk_tokenize(s->tok, t, len, add_special, parse_special, NULL, 0, &need, &err))
        return send_error(s, c, 400, "content", NULL, NULL, "%s", err.msg);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(need ? need : 1));
    if (!ids) return send_error(s, c, 500, NULL, NULL, NULL, "out of memory");
    if (sk_tokenize(s->tok, t, len, add_special, parse_special, ids, need, &need, &err)) {
        free(ids);
        return send_error(s, c, 400, "content", NULL, NULL, "%s", err.msg);
    }
    json_t *arr = json_array();
    for (int64_t i = 0; i < need; i++) json_array_append_new(arr, json_integer(ids[i]));
    free(ids);
    return send_json(c, 200, json_pack("{s:o}", "tokens", arr), NULL, NULL);
}

static enum MHD_Result handle_detokenize(sk_server *s, struct MHD_Connection *c, json_t *body) {
    json_t *v = json_object_get(body, "tokens");
    if (!json_is_array(v))
        return send_error(s, c, 400, "tokens", NULL, NULL, "'tokens' must be an array of ids");
    size_t n = json_array_size(v), i;
    json_t *t;
    json_array_foreach(v, i, t) {
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= s->n_vocab)
            return send_error(s, c, 400, "tokens", NULL, NULL, "token %zu is not an id in 0..%lld",
                              i, (long long)s->n_vocab - 1);
    }
    size_t cap = 64 + n * 16, len = 0;
    char *outp = malloc(cap);
    if (!outp) return send_error(s, c, 500, NULL, NULL, NULL, "out of memory");
    sk_detok dt;
    sk_detok_init(&dt);
    char piece[512];
    for (i = 0; i <= n; i++) {
        size_t w = i < n ? sk_detok_push(&dt, s->tok, (int32_t)json_integer_value(json_array_get(v, i)),
                                         1, piece, sizeof piece)
                         : sk_detok_flush(&dt, piece, sizeof piece);
        if (len + w + 1 > cap) {
            while (len + w + 1 > cap) cap *= 2;
            char *nb = realloc(outp, cap);
            if (!nb) {
                free(outp);
                return send_error(s, c, 500, NULL, NULL, NULL, "out of memory");
            }
            outp = nb;
        }
        memcpy(outp + len, piece, w);
        len += w;
    }
    json_t *r = json_pack("{s:s%}", "content", outp, len);
    free(outp);
    if (!r) return send_error(s, c, 500, NULL, NULL, NULL, "cannot encode the text");
    return send_json(c, 200, r, NULL, NULL);
}

static enum MHD_Result handle_models(sk_server *s, struct MHD_Connection *c) {
    const sk_hparams *hp = sk_model_hparams(s->m);
    json_t *model = json_pack("{s:s,s:s,s:I,s:s,s:{s:s,s:I,s:I,s:s,s:s,s:i,s:i}}", "id",
                              s->cfg.model_id, "object", "model", "created", (json_int_t)0,
                              "owned_by", "sinkllm", "meta", "desc", sk_model_desc(s->m),
                              "n_params", (json_int_t)sk_model_n_params(s->m), "n_vocab",
                              (json_int_t)hp->n_vocab, "chat_template", sk_chat_kind_name(s->kind),
                              "cache", sk_cache_policy_name(s->cfg.cache.policy), "sinks",
                              s->cfg.cache.n_sinks, "window", s->cfg.cache.n_window);
    return send_json(c, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", model), NULL, NULL);
}

static enum MHD_Result handle_metrics(sk_server *s, struct MHD_Connection *c) {
    pthread_mutex_lock(&s->mu);
    int busy = 0, sessions = 0;
    for (int i = 0; i < s->n_slots; i++) {
        busy += s->slots[i].busy;
        sessions += s->slots[i].session[0] != 0;
    }
    char *buf = NULL;
    int n = asprintf(
        &buf,
        "# HELP sinkllm_requests_total Generation requests received.\n"
        "# TYPE sinkllm_requests_total counter\nsinkllm_requests_total %llu\n"
        "# HELP sinkllm_request_errors_total Requests answered with an error status.\n"
        "# TYPE sinkllm_request_errors_total counter\nsinkllm_request_errors_total %llu\n"
        "# HELP sinkllm_tokens_generated_total Tokens generated.\n"
        "# TYPE sinkllm_tokens_generated_total counter\nsinkllm_tokens_generated_total %llu\n"
        "# HELP sinkllm_prompt_tokens_total Prompt tokens of all requests.\n"
        "# TYPE sinkllm_prompt_tokens_total counter\nsinkllm_prompt_tokens_total %llu\n"
        "# HELP sinkllm_prefill_tokens_total Prompt tokens actually pre-filled (not reused).\n"
        "# TYPE sinkllm_prefill_tokens_total counter\nsinkllm_prefill_tokens_total %llu\n"
        "# HELP sinkllm_evicted_tokens_total Tokens evicted from the rolling windows.\n"
        "# TYPE sinkllm_evicted_tokens_total counter\nsinkllm_evicted_tokens_total %llu\n"
        "# HELP sinkllm_disconnects_total Generations stopped because the client left.\n"
        "# TYPE sinkllm_disconnects_total counter\nsinkllm_disconnects_total %llu\n"
        "# HELP sinkllm_tokens_per_second Decode speed of the last finished generation.\n"
        "# TYPE sinkllm_tokens_per_second gauge\nsinkllm_tokens_per_second %.3f\n"
        "# HELP sinkllm_active_sessions Named sessions held in slots.\n"
        "# TYPE sinkllm_active_sessions gauge\nsinkllm_active_sessions %d\n"
        "# HELP sinkllm_slots_busy Slots generating now.\n"
        "# TYPE sinkllm_slots_busy gauge\nsinkllm_slots_busy %d\n"
        "# HELP sinkllm_slots_total Slots configured.\n"
        "# TYPE sinkllm_slots_total gauge\nsinkllm_slots_total %d\n"
        "# HELP sinkllm_queue_depth Requests waiting for a slot.\n"
        "# TYPE sinkllm_queue_depth gauge\nsinkllm_queue_depth %d\n",
        (unsigned long long)s->m_requests, (unsigned long long)s->m_errors,
        (unsigned long long)s->m_gen_tokens, (unsigned long long)s->m_prompt_tokens,
        (unsigned long long)s->m_prefill_tokens, (unsigned long long)s->m_evicted,
        (unsigned long long)s->m_disconnects, s->m_last_tps, sessions, busy, s->n_slots,
        s->n_waiting);
    pthread_mutex_unlock(&s->mu);
    if (n < 0) return send_error(s, c, 500, NULL, NULL, NULL, "out of memory");
    return send_text(c, 200, "text/plain; version=0.0.4", buf, (size_t)n, NULL, NULL);
}

static enum MHD_Result handle_save(sk_server *s, struct MHD_Connection *c, const char *id) {
    if (!sk_cli_valid_session_name(id))
        return send_error(s, c, 400, "session_id", NULL, NULL,
                          "session ids are 1-64 characters of A-Z a-z 0-9 _ -");
    if (!s->cfg.session_dir)
        return send_error(s, c, 400, NULL, NULL, NULL, "the server runs without --session-dir");
    pthread_mutex_lock(&s->mu);
    slot *sl = NULL;
    for (int i = 0; i < s->n_slots; i++)
        if (!strcmp(s->slots[i].session, id)) sl = &s->slots[i];
    if (sl && sl->busy) {
        pthread_mutex_unlock(&s->mu);
        return send_error(s, c, 409, "session_id", NULL, NULL, "session '%s' is generating", id);
    }
    if (sl) sl->busy = 1;
    pthread_mutex_unlock(&s->mu);
    if (!sl) {
        char path[4096];
        struct stat st;
        session_path(s, id, path, sizeof path);
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
            return send_json(c, 200, json_pack("{s:s,s:b}", "id", id, "saved", 1), NULL, NULL);
        return send_error(s, c, 404, "session_id", NULL, NULL, "no session '%s'", id);
    }
    sk_error err = {0};
    int64_t n = sl->n_tr;
    sk_status st = slot_save(s, sl, id, &err);
    slot_release(s, sl);
    if (st) return send_error(s, c, 500, NULL, NULL, NULL, "cannot save session: %s", err.msg);
    return send_json(c, 200, json_pack("{s:s,s:b,s:I}", "id", id, "saved", 1, "tokens", (json_int_t)n),
                     NULL, NULL);
}

/* ---- request plumbing -------------------------------------------------- */

typedef struct req {
    int route;
    char *body;
    size_t len, cap;
    int too_big;
    char session_save[80];
} req;

enum { R_NONE, R_HEALTH, R_METRICS, R_MODELS, R_CHAT, R_COMPL, R_TOKENIZE, R_DETOKENIZE, R_SAVE,
       R_PAGE };

static int route_of(const char *url, int *is_post, char *save_id) {
    *is_post = 1;
    if (!strcmp(url, "/health")) return *is_post = 0, R_HEALTH;
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) return *is_post = 0, R_PAGE;
    if (!strcmp(url, "/metrics")) return *is_post = 0, R_METRICS;
    if (!strcmp(url, "/v1/models")) return *is_post = 0, R_MODELS;
    if (!strcmp(url, "/v1/chat/completions")) return R_CHAT;
    if (!strcmp(url, "/v1/completions")) return R_COMPL;
    if (!strcmp(url, "/tokenize")) return R_TOKENIZE;
    if (!strcmp(url, "/detokenize")) return R_DETOKENIZE;
    const char *pfx = "/v1/sessions/", *sfx = "/save";
    size_t lp = strlen(pfx), lu = strlen(url), ls = strlen(sfx);
    if (lu > lp + ls && !strncmp(url, pfx, lp) && !strcmp(url + lu - ls, sfx) && lu - lp - ls < 80) {
        memcpy(save_id, url + lp, lu - lp - ls);
        save_id[lu - lp - ls] = 0;
        return R_SAVE;
    }
    return R_NONE;
}

typedef struct hdr_count {
    int content_length, host, transfer_encoding;
} hdr_count;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value) {
    (void)kind;
    (void)value;
    hdr_count *h = cls;
    if (!strcasecmp(key, "Content-Length")) h->content_length++;
    else if (!strcasecmp(key, "Host")) h->host++;
    else if (!strcasecmp(key, "Transfer-Encoding")) h->transfer_encoding++;
    return MHD_YES;
}

static int authorized(sk_server *s, struct MHD_Connection *c) {
    if (!s->cfg.api_key || !s->cfg.api_key[0]) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7)) return 0;
    h += 7;
    while (*h == ' ') h++;
    return key_equal(h, s->cfg.api_key);
}

/* Checks done once the headers are in; returns MHD_YES to go on reading
 * the body (*handled = 0) or the result of a queued error. */
static enum MHD_Result check_headers(sk_server *s, struct MHD_Connection *c, const char *url,
                                     const char *method, req *rq, int *handled) {
    *handled = 1;
    hdr_count hc = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_header, &hc);
    if (hc.host != 1)
        return send_error(s, c, 400, NULL, NULL, NULL, "exactly one Host header is required");
    if (hc.content_length > 1 || (hc.content_length && hc.transfer_encoding))
        return send_error(s, c, 400, NULL, NULL, NULL, "conflicting Content-Length headers");
    int is_post;
    rq->route = route_of(url, &is_post, rq->session_save);
    if (rq->route != R_HEALTH && rq->route != R_PAGE && !authorized(s, c))
        return send_error(s, c, 401, NULL, "WWW-Authenticate", "Bearer",
                          "missing or wrong API key (Authorization: Bearer KEY)");
    if (rq->route == R_NONE) return send_error(s, c, 404, NULL, NULL, NULL, "no route %s", url);
    int ok = is_post ? !strcmp(method, "POST")
                     : (!strcmp(method, "GET") || !strcmp(method, "HEAD"));
    if (!ok)
        return send_error(s, c, 405, NULL, "Allow", is_post ? "POST" : "GET, HEAD",
                          "method %s not allowed on %s", method, url);
    if (is_post) {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            if (errno || end == cl || *end)
                return send_error(s, c, 400, NULL, NULL, NULL, "malformed Content-Length");
            if (v > s->cfg.max_body)
                return send_error(s, c, 413, NULL, NULL, NULL, "request body over %zu bytes",
                                  s->cfg.max_body);
        }
        if (rq->route != R_SAVE) {
            const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
            if (!ct || strncasecmp(ct, "application/json", 16) ||
                (ct[16] && ct[16] != ';' && ct[16] != ' '))
                return send_error(s, c, 400, NULL, NULL, NULL,
                                  "Content-Type must be application/json");
        }
    }
    if (rq->route != R_HEALTH && rq->route != R_METRICS && rq->route != R_PAGE && !s->loaded)
        return send_error(s, c, 503, NULL, "Retry-After", "1", "the model is loading");
    *handled = 0;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    sk_server *s = cls;
    req *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *con_cls = rq;
        int handled;
        enum MHD_Result r = check_headers(s, c, url, method, rq, &handled);
        if (handled) rq->route = -1;
        return r;
    }
    if (rq->route < 0) { /* an error was queued: drop the rest */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (rq->too_big || rq->len + n > s->cfg.max_body) {
            rq->too_big = 1;
            return MHD_YES;
        }
        if (rq->len + n + 1 > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 4096;
            while (cap < rq->len + n + 1) cap *= 2;
            char *b = realloc(rq->body, cap);
            if (!b) return MHD_NO;
            rq->body = b;
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload, n);
        rq->len += n;
        return MHD_YES;
    }
    if (rq->too_big)
        return send_error(s, c, 413, NULL, NULL, NULL, "request body over %zu bytes", s->cfg.max_body);
    switch (rq->route) {
    case R_HEALTH:
        if (!s->loaded) return send_json(c, 503, json_pack("{s:s}", "status", "loading"), NULL, NULL);
        return send_json(c, 200, json_pack("{s:s}", "status", "ok"), NULL, NULL);
    case R_METRICS: return handle_metrics(s, c);
    case R_PAGE: return send_page(c);
    case R_MODELS: return handle_models(s, c);
    case R_SAVE: return handle_save(s, c, rq->session_save);
    default: break;
    }
    json_error_t jerr;
    json_t *body = rq->len ? json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!body)
        return send_error(s, c, 400, NULL, NULL, NULL, "the body is not valid JSON%s%s",
                          rq->len ? ": " : "", rq->len ? jerr.text : "");
    enum MHD_Result r;
    if (!json_is_object(body)) r = send_error(s, c, 400, NULL, NULL, NULL, "the body must be a JSON object");
    else if (rq->route == R_CHAT) r = handle_generate(s, c, body, 1);
    else if (rq->route == R_COMPL) r = handle_generate(s, c, body, 0);
    else if (rq->route == R_TOKENIZE) r = handle_tokenize(s, c, body);
    else r = handle_detokenize(s, c, body);
    json_decref(body);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    req *rq = *con_cls;
    if (rq) {
        free(rq->body);
        free(rq);
    }
    *con_cls = NULL;
}

/* ---- life cycle -------------------------------------------------------- */

/* A save interrupted by a crash leaves NAME.session.tmp.PID behind (the
 * session file itself is intact: the rename never happened). Remove those
 * whose writer is gone, so that crashes do not fill the directory. */
static void remove_stale_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *t = strstr(e->d_name, ".session.tmp.");
        if (!t) continue;
        char *end;
        long pid = strtol(t + 13, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* a live writer */
        if (unlinkat(dirfd(d), e->d_name, 0) == 0) n++;
    }
    closedir(d);
    if (n) fprintf(stderr, "serve: removed %d temporary file%s left by an interrupted save\n", n,
                   n == 1 ? "" : "s");
}

sk_status sk_server_start(const sk_server_config *cfg, sk_server **out, sk_error *err) {
    *out = NULL;
    if (cfg->session_dir) remove_stale_temps(cfg->session_dir);
    if (cfg->n_slots < 1 || cfg->n_slots > 256)
        return sk_error_set(err, SK_ERR_INVALID, "--slots must be 1..256, got %d", cfg->n_slots);
    if (cfg->queue_max < 0 || cfg->queue_max > 65536)
        return sk_error_set(err, SK_ERR_INVALID, "--queue must be 0..65536, got %d", cfg->queue_max);
    if (cfg->port < 0 || cfg->port > 65535)
        return sk_error_set(err, SK_ERR_INVALID, "--port must be 0..65535, got %d", cfg->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    int gai = getaddrinfo(cfg->host, port, &hints, &ai);
    if (gai || !ai)
        return sk_error_set(err, SK_ERR_INVALID, "cannot resolve --host %s: %s", cfg->host,
                            gai_strerror(gai));
    sk_server *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    }
    s->cfg = *cfg;
    s->listen_fd = MHD_INVALID_SOCKET;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    unsigned conn_limit = (unsigned)(cfg->n_slots + cfg->queue_max + 64);
    s->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_LIMIT, conn_limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(cfg->timeout_s + 30),
                            MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
        return sk_error_set(err, SK_ERR_IO, "cannot listen on %s:%d (in use?)", cfg->host, cfg->port);
    }
    *out = s;
    return SK_OK;
}

int sk_server_port(const sk_server *s) {
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    return di && di->port ? (int)di->port : s->cfg.port;
}

sk_status sk_server_set_model(sk_server *s, const sk_model *m, sk_error *err) {
    s->m = m;
    s->tok = sk_model_tokenizer(m);
    s->n_vocab = sk_model_hparams(m)->n_vocab;
    s->kind = s->cfg.chat_kind >= 0 ? (sk_chat_kind)s->cfg.chat_kind
                                    : sk_chat_detect(sk_model_chat_template(m), NULL);
    sk_context_params cp;
    sk_context_params_default(&cp);
    cp.n_threads = s->cfg.n_threads ? s->cfg.n_threads : (s->cfg.n_slots > 1 ? 1 : 0);
    cp.n_batch = s->cfg.n_batch;
    cp.cache = s->cfg.cache;
    slot *slots = calloc((size_t)s->cfg.n_slots, sizeof *slots);
    if (!slots) return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    for (int i = 0; i < s->cfg.n_slots; i++) {
        slots[i].idx = i;
        if (sk_context_new(m, &cp, &slots[i].ctx, err)) {
            for (int k = 0; k < i; k++) sk_context_free(slots[k].ctx);
            free(slots);
            return err ? err->code : SK_ERR_INVALID;
        }
    }
    pthread_mutex_lock(&s->mu);
    s->slots = slots;
    s->n_slots = s->cfg.n_slots;
    pthread_mutex_unlock(&s->mu);
    s->loaded = 1;
    return SK_OK;
}

void sk_server_shutdown(sk_server *s) {
    if (!s || s->shut_down) return;
    s->shut_down = 1;
    if (s->d) s->listen_fd = MHD_quiesce_daemon(s->d);
    s->stopping = 1;
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    double until = now_ms() + 10e3;
    for (;;) {
        int busy = 0;
        for (int i = 0; i < s->n_slots; i++) busy += s->slots[i].busy;
        if (!busy || now_ms() > until) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    for (int i = 0; i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        if (!sl->busy && sl->session[0] && s->cfg.session_dir) {
            sk_error err = {0};
            if (slot_save(s, sl, sl->session, &err))
                fprintf(stderr, "serve: could not save session %s: %s\n", sl->session, err.msg);
            else fprintf(stderr, "serve: saved session %s\n", sl->session);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

void sk_server_free(sk_server *s) {
    if (!s) return;
    sk_server_shutdown(s);
    if (s->d) MHD_stop_daemon(s->d);
    if (s->listen_fd != MHD_INVALID_SOCKET) close(s->listen_fd);
    for (int i = 0; i < s->n_slots; i++) {
        sk_context_free(s->slots[i].ctx);
        free(s->slots[i].tr);
    }
    free(s->slots);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
