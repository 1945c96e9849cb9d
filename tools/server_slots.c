/* server_slots.c - the slots of `sinkllm serve`, the named sessions in
 * them, and the generation steps of one request.
 *
 * Error convention: sk_status + sk_error; nothing here knows HTTP (the
 * caller maps statuses to responses). Session files that cannot be
 * restored are not errors: the slot is rebuilt from the prompt and a line
 * goes to stderr, as does one line per finished request.
 *
 * Slots. Each slot owns one sk_context and the transcript of the tokens it
 * represents. A request claims a free slot (or waits in a bounded queue;
 * full -> SK_ERR_FULL, the server answers 503 + Retry-After), then
 * pre-fills only what its prompt adds to the transcript when the
 * transcript is a prefix of the prompt; when the prompt leaves the
 * transcript within its last few hundred fed tokens (a client that
 * re-sends the last reply re-tokenized, or a retry of a turn whose reply
 * was lost), the tokens from the divergence on are taken back
 * (sk_context_rollback, --rollback; also right after the session was
 * loaded from the store, which keeps the rows for that); otherwise the slot is
 * reset and rebuilt from the pinned start of the prompt (the system turn,
 * at least the n_sinks first tokens) plus at most one window of its tail.
 * The transcript always holds the logical token sequence (the whole prompt,
 * then every token fed), so the next turn of a conversation is recognised
 * as an extension even after such a truncated rebuild.
 *
 * Sessions. A request names a session with the X-Session-Id header or the
 * session_id field. A named session stays in its slot between requests;
 * when a slot is needed the least recently used idle session is evicted
 * (saved to the store, --session-dir or --session-store, when set) and
 * comes back from it on its next request; with --session-sync (implied by
 * a Redis store) a named session is also saved at the end of every
 * request, before its reply's last bytes, so another replica can serve
 * its next turn. A request for a session that is generating gets
 * SK_ERR_INVALID (the server answers 409). The store (server_store.c)
 * holds the library's session format (sk_store_*: the cache rows, plus a
 * record of the chat template and the transcript), the format `sinkllm
 * chat` saves; a session saved with another cache configuration is not
 * restored. The save route's outcome is an srv_save_state, not an error.
 *
 * Constrained output: a request with a grammar gets its own matcher (reset
 * for each of n choices), which the sampler masks with and advances; the
 * vocabulary's piece trie is built once, on the first such request, and
 * shared by every slot. Log-probabilities are those of the masked logits
 * (the grammar acts like a logit_bias of -inf on what it forbids). The
 * time spent on masks is counted per request (logged with it).
 *
 * Generation runs in the caller's thread, one token per srv_gen_step.
 * Before each token the client is checked (g->gone), so a client that
 * hangs up frees its slot within one token. */
#include "server_slots.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "server_store.h"

static double now_ms(void) { return sk_now_ms(); }

/* Room for n transcript tokens. */
static sk_status tr_reserve(srv_slot *sl, int64_t n, sk_error *err) {
    if (n <= sl->cap_tr) return SK_OK;
    int64_t cap = sl->cap_tr ? sl->cap_tr : 1024;
    while (cap < n) cap *= 2;
    int32_t *t = realloc(sl->tr, sizeof(int32_t) * (size_t)cap);
    if (!t) return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    sl->tr = t;
    sl->cap_tr = cap;
    return SK_OK;
}

static void slot_clear(srv_slot *sl) {
    sk_context_reset(sl->ctx);
    sl->n_tr = 0;
    sl->tr_fed0 = 0;
}

/* Length of the transcript when it is a prefix of the prompt, else 0. */
static int64_t reusable(const srv_slot *sl, const srv_gen_req *r) {
    if (sl->n_tr == 0 || sl->n_tr > r->n_prompt) return 0;
    if (memcmp(sl->tr, r->prompt, sizeof(int32_t) * (size_t)sl->n_tr)) return 0;
    if (sl->n_tr == r->n_prompt && !sk_logits(sl->ctx)) return 0;
    return sl->n_tr;
}

/* ---- sessions ---------------------------------------------------------- */

