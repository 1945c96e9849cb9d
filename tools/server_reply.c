/* server_reply.c - the JSON bodies of `sinkllm serve`'s answers.
 *
 * Error convention: every builder returns a new jansson reference or NULL
 * when memory runs out; nothing is sent from here.
 *
 * Extras in responses: usage.evicted_tokens (evicted during this request),
 * usage.sinks, usage.window, usage.prompt_tokens_details.cached_tokens (the
 * prompt tokens reused from the slot), and a top-level "sinkllm" object
 * (slot, session_id, prefill_tokens, reused_tokens, rolled_back_tokens (taken
 * back because the prompt left the transcript there), n_past, n_cached,
 * evicted_total, cache_capacity, cache, tokens_per_second, cancelled,
 * timed_out). Streamed chunks carry "sinkllm" on the one with the finish
 * reason, and "usage": null on every chunk when include_usage is set. */
#include "server_reply.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

json_t *srv_reply_error(const char *type, const char *param, const char *msg) {
    return json_pack("{s:{s:s,s:s,s:o,s:n}}", "error", "message", msg, "type", type, "param",
                     param ? json_string(param) : json_null(), "code");
}

static json_t *usage_json(const srv_gen *g) {
    sk_context_stats st;
    sk_context_get_stats(g->sl->ctx, &st);
    const sk_cache_params *cp = &g->p->cfg->cache;
    const int64_t prompt = g->n_prompt_done + g->r.n_prompt, gen = g->n_gen_done + g->n_gen;
    return json_pack("{s:I,s:I,s:I,s:{s:I},s:I,s:i,s:i}", "prompt_tokens", (json_int_t)prompt,
                     "completion_tokens", (json_int_t)gen, "total_tokens", (json_int_t)(prompt + gen),
                     "prompt_tokens_details", "cached_tokens", (json_int_t)g->n_reused, "evicted_tokens",
                     (json_int_t)(g->evicted_done + st.n_evicted - g->evicted0),
                     "sinks", cp->policy == SK_CACHE_SINK ? cp->n_sinks : 0, "window",
                     cp->policy == SK_CACHE_DENSE ? cp->n_ctx : cp->n_window);
}

static json_t *extra_json(const srv_gen *g) {
    sk_context_stats st;
    sk_context_get_stats(g->sl->ctx, &st);
    double dt = (sk_now_ms() - g->t_gen0) / 1e3;
    double tps = g->n_gen > 0 && dt > 0 ? g->n_gen / dt : 0;
    return json_pack("{s:i,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:f,s:b,s:b}", "slot", g->sl->idx,
                     "session_id", g->r.session[0] ? json_string(g->r.session) : json_null(),
                     "prefill_tokens", (json_int_t)g->n_prefill, "reused_tokens",
                     (json_int_t)g->n_reused, "rolled_back_tokens", (json_int_t)g->n_rolled,
                     "n_past", (json_int_t)st.n_past, "n_cached", (json_int_t)st.n_cached,
                     "evicted_total", (json_int_t)st.n_evicted, "cache_capacity",
                     (json_int_t)st.cache_capacity, "cache",
                     sk_cache_policy_name(g->p->cfg->cache.policy), "tokens_per_second", tps,
                     "cancelled", g->cancelled, "timed_out", g->timed_out);
}

/* ---- logprobs -----------------------------------------------------------------
 * Chat (OpenAI's shape): {"content": [{"token", "logprob", "bytes",
 * "top_logprobs": [{"token", "logprob", "bytes"}...]}...], "refusal": null}.
 * Completions (the legacy shape): {"tokens", "token_logprobs",
 * "top_logprobs": [{token: logprob}...], "text_offset"} (offsets in the
 * completion's text). "token" is the token's text with an incomplete UTF-8
 * sequence as U+FFFD, "bytes" its exact bytes; -inf is written as -9999
 * (JSON has no infinities), as OpenAI does. */

static double lp_value(float lp) { return isfinite(lp) ? (double)lp : -9999.0; }

