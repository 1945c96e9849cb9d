/* session.c - save and restore a context (sk_context_save / _load, and the
 * in-memory forms the session store uses).
 *
 * Layout, little-endian, version 3 (version 2, read too, is the same
 * without rows below the window: its back[] is zero):
 *   header (struct sess_header, 192 bytes): magic "SINKSESS", version,
 *     model fingerprint, cache configuration, ring geometry, stream state,
 *     byte counts of each section, FNV-1a 64 checksum of the header
 *     (with the checksum field zero) and everything after it
 *   blob                      caller bytes (blob_bytes)
 *   history                   int32 tokens (recompute policy), n_hist
 *   logits                    float, n_vocab (when has_logits)
 *   the live cache rows       for the global cache, then the local layers'
 *                             one when the model has sliding-window layers
 *                             (context.h: kv_swa): per area (K prefix, V
 *                             prefix, K ring, V ring), layer and KV head,
 *                             the rows sk_kvcache_live names, in stream order
 * Only rows that a later token can read are kept (kv_bytes of them): the
 * sinks and the visible window, not the whole ring, so a file costs what
 * the session holds; with n_rollback, also the intact rows below the
 * window that taking back up to n_rollback tokens would read again
 * (header back[]), so that a loaded session can still take back its last
 * turn (a retried request after a crash: the same reply as before). Which rows those are follows from the stream state in
 * the header, which the reader checks before it reads them.
 * A file is written to a temporary file in the same directory, then fsync,
 * rename, fsync of the directory: a crash leaves the old or the new file.
 * Reading checks sizes and the stream state before allocating, reads the
 * sections into the context, and resets the context when the checksum (an
 * integrity check, not a signature) does not match. Both directions go
 * through a FILE (a file, or memory with open_memstream / fmemopen). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/hash.h"
#include "context.h"
#include "session.h"
#include "sinkllm.h"

#define SESS_MAGIC "SINKSESS"
#define SESS_VERSION 3
#define SESS_VERSION_MIN 2 /* readable: back[] zero */
#define SESS_MAX_BLOB (64u << 20)
#define SESS_MAX_SECT 3

typedef struct sess_header {
    char magic[8];
    uint32_t version, header_size;
    uint64_t fingerprint;
    int32_t policy, n_sinks, n_window, n_ctx, kv_type, n_batch;
    int64_t ring_cap, n_prefix;
    int64_t n_past, shift_lo, n_shifts, n_recomputed, n_hist;
    uint64_t n_vocab;
    uint32_t has_logits, n_rollback;
    uint64_t blob_bytes, kv_bytes;
    uint64_t checksum;
    int64_t back[2]; /* ring rows kept below the live window, global and local cache
                        (sk_kvcache_back; 0 in files from before they were kept) */
    uint8_t pad[32]; /* 160 bytes of fields above */
} sess_header;

_Static_assert(sizeof(sess_header) == 192, "session header is 192 bytes");

typedef struct sect {
    void *p;
    size_t n;
} sect;

/* the sections between the header and the cache rows, in file order */
static int sections(const sk_context *c, const void *blob, size_t blob_len, int with_logits, sect *s) {
    int n = 0;
    s[n++] = (sect){(void *)blob, blob_len};
    s[n++] = (sect){c->hist, c->hist ? sizeof(int32_t) * (size_t)c->n_hist : 0};
    s[n++] = (sect){c->logits, with_logits ? sizeof(float) * (size_t)c->m->hp.n_vocab : 0};
    return n;
}

/* Visit the live cache rows (with back[k] rows below cache k's window) in
 * file order: fn(arg, run) for each run of bytes; stops at the first
 * nonzero return and returns it. */
static int visit_rows(const sk_context *c, const int64_t back[2], int (*fn)(void *arg, sk_kv_run r), void *arg) {
    const sk_kvcache *caches[2] = {c->kv, c->kv_swa};
    for (int k = 0; k < 2 && caches[k]; k++) {
        const sk_kvcache *kv = caches[k];
        for (int a = 0; a < 4; a++)
            for (int l = 0; l < kv->n_layer; l++)
                for (int g = 0; g < kv->n_head_kv; g++) {
                    sk_kv_run run[2];
                    sk_kvcache_live(kv, a, l, g, back[k], run);
                    for (int i = 0; i < 2; i++) {
                        int rc = run[i].n ? fn(arg, run[i]) : 0;
                        if (rc) return rc;
                    }
                }
    }
    return 0;
}