static void slot_release(srv_pool *p, srv_slot *sl) {
    pthread_mutex_lock(&p->mu);
    sl->busy = 0;
    sl->last_used = now_ms();
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Save a slot's session in the store: its cache, the chat template and the
 * transcript (no separate system prompt: the transcript holds it). */
static sk_status slot_save(srv_pool *p, srv_slot *sl, const char *id, sk_error *err) {
    if (!p->store) return sk_error_set(err, SK_ERR_INVALID, "no --session-dir or --session-store");
    return srv_store_save(p->store, id, sl->ctx, p->kind, sl->tr, sl->n_tr, err);
}

/* Bring session id back from the store into sl. SK_OK when it was loaded or
 * the store has none; otherwise the reason it was not restored (sl is left
 * clear). */
static sk_status slot_load(srv_pool *p, srv_slot *sl, const char *id, sk_error *err) {
    if (!p->store) return SK_OK;
    sk_session_info info;
    int found = 0;
    sk_status st = srv_store_load(p->store, id, sl->ctx, &info, &found, err);
    if (st || !found) {
        slot_clear(sl);
        return st;
    }
    st = tr_reserve(sl, info.n_tokens, err);
    if (!st) {
        if (info.n_tokens) memcpy(sl->tr, info.tokens, sizeof(int32_t) * (size_t)info.n_tokens);
        sl->n_tr = info.n_tokens;
        /* the session keeps the rows that taking back up to --rollback
         * tokens reads (the library refuses more): when its cache was fed
         * the whole transcript (never a truncated rebuild: then fewer
         * tokens were fed than it holds), any of them may go, as in the
         * slot that saved it; a retried turn then takes its saved reply
         * back and gives the same reply again */
        sk_context_stats cs;
        sk_context_get_stats(sl->ctx, &cs);
        sl->tr_fed0 = cs.n_past == sl->n_tr ? 0 : sl->n_tr;
    } else {
        slot_clear(sl);
    }
    sk_session_info_free(&info);
    return st;
}

/* The idle slot holding session id, marked busy (and with forget, no
 * longer named id), or NULL when none holds it; a save of id out of its
 * slot in progress is waited out first (after it, the file is on disk).
 * *state = SRV_SAVE_BUSY, slot untouched, when id is generating a reply. */
static srv_slot *claim_session(srv_pool *p, const char *id, int forget, srv_save_state *state) {
    pthread_mutex_lock(&p->mu);
    srv_slot *sl = NULL;
    for (;;) {
        int evicting = 0;
        for (int i = 0; i < p->n_slots; i++) {
            if (!strcmp(p->slots[i].session, id)) sl = &p->slots[i];
            evicting |= !strcmp(p->slots[i].evicting, id);
        }
        if (sl || !evicting) break;
        pthread_cond_wait(&p->cv, &p->mu);
    }
    if (sl && sl->busy) {
        *state = SRV_SAVE_BUSY;
        sl = NULL;
    } else if (sl) {
        sl->busy = 1;
        if (forget) sl->session[0] = 0;
    }
    pthread_mutex_unlock(&p->mu);
    return sl;
}

sk_status srv_pool_save_session(srv_pool *p, const char *id, srv_save_state *state,
                                int64_t *n_tokens, sk_error *err) {
    *state = SRV_SAVE_MISSING;
    *n_tokens = 0;
    if (!p->store) return sk_error_set(err, SK_ERR_INVALID, "no --session-dir or --session-store");
    srv_slot *sl = claim_session(p, id, 0, state);
    if (*state == SRV_SAVE_BUSY) return SK_OK;
    if (!sl) {
        if (srv_store_exists(p->store, id)) *state = SRV_SAVE_ON_DISK;
        return SK_OK;
    }
    *n_tokens = sl->n_tr;
    sk_status st = slot_save(p, sl, id, err);
    slot_release(p, sl);
    if (!st) *state = SRV_SAVE_DONE;
    return st;
}

sk_status srv_pool_delete_session(srv_pool *p, const char *id, srv_save_state *state, sk_error *err) {
    *state = SRV_SAVE_MISSING;
    srv_slot *sl = claim_session(p, id, 1, state);
    if (*state == SRV_SAVE_BUSY) return SK_OK;
    if (sl) {
        slot_clear(sl);
        slot_release(p, sl);
        *state = SRV_SAVE_DONE;
    }
    int found = 0;
    if (p->store) {
        sk_status st = srv_store_delete(p->store, id, &found, err);
        if (st) return st;
        if (found) *state = SRV_SAVE_DONE;
    }
    return SK_OK;
}

/* ---- the pool ---------------------------------------------------------- */

void srv_pool_init(srv_pool *p, const sk_server_config *cfg) {
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
}

sk_status srv_pool_set_model(srv_pool *p, const sk_model *m, sk_chat_kind kind, sk_error *err) {
    p->kind = kind;
    const char *spec = p->cfg->session_store ? p->cfg->session_store : p->cfg->session_dir;
    if (spec) {
        srv_store_opts so = {p->cfg->session_max, p->cfg->session_ttl_s};
        sk_status st = srv_store_open(spec, m, &so, &p->store, err);
        if (st) return st;
    }
    p->tok = sk_model_tokenizer(m);
    p->n_vocab = sk_model_hparams(m)->n_vocab;
    sk_status bst = srv_batcher_new(m, p->cfg->n_threads, p->cfg->batch_tokens, p->cfg->n_slots, &p->batcher, err);
    if (bst) return bst;
    sk_context_params cp;
    sk_context_params_default(&cp);
    cp.n_threads = p->cfg->n_threads;
    cp.threads = srv_batcher_batch(p->batcher); /* only the batcher's passes feed the slots */
    cp.n_batch = p->cfg->n_batch;
    cp.cache = p->cfg->cache;
    srv_slot *slots = calloc((size_t)p->cfg->n_slots, sizeof *slots);
    if (!slots) return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    for (int i = 0; i < p->cfg->n_slots; i++) {
        slots[i].idx = i;
        if (sk_context_new(m, &cp, &slots[i].ctx, err)) {
            for (int k = 0; k < i; k++) sk_context_free(slots[k].ctx);
            free(slots);
            return err ? err->code : SK_ERR_INVALID;
        }
    }
    pthread_mutex_lock(&p->mu);
    p->slots = slots;
    p->n_slots = p->cfg->n_slots;
    pthread_mutex_unlock(&p->mu);
    return SK_OK;
}

void srv_pool_stop(srv_pool *p) {
    p->stopping = 1;
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    double until = now_ms() + 10e3;
    for (;;) {
        int busy = 0;
        for (int i = 0; i < p->n_slots; i++) busy += p->slots[i].busy;
        if (!busy || now_ms() > until) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    for (int i = 0; i < p->n_slots; i++) {
        srv_slot *sl = &p->slots[i];
        if (!sl->busy && sl->session[0] && p->store) {
            sk_error err = {0};
            if (slot_save(p, sl, sl->session, &err))
                fprintf(stderr, "serve: could not save session %s: %s\n", sl->session, err.msg);
            else fprintf(stderr, "serve: saved session %s\n", sl->session);
        }
    }
    pthread_mutex_unlock(&p->mu);
}

void srv_pool_free(srv_pool *p) {
    srv_batcher_free(p->batcher);
    p->batcher = NULL;
    for (int i = 0; i < p->n_slots; i++) {
        sk_context_free(p->slots[i].ctx);
        free(p->slots[i].tr);
    }
    free(p->slots);
    p->slots = NULL;
    sk_token_trie_free(p->trie);
    p->trie = NULL;
    srv_store_free(p->store);
    p->store = NULL;
    p->n_slots = 0;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

void srv_pool_count_request(srv_pool *p) {
    pthread_mutex_lock(&p->mu);
    p->m.requests++;
    pthread_mutex_unlock(&p->mu);
}

void srv_pool_count_error(srv_pool *p) {
    pthread_mutex_lock(&p->mu);
    p->m.errors++;
    pthread_mutex_unlock(&p->mu);
}

void srv_pool_metrics(srv_pool *p, srv_metrics *out) {
    pthread_mutex_lock(&p->mu);
    *out = p->m;
    out->busy = out->sessions = 0;
    for (int i = 0; i < p->n_slots; i++) {
        out->busy += p->slots[i].busy;
        out->sessions += p->slots[i].session[0] != 0;
    }
    out->n_slots = p->n_slots;
    out->waiting = p->n_waiting;
    pthread_mutex_unlock(&p->mu);
    memset(&out->batch, 0, sizeof out->batch);
    if (p->batcher) srv_batcher_stats(p->batcher, &out->batch);
    memset(&out->store, 0, sizeof out->store);
    out->has_store = p->store != NULL;
    if (p->store) srv_store_stats_get(p->store, &out->store); /* outside mu: it may wait for Redis */
}

/* ---- one generation ---------------------------------------------------- */

/* A request waiting for a slot: a node of the pool's FIFO, on the waiting
 * thread's stack. Only the head may take a free slot, so that requests are
 * served in the order they came (a broadcast used to let any waiter win). */
typedef struct srv_waiter {
    struct srv_waiter *next;
} srv_waiter;

static void waiter_unlink(srv_pool *p, srv_waiter *w) {
    srv_waiter **pp = &p->wait_head, *prev = NULL;
    while (*pp && *pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp) return;
    *pp = w->next;
    if (p->wait_tail == w) p->wait_tail = prev;
}

#define QUEUE_POLL_MS 250.0 /* a queued request checks its client this often */

sk_status srv_gen_acquire(srv_gen *g, srv_pool *p, sk_error *err) {
    const srv_gen_req *r = &g->r;
    g->p = p;
    sk_detok_init(&g->dt);
    pthread_mutex_lock(&p->mu);
    sk_status st = SK_OK;
    srv_waiter me = {0};
    int queued = 0;
    for (;;) {
        if (p->stopping) {
            st = sk_error_set(err, SK_ERR_FULL, "the server is shutting down");
            break;
        }
        srv_slot *best = NULL;
        if (r->session[0]) {
            for (int i = 0; i < p->n_slots; i++)
                if (!strcmp(p->slots[i].session, r->session)) best = &p->slots[i];
            if (best && best->busy) {
                st = sk_error_set(err, SK_ERR_INVALID, "session '%s' is generating a reply",
                                  r->session);
                break;
            }
        }
        const int my_turn = !p->wait_head || p->wait_head == &me;
        if (!best && my_turn) {
            /* rank: reusable prefix (anonymous requests), then empty, anonymous, LRU named */
            double best_score = -1;
            for (int i = 0; i < p->n_slots; i++) {
                srv_slot *sl = &p->slots[i];
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
        if (best && !my_turn) best = NULL; /* its session's slot is free, but others came first */
        if (best) {
            g->switched = strcmp(best->session, r->session) != 0;
            snprintf(g->evicted, sizeof g->evicted, "%s", g->switched ? best->session : "");
            /* until its save is on disk, a save request for it waits (not a 404) */
            snprintf(best->evicting, sizeof best->evicting, "%s",
                     g->switched && p->store ? best->session : "");
            snprintf(best->session, sizeof best->session, "%s", r->session);
            best->busy = 1;
            g->sl = best;
            srv_batcher_active(p->batcher, 1);
            break;
        }
        if (!queued) {
            if (p->n_waiting >= p->cfg->queue_max) {
                st = sk_error_set(err, SK_ERR_FULL, "all %d slots are busy and the queue is full",
                                  p->n_slots);
                break;
            }
            if (p->wait_tail) p->wait_tail->next = &me;
            else p->wait_head = &me;
            p->wait_tail = &me;
            p->n_waiting++;
            queued = 1;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double wait_ms = g->deadline - now_ms();
        if (wait_ms < 0) wait_ms = 0;
        if (wait_ms > QUEUE_POLL_MS) wait_ms = QUEUE_POLL_MS;
        ts.tv_sec += (time_t)(wait_ms / 1e3);
        ts.tv_nsec += (long)(fmod(wait_ms, 1e3) * 1e6);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        if (now_ms() >= g->deadline) {
            st = sk_error_set(err, SK_ERR_FULL, "timed out waiting for a free slot");
            break;
        }
        if (g->gone && g->gone(g->gone_arg)) { /* no pre-fill for a client that has left */
            g->cancelled = 1;
            st = sk_error_set(err, SK_ERR_FULL, "the client left while queued");
            break;
        }
    }
    if (queued) { /* served or gone: the next in line may go */
        waiter_unlink(p, &me);
        p->n_waiting--;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return st;
}

#define PREFILL_CHUNK 256 /* tokens decoded between two checks of the request */

/* Decode t[0..n) into g's slot in chunks; between two chunks a shutdown,
 * the request's deadline or a client that has left ends the pre-fill
 * (SK_ERR_FULL; g->cancelled or g->timed_out says which). */
static sk_status decode_checked(srv_gen *g, const int32_t *t, int64_t n, int generated, sk_error *err) {
    for (int64_t i = 0; i < n; i += PREFILL_CHUNK) {
        if (i > 0 && g->p->stopping) {
            g->cancelled = 1;
            return sk_error_set(err, SK_ERR_FULL, "the server is shutting down");
        }
        if (i > 0 && now_ms() > g->deadline) {
            g->timed_out = 1;
            return sk_error_set(err, SK_ERR_FULL, "pre-fill did not finish within --timeout");
        }
        if (i > 0 && g->gone && g->gone(g->gone_arg)) {
            g->cancelled = 1;
            return sk_error_set(err, SK_ERR_FULL, "the client has left");
        }
        sk_status st = srv_batcher_decode(g->p->batcher, g->sl->ctx, t + i,
                                          n - i < PREFILL_CHUNK ? n - i : PREFILL_CHUNK, generated, err);
        if (st) return st;
    }
    return SK_OK;
}

/* Feed tokens to g's slot (checked, as above) and append them to its
 * transcript. */
static sk_status feed(srv_gen *g, const int32_t *t, int64_t n, int generated, sk_error *err) {
    srv_slot *sl = g->sl;
    if (n <= 0) return SK_OK;
    sk_status st = tr_reserve(sl, sl->n_tr + n, err);
    if (!st) st = decode_checked(g, t, n, generated, err);
    if (st) return st;
    memcpy(sl->tr + sl->n_tr, t, sizeof(int32_t) * (size_t)n);
    sl->n_tr += n;
    return SK_OK;
}

/* How many tokens after the pinned start a pre-fill feeds at most: what
 * the cache keeps (one window; dense: the context less the reply). */
static int64_t prefill_budget(const srv_gen *g) {
    const sk_cache_params *cp = &g->p->cfg->cache;
    int64_t budget = cp->policy == SK_CACHE_DENSE ? cp->n_ctx - g->r.max_tokens : cp->n_window;
    return budget < 1 ? 1 : budget;
}

/* Clear g's slot mid-request: the evictions counted so far are kept in
 * g->evicted_done (a cleared cache counts from zero again). */
static void gen_clear(srv_gen *g) {
    sk_context_stats cs;
    sk_context_get_stats(g->sl->ctx, &cs);
    if (cs.n_evicted > g->evicted0) g->evicted_done += cs.n_evicted - g->evicted0;
    g->evicted0 = 0;
    slot_clear(g->sl);
}

/* Rebuild the cleared slot from the prompt: all of it, or its pinned start
 * plus one window of its tail (the transcript keeps the whole prompt). */
static sk_status rebuild(srv_gen *g, sk_error *err) {
    srv_slot *sl = g->sl;
    const srv_gen_req *r = &g->r;
    const sk_cache_params *cp = &g->p->cfg->cache;
    int64_t budget = prefill_budget(g);
    int64_t pin = r->n_pin;
    int64_t min_pin = cp->policy == SK_CACHE_SINK ? cp->n_sinks : 0;
    if (pin < min_pin) pin = min_pin;
    if (pin > r->n_prompt) pin = r->n_prompt;
    if (r->n_prompt - pin <= budget) {
        sk_status st = feed(g, r->prompt, r->n_prompt, 0, err);
        if (!st) g->n_prefill += r->n_prompt;
        return st;
    }
    sk_status st = decode_checked(g, r->prompt, pin, 0, err);
    if (!st) st = decode_checked(g, r->prompt + r->n_prompt - budget, budget, 0, err);
    if (st) return st;
    if ((st = tr_reserve(sl, r->n_prompt, err))) return st;
    memcpy(sl->tr, r->prompt, sizeof(int32_t) * (size_t)r->n_prompt);
    sl->n_tr = r->n_prompt;
    sl->tr_fed0 = r->n_prompt - budget;
    g->n_prefill += pin + budget;
    return SK_OK;
}

static sk_status prefill_prompt(srv_gen *g, sk_error *err);

sk_status srv_gen_prefill(srv_gen *g, sk_error *err) {
    srv_pool *p = g->p;
    srv_slot *sl = g->sl;
    if (g->switched) {
        sk_error e2 = {0};
        if (g->evicted[0] && p->store && slot_save(p, sl, g->evicted, &e2))
            fprintf(stderr, "serve: could not save session %s: %s\n", g->evicted, e2.msg);
        pthread_mutex_lock(&p->mu);
        sl->evicting[0] = 0;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        slot_clear(sl);
        if (g->r.session[0] && slot_load(p, sl, g->r.session, &e2))
            fprintf(stderr, "serve: session %s not restored (rebuilt from the prompt): %s\n",
                    g->r.session, e2.msg);
    }
    return prefill_prompt(g, err);
}

/* Bring g's slot to the end of g->r's prompt: feed what the prompt adds to
 * the transcript, after taking back the diverging tokens when the prompt
 * leaves it near its end, else rebuild. Counts into g's prefill, reuse and
 * eviction figures. Clears the slot on failure. */
static sk_status prefill_prompt(srv_gen *g, sk_error *err) {
    srv_slot *sl = g->sl;
    const srv_gen_req *r = &g->r;
    int64_t reuse = reusable(sl, r);
    if (!reuse && sl->n_tr > 0) {
        /* the prompt leaves the transcript near its end (typically the last
         * reply, re-tokenized differently by the client's round trip): take
         * the diverging tokens back instead of rebuilding */
        int64_t L = 0, lim = sl->n_tr < r->n_prompt - 1 ? sl->n_tr : r->n_prompt - 1;
        while (L < lim && sl->tr[L] == r->prompt[L]) L++;
        sk_error rb = {0};
        if (L > 0 && L >= sl->tr_fed0 && !sk_context_rollback(sl->ctx, sl->n_tr - L, &rb)) {
            g->n_rolled += sl->n_tr - L;
            sl->n_tr = L;
            reuse = L;
        }
    }
    /* a suffix longer than the cache keeps would evict everything it
     * reuses: rebuild instead, so that no request pre-fills more than its
     * pinned start and one window (a 32,000-word prompt after a short
     * conversation fed every token; issue 11) */
    if (reuse && r->n_prompt - reuse > prefill_budget(g)) reuse = 0;
    sk_status st;
    if (reuse) {
        g->n_reused += reuse;
        sk_context_stats cs;
        sk_context_get_stats(sl->ctx, &cs);
        g->evicted0 = cs.n_evicted;
        g->n_prefill += r->n_prompt - reuse;
        st = feed(g, r->prompt + reuse, r->n_prompt - reuse, 0, err);
    } else {
        gen_clear(g);
        st = rebuild(g, err);
    }
    if (st) gen_clear(g);
    return st;
}

/* Feed the prompt's tail to the sampler's history (the penalties see it). */
static void accept_prompt_tail(srv_gen *g) {
    const srv_gen_req *r = &g->r;
    int64_t hist = r->sp.repeat_last_n < 0 ? r->n_prompt : r->sp.repeat_last_n;
    if (hist > r->n_prompt) hist = r->n_prompt;
    if (r->sp.repeat_penalty != 1.0f || r->sp.presence_penalty != 0 || r->sp.frequency_penalty != 0)
        for (int64_t i = r->n_prompt - hist; i < r->n_prompt; i++) sk_sampler_accept(g->smp, r->prompt[i]);
}

/* The vocabulary's piece trie, built on first use (under the pool's mutex:
 * one build, then read-only). */
static sk_status pool_trie(srv_pool *p, const sk_token_trie **out, sk_error *err) {
    sk_status st = SK_OK;
    pthread_mutex_lock(&p->mu);
    if (!p->trie) {
        double t0 = now_ms();
        st = sk_token_trie_new(p->tok, &p->trie, err);
        if (!st) fprintf(stderr, "serve: token trie for constrained output built in %.0f ms\n", now_ms() - t0);
    }
    *out = p->trie;
    pthread_mutex_unlock(&p->mu);
    return st;
}

sk_status srv_gen_sampler(srv_gen *g, sk_error *err) {
    const srv_gen_req *r = &g->r;
    sk_status st = sk_sampler_new(&r->sp, g->p->n_vocab, &g->smp, err);
    if (st) return st;
    accept_prompt_tail(g);
    if (r->grammar) {
        const sk_token_trie *t = NULL;
        if ((st = pool_trie(g->p, &t, err)) || (st = sk_grammar_matcher_new(r->grammar, &g->gm, err)) ||
            (st = sk_sampler_set_grammar(g->smp, g->gm, t, err)))
            return st;
    }
    if (r->tools.lazy) { /* set on the sampler when a call begins (tool_begins) */
        const sk_token_trie *t = NULL;
        if ((st = pool_trie(g->p, &t, err)) || (st = sk_grammar_matcher_new(r->tools.lazy, &g->gm_tool, err)))
            return st;
    }
    g->logits = malloc(sizeof(float) * (size_t)g->p->n_vocab);
    if (!g->logits) return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    if (r->logprobs) {
        g->cap_lp = r->max_tokens < 256 ? r->max_tokens : 256; /* grows by doubling */
        g->lp_row = malloc(sizeof(float) * (size_t)g->p->n_vocab);
        g->lp = malloc(sizeof *g->lp * (size_t)g->cap_lp);
        if (!g->lp_row || !g->lp) return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    }
    if (srv_gen_n_choices(g) > 1) {
        const float *l = sk_logits(g->sl->ctx);
        g->logits0 = malloc(sizeof(float) * (size_t)g->p->n_vocab);
        if (!g->logits0 || !l) return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
        memcpy(g->logits0, l, sizeof(float) * (size_t)g->p->n_vocab);
    }
    g->t_gen0 = now_ms();
    return SK_OK;
}

/* The sampler for choice k: re-seeded, fed the prompt's tail (penalties). */
static void reseed(srv_gen *g, int k) {
    const srv_gen_req *r = &g->r;
    sk_sampler_reset(g->smp, r->sp.seed == SK_SEED_RANDOM ? SK_SEED_RANDOM : r->sp.seed + (uint64_t)k);
    accept_prompt_tail(g);
}

int srv_gen_n_choices(const srv_gen *g) { return g->r.n_choices * (1 + g->r.n_rest); }

/* The next prompt of the list into g->r (the one done is freed, its tokens
 * counted), then pre-filled from what the slot holds: its logits are the
 * first choice's. */
static sk_status next_prompt(srv_gen *g, sk_error *err) {
    srv_gen_req *r = &g->r;
    srv_prompt *next = &r->rest[g->choice / r->n_choices - 1]; /* rest[0] is prompt 1 */
    g->n_prompt_done += r->n_prompt;
    free(r->prompt);
    free(r->echo);
    r->prompt = next->ids;
    r->n_prompt = next->n;
    r->echo = next->echo;
    r->echo_len = next->echo_len;
    memset(next, 0, sizeof *next);
    sk_status st = prefill_prompt(g, err);
    if (st) return st;
    const float *l = sk_logits(g->sl->ctx);
    if (!l) return sk_error_set(err, SK_ERR_INVALID, "no logits after the pre-fill");
    memcpy(g->logits0, l, sizeof(float) * (size_t)g->p->n_vocab);
    return SK_OK;
}

sk_status srv_gen_next_choice(srv_gen *g, sk_error *err) {
    srv_slot *sl = g->sl;
    const srv_gen_req *r = &g->r;
    g->n_gen_done += g->n_gen;
    g->n_gen = 0;
    g->choice++;
    const int k = g->choice % r->n_choices; /* the choice of its prompt */
    if (k == 0) {
        sk_status st = next_prompt(g, err);
        if (st) return st;
    } else {
        int64_t fed = sl->n_tr - r->n_prompt;
        sk_error rb = {0};
        if (fed > 0 && sk_context_rollback(sl->ctx, fed, &rb)) {
            /* too far back for the ring: rebuild from the prompt, and sample the
             * first token from the rebuilt cache's own logits */
            gen_clear(g);
            sk_status st = rebuild(g, err);
            if (st) return st;
            memcpy(g->logits0, sk_logits(sl->ctx), sizeof(float) * (size_t)g->p->n_vocab);
        }
        sl->n_tr = r->n_prompt;
        if (sl->tr_fed0 > sl->n_tr) sl->tr_fed0 = sl->n_tr;
    }
    g->use_logits0 = 1;
    g->finished = 0;
    g->finish = NULL;
    g->text_len = g->sent = 0;
    if (g->text) g->text[0] = 0;
    g->n_lp = 0;
    sk_detok_init(&g->dt);
    reseed(g, k);
    if (g->gm) sk_grammar_matcher_reset(g->gm);
    if (g->gm_tool && g->tool_on == 1) sk_sampler_set_grammar(g->smp, NULL, NULL, NULL);
    g->tool_on = 0;
    return SK_OK;
}

/* Tool calls in auto mode: once the reply writes SRV_TOOL_OPEN (the last
 * w bytes of the text are the newest token's), the calls' grammar
 * constrains the rest, from that opening on: the matcher is advanced over
 * what was written since and set on the sampler. A call whose opening
 * text the grammar cannot continue stays unconstrained (the reply is then
 * read back as content or calls as in any case). */
static void tool_begins(srv_gen *g, size_t w) {
    if (!g->gm_tool || g->tool_on) return;
    static const char open[] = SRV_TOOL_OPEN;
    const size_t k = sizeof open - 1;
    size_t from = g->text_len > w + k ? g->text_len - w - k : 0;
    const char *p = memmem(g->text + from, g->text_len - from, open, k);
    if (!p) return;
    size_t at = (size_t)(p - g->text);
    const sk_token_trie *t = g->p->trie; /* built by srv_gen_sampler */
    sk_grammar_matcher_reset(g->gm_tool);
    sk_error err = {0};
    if (sk_grammar_matcher_advance(g->gm_tool, g->text + at, g->text_len - at) &&
        !sk_sampler_set_grammar(g->smp, g->gm_tool, t, &err))
        g->tool_on = 1;
    else
        g->tool_on = -1;
}

/* Bytes at the end of the text that could start a stop string. */
static size_t held_back(const srv_gen *g) {
    size_t held = 0;
    for (int k = 0; k < g->r.n_stop; k++) {
        size_t m = g->r.stop_len[k] - 1;
        if (m > g->text_len - g->sent) m = g->text_len - g->sent;
        for (; m > held; m--)
            if (!memcmp(g->text + g->text_len - m, g->r.stops[k], m)) {
                held = m;
                break;
            }
    }
    return held;
}

static void check_stops(srv_gen *g) {
    if (!g->r.n_stop) return;
    size_t from = g->sent > g->r.max_stop_len ? g->sent - g->r.max_stop_len : 0;
    size_t cut = (size_t)-1;
    for (int k = 0; k < g->r.n_stop; k++) {
        char *s = memmem(g->text + from, g->text_len - from, g->r.stops[k], g->r.stop_len[k]);
        if (s && (size_t)(s - g->text) < cut) cut = (size_t)(s - g->text);
    }
    if (cut != (size_t)-1) {
        g->text_len = cut < g->sent ? g->sent : cut;
        g->text[g->text_len] = 0;
        g->finished = 1;
        g->finish = "stop";
    }
}

static void gen_end(srv_gen *g, const char *reason) {
    if (g->finished) return;
    char tail[16];
    size_t w = sk_detok_flush(&g->dt, tail, sizeof tail);
    if (w) srv_append(&g->text, &g->text_len, &g->text_cap, tail, w);
    g->finished = 1;
    g->finish = reason;
    check_stops(g);
    g->finished = 1;
}

/* Record token t's log-probability under the logits the sampler saw
 * (g->lp_row) and the top r.top_logprobs alternatives: log-softmax with
 * the log-sum-exp in double, l - max - log(sum exp(l - max)). */
static sk_status lp_record(srv_gen *g, int32_t t, sk_error *err) {
    if (g->n_lp == g->cap_lp) {
        int64_t cap = g->cap_lp ? 2 * g->cap_lp : 64;
        srv_logprob *v = realloc(g->lp, sizeof *v * (size_t)cap);
        if (!v) return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
        g->lp = v;
        g->cap_lp = cap;
    }
    const float *l = g->lp_row;
    const int64_t n = g->p->n_vocab;
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = l[i] > mx ? l[i] : mx;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += exp((double)l[i] - (double)mx);
    const double lse = (double)mx + log(sum);
    srv_logprob *e = &g->lp[g->n_lp++];
    e->id = t;
    e->lp = (float)((double)l[t] - lse);
    e->offset = g->text_len;
    /* the k best by insertion into a sorted list (k <= 20); ties: lower id first */
    int k = g->r.top_logprobs, m = 0;
    for (int64_t i = 0; i < n && k > 0; i++) {
        if (l[i] == -INFINITY) continue; /* forbidden (a grammar, a bias): not an alternative */
        if (m == k && !(l[i] > l[e->top_id[m - 1]])) continue;
        int j = m < k ? m++ : m - 1;
        while (j > 0 && l[i] > l[e->top_id[j - 1]]) {
            e->top_id[j] = e->top_id[j - 1];
            j--;
        }
        e->top_id[j] = (int32_t)i;
    }
    e->n_top = m;
    for (int j = 0; j < m; j++) e->top_lp[j] = (float)((double)l[e->top_id[j]] - lse);
    return SK_OK;
}

/* End g as failed; err says why. */
static void gen_fail(srv_gen *g, const sk_error *err, const char *reason) {
    g->failed = 1;
    g->error = *err;
    gen_end(g, reason);
}

void srv_gen_step(srv_gen *g) {
    if (g->finished) return;
    srv_pool *p = g->p;
    if (p->stopping) {
        g->cancelled = 1;
        gen_end(g, "stop");
        return;
    }
    if (now_ms() > g->deadline) {
        g->timed_out = 1;
        gen_end(g, "length");
        return;
    }
    if (g->gone && g->gone(g->gone_arg)) {
        g->cancelled = 1;
        gen_end(g, "stop");
        return;
    }
    sk_error err = {0};
    const float *lg = g->use_logits0 ? g->logits0 : sk_logits(g->sl->ctx);
    g->use_logits0 = 0;
    if (!lg) {
        sk_error_set(&err, SK_ERR_INVALID, "no logits");
        gen_fail(g, &err, "stop");
        return;
    }
    memcpy(g->logits, lg, sizeof(float) * (size_t)p->n_vocab);
    for (int i = 0; i < g->r.n_bias; i++) g->logits[g->r.bias_id[i]] += g->r.bias[i];
    if (g->gm || g->tool_on == 1) { /* the mask, once per token (the sampler reuses it) */
        double t0 = now_ms();
        sk_sampler_apply_grammar(g->smp, g->logits);
        g->mask_ms += now_ms() - t0;
    }
    if (g->lp_row) memcpy(g->lp_row, g->logits, sizeof(float) * (size_t)p->n_vocab); /* the sampler edits its row */
    int32_t t = sk_sampler_sample(g->smp, g->logits); /* with a grammar: advances g->gm */
    if (sk_token_is_eog(p->tok, t)) {
        gen_end(g, "stop");
        return;
    }
    if (g->lp_row && lp_record(g, t, &err)) {
        gen_fail(g, &err, "stop");
        return;
    }
    sk_sampler_accept(g->smp, t);
    char piece[512];
    size_t w = sk_detok_push(&g->dt, p->tok, t, 0, piece, sizeof piece);
    if (srv_append(&g->text, &g->text_len, &g->text_cap, piece, w)) {
        sk_error_set(&err, SK_ERR_NOMEM, "out of memory");
        gen_fail(g, &err, "stop");
        return;
    }
    g->n_gen++;
    tool_begins(g, w);
    if (feed(g, &t, 1, 1, &err)) {
        gen_fail(g, &err, "length");
        return;
    }
    check_stops(g);
    if (!g->finished && g->n_gen >= g->r.max_tokens) gen_end(g, "length");
}

size_t srv_gen_deliverable(const srv_gen *g) {
    if (g->finished) return g->text_len;
    size_t upto = g->text_len - held_back(g);
    if (g->r.tools.mode) { /* what may still become tool calls is held */
        size_t t = srv_tools_deliverable(g->text, g->sent, g->text_len);
        if (t < upto) upto = t;
    }
    return upto;
}

void srv_gen_release(srv_gen *g) {
    if (g->released || !g->sl) return;
    g->released = 1;
    srv_pool *p = g->p;
    srv_batcher_active(p->batcher, -1);
    double dt = (now_ms() - g->t_gen0) / 1e3;
    g->tps = g->n_gen > 0 && dt > 0 ? g->n_gen / dt : 0;
    sk_context_stats st;
    sk_context_get_stats(g->sl->ctx, &st);
    if (g->failed) {
        /* the cache may not match the transcript any more */
        slot_clear(g->sl);
    } else if (g->r.session[0] && p->store && p->cfg->session_sync) {
        /* write-through: the session outlives this process (another replica
         * may serve its next turn); a failed save is logged and counted,
         * the slot keeps the session */
        sk_error e2 = {0};
        if (slot_save(p, g->sl, g->r.session, &e2))
            fprintf(stderr, "serve: could not save session %s: %s\n", g->r.session, e2.msg);
    }
    pthread_mutex_lock(&p->mu);
    p->m.gen_tokens += (uint64_t)(g->n_gen + g->n_gen_done);
    p->m.prompt_tokens += (uint64_t)(g->n_prompt_done + g->r.n_prompt);
    p->m.prefill_tokens += (uint64_t)g->n_prefill;
    p->m.evicted += (uint64_t)(g->evicted_done + (st.n_evicted > g->evicted0 ? st.n_evicted - g->evicted0 : 0));
    if (g->cancelled && !p->stopping) p->m.disconnects++;
    if (g->n_gen > 0) p->m.last_tps = g->tps;
    pthread_mutex_unlock(&p->mu);
    char gram[64] = "";
    int64_t n_all = g->n_gen + g->n_gen_done;
    if (g->gm && n_all > 0) snprintf(gram, sizeof gram, " grammar %.3f ms/token", g->mask_ms / (double)n_all);
    else if (g->tool_on == 1) snprintf(gram, sizeof gram, " tool call constrained (%.3f ms of masks)", g->mask_ms);
    fprintf(stderr, "serve: slot %d%s%s prompt %lld (prefill %lld) gen %lld %.1f tok/s%s %s%s\n",
            g->sl->idx, g->r.session[0] ? " session " : "", g->r.session, (long long)g->r.n_prompt,
            (long long)g->n_prefill, (long long)g->n_gen, g->tps, gram, g->finish ? g->finish : "-",
            g->cancelled ? " (cancelled)" : "");
    slot_release(p, g->sl);
}

void srv_gen_free(srv_gen *g) {
    srv_gen_release(g);
    sk_sampler_free(g->smp);
    g->smp = NULL;
    sk_grammar_matcher_free(g->gm);
    g->gm = NULL;
    sk_grammar_matcher_free(g->gm_tool);
    g->gm_tool = NULL;
    free(g->logits);
    g->logits = NULL;
    free(g->lp_row);
    g->lp_row = NULL;
    free(g->lp);
    g->lp = NULL;
    free(g->logits0);
    g->logits0 = NULL;
    free(g->text);
    g->text = NULL;
    srv_gen_req_free(&g->r);
}
