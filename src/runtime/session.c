/* session.c - save and restore a context (sk_context_save / _load).
 *
 * File layout, little-endian, version 1:
 *   header (struct sess_header, 192 bytes): magic "SINKSESS", version,
 *     model fingerprint, cache configuration, ring geometry, stream state,
 *     byte counts of each section, FNV-1a 64 checksum of the header
 *     (with the checksum field zero) and everything after it
 *   blob                      caller bytes (blob_len)
 *   history                   int32 tokens (recompute policy), n_hist
 *   logits                    float, n_vocab (when has_logits)
 *   k_pfx, v_pfx, k_ring, v_ring   the raw cache areas (kv->bytes in all)
 *   k_ring, v_ring            of the local layers' cache, when the model has
 *                             sliding-window layers (context.h: kv_swa)
 * Writing goes to a temporary file in the same directory, then fsync,
 * rename, fsync of the directory: a crash leaves the old or the new file.
 * Reading checks sizes and the stream state before allocating, reads the
 * sections into the context, and resets the context when the checksum (an
 * integrity check, not a signature) does not match. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "context.h"
#include "sinkllm.h"

#define SESS_MAGIC "SINKSESS"
#define SESS_VERSION 1
#define SESS_MAX_BLOB (64u << 20)
#define SESS_MAX_SECT 9

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
    uint8_t pad[48]; /* 144 bytes of fields above */
} sess_header;

_Static_assert(sizeof(sess_header) == 192, "session header is 192 bytes");

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

typedef struct sect {
    void *p;
    size_t n;
} sect;

/* the sections after the header, in file order */
static int sections(const sk_context *c, const void *blob, size_t blob_len, sect *s) {
    const sk_kvcache *kv = c->kv;
    size_t ring = kv->bytes / 2, pfx_each, ring_each;
    ring_each = (size_t)kv->n_layer * kv->n_head_kv * (size_t)kv->ring_cap * kv->ring_row;
    pfx_each = (size_t)kv->n_layer * kv->n_head_kv * (size_t)kv->n_prefix * kv->pfx_row;
    (void)ring;
    int n = 0;
    s[n++] = (sect){(void *)blob, blob_len};
    s[n++] = (sect){c->hist, c->hist ? sizeof(int32_t) * (size_t)c->n_hist : 0};
    s[n++] = (sect){(void *)sk_logits(c), c->has_logits ? sizeof(float) * (size_t)c->m->hp.n_vocab : 0};
    s[n++] = (sect){kv->k_pfx, pfx_each};
    s[n++] = (sect){kv->v_pfx, pfx_each};
    s[n++] = (sect){kv->k_ring, ring_each};
    s[n++] = (sect){kv->v_ring, ring_each};
    if (c->kv_swa) { /* the local layers' window (no prefix) */
        const sk_kvcache *kw = c->kv_swa;
        size_t each = (size_t)kw->n_layer * kw->n_head_kv * (size_t)kw->ring_cap * kw->ring_row;
        s[n++] = (sect){kw->k_ring, each};
        s[n++] = (sect){kw->v_ring, each};
    }
    return n;
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

static sk_status write_all(int fd, const void *p, size_t n, const char *path, sk_error *err) {
    const char *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return sk_error_set(err, SK_ERR_IO, "%s: write: %s", path, strerror(errno));
        }
        b += w;
        n -= (size_t)w;
    }
    return SK_OK;
}

