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

#include "cli.h"

json_t *srv_reply_error(const char *type, const char *param, const char *msg) {
    return json_pack("{s:{s:s,s:s,s:o,s:n}}", "error", "message", msg, "type", type, "param",
                     param ? json_string(param) : json_null(), "code");
}

static json_t *usage_json(const srv_gen *g) {
    sk_context_stats st;
    sk_context_get_stats(g->sl->ctx, &st);
    const sk_cache_params *cp = &g->p->cfg->cache;
    return json_pack("{s:I,s:I,s:I,s:{s:I},s:I,s:i,s:i}", "prompt_tokens", (json_int_t)g->r.n_prompt,
                     "completion_tokens", (json_int_t)g->n_gen, "total_tokens",
                     (json_int_t)(g->r.n_prompt + g->n_gen), "prompt_tokens_details",
                     "cached_tokens", (json_int_t)g->n_reused, "evicted_tokens",
                     (json_int_t)(st.n_evicted - g->evicted0),
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

json_t *srv_reply_completion(const srv_gen *g, const char *id, long created) {
    int chat = g->r.chat;
    const char *text = g->text ? g->text : "";
    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(0));
    if (chat)
        json_object_set_new(choice, "message", json_pack("{s:s,s:s%}", "role", "assistant",
                                                         "content", text, (size_t)g->text_len));
    else json_object_set_new(choice, "text", json_stringn(text, g->text_len));
    json_object_set_new(choice, "logprobs", json_null());
    json_object_set_new(choice, "finish_reason", json_string(g->finish));
    return json_pack("{s:s,s:s,s:I,s:s,s:[o],s:o,s:o}", "id", id, "object",
                     chat ? "chat.completion" : "text_completion", "created", (json_int_t)created,
                     "model", g->p->cfg->model_id, "choices", choice, "usage", usage_json(g),
                     "sinkllm", extra_json(g));
}

static json_t *chunk_base(const srv_gen *g, const char *id, long created) {
    return json_pack("{s:s,s:s,s:I,s:s}", "id", id, "object",
                     g->r.chat ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)created, "model", g->p->cfg->model_id);
}

static json_t *choice_delta(const srv_gen *g, const char *text, size_t len, const char *finish,
                            int role) {
    json_t *c = json_object();
    json_object_set_new(c, "index", json_integer(0));
    if (g->r.chat) {
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

json_t *srv_reply_chunk(const srv_gen *g, const char *id, long created, const char *text,
                        size_t len, const char *finish, int role) {
    json_t *ev = chunk_base(g, id, created);
    json_t *choices = json_array();
    json_array_append_new(choices, choice_delta(g, text, len, finish, role));
    json_object_set_new(ev, "choices", choices);
    if (finish) json_object_set_new(ev, "sinkllm", extra_json(g));
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