typedef struct rows_io {
    FILE *f;
    uint64_t sum, bytes;
} rows_io;

static int row_count(void *arg, sk_kv_run r) {
    rows_io *io = arg;
    io->bytes += r.n;
    return 0;
}
static int row_sum(void *arg, sk_kv_run r) {
    rows_io *io = arg;
    io->sum = sk_fnv1a(io->sum, r.p, r.n);
    return 0;
}
static int row_write(void *arg, sk_kv_run r) { return fwrite(r.p, 1, r.n, ((rows_io *)arg)->f) != r.n; }
static int row_read(void *arg, sk_kv_run r) {
    rows_io *io = arg;
    if (fread(r.p, 1, r.n, io->f) != r.n) return 1;
    io->sum = sk_fnv1a(io->sum, r.p, r.n);
    return 0;
}

/* bytes of the live cache rows at the context's present stream state */
static uint64_t live_bytes(const sk_context *c, const int64_t back[2]) {
    rows_io io = {0};
    visit_rows(c, back, row_count, &io);
    return io.bytes;
}

static void fill_header(const sk_context *c, sess_header *h) {
    memset(h, 0, sizeof *h);
    memcpy(h->magic, SESS_MAGIC, 8);
    h->version = SESS_VERSION;
    h->header_size = sizeof *h;
    h->fingerprint = c->m->fingerprint;
    h->policy = (int32_t)c->p.cache.policy;
    h->n_sinks = c->p.cache.n_sinks;
    h->n_window = c->p.cache.n_window;
    h->n_ctx = c->p.cache.n_ctx;
    h->kv_type = (int32_t)c->p.cache.kv_type;
    h->n_batch = c->n_batch;
    h->ring_cap = c->kv->ring_cap;
    h->n_prefix = c->kv->n_prefix;
    h->n_rollback = (uint32_t)c->p.cache.n_rollback;
    h->n_vocab = (uint64_t)c->m->hp.n_vocab;
}

/* Write the session to f (header, sections, rows); the checksum is taken
 * in a first pass over the same bytes. Nonzero when a write failed. */
static int write_session(const sk_context *c, FILE *f, const void *blob, size_t blob_len, int with_logits) {
    sess_header h;
    fill_header(c, &h);
    with_logits = with_logits && c->has_logits;
    h.n_past = c->kv->n_past;
    h.shift_lo = c->kv->shift_lo;
    h.n_shifts = c->kv->n_shifts;
    h.n_recomputed = c->n_recomputed;
    h.n_hist = c->hist ? c->n_hist : 0;
    h.has_logits = (uint32_t)(with_logits != 0);
    h.blob_bytes = blob_len;
    h.back[0] = sk_kvcache_back(c->kv);
    h.back[1] = c->kv_swa ? sk_kvcache_back(c->kv_swa) : 0;
    sect s[SESS_MAX_SECT];
    int ns = sections(c, blob, blob_len, with_logits, s);
    rows_io io = {.f = f, .sum = SK_FNV_OFFSET};
    for (int i = 0; i < ns; i++)
        if (s[i].n) io.sum = sk_fnv1a(io.sum, s[i].p, s[i].n);
    visit_rows(c, h.back, row_sum, &io);
    h.kv_bytes = live_bytes(c, h.back);
    h.checksum = 0;
    h.checksum = sk_fnv1a(io.sum, &h, sizeof h);
    if (fwrite(&h, sizeof h, 1, f) != 1) return 1;
    for (int i = 0; i < ns; i++)
        if (s[i].n && fwrite(s[i].p, 1, s[i].n, f) != s[i].n) return 1;
    return visit_rows(c, h.back, row_write, &io);
}