sk_status sk_context_save(const sk_context *c, const char *path, const void *blob,
                          size_t blob_len, sk_error *err) {
    if (blob_len > SESS_MAX_BLOB)
        return sk_error_set(err, SK_ERR_INVALID, "session blob of %zu bytes is too large", blob_len);
    sess_header h;
    fill_header(c, &h);
    h.n_past = c->kv->n_past;
    h.shift_lo = c->kv->shift_lo;
    h.n_shifts = c->kv->n_shifts;
    h.n_recomputed = c->n_recomputed;
    h.n_hist = c->hist ? c->n_hist : 0;
    h.has_logits = (uint32_t)(c->has_logits != 0);
    h.blob_bytes = blob_len;
    sect s[SESS_MAX_SECT];
    int ns = sections(c, blob, blob_len, s);
    uint64_t sum = 0xcbf29ce484222325ULL, kvb = 0;
    for (int i = 0; i < ns; i++) {
        if (s[i].n) sum = fnv(sum, s[i].p, s[i].n);
        if (i >= 3) kvb += s[i].n;
    }
    h.kv_bytes = kvb;
    h.checksum = 0;
    h.checksum = fnv(sum, &h, sizeof h);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32), *dirbuf = strdup(path);
    if (!tmp || !dirbuf) {
        free(tmp);
        free(dirbuf);
        return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    }
    snprintf(tmp, plen + 32, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    sk_status st = SK_OK;
    if (fd < 0) st = sk_error_set(err, SK_ERR_IO, "%s: %s", tmp, strerror(errno));
    if (!st) st = write_all(fd, &h, sizeof h, tmp, err);
    for (int i = 0; i < ns && !st; i++)
        if (s[i].n) st = write_all(fd, s[i].p, s[i].n, tmp, err);
    if (!st && fsync(fd) != 0) st = sk_error_set(err, SK_ERR_IO, "%s: fsync: %s", tmp, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && !st) st = sk_error_set(err, SK_ERR_IO, "%s: close: %s", tmp, strerror(errno));
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

static sk_status read_all(FILE *f, void *p, size_t n, const char *path, sk_error *err) {
    if (n && fread(p, 1, n, f) != n)
        return sk_error_set(err, SK_ERR_FORMAT, "%s: truncated session file", path);
    return SK_OK;
}

sk_status sk_context_load(sk_context *c, const char *path, void **blob_out, size_t *blob_len,
                          sk_error *err) {
    if (blob_out) *blob_out = NULL;
    if (blob_len) *blob_len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return sk_error_set(err, SK_ERR_IO, "%s: %s", path,
                            errno == ELOOP ? "is a symbolic link (not followed)" : strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return sk_error_set(err, SK_ERR_IO, "%s: not a regular file", path);
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return sk_error_set(err, SK_ERR_IO, "%s: %s", path, strerror(errno));
    }
    sess_header h = {0}, want;
    sk_status st = read_all(f, &h, sizeof h, path, err);
    fill_header(c, &want);
    if (!st && memcmp(h.magic, SESS_MAGIC, 8) != 0)
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: not a sinkllm session file", path);
    if (!st && (h.version != SESS_VERSION || h.header_size != sizeof h))
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: session version %u, expected %u", path,
                          h.version, SESS_VERSION);
    if (!st && h.fingerprint != want.fingerprint)
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: saved with another model", path);
    if (!st && (h.policy != want.policy || h.n_sinks != want.n_sinks ||
                h.n_window != want.n_window || h.n_ctx != want.n_ctx ||
                h.kv_type != want.kv_type || h.n_batch != want.n_batch ||
                h.ring_cap != want.ring_cap || h.n_prefix != want.n_prefix ||
                h.n_rollback != want.n_rollback ||
                h.n_vocab != want.n_vocab))
        st = sk_error_set(err, SK_ERR_FORMAT,
                          "%s: saved with another cache configuration (%s %d+%d, ctx %d, batch %d)",
                          path, sk_cache_policy_name((sk_cache_policy)h.policy), h.n_sinks,
                          h.n_window, h.n_ctx, h.n_batch);
    if (!st && !state_ok(c, &h))
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: session state out of range", path);
    void *blob = NULL;
    if (!st && h.blob_bytes) {
        blob = malloc((size_t)h.blob_bytes);
        if (!blob) st = sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    }
    /* read into the context only after the checksum matched: stage the
     * small sections, verify the big ones in place, reset on failure */
    sk_context_reset(c);
    c->n_hist = h.n_hist;
    c->has_logits = (int)h.has_logits;
    sect s[SESS_MAX_SECT];
    int ns = sections(c, blob, (size_t)h.blob_bytes, s);
    /* the logits go to row 0 of the buffer */
    if (h.has_logits) s[2].p = c->logits;
    uint64_t sum = 0xcbf29ce484222325ULL;
    for (int i = 0; i < ns && !st; i++) {
        st = read_all(f, s[i].p, s[i].n, path, err);
        if (!st && s[i].n) sum = fnv(sum, s[i].p, s[i].n);
    }
    if (!st && fgetc(f) != EOF)
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: trailing bytes after the session", path);
    uint64_t want_sum = h.checksum;
    h.checksum = 0;
    if (!st && fnv(sum, &h, sizeof h) != want_sum)
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: checksum mismatch (corrupt session file)", path);
    /* the checksum is not a signature: a crafted file can carry any ids,
     * and recompute feeds the history back through the embedding */
    for (int64_t i = 0; !st && i < h.n_hist; i++)
        if (c->hist[i] < 0 || c->hist[i] >= c->m->hp.n_vocab)
            st = sk_error_set(err, SK_ERR_FORMAT, "%s: history token %lld is %d, out of range (vocabulary %lld)",
                              path, (long long)i, c->hist[i], (long long)c->m->hp.n_vocab);
    fclose(f);
    if (st) {
        free(blob);
        sk_context_reset(c);
        return st;
    }
    c->kv->n_past = h.n_past;
    /* which ring slots are still intact below n_past is not saved: no
     * rollback until the cache has moved a full ring past this point */
    c->kv->hw = h.n_past + c->kv->ring_cap;
    c->kv->shift_lo = h.shift_lo;
    if (c->kv_swa) {
        c->kv_swa->n_past = h.n_past;
        c->kv_swa->hw = h.n_past + c->kv_swa->ring_cap;
    }
    c->kv->n_shifts = h.n_shifts;
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

sk_status sk_session_peek(const char *path, sk_cache_params *cache, int *n_batch, void **blob,
                          size_t *blob_len, sk_error *err) {
    *blob = NULL;
    *blob_len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return sk_error_set(err, SK_ERR_IO, "%s: %s", path,
                            errno == ELOOP ? "is a symbolic link (not followed)" : strerror(errno));
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return sk_error_set(err, SK_ERR_IO, "%s: %s", path, strerror(errno));
    }
    sess_header h;
    sk_status st = read_all(f, &h, sizeof h, path, err);
    if (!st && (memcmp(h.magic, SESS_MAGIC, 8) != 0 || h.version != SESS_VERSION ||
                h.header_size != sizeof h))
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: not a sinkllm session file (version %u)", path,
                          SESS_VERSION);
    if (!st && (h.blob_bytes > SESS_MAX_BLOB || h.policy < 0 || h.policy > SK_CACHE_SHIFT ||
                h.kv_type < 0 || h.kv_type > SK_KV_Q8_0 || h.n_rollback > 65536))
        st = sk_error_set(err, SK_ERR_FORMAT, "%s: session header out of range", path);
    void *b = NULL;
    if (!st && h.blob_bytes) {
        b = malloc((size_t)h.blob_bytes);
        if (!b) st = sk_error_set(err, SK_ERR_NOMEM, "out of memory");
        else st = read_all(f, b, (size_t)h.blob_bytes, path, err);
    }
    fclose(f);
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
