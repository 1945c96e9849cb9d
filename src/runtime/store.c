/* store.c - the session store: named sessions of one model in one
 * directory (sk_store_* in include/sinkllm.h, which gives the record
 * format). The context's state goes through sk_context_save/_load
 * (session.c); this file owns the names, the paths, the record (chat kind,
 * system prompt, transcript, turn count) and its checks, and the directory operations
 * (list, delete, stale temporaries). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "context.h"
#include "session.h"
#include "sinkllm.h"

#define REC_MAGIC "SKSTORE\0"
#define REC_VERSION 2   /* 2 adds the turn count; a record without one is written as 1 */
#define REC_HEADER1 32  /* version 1: magic, version, kind, system bytes, token count */
#define REC_HEADER2 40  /* version 2: the same, then the turn count */
#define SUFFIX ".session"
#define TMP_INFIX ".session.tmp."

struct sk_store {
    char *dir;
    const sk_model *m;
    int64_t n_vocab;
};

int sk_store_valid_name(const char *name) {
    if (!name) return 0;
    size_t n = 0;
    for (; name[n]; n++) {
        char ch = name[n];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '-';
        if (!ok || n >= SK_STORE_NAME_MAX) return 0;
    }
    return n > 0;
}

sk_status sk_store_open(const char *dir, const sk_model *m, sk_store **out, sk_error *err) {
    *out = NULL;
    if ((dir && !dir[0]) || !m) return sk_error_set(err, SK_ERR_INVALID, "session store: empty directory or no model");
    if (m->vocab_only)
        return sk_error_set(err, SK_ERR_INVALID, "session store: the model was loaded without its "
                            "weights (sk_model_load_vocab)");
    sk_store *st = calloc(1, sizeof *st);
    if (!st || (dir && !(st->dir = strdup(dir)))) {
        free(st);
        return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    }
    st->m = m;
    st->n_vocab = sk_model_hparams(m)->n_vocab;
    *out = st;
    return SK_OK;
}

void sk_store_free(sk_store *st) {
    if (!st) return;
    free(st->dir);
    free(st);
}

sk_status sk_store_path(const sk_store *st, const char *name, char *buf, size_t cap, sk_error *err) {
    if (!sk_store_valid_name(name))
        return sk_error_set(err, SK_ERR_INVALID, "session names are 1-%d characters of A-Z a-z 0-9 _ -",
                            SK_STORE_NAME_MAX);
    if (!st->dir) return sk_error_set(err, SK_ERR_INVALID, "session %s: the store has no directory", name);
    int n = snprintf(buf, cap, "%s/%s" SUFFIX, st->dir, name);
    if (n < 0 || (size_t)n >= cap) return sk_error_set(err, SK_ERR_INVALID, "session path too long");
    return SK_OK;
}

/* ---- the record --------------------------------------------------------- */

/* The record of a session (see include/sinkllm.h): *rec malloc'ed, *len bytes. */
static sk_status make_record(const sk_store *st, const char *name, sk_chat_kind chat_kind, const char *system,
                             const int32_t *tokens, int64_t n_tokens, int64_t n_turns, unsigned char **out,
                             size_t *out_len, sk_error *err) {
    *out = NULL;
    if (!sk_store_valid_name(name))
        return sk_error_set(err, SK_ERR_INVALID, "session names are 1-%d characters of A-Z a-z 0-9 _ -",
                            SK_STORE_NAME_MAX);
    if ((int)chat_kind < 0 || chat_kind >= SK_CHAT_N_KINDS)
        return sk_error_set(err, SK_ERR_INVALID, "session %s: chat kind %d out of range", name, (int)chat_kind);
    if (n_tokens < 0 || (n_tokens > 0 && !tokens))
        return sk_error_set(err, SK_ERR_INVALID, "session %s: no transcript tokens", name);
    for (int64_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= st->n_vocab)
            return sk_error_set(err, SK_ERR_INVALID, "session %s: transcript token %lld is %d, not in [0, %lld)",
                                name, (long long)i, (int)tokens[i], (long long)st->n_vocab);
    uint64_t ns = system ? strlen(system) : 0, nt = (uint64_t)n_tokens;
    if (nt > ((uint64_t)1 << 40)) return sk_error_set(err, SK_ERR_INVALID, "session %s: transcript too long", name);
    /* no turn count: version 1, which older builds read too */
    const size_t head = n_turns < 0 ? REC_HEADER1 : REC_HEADER2;
    size_t len = head + (size_t)ns + sizeof(int32_t) * (size_t)nt;
    unsigned char *rec = malloc(len); /* (len) the record */
    if (!rec) return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    uint32_t ver = n_turns < 0 ? 1 : REC_VERSION, kind = (uint32_t)chat_kind;
    memcpy(rec, REC_MAGIC, 8);
    memcpy(rec + 8, &ver, 4);
    memcpy(rec + 12, &kind, 4);
    memcpy(rec + 16, &ns, 8);
    memcpy(rec + 24, &nt, 8);
    if (n_turns >= 0) memcpy(rec + 32, &n_turns, 8);
    if (ns) memcpy(rec + head, system, (size_t)ns);
    if (nt) memcpy(rec + head + ns, tokens, sizeof(int32_t) * (size_t)nt);
    *out = rec;
    *out_len = len;
    return SK_OK;
}