sk_status sk_session_write(const sk_context *c, const char *path, const void *blob, size_t blob_len,
                           int with_logits, sk_error *err) {
    if (blob_len > SESS_MAX_BLOB)
        return sk_error_set(err, SK_ERR_INVALID, "session blob of %zu bytes is too large", blob_len);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32), *dirbuf = strdup(path);
    if (!tmp || !dirbuf) {
        free(tmp);
        free(dirbuf);
        return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    }
    snprintf(tmp, plen + 32, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    sk_status st = SK_OK;
    if (!f) {
        st = sk_error_set(err, SK_ERR_IO, "%s: %s", tmp, strerror(errno));
        if (fd >= 0) close(fd);
    }
    if (!st) setvbuf(f, NULL, _IOFBF, 1 << 20);
    if (!st && (write_session(c, f, blob, blob_len, with_logits) || fflush(f) != 0))
        st = sk_error_set(err, SK_ERR_IO, "%s: write: %s", tmp, strerror(errno));
    if (!st && fsync(fd) != 0) st = sk_error_set(err, SK_ERR_IO, "%s: fsync: %s", tmp, strerror(errno));
    if (f && fclose(f) != 0 && !st) st = sk_error_set(err, SK_ERR_IO, "%s: close: %s", tmp, strerror(errno));
    /* rename replaces a symlink at path itself rather than following it */
    if (!st && rename(tmp, path) != 0) st = sk_error_set(err, SK_ERR_IO, "%s: rename: %s", path, strerror(errno));
    if (st) {
        unlink(tmp);
    } else {
        int dfd = open(dirname(dirbuf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            if (fsync(dfd) != 0) st = sk_error_set(err, SK_ERR_IO, "fsync of the directory: %s", strerror(errno));
            close(dfd);
        }
    }
    free(tmp);
    free(dirbuf);
    return st;
}

sk_status sk_context_save(const sk_context *c, const char *path, const void *blob, size_t blob_len,
                          sk_error *err) {
    return sk_session_write(c, path, blob, blob_len, 1, err);
}

sk_status sk_session_encode(const sk_context *c, const void *blob, size_t blob_len, int with_logits,
                            void **out, size_t *out_len, sk_error *err) {
    *out = NULL;
    *out_len = 0;
    if (blob_len > SESS_MAX_BLOB)
        return sk_error_set(err, SK_ERR_INVALID, "session blob of %zu bytes is too large", blob_len);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    int bad = write_session(c, f, blob, blob_len, with_logits);
    if (fclose(f) != 0) bad = 1;
    if (bad) {
        free(buf);
        return sk_error_set(err, SK_ERR_NOMEM, "out of memory (session of %zu bytes)", len);
    }
    *out = buf;
    *out_len = len;
    return SK_OK;
}

/* The stream state of a header must be one that decoding could have
 * produced: the checksum is no protection against a crafted file, and the
 * attention code indexes the ring with these numbers. */
static int state_ok(const sk_context *c, const sess_header *h) {
    const sk_kvcache *kv = c->kv;
    int64_t S = kv->n_prefix, W = kv->n_window;
    if (h->n_past < 0 || h->n_past > ((int64_t)1 << 62) || h->n_shifts < 0 ||
        h->n_recomputed < 0 || h->n_recomputed > ((int64_t)1 << 62) || h->has_logits > 1 ||
        h->blob_bytes > SESS_MAX_BLOB || (h->has_logits && h->n_past == 0))
        return 0;
    /* rows below the window: only where a rollback can reach them */
    const sk_kvcache *caches[2] = {c->kv, c->kv_swa};
    for (int k = 0; k < 2; k++)
        if (h->back[k] < 0 || h->back[k] > (caches[k] ? sk_kvcache_back_max(caches[k]) : 0)) return 0;
    switch (kv->policy) {
    case SK_CACHE_DENSE:
        return h->n_past <= W && h->n_hist == 0 && h->shift_lo == S && h->n_recomputed == 0;
    case SK_CACHE_RECOMPUTE:
        /* the history holds the last min(n_past, W) tokens */
        return h->n_past <= W && h->n_hist >= 0 && h->n_hist <= W &&
               (h->n_hist < W ? h->n_past == h->n_hist && h->n_recomputed == 0
                              : h->n_past == W) && h->shift_lo == S;
    case SK_CACHE_SHIFT:
        if (h->n_hist != 0) return 0;
        if (h->n_past <= S) return h->shift_lo == S;
        /* the window [shift_lo, n_past) never exceeds W */
        return h->shift_lo >= S && h->shift_lo <= h->n_past && h->n_past - h->shift_lo <= W;
    default:
        return h->n_hist == 0 && h->shift_lo == S && h->n_shifts == 0;
    }
}

static sk_status read_all(FILE *f, void *p, size_t n, const char *name, sk_error *err) {
    if (n && fread(p, 1, n, f) != n)
        return sk_error_set(err, SK_ERR_FORMAT, "%s: truncated session", name);
    return SK_OK;
}

/* Read a session from f into c; name for messages. */
static sk_status read_session(sk_context *c, FILE *f, const char *name, void **blob_out, size_t *blob_len,
                              sk_error *err) {
    sess_header h = {0}, want;
    sk_status st = read_all(f, &h, sizeof h, name, err);
    fill_header(c, &want);
    if (!st && memcmp(h.magic, SESS_MAGIC, 8) != 0)
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: not a sinkllm session", name);
    if (!st && (h.version < SESS_VERSION_MIN || h.version > SESS_VERSION || h.header_size != sizeof h))
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: session version %u, expected %u..%u", name,
                          h.version, SESS_VERSION_MIN, SESS_VERSION);
    if (!st && h.version < 3 && (h.back[0] || h.back[1]))
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: session state out of range", name);
    if (!st && h.fingerprint != want.fingerprint)
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: saved with another model", name);
    if (!st && (h.policy != want.policy || h.n_sinks != want.n_sinks ||
                h.n_window != want.n_window || h.n_ctx != want.n_ctx ||
                h.kv_type != want.kv_type || h.n_batch != want.n_batch ||
                h.ring_cap != want.ring_cap || h.n_prefix != want.n_prefix ||
                h.n_rollback != want.n_rollback ||
                h.n_vocab != want.n_vocab))
        st = sk_error_set(err, SK_ERR_FORMAT,
                          "%s: saved with another cache configuration (%s %d+%d, ctx %d, batch %d)",
                          name, sk_cache_policy_name((sk_cache_policy)h.policy), h.n_sinks,
                          h.n_window, h.n_ctx, h.n_batch);
    if (!st && !state_ok(c, &h))
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: session state out of range", name);
    void *blob = NULL;
    if (!st && h.blob_bytes) {
        blob = malloc((size_t)h.blob_bytes);
        if (!blob) st = sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    }
    /* read into the context only after the checks: the stream state goes
     * in first (it says which rows the file holds), the small sections are
     * staged, the rows verified in place, and a failure resets it all */
    sk_context_reset(c);
    if (!st) {
        c->kv->n_past = h.n_past;
        c->kv->shift_lo = h.shift_lo;
        c->kv->n_shifts = h.n_shifts;
        if (c->kv_swa) c->kv_swa->n_past = h.n_past;
        if (live_bytes(c, h.back) != h.kv_bytes)
            st = sk_error_set(err, SK_ERR_FORMAT, "%s: %llu bytes of cache rows, the state needs %llu", name,
                              (unsigned long long)h.kv_bytes, (unsigned long long)live_bytes(c, h.back));
    }
    c->n_hist = h.n_hist;
    sect s[SESS_MAX_SECT];
    int ns = sections(c, blob, (size_t)h.blob_bytes, (int)h.has_logits, s);
    rows_io io = {.f = f, .sum = SK_FNV_OFFSET};
    for (int i = 0; i < ns && !st; i++) {
        st = read_all(f, s[i].p, s[i].n, name, err);
        if (!st && s[i].n) io.sum = sk_fnv1a(io.sum, s[i].p, s[i].n);
    }
    if (!st && visit_rows(c, h.back, row_read, &io)) st = sk_error_set(err, SK_ERR_FORMAT, "%s: truncated session", name);
    if (!st && fgetc(f) != EOF)
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: trailing bytes after the session", name);
    uint64_t want_sum = h.checksum;
    h.checksum = 0;
    if (!st && sk_fnv1a(io.sum, &h, sizeof h) != want_sum)
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: checksum mismatch (corrupt session)", name);
    /* the checksum is not a signature: a crafted file can carry any ids,
     * and recompute feeds the history back through the embedding */
    for (int64_t i = 0; !st && i < h.n_hist; i++)
        if (c->hist[i] < 0 || c->hist[i] >= c->m->hp.n_vocab)
            st = sk_error_set(err, SK_ERR_FORMAT, "%s: history token %lld is %d, out of range (vocabulary %lld)",
                              name, (long long)i, c->hist[i], (long long)c->m->hp.n_vocab);
    if (st) {
        free(blob);
        sk_context_reset(c);
        return st;
    }
    c->has_logits = (int)h.has_logits;
    c->emb_ok = 0; /* the embedding's sum is not saved */
    /* a rollback may reach the rows kept below the window, no deeper */
    sk_kvcache_loaded(c->kv, h.back[0]);
    if (c->kv_swa) sk_kvcache_loaded(c->kv_swa, h.back[1]);
    c->n_recomputed = h.n_recomputed;
    c->n_logits = h.has_logits ? 1 : 0;
    c->n_logits_valid = 1;
    if (blob_out) {
        *blob_out = blob;
        if (blob_len) *blob_len = (size_t)h.blob_bytes;
    } else {
        free(blob);
    }
    return SK_OK;
}

