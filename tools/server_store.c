/* server_store.c - the session store of `sinkllm serve`: a directory or
 * Redis (server_store.h has the contract).
 *
 * Directory: the library's sk_store (DIR/NAME.session, written crash-safely
 * by rename); a file's mtime is its last use (touched on load), so the cap
 * deletes the oldest mtimes and the TTL the files older than it. A scan of
 * the directory after each save and on /metrics applies both.
 *
 * Redis, keys (PREFIX = "sinkllm:"):
 *   PREFIX s:ID     the session bytes (sk_store_encode), SET atomically,
 *                   EX ttl when --session-ttl is set
 *   PREFIX lru      sorted set: ID -> last use (unix seconds to the
 *                   microsecond: whole seconds tied within a second and
 *                   the cap then went by name, not by age)
 *   PREFIX size     hash: ID -> bytes
 * Each save is one MULTI/EXEC of the three; the cap pops the lowest scores
 * of lru; members whose key Redis expired are dropped from lru and size
 * when found (counted as expired). One connection under the store's mutex:
 * a failed command drops it, the next call after a second reconnects. */
#include "server_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#define KEY_PREFIX "sinkllm:"
#define MAX_SESSION_BYTES ((size_t)1 << 31) /* a GET larger than this is refused */

struct srv_store {
    pthread_mutex_t mu;
    const sk_model *m;
    srv_store_opts o;
    sk_store *st;         /* the directory store, or (dir NULL) the encoder of the Redis one */
    char *dir;            /* NULL for Redis */
    /* Redis */
    char host[256];
    int port, db;
    redisContext *rc;
    double last_try;      /* when the last connection attempt failed (s) */
    srv_store_stats stats;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "redis://HOST:PORT[/DB]" -> s->host, port, db; 0 when malformed */
static int parse_redis(const char *spec, srv_store *s) {
    const char *p = spec + strlen("redis://"), *colon = strrchr(p, ':');
    if (!colon || colon == p || (size_t)(colon - p) >= sizeof s->host) return 0;
    memcpy(s->host, p, (size_t)(colon - p));
    s->host[colon - p] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || port < 1 || port > 65535) return 0;
    long db = 0;
    if (*end == '/') {
        char *e2;
        db = strtol(end + 1, &e2, 10);
        if (e2 == end + 1 || *e2 || db < 0 || db > 1000) return 0;
    } else if (*end) {
        return 0;
    }
    s->port = (int)port;
    s->db = (int)db;
    return 1;
}

sk_status srv_store_open(const char *spec, const sk_model *m, const srv_store_opts *o, srv_store **out,
                         sk_error *err) {
    *out = NULL;
    srv_store *s = calloc(1, sizeof *s);
    if (!s) return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    s->m = m;
    s->o = *o;
    pthread_mutex_init(&s->mu, NULL);
    sk_status st;
    if (!strncmp(spec, "redis://", 8)) {
        if (!parse_redis(spec, s)) {
            srv_store_free(s);
            return sk_error_set(err, SK_ERR_INVALID, "session store %s: expected redis://HOST:PORT[/DB]", spec);
        }
        st = sk_store_open(NULL, m, &s->st, err);
    } else {
        int n = 0;
        if (!(s->dir = strdup(spec))) st = sk_error_set(err, SK_ERR_NOMEM, "out of memory");
        else st = sk_store_open(spec, m, &s->st, err);
        if (!st) st = sk_store_remove_stale(s->st, &n, err);
        if (!st && n)
            fprintf(stderr, "serve: removed %d temporary file%s left by an interrupted save\n", n, n == 1 ? "" : "s");
    }
    if (st) {
        srv_store_free(s);
        return st;
    }
    *out = s;
    return SK_OK;
}

