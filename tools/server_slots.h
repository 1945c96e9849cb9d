/* server_slots.h - the slots of `sinkllm serve` and the named sessions
 * that live in them: slot acquisition with a bounded wait queue, the
 * per-slot context and transcript, the generation steps of one request,
 * session save/load/eviction, and the counters /metrics shows.
 *
 * Error convention of this module: sk_status + sk_error (the library's).
 * Nothing here knows HTTP; the caller maps a status to a response. The
 * slot and session rules are described at the top of server_slots.c. */
#ifndef SK_SERVER_SLOTS_H
#define SK_SERVER_SLOTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "server.h"
#include "server_request.h"
#include "server_batch.h"
#include "server_buf.h"
#include "server_store.h"
#include "sinkllm.h"

typedef struct srv_slot {
    int idx;
    sk_context *ctx;
    int busy;
    char session[SRV_SESSION_CAP]; /* "" = anonymous */
    char evicting[SRV_SESSION_CAP]; /* the named session being saved out of it ("" if none) */
    int32_t *tr;       /* transcript: (n_tr) token ids the context stands for */
    int64_t n_tr, cap_tr;
    int64_t tr_fed0;   /* transcript tokens [tr_fed0, n_tr) were all fed, in order: the
                          part that sk_context_rollback can take back */
    double last_used;  /* ms, for LRU eviction */
} srv_slot;

/* Counters since start, and the slots' state when taken. */
typedef struct srv_metrics {
    uint64_t requests, errors, gen_tokens, prompt_tokens, prefill_tokens, evicted, disconnects;
    double last_tps;
    int busy, sessions, n_slots, waiting;
    int has_store;               /* a session store is configured: */
    srv_store_stats store;       /*   what it holds and has done */
    srv_batch_stats batch;       /* the forward passes (continuous batching) */
} srv_metrics;

struct srv_waiter;

/* Every slot, the wait queue and the counters, under one mutex. */
typedef struct srv_pool {
    const sk_server_config *cfg; /* borrowed from the server */
    const sk_tokenizer *tok;
    int64_t n_vocab;
    sk_chat_kind kind;           /* the chat template, recorded with saved sessions */
    srv_store *store;            /* --session-dir or --session-store; NULL without either */
    srv_batcher *batcher;        /* runs every slot's forward passes together */
    atomic_int stopping;         /* set by srv_pool_stop: generations end at their next token */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    srv_slot *slots;             /* (n_slots), NULL until srv_pool_set_model */
    int n_slots;
    int n_waiting;
    struct srv_waiter *wait_head, *wait_tail; /* the queue, first come first served */
    srv_metrics m;               /* counters (under mu) */
    sk_token_trie *trie;         /* the vocabulary's piece trie, built by the first constrained
                                    request (under mu), then read-only */
} srv_pool;

/* One generated token's log-probability (log-softmax of the logits the
 * sampler saw: the model's, plus logit_bias, with a grammar's mask (-inf
 * for what it forbids), before penalties and temperature) and its top
 * alternatives, best first. */
typedef struct srv_logprob {
    int32_t id;
    float lp;
    size_t offset;              /* where its text starts in srv_gen.text */
    int n_top;
    int32_t top_id[SRV_MAX_TOP_LOGPROBS];
    float top_lp[SRV_MAX_TOP_LOGPROBS];
} srv_logprob;

/* The generation of one request in one slot. */
typedef struct srv_gen {
    srv_pool *p;
    srv_gen_req r;
    srv_slot *sl;
    int switched;            /* the slot held another session (or none) before */
    char evicted[SRV_SESSION_CAP]; /* the named session that had to leave it ("" if none) */
    sk_sampler *smp;
    sk_grammar_matcher *gm;  /* constrained output: r.grammar's matcher (NULL without) */
    sk_grammar_matcher *gm_tool; /* r.tools.lazy's matcher (NULL without) */
    int tool_on;             /*   1: it constrains the reply (a call began), -1: the call
                                  began outside it (left unconstrained), 0: not yet */
    double mask_ms;          /*   time spent on its token masks */
    float *logits;           /* (n_vocab) scratch */
    float *lp_row;           /* (n_vocab) the logits the sampler saw, when logprobs are asked */
    srv_logprob *lp;         /* (n_lp) one per generated token, when logprobs are asked */
    int64_t n_lp, cap_lp;
    sk_detok dt;
    char *text;              /* reply text; [0, sent) already delivered */
    size_t text_len, text_cap, sent;
    int64_t n_gen, n_prefill, n_reused, evicted0, n_rolled;
    int64_t n_gen_done;      /* tokens of the earlier choices (n > 1, a list of prompts) */
    int64_t n_prompt_done;   /* tokens of the earlier prompts of a list */
    int64_t evicted_done;    /* evictions counted before the slot was cleared mid-request */
    int choice;              /* the choice being generated: its index in the response,
                                prompt * n + k (0..srv_gen_n_choices - 1) */
    float *logits0;          /* (n_vocab) the prompt's last logits, for choices after the first */
    int use_logits0;         /* the next step samples from logits0 (the cache was rewound) */
    int finished, cancelled, timed_out, failed, released;
    const char *finish;      /* "stop" or "length" once finished */
    sk_error error;          /* why, when failed */
    double deadline, t_gen0, tps;
    int (*gone)(void *arg);  /* 1 when the client has left (checked before each token) */
    void *gone_arg;
} srv_gen;