/* token id's text (valid UTF-8) into buf */
static const char *lp_text(const srv_gen *g, int32_t id, char *buf, size_t cap) {
    size_t n = 0;
    sk_error err = {0};
    if (sk_detokenize(g->p->tok, &id, 1, 0, buf, cap, &n, &err)) buf[0] = 0;
    return buf;
}

static json_t *lp_bytes(const srv_gen *g, int32_t id) {
    char piece[256];
    int n = sk_token_to_piece(g->p->tok, id, 0, piece, sizeof piece);
    json_t *a = json_array();
    for (int i = 0; i < n && i < (int)sizeof piece; i++) json_array_append_new(a, json_integer((unsigned char)piece[i]));
    return a;
}

static json_t *lp_entry(const srv_gen *g, int32_t id, float lp) {
    char buf[1024];
    return json_pack("{s:s,s:f,s:o}", "token", lp_text(g, id, buf, sizeof buf), "logprob", lp_value(lp), "bytes",
                     lp_bytes(g, id));
}

/* the logprobs of entries [a, b) of g->lp */
static json_t *logprobs_json(const srv_gen *g, int64_t a, int64_t b) {
    if (!g->r.logprobs) return json_null();
    char buf[1024];
    if (g->r.chat) {
        json_t *content = json_array();
        for (int64_t i = a; i < b; i++) {
            const srv_logprob *e = &g->lp[i];
            json_t *x = lp_entry(g, e->id, e->lp), *top = json_array();
            for (int k = 0; k < e->n_top; k++) json_array_append_new(top, lp_entry(g, e->top_id[k], e->top_lp[k]));
            json_object_set_new(x, "top_logprobs", top);
            json_array_append_new(content, x);
        }
        return json_pack("{s:o,s:n}", "content", content, "refusal");
    }
    json_t *toks = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    for (int64_t i = a; i < b; i++) {
        const srv_logprob *e = &g->lp[i];
        json_array_append_new(toks, json_string(lp_text(g, e->id, buf, sizeof buf)));
        json_array_append_new(lps, json_real(lp_value(e->lp)));
        json_t *top = json_object();
        for (int k = 0; k < e->n_top; k++)
            json_object_set_new(top, lp_text(g, e->top_id[k], buf, sizeof buf), json_real(lp_value(e->top_lp[k])));
        json_array_append_new(tops, top);
        json_array_append_new(offs, json_integer((json_int_t)e->offset));
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", toks, "token_logprobs", lps, "top_logprobs", tops,
                     "text_offset", offs);
}

int64_t srv_logprobs_upto(const srv_gen *g, int64_t from, size_t text_end) {
    int64_t i = from;
    while (i < g->n_lp && g->lp[i].offset < text_end) i++;
    return i;
}

void srv_reply_call_prefix(const srv_gen *g, const char *id, char *buf, size_t cap) {
    const char *dash = strchr(id, '-'); /* chatcmpl-<counter><pid> */
    snprintf(buf, cap, "call_%s_%d", dash ? dash + 1 : id, g->choice);
}