sk_status sk_store_save(const sk_store *st, const char *name, const sk_context *c, sk_chat_kind chat_kind,
                        const char *system, const int32_t *tokens, int64_t n_tokens, sk_error *err) {
    return sk_store_save_turns(st, name, c, chat_kind, system, tokens, n_tokens, -1, err);
}

sk_status sk_store_save_turns(const sk_store *st, const char *name, const sk_context *c, sk_chat_kind chat_kind,
                              const char *system, const int32_t *tokens, int64_t n_tokens, int64_t n_turns,
                              sk_error *err) {
    char path[4096];
    unsigned char *rec = NULL;
    size_t len = 0;
    sk_status s = sk_store_path(st, name, path, sizeof path, err);
    if (!s && c->m != st->m) s = sk_error_set(err, SK_ERR_INVALID, "session %s: the context is of another model", name);
    if (!s) s = make_record(st, name, chat_kind, system, tokens, n_tokens, n_turns, &rec, &len, err);
    if (!s && mkdir(st->dir, 0700) != 0 && errno != EEXIST)
        s = sk_error_set(err, SK_ERR_IO, "%s: %s", st->dir, strerror(errno));
    if (!s) s = sk_session_write(c, path, rec, len, 0, err);
    free(rec);
    return s;
}

sk_status sk_store_encode(const sk_store *st, const char *name, const sk_context *c, sk_chat_kind chat_kind,
                          const char *system, const int32_t *tokens, int64_t n_tokens, void **out,
                          size_t *out_len, sk_error *err) {
    *out = NULL;
    *out_len = 0;
    unsigned char *rec = NULL;
    size_t len = 0;
    sk_status s = c->m != st->m ? sk_error_set(err, SK_ERR_INVALID, "session %s: the context is of another model", name)
                                : make_record(st, name, chat_kind, system, tokens, n_tokens, -1, &rec, &len, err);
    if (!s) s = sk_session_encode(c, rec, len, 0, out, out_len, err);
    free(rec);
    return s;
}