/* *out: the session file at path, opened for reading: not through a
 * symlink, and a regular file (not a FIFO that would block). */
static sk_status open_session(const char *path, FILE **out, sk_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return sk_error_set(err, SK_ERR_IO, "%s: %s", path,
                            errno == ELOOP ? "is a symbolic link (not followed)" : strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return sk_error_set(err, SK_ERR_IO, "%s: not a regular file", path);
    }
    if (!(*out = fdopen(fd, "rb"))) {
        close(fd);
        return sk_error_set(err, SK_ERR_IO, "%s: %s", path, strerror(errno));
    }
    return SK_OK;
}

/* *out: a read-only FILE over the len bytes at buf */
static sk_status open_bytes(const void *buf, size_t len, const char *name, FILE **out, sk_error *err) {
    *out = NULL;
    if (len < sizeof(sess_header)) return sk_error_set(err, SK_ERR_FORMAT, "%s: truncated session", name);
    if (!(*out = fmemopen((void *)buf, len, "rb"))) return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    return SK_OK;
}

sk_status sk_context_load(sk_context *c, const char *path, void **blob_out, size_t *blob_len, sk_error *err) {
    if (blob_out) *blob_out = NULL;
    if (blob_len) *blob_len = 0;
    FILE *f;
    sk_status st = open_session(path, &f, err);
    if (st) return st;
    st = read_session(c, f, path, blob_out, blob_len, err);
    fclose(f);
    return st;
}

