/* server.h - the OpenAI-compatible HTTP server behind `sinkllm serve`.
 *
 * One sk_server owns a libmicrohttpd daemon (a thread per connection), a
 * fixed set of slots (one sk_context each, so --slots requests generate at
 * once), a bounded wait queue for the rest, and the named sessions that live
 * in the slots. The model is borrowed: the caller loads it after starting
 * the server (GET /health answers 503 "loading" until then) and frees it
 * after sk_server_free. Four files implement it, one error convention
 * each: server_http.c (the daemon and the routes: MHD results),
 * server_request.c (request bodies and their fields: a srv_perr record),
 * server_slots.c (slots, sessions, generation: sk_status + sk_error) and
 * server_reply.c (response bodies: a JSON object or NULL). */
#ifndef SK_SERVER_H
#define SK_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "sinkllm.h"

typedef struct sk_server_config {
    const char *host;        /* address to bind ("127.0.0.1") */
    int port;                /* TCP port (8080) */
    int n_slots;             /* concurrent generations (4) */
    int queue_max;           /* requests allowed to wait for a slot (16) */
    int n_threads;           /* threads of the forward passes, which every slot shares
                                (continuous batching); 0 = all cores */
    int n_batch;             /* pre-fill chunk of one slot in one pass */
    int batch_tokens;        /* rows of one pass over all slots (512) */
    sk_cache_params cache;   /* cache of every slot */
    int sinks_set;           /* cache.n_sinks was chosen: a model's sink token does not make it 1 */
    const char *api_key;     /* NULL or "": no authentication */
    const char *session_dir; /* NULL: sessions are not persisted (unless session_store) */
    const char *session_store; /* "redis://HOST:PORT[/DB]": sessions in Redis (replaces session_dir) */
    int64_t session_max;     /* stored sessions kept at most (LRU beyond); 0 = no cap */
    double session_ttl_s;    /* a stored session unused this long is deleted; 0 = never */
    int session_sync;        /* save a named session after every request (write-through) */
    size_t max_body;         /* largest request body in bytes (8 MiB) */
    double timeout_s;        /* wall-clock limit of one request (600) */
    double header_timeout_s; /* request line and headers must arrive within this (10);
                                the body within as much again plus 1 s per 16 KiB */
    double idle_timeout_s;   /* a connection silent this long while it waits for a
                                request or takes a finished reply is closed (30) */
    int max_conn_per_ip;     /* connections from one address (0: no limit) */
    int chat_kind;           /* -1: recognise from the model */
    sk_sampler_params sp;    /* defaults for fields a request leaves out */
    int64_t max_tokens;      /* default max_tokens (512) */
    const char *model_id;    /* id shown by /v1/models (the file's basename) */
    const char *cors_origin; /* --cors: an origin ("https://app.example") or "*"; NULL: none */
} sk_server_config;

typedef struct sk_server sk_server;

/* Bind and start serving. Until sk_server_set_model, every route except
 * /health and /metrics answers 503. Strings in cfg must outlive the server.
 * Returns SK_ERR_IO when the address cannot be bound, SK_ERR_INVALID for a
 * bad configuration, SK_ERR_NOMEM. */
sk_status sk_server_start(const sk_server_config *cfg, sk_server **out, sk_error *err);

/* The TCP port the server listens on (the one the kernel chose for port 0). */
int sk_server_port(const sk_server *s);

/* Give the server its model (borrowed, must outlive the server): opens the
 * session store when a session directory is set (removing what crashed
 * saves left), creates the slot contexts, then /health answers 200. A
 * model trained with a sink token keeps only it as the sink (n_sinks 1)
 * unless cfg.sinks_set.
 * Returns the failing status of the store or of sk_context_new. */
sk_status sk_server_set_model(sk_server *s, const sk_model *m, sk_error *err);

/* Graceful stop: refuse new connections, make in-flight generations end
 * at their next token, wait (at most a few seconds) for them, and save
 * every named session when a session directory is set. Idempotent. */
void sk_server_shutdown(sk_server *s);

/* Stop the daemon and free everything the server owns; NULL is a no-op. */
void sk_server_free(sk_server *s);

#endif