void srv_store_free(srv_store *s) {
    if (!s) return;
    if (s->rc) redisFree(s->rc);
    sk_store_free(s->st);
    free(s->dir);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const char *srv_store_kind(const srv_store *s) { return s->dir ? "dir" : "redis"; }

/* ---- Redis ---------------------------------------------------------------- */

/* A live connection, or NULL with err set (at most one attempt a second). */
static redisContext *conn(srv_store *s, sk_error *err) {
    if (s->rc && s->rc->err) { /* a failed command left it unusable: start over */
        redisFree(s->rc);
        s->rc = NULL;
    }
    if (s->rc) return s->rc;
    double t = now_s();
    if (t - s->last_try < 1.0) {
        sk_error_set(err, SK_ERR_IO, "redis %s:%d unreachable (retrying)", s->host, s->port);
        return NULL;
    }
    struct timeval tv = {0, 500 * 1000};
    redisContext *rc = redisConnectWithTimeout(s->host, s->port, tv);
    if (!rc || rc->err) {
        sk_error_set(err, SK_ERR_IO, "redis %s:%d: %s", s->host, s->port, rc ? rc->errstr : "out of memory");
        if (rc) redisFree(rc);
        s->last_try = t;
        return NULL;
    }
    struct timeval cmd = {5, 0};
    redisSetTimeout(rc, cmd);
    if (s->db) {
        redisReply *r = redisCommand(rc, "SELECT %d", s->db);
        int ok = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
        if (!ok) {
            sk_error_set(err, SK_ERR_IO, "redis %s:%d: SELECT %d failed", s->host, s->port, s->db);
            redisFree(rc);
            s->last_try = t;
            return NULL;
        }
    }
    return s->rc = rc;
}

/* Check a reply: NULL (the connection failed: dropped) or an error reply
 * is an error naming what. Returns r, or NULL with err set. */
static redisReply *checked(srv_store *s, redisReply *r, const char *what, sk_error *err) {
    if (!r) {
        sk_error_set(err, SK_ERR_IO, "redis %s:%d: %s: %s", s->host, s->port, what,
                     s->rc && s->rc->errstr[0] ? s->rc->errstr : "connection lost");
        redisFree(s->rc);
        s->rc = NULL;
        s->last_try = now_s();
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        sk_error_set(err, SK_ERR_IO, "redis %s:%d: %s: %.*s", s->host, s->port, what, (int)r->len, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static int key_of(char *buf, size_t cap, const char *id) {
    return snprintf(buf, cap, KEY_PREFIX "s:%s", id) < (int)cap;
}

/* Forget the session ids of an array reply r in lru and size (and their keys). */
static void redis_forget(srv_store *s, redisReply *r, uint64_t *counter) {
    size_t sent = 0; /* commands appended, each awaiting its reply */
    for (size_t i = 0; r && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING) continue;
        char key[128];
        if (!key_of(key, sizeof key, e->str)) continue;
        redisAppendCommand(s->rc, "DEL %s", key);
        redisAppendCommand(s->rc, "ZREM " KEY_PREFIX "lru %b", e->str, e->len);
        redisAppendCommand(s->rc, "HDEL " KEY_PREFIX "size %b", e->str, e->len);
        sent += 3;
        (*counter)++;
    }
    for (size_t i = 0; i < sent && s->rc; i++) {
        void *x = NULL;
        if (redisGetReply(s->rc, &x) != REDIS_OK) {
            redisFree(s->rc);
            s->rc = NULL;
            break;
        }
        freeReplyObject(x);
    }
}

/* Drop lru members older than the TTL (Redis expired their keys) and, past
 * the cap, the least recently used sessions. */
static void redis_tidy(srv_store *s) {
    sk_error e = {0};
    if (!conn(s, &e)) return;
    if (s->o.ttl_s > 0) {
        char t[32];
        snprintf(t, sizeof t, "%.6f", now_s() - s->o.ttl_s);
        redisReply *r = checked(s, redisCommand(s->rc, "ZRANGEBYSCORE " KEY_PREFIX "lru -inf %s", t),
                                "ZRANGEBYSCORE", &e);
        if (r) {
            redis_forget(s, r, &s->stats.expired);
            freeReplyObject(r);
        }
    }
    if (s->o.max_sessions > 0 && s->rc) {
        redisReply *r = checked(s, redisCommand(s->rc, "ZCARD " KEY_PREFIX "lru"), "ZCARD", &e);
        long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        if (r) freeReplyObject(r);
        if (n > s->o.max_sessions && s->rc) {
            char last[32];
            snprintf(last, sizeof last, "%lld", n - (long long)s->o.max_sessions - 1);
            r = checked(s, redisCommand(s->rc, "ZRANGE " KEY_PREFIX "lru 0 %s", last), "ZRANGE", &e);
            if (r) {
                redis_forget(s, r, &s->stats.capped);
                freeReplyObject(r);
            }
        }
    }
}

static sk_status redis_save(srv_store *s, const char *id, const void *buf, size_t len, sk_error *err) {
    char key[128];
    if (!key_of(key, sizeof key, id)) return sk_error_set(err, SK_ERR_INVALID, "session id too long");
    if (!conn(s, err)) return SK_ERR_IO;
    /* one transaction: the bytes, the use time and the size, or none */
    char t[32], n[32], ttl[32]; /* numbers as text: hiredis formats only plain conversions */
    snprintf(t, sizeof t, "%.6f", now_s());
    snprintf(n, sizeof n, "%zu", len);
    snprintf(ttl, sizeof ttl, "%.0f", s->o.ttl_s);
    redisAppendCommand(s->rc, "MULTI");
    if (s->o.ttl_s > 0) redisAppendCommand(s->rc, "SET %s %b EX %s", key, buf, len, ttl);
    else redisAppendCommand(s->rc, "SET %s %b", key, buf, len);
    redisAppendCommand(s->rc, "ZADD " KEY_PREFIX "lru %s %s", t, id);
    redisAppendCommand(s->rc, "HSET " KEY_PREFIX "size %s %s", id, n);
    redisAppendCommand(s->rc, "EXEC");
    sk_status st = SK_OK;
    for (int i = 0; i < 5; i++) {
        void *x = NULL;
        if (redisGetReply(s->rc, &x) != REDIS_OK) x = NULL;
        redisReply *r = checked(s, x, i == 4 ? "EXEC" : "SET", err);
        if (!r) {
            st = SK_ERR_IO;
            break;
        }
        if (i == 4 && r->type != REDIS_REPLY_ARRAY) st = sk_error_set(err, SK_ERR_IO, "redis: transaction aborted");
        freeReplyObject(r);
    }
    if (!st) redis_tidy(s);
    return st;
}

/* ---- the interface ----------------------------------------------------------- */

/* directory: delete files past the TTL and, past the cap, the oldest;
 * count what is left */
static void dir_tidy(srv_store *s) {
    char **names = NULL;
    int64_t n = 0;
    sk_error e = {0};
    if (sk_store_list(s->st, &names, &n, &e)) return;
    typedef struct {
        double t;
        int64_t bytes;
        int64_t i;
    } ent;
    ent *v = calloc((size_t)n + 1, sizeof *v);
    int64_t k = 0, bytes = 0;
    double t0 = now_s();
    for (int64_t i = 0; v && i < n; i++) {
        char path[4096];
        struct stat sb;
        if (sk_store_path(s->st, names[i], path, sizeof path, NULL) || lstat(path, &sb)) continue;
        double t = (double)sb.st_mtim.tv_sec + 1e-9 * (double)sb.st_mtim.tv_nsec;
        if (s->o.ttl_s > 0 && t0 - t > s->o.ttl_s) {
            if (!sk_store_delete(s->st, names[i], NULL)) s->stats.expired++;
            continue;
        }
        v[k++] = (ent){t, (int64_t)sb.st_size, i};
        bytes += (int64_t)sb.st_size;
    }
    if (v && s->o.max_sessions > 0 && k > s->o.max_sessions) {
        /* selection of the oldest: n is small (a cap of thousands), O(n^2) is fine */
        while (k > s->o.max_sessions) {
            int64_t old = 0;
            for (int64_t j = 1; j < k; j++)
                if (v[j].t < v[old].t) old = j;
            if (!sk_store_delete(s->st, names[v[old].i], NULL)) s->stats.capped++;
            bytes -= v[old].bytes;
            v[old] = v[--k];
        }
    }
    s->stats.sessions = v ? k : -1;
    s->stats.bytes = v ? bytes : -1;
    free(v);
    sk_store_list_free(names, n);
}

sk_status srv_store_save(srv_store *s, const char *id, const sk_context *c, sk_chat_kind kind,
                         const int32_t *tr, int64_t n_tr, sk_error *err) {
    pthread_mutex_lock(&s->mu);
    sk_status st;
    if (s->dir) {
        st = sk_store_save(s->st, id, c, kind, NULL, tr, n_tr, err);
        if (!st) dir_tidy(s);
    } else {
        void *buf = NULL;
        size_t len = 0;
        st = sk_store_encode(s->st, id, c, kind, NULL, tr, n_tr, &buf, &len, err);
        if (!st) st = redis_save(s, id, buf, len, err);
        free(buf);
    }
    if (st) s->stats.save_errors++;
    else s->stats.saves++;
    pthread_mutex_unlock(&s->mu);
    return st;
}

sk_status srv_store_load(srv_store *s, const char *id, sk_context *c, sk_session_info *info, int *found,
                         sk_error *err) {
    *found = 0;
    memset(info, 0, sizeof *info);
    pthread_mutex_lock(&s->mu);
    sk_status st = SK_OK;
    if (s->dir) {
        char path[4096];
        struct stat sb;
        st = sk_store_path(s->st, id, path, sizeof path, err);
        if (!st && lstat(path, &sb) == 0) {
            double age = now_s() - ((double)sb.st_mtim.tv_sec + 1e-9 * (double)sb.st_mtim.tv_nsec);
            if (s->o.ttl_s > 0 && age > s->o.ttl_s) { /* expired: as if it were gone */
                if (!sk_store_delete(s->st, id, NULL)) s->stats.expired++;
            } else {
                *found = 1; /* the load checks model and cache configuration */
                st = sk_store_load(s->st, id, c, info, err);
                if (!st) utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW); /* used now */
            }
        }
    } else {
        char key[128];
        redisReply *r = NULL;
        if (!key_of(key, sizeof key, id)) st = sk_error_set(err, SK_ERR_INVALID, "session id too long");
        else if (!conn(s, err)) st = SK_ERR_IO;
        else if (!(r = checked(s, redisCommand(s->rc, "GET %s", key), "GET", err))) st = SK_ERR_IO;
        if (!st && r->type == REDIS_REPLY_STRING) {
            *found = 1;
            if (r->len > MAX_SESSION_BYTES) st = sk_error_set(err, SK_ERR_FORMAT, "session %s too large", id);
            if (!st) st = sk_store_load_bytes(s->st, id, r->str, r->len, c, info, err);
            if (!st && s->rc) { /* used now: a new lease on its TTL */
                char t[32], ttl[32];
                snprintf(t, sizeof t, "%.6f", now_s());
                snprintf(ttl, sizeof ttl, "%.0f", s->o.ttl_s);
                redisReply *x = redisCommand(s->rc, "ZADD " KEY_PREFIX "lru %s %s", t, id);
                if (x) freeReplyObject(x);
                if (s->o.ttl_s > 0 && s->rc && (x = redisCommand(s->rc, "EXPIRE %s %s", key, ttl))) freeReplyObject(x);
            }
        }
        if (r) freeReplyObject(r);
    }
    if (st) {
        sk_context_reset(c);
        s->stats.load_errors++;
    } else if (*found) {
        s->stats.loads++;
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

int srv_store_exists(srv_store *s, const char *id) {
    pthread_mutex_lock(&s->mu);
    int yes = 0;
    if (s->dir) {
        yes = sk_store_exists(s->st, id);
    } else {
        char key[128];
        sk_error e = {0};
        redisReply *r;
        if (key_of(key, sizeof key, id) && conn(s, &e) && (r = checked(s, redisCommand(s->rc, "EXISTS %s", key), "EXISTS", &e))) {
            yes = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
            freeReplyObject(r);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return yes;
}

sk_status srv_store_delete(srv_store *s, const char *id, int *found, sk_error *err) {
    *found = 0;
    pthread_mutex_lock(&s->mu);
    sk_status st = SK_OK;
    if (s->dir) {
        if (sk_store_exists(s->st, id)) {
            *found = 1;
            st = sk_store_delete(s->st, id, err);
        }
    } else {
        char key[128];
        redisReply *r = NULL;
        if (!key_of(key, sizeof key, id)) st = sk_error_set(err, SK_ERR_INVALID, "session id too long");
        else if (!conn(s, err)) st = SK_ERR_IO;
        else if (!(r = checked(s, redisCommand(s->rc, "DEL %s", key), "DEL", err))) st = SK_ERR_IO;
        if (r) {
            *found = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
            freeReplyObject(r);
            if ((r = redisCommand(s->rc, "ZREM " KEY_PREFIX "lru %s", id))) freeReplyObject(r);
            if (s->rc && (r = redisCommand(s->rc, "HDEL " KEY_PREFIX "size %s", id))) freeReplyObject(r);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

void srv_store_stats_get(srv_store *s, srv_store_stats *out) {
    pthread_mutex_lock(&s->mu);
    if (s->dir) {
        dir_tidy(s);
    } else {
        redis_tidy(s);
        sk_error e = {0};
        redisReply *r = NULL;
        s->stats.sessions = s->stats.bytes = -1;
        if (s->rc && (r = checked(s, redisCommand(s->rc, "HVALS " KEY_PREFIX "size"), "HVALS", &e))) {
            if (r->type == REDIS_REPLY_ARRAY) {
                int64_t b = 0;
                for (size_t i = 0; i < r->elements; i++)
                    if (r->element[i]->type == REDIS_REPLY_STRING) b += strtoll(r->element[i]->str, NULL, 10);
                s->stats.sessions = (int64_t)r->elements;
                s->stats.bytes = b;
            }
            freeReplyObject(r);
        }
    }
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}