sk_status sk_session_decode(sk_context *c, const void *buf, size_t len, const char *name, void **blob_out,
                            size_t *blob_len, sk_error *err) {
    if (blob_out) *blob_out = NULL;
    if (blob_len) *blob_len = 0;
    FILE *f;
    sk_status st = open_bytes(buf, len, name, &f, err);
    if (st) {
        sk_context_reset(c);
        return st;
    }
    st = read_session(c, f, name, blob_out, blob_len, err);
    fclose(f);
    return st;
}

/* The configuration and blob of a session in f, name for messages. */
static sk_status peek_session(FILE *f, const char *name, sk_cache_params *cache, int *n_batch, void **blob,
                              size_t *blob_len, sk_error *err) {
    *blob = NULL;
    *blob_len = 0;
    sess_header h;
    sk_status st = read_all(f, &h, sizeof h, name, err);
    if (!st && (memcmp(h.magic, SESS_MAGIC, 8) != 0 || h.version < SESS_VERSION_MIN ||
                h.version > SESS_VERSION || h.header_size != sizeof h))
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: not a sinkllm session (versions %u..%u)", name,
                          SESS_VERSION_MIN, SESS_VERSION);
    if (!st && (h.blob_bytes > SESS_MAX_BLOB || h.policy < 0 || h.policy > SK_CACHE_SHIFT ||
                h.kv_type < 0 || h.kv_type > SK_KV_Q8_0 || h.n_rollback > 65536))
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: session header out of range", name);
    void *b = NULL;
    if (!st && h.blob_bytes) {
        b = malloc((size_t)h.blob_bytes);
        if (!b) st = sk_error_set(err, SK_ERR_NOMEM, "out of memory");
        else st = read_all(f, b, (size_t)h.blob_bytes, name, err);
    }
    if (st) {
        free(b);
        return st;
    }
    cache->policy = (sk_cache_policy)h.policy;
    cache->n_sinks = h.n_sinks;
    cache->n_window = h.n_window;
    cache->n_ctx = h.n_ctx;
    cache->kv_type = (sk_kv_type)h.kv_type;
    cache->n_rollback = (int)h.n_rollback;
    *n_batch = h.n_batch;
    *blob = b;
    *blob_len = (size_t)h.blob_bytes;
    return SK_OK;
}

sk_status sk_session_peek(const char *path, sk_cache_params *cache, int *n_batch, void **blob,
                          size_t *blob_len, sk_error *err) {
    *blob = NULL;
    *blob_len = 0;
    FILE *f;
    sk_status st = open_session(path, &f, err);
    if (st) return st;
    st = peek_session(f, path, cache, n_batch, blob, blob_len, err);
    fclose(f);
    return st;
}

sk_status sk_session_peek_bytes(const void *buf, size_t len, const char *name, sk_cache_params *cache,
                                int *n_batch, void **blob, size_t *blob_len, sk_error *err) {
    *blob = NULL;
    *blob_len = 0;
    FILE *f;
    sk_status st = open_bytes(buf, len, name, &f, err);
    if (st) return st;
    st = peek_session(f, name, cache, n_batch, blob, blob_len, err);
    fclose(f);
    return st;
}