/* Check a record and fill info's kind, system prompt and transcript. */
static sk_status parse_record(const sk_store *st, const char *name, const unsigned char *rec, size_t len,
                              sk_session_info *info, sk_error *err) {
    uint32_t ver = 0, kind = 0;
    uint64_t ns = 0, nt = 0;
    int64_t turns = -1;
    if (len < REC_HEADER1 || memcmp(rec, REC_MAGIC, 8) != 0)
        return sk_error_set(err, SK_ERR_FORMAT, "session %s: not a session-store record", name);
    memcpy(&ver, rec + 8, 4);
    memcpy(&kind, rec + 12, 4);
    memcpy(&ns, rec + 16, 8);
    memcpy(&nt, rec + 24, 8);
    if (ver != 1 && ver != REC_VERSION)
        return sk_error_set(err, SK_ERR_FORMAT, "session %s: record version %u (this build reads 1-%d)", name,
                            ver, REC_VERSION);
    const size_t head = ver == 1 ? REC_HEADER1 : REC_HEADER2;
    if (len < head) return sk_error_set(err, SK_ERR_FORMAT, "session %s: record of %zu bytes is cut short", name, len);
    if (ver >= 2) {
        memcpy(&turns, rec + 32, 8);
        if (turns < 0)
            return sk_error_set(err, SK_ERR_FORMAT, "session %s: turn count %lld is negative", name, (long long)turns);
    }
    if (kind >= SK_CHAT_N_KINDS)
        return sk_error_set(err, SK_ERR_FORMAT, "session %s: chat kind %u out of range", name, kind);
    size_t body = len - head;
    if (ns > body || nt > (body - ns) / sizeof(int32_t) || body != ns + sizeof(int32_t) * nt)
        return sk_error_set(err, SK_ERR_FORMAT,
                            "session %s: record of %zu bytes does not hold %llu prompt bytes and %llu tokens",
                            name, len, (unsigned long long)ns, (unsigned long long)nt);
    const unsigned char *sys = rec + head;
    if (memchr(sys, 0, (size_t)ns))
        return sk_error_set(err, SK_ERR_FORMAT, "session %s: NUL byte in the system prompt", name);
    const unsigned char *tp = sys + ns;
    for (uint64_t i = 0; i < nt; i++) {
        int32_t t;
        memcpy(&t, tp + 4 * i, 4);
        if (t < 0 || t >= st->n_vocab)
            return sk_error_set(err, SK_ERR_FORMAT, "session %s: transcript token %llu is %d, not in [0, %lld)",
                                name, (unsigned long long)i, (int)t, (long long)st->n_vocab);
    }
    info->system = malloc((size_t)ns + 1);
    info->tokens = nt ? malloc(sizeof(int32_t) * (size_t)nt) : NULL;
    if (!info->system || (nt && !info->tokens)) {
        sk_session_info_free(info);
        return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    }
    memcpy(info->system, sys, (size_t)ns);
    info->system[ns] = 0;
    if (nt) memcpy(info->tokens, tp, sizeof(int32_t) * (size_t)nt);
    info->n_tokens = (int64_t)nt;
    info->n_turns = turns;
    info->chat_kind = (sk_chat_kind)kind;
    return SK_OK;
}

