/* server_store.h - where `sinkllm serve` keeps named sessions between
 * requests: a directory (--session-dir, the library's sk_store files) or a
 * Redis server (--session-store redis://HOST:PORT[/DB]) that several
 * replicas share, so a conversation survives the replica that held it.
 *
 * Both hold the same bytes: the library's checksummed, fingerprinted
 * session format (sk_store_encode), only the cache rows the session can
 * still read. Both apply --session-max (the least recently used sessions
 * beyond it are deleted at each save) and --session-ttl (a session unused
 * that long is deleted; Redis expires the key itself), and count what they
 * hold for /metrics.
 *
 * Redis down: a save or load fails with an error (the caller logs it and
 * goes on from memory: the slot keeps the session, a load rebuilds from the
 * prompt); the connection is retried at most once a second and everything
 * resumes when Redis is back. Never a crash.
 *
 * Error convention: sk_status + sk_error. Thread-safe: one mutex per store
 * (the caller keeps two calls on one session from running at once). */
#ifndef SK_SERVER_STORE_H
#define SK_SERVER_STORE_H

#include <stdint.h>

#include "sinkllm.h"

typedef struct srv_store srv_store;

typedef struct srv_store_opts {
    int64_t max_sessions; /* 0: no cap */
    double ttl_s;         /* 0: sessions never expire */
} srv_store_opts;

/* What the store holds and has done, for /metrics. */
typedef struct srv_store_stats {
    int64_t sessions, bytes;              /* held now (-1: not known, e.g. Redis down) */
    uint64_t saves, save_errors, loads, load_errors, expired, capped;
} srv_store_stats;

/* Open the store named by spec: "redis://HOST:PORT[/DB]" or a directory
 * (created when missing; stale temporaries of crashed saves removed). m is
 * borrowed. A Redis server that does not answer now is not an error (it is
 * retried at each call); a malformed spec is SK_ERR_INVALID. */
sk_status srv_store_open(const char *spec, const sk_model *m, const srv_store_opts *o, srv_store **out,
                         sk_error *err);
void srv_store_free(srv_store *s);

/* "redis" or "dir", for the log */
const char *srv_store_kind(const srv_store *s);

/* Save context c as session id with its chat kind and transcript (the
 * cached rows only; atomically replacing an older version), then apply
 * the cap. */
sk_status srv_store_save(srv_store *s, const char *id, const sk_context *c, sk_chat_kind kind,
                         const int32_t *tr, int64_t n_tr, sk_error *err);

/* Restore session id into c when the store holds it with c's cache
 * configuration: *found = 0 (and SK_OK) when there is none; an error when
 * it exists but cannot be restored (c is then reset). info as
 * sk_store_load (free with sk_session_info_free). Marks it used (TTL). */
sk_status srv_store_load(srv_store *s, const char *id, sk_context *c, sk_session_info *info, int *found,
                         sk_error *err);

/* Is there a session id? 0 also when the store cannot be reached. */
int srv_store_exists(srv_store *s, const char *id);

/* Delete session id; *found = 0 when there was none. */
sk_status srv_store_delete(srv_store *s, const char *id, int *found, sk_error *err);

/* Expire sessions past the TTL (the directory store; Redis expires its
 * keys itself) and fill *out. */
void srv_store_stats_get(srv_store *s, srv_store_stats *out);

#endif