json_t *srv_reply_choice(const srv_gen *g, const char *id) {
    const char *text = g->text ? g->text : "";
    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(g->choice));
    size_t content_len = g->text_len;
    int n_calls = 0;
    json_t *calls = NULL;
    if (g->r.chat && g->r.tools.mode) {
        char prefix[80];
        srv_reply_call_prefix(g, id, prefix, sizeof prefix);
        calls = srv_tools_read_reply(&g->r.tools, text, g->text_len, prefix, &content_len, &n_calls);
        if (n_calls < 0) {
            json_decref(choice);
            return NULL;
        }
    }
    if (calls) {
        json_t *msg = json_pack("{s:s}", "role", "assistant");
        json_object_set_new(msg, "content", content_len ? json_stringn(text, content_len) : json_null());
        json_object_set_new(msg, "tool_calls", calls);
        json_object_set_new(choice, "message", msg);
    } else if (g->r.chat)
        json_object_set_new(choice, "message", json_pack("{s:s,s:s%}", "role", "assistant",
                                                         "content", text, (size_t)g->text_len));
    else if (g->r.echo) { /* echo: the prompt's text, then the completion */
        char *both = malloc(g->r.echo_len + g->text_len + 1);
        if (both) {
            memcpy(both, g->r.echo, g->r.echo_len);
            memcpy(both + g->r.echo_len, text, g->text_len);
        }
        json_object_set_new(choice, "text", both ? json_stringn(both, g->r.echo_len + g->text_len) : NULL);
        free(both);
    } else json_object_set_new(choice, "text", json_stringn(text, g->text_len));
    /* the tokens of the text (not those of a stop string cut from it) */
    json_object_set_new(choice, "logprobs", logprobs_json(g, 0, srv_logprobs_upto(g, 0, content_len)));
    json_object_set_new(choice, "finish_reason",
                        json_string(calls && !strcmp(g->finish, "stop") ? "tool_calls" : g->finish));
    return choice;
}

json_t *srv_reply_completion(const srv_gen *g, const char *id, long created, json_t *choices) {
    return json_pack("{s:s,s:s,s:I,s:s,s:o,s:o,s:o}", "id", id, "object",
                     g->r.chat ? "chat.completion" : "text_completion", "created", (json_int_t)created,
                     "model", g->p->cfg->model_id, "choices", choices, "usage", usage_json(g),
                     "sinkllm", extra_json(g));
}

static json_t *chunk_base(const srv_gen *g, const char *id, long created) {
    return json_pack("{s:s,s:s,s:I,s:s}", "id", id, "object",
                     g->r.chat ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)created, "model", g->p->cfg->model_id);
}

static json_t *choice_delta(const srv_gen *g, const char *text, size_t len, const char *finish,
                            int role, int64_t lp0, int64_t lp1) {
    json_t *c = json_object();
    json_object_set_new(c, "index", json_integer(g->choice));
    if (g->r.chat) {
        json_t *d = json_object();
        if (role) json_object_set_new(d, "role", json_string("assistant"));
        if (text) json_object_set_new(d, "content", json_stringn(text, len));
        json_object_set_new(c, "delta", d);
    } else {
        json_object_set_new(c, "text", json_stringn(text ? text : "", text ? len : 0));
    }
    json_object_set_new(c, "logprobs", lp1 > lp0 ? logprobs_json(g, lp0, lp1) : json_null());
    json_object_set_new(c, "finish_reason", finish ? json_string(finish) : json_null());
    return c;
}

json_t *srv_reply_chunk(const srv_gen *g, const char *id, long created, const char *text,
                        size_t len, const char *finish, int role, int64_t lp0, int64_t lp1) {
    json_t *ev = chunk_base(g, id, created);
    json_t *choices = json_array();
    json_array_append_new(choices, choice_delta(g, text, len, finish, role, lp0, lp1));
    json_object_set_new(ev, "choices", choices);
    if (finish) json_object_set_new(ev, "sinkllm", extra_json(g));
    if (g->r.include_usage) json_object_set_new(ev, "usage", json_null());
    return ev;
}

json_t *srv_reply_tool_chunk(const srv_gen *g, const char *id, long created, json_t *calls) {
    json_t *ev = chunk_base(g, id, created);
    json_t *c = json_pack("{s:i,s:{s:o},s:n,s:n}", "index", g->choice, "delta", "tool_calls", calls, "logprobs",
                          "finish_reason");
    json_object_set_new(ev, "choices", json_pack("[o]", c));
    if (g->r.include_usage) json_object_set_new(ev, "usage", json_null());
    return ev;
}

json_t *srv_reply_usage_chunk(const srv_gen *g, const char *id, long created) {
    json_t *ev = chunk_base(g, id, created);
    json_object_set_new(ev, "choices", json_array());
    json_object_set_new(ev, "usage", usage_json(g));
    json_object_set_new(ev, "sinkllm", extra_json(g));
    return ev;
}