/* The path of an existing regular session file. */
static sk_status existing(const sk_store *st, const char *name, char *path, size_t cap, sk_error *err) {
    sk_status s = sk_store_path(st, name, path, cap, err);
    if (s) return s;
    struct stat sb;
    if (lstat(path, &sb) != 0) return sk_error_set(err, SK_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return sk_error_set(err, SK_ERR_IO, "%s: not a regular file", path);
    return SK_OK;
}

sk_status sk_store_peek(const sk_store *st, const char *name, sk_session_info *info, sk_error *err) {
    memset(info, 0, sizeof *info);
    char path[4096];
    sk_status s = existing(st, name, path, sizeof path, err);
    void *rec = NULL;
    size_t len = 0;
    if (!s) s = sk_session_peek(path, &info->cache, &info->n_batch, &rec, &len, err);
    if (!s) s = parse_record(st, name, rec, len, info, err);
    free(rec);
    if (s) memset(info, 0, sizeof *info);
    return s;
}

sk_status sk_store_peek_bytes(const sk_store *st, const char *name, const void *buf, size_t len,
                              sk_session_info *info, sk_error *err) {
    memset(info, 0, sizeof *info);
    void *rec = NULL;
    size_t rlen = 0;
    sk_status s = sk_session_peek_bytes(buf, len, name, &info->cache, &info->n_batch, &rec, &rlen, err);
    if (!s) s = parse_record(st, name, rec, rlen, info, err);
    free(rec);
    if (s) memset(info, 0, sizeof *info);
    return s;
}

/* Restore into c from the session file at path, or (path NULL) from the
 * len bytes at buf; fill info. */
static sk_status load_any(const sk_store *st, const char *name, const char *path, const void *buf, size_t len,
                          sk_context *c, sk_session_info *info, sk_error *err) {
    sk_session_info tmp;
    if (!info) info = &tmp;
    memset(info, 0, sizeof *info);
    void *rec = NULL;
    size_t rlen = 0;
    sk_status s = SK_OK;
    if (c->m != st->m) s = sk_error_set(err, SK_ERR_INVALID, "session %s: the context is of another model", name);
    /* both check the configuration */
    if (!s) s = path ? sk_context_load(c, path, &rec, &rlen, err) : sk_session_decode(c, buf, len, name, &rec, &rlen, err);
    if (!s) s = parse_record(st, name, rec, rlen, info, err);
    free(rec);
    if (s) {
        sk_context_reset(c);
        sk_session_info_free(info);
        return s;
    }
    info->cache = c->p.cache;
    info->n_batch = c->n_batch;
    if (info == &tmp) sk_session_info_free(&tmp);
    return SK_OK;
}

sk_status sk_store_load(const sk_store *st, const char *name, sk_context *c, sk_session_info *info,
                        sk_error *err) {
    char path[4096];
    sk_status s = existing(st, name, path, sizeof path, err);
    if (s) {
        if (info) memset(info, 0, sizeof *info);
        sk_context_reset(c);
        return s;
    }
    return load_any(st, name, path, NULL, 0, c, info, err);
}

sk_status sk_store_load_bytes(const sk_store *st, const char *name, const void *buf, size_t len, sk_context *c,
                              sk_session_info *info, sk_error *err) {
    return load_any(st, name, NULL, buf, len, c, info, err);
}

void sk_session_info_free(sk_session_info *info) {
    if (!info) return;
    free(info->system);
    free(info->tokens);
    memset(info, 0, sizeof *info);
}

/* ---- the directory ------------------------------------------------------ */

int sk_store_exists(const sk_store *st, const char *name) {
    char path[4096];
    struct stat sb;
    return sk_store_path(st, name, path, sizeof path, NULL) == SK_OK && lstat(path, &sb) == 0 &&
           S_ISREG(sb.st_mode);
}

sk_status sk_store_delete(const sk_store *st, const char *name, sk_error *err) {
    char path[4096];
    sk_status s = sk_store_path(st, name, path, sizeof path, err);
    if (s) return s;
    if (unlink(path) != 0) return sk_error_set(err, SK_ERR_IO, "%s: %s", path, strerror(errno));
    return SK_OK;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void sk_store_list_free(char **names, int64_t n) {
    for (int64_t i = 0; names && i < n; i++) free(names[i]);
    free(names);
}

sk_status sk_store_list(const sk_store *st, char ***names, int64_t *n, sk_error *err) {
    *names = NULL;
    *n = 0;
    if (!st->dir) return SK_OK;
    DIR *d = opendir(st->dir);
    if (!d) return errno == ENOENT ? SK_OK : sk_error_set(err, SK_ERR_IO, "%s: %s", st->dir, strerror(errno));
    char **v = NULL;
    int64_t k = 0, cap = 0;
    sk_status s = SK_OK;
    struct dirent *e;
    while (!s && (e = readdir(d))) {
        size_t len = strlen(e->d_name), sl = strlen(SUFFIX);
        if (len <= sl || strcmp(e->d_name + len - sl, SUFFIX) != 0) continue;
        char name[SK_STORE_NAME_MAX + 1];
        if (len - sl > SK_STORE_NAME_MAX) continue;
        memcpy(name, e->d_name, len - sl);
        name[len - sl] = 0;
        if (!sk_store_exists(st, name)) continue; /* not a valid name, or not a regular file */
        if (k == cap) {
            cap = cap ? 2 * cap : 16;
            char **nv = realloc(v, sizeof(char *) * (size_t)cap);
            if (!nv) {
                s = sk_error_set(err, SK_ERR_NOMEM, "out of memory");
                break;
            }
            v = nv;
        }
        if (!(v[k] = strdup(name))) s = sk_error_set(err, SK_ERR_NOMEM, "out of memory");
        else k++;
    }
    closedir(d);
    if (s) {
        sk_store_list_free(v, k);
        return s;
    }
    if (k) qsort(v, (size_t)k, sizeof *v, cmp_names);
    *names = v;
    *n = k;
    return SK_OK;
}

sk_status sk_store_remove_stale(const sk_store *st, int *n_removed, sk_error *err) {
    if (n_removed) *n_removed = 0;
    if (!st->dir) return SK_OK;
    DIR *d = opendir(st->dir);
    if (!d) return errno == ENOENT ? SK_OK : sk_error_set(err, SK_ERR_IO, "%s: %s", st->dir, strerror(errno));
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *t = strstr(e->d_name, TMP_INFIX);
        if (!t) continue;
        char *end;
        long pid = strtol(t + strlen(TMP_INFIX), &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* a live writer */
        if (unlinkat(dirfd(d), e->d_name, 0) == 0) removed++;
    }
    closedir(d);
    if (n_removed) *n_removed = removed;
    return SK_OK;
}