/* Set up an empty pool over cfg (borrowed, must outlive the pool); the
 * slots come with srv_pool_set_model. Cannot fail. */
void srv_pool_init(srv_pool *p, const sk_server_config *cfg);

/* Create one context per slot over m (borrowed), open the session store
 * when cfg has a session directory (removing the temporary files of saves
 * a crash interrupted) and record kind with saved sessions. Returns SK_OK,
 * or the status of sk_store_open or sk_context_new (the pool is left
 * without slots). */
sk_status srv_pool_set_model(srv_pool *p, const sk_model *m, sk_chat_kind kind, sk_error *err);

/* Make every generation end at its next token, wait (at most 10 s) for the
 * slots to be free, then save every named session held in an idle slot
 * when a session directory is set (failures are logged to stderr). */
void srv_pool_stop(srv_pool *p);

/* Free the slots' contexts and transcripts and the mutex; after
 * srv_pool_stop. */
void srv_pool_free(srv_pool *p);

/* Count one generation request / one error response. */
void srv_pool_count_request(srv_pool *p);
void srv_pool_count_error(srv_pool *p);

/* Copy the counters and the slots' state into *out. */
void srv_pool_metrics(srv_pool *p, srv_metrics *out);

/* Where POST /v1/sessions/ID/save found the session. */
typedef enum srv_save_state {
    SRV_SAVE_DONE,    /* a slot held it: saved now */
    SRV_SAVE_ON_DISK, /* no slot holds it, its file exists */
    SRV_SAVE_MISSING, /* neither */
    SRV_SAVE_BUSY,    /* it is generating a reply: not saved */
} srv_save_state;

/* Save session id now when a slot holds it (*n_tokens: its transcript
 * length); *state says where it was found. Returns SK_OK, or the status of
 * the save (SK_ERR_INVALID without a session directory). */
sk_status srv_pool_save_session(srv_pool *p, const char *id, srv_save_state *state,
                                int64_t *n_tokens, sk_error *err);

/* Forget session id: clear the slot that holds it and delete its file in
 * the session directory. *state: SRV_SAVE_DONE (deleted), SRV_SAVE_MISSING
 * (no slot, no file), SRV_SAVE_BUSY (generating: nothing done). Returns
 * SK_OK or the status of the file's deletion. */
sk_status srv_pool_delete_session(srv_pool *p, const char *id, srv_save_state *state, sk_error *err);

/* Start g (zeroed but for r, deadline, gone): claim a slot for g->r,
 * waiting in the queue while all are busy. SK_ERR_FULL: shutting down,
 * queue full or timed out waiting (retry later); SK_ERR_INVALID: the
 * request's session is generating a reply. */
sk_status srv_gen_acquire(srv_gen *g, srv_pool *p, sk_error *err);

/* Switch the claimed slot to the request's session (saving the evicted one,
 * loading this one from its file), reuse, roll back or rebuild the cache
 * and pre-fill the prompt. Returns SK_OK or the failing status (the slot is
 * then cleared). */
sk_status srv_gen_prefill(srv_gen *g, sk_error *err);

/* Create the sampler (fed with the prompt's tail for the penalties) and the
 * logits scratch. Returns SK_OK, SK_ERR_NOMEM or the sampler's status. */
sk_status srv_gen_sampler(srv_gen *g, sk_error *err);

/* Choices of g's request in all: n for each prompt. */
int srv_gen_n_choices(const srv_gen *g);

/* Start choice g->choice + 1 (below srv_gen_n_choices): for choice k > 0
 * of a prompt, the cache and the transcript go back to the end of the
 * prompt (rolled back, or rebuilt when the rollback cannot reach); for the
 * first choice of the next prompt of a list, that prompt replaces the
 * request's and is pre-filled as a request's would be (reusing what it
 * shares with the slot). The text, logprobs and detokenizer start empty,
 * the sampler is re-seeded (seed + k when a seed was given) and the first
 * token is sampled from the prompt's saved logits. Returns SK_OK or the
 * failing status. */
sk_status srv_gen_next_choice(srv_gen *g, sk_error *err);

/* Generate one token, or end the generation (EOG, stop string, max_tokens,
 * deadline, client gone, shutdown, failure). */
void srv_gen_step(srv_gen *g);

/* Bytes of g->text that may be delivered now (held back: the start of a
 * possible stop string). */
size_t srv_gen_deliverable(const srv_gen *g);

/* Give the slot back, count the request in the metrics and log it; once
 * (later calls do nothing). */
void srv_gen_release(srv_gen *g);

/* Release (if not yet) and free what g owns; g itself is the caller's. */
void srv_gen_free(srv_gen *g);

#endif
