/* model.c - load a LLaMA-family GGUF into an immutable sk_model.
 *
 * The file is mapped read-only once; every weight is a view into the map.
 * Everything read from the file is validated here: hyper-parameters against
 * each other and against tensor shapes, tensor types against what we can
 * compute with, vocabulary sizes against the embedding. */
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <pthread.h>
#include <unistd.h>

#include "kernels/pack.h"
#include "vocab.h"

#define SK_MAX_LAYERS 4096
#define SK_MAX_DIM (1 << 20)

sk_status sk_hparams_validate(const sk_hparams *hp, sk_error *err) {
    if (hp->n_layer < 1 || hp->n_layer > SK_MAX_LAYERS)
        return sk_error_set(err, SK_ERR_FORMAT, "block_count %d out of range 1..%d", hp->n_layer,
                            SK_MAX_LAYERS);
    if (hp->n_embd < 1 || hp->n_embd > SK_MAX_DIM)
        return sk_error_set(err, SK_ERR_FORMAT, "embedding_length %d out of range", hp->n_embd);
    if (hp->n_ff < 1 || hp->n_ff > 4 * SK_MAX_DIM)
        return sk_error_set(err, SK_ERR_FORMAT, "feed_forward_length %d out of range", hp->n_ff);
    if (hp->n_head < 1 || hp->n_head > hp->n_embd)
        return sk_error_set(err, SK_ERR_FORMAT, "attention.head_count %d out of range 1..%d",
                            hp->n_head, hp->n_embd);
    if (hp->n_embd % hp->n_head != 0)
        return sk_error_set(err, SK_ERR_FORMAT,
                            "embedding_length %d is not divisible by head_count %d", hp->n_embd,
                            hp->n_head);
    if (hp->n_head_kv < 1 || hp->n_head_kv > hp->n_head || hp->n_head % hp->n_head_kv != 0)
        return sk_error_set(err, SK_ERR_FORMAT,
                            "attention.head_count %d is not divisible by head_count_kv %d",
                            hp->n_head, hp->n_head_kv);
    if (hp->head_dim > 1024)
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "head dimension %d is above 1024",
                            hp->head_dim);
    if (hp->n_head / hp->n_head_kv > 256)
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "%d query heads per KV head (at most 256)",
                            hp->n_head / hp->n_head_kv);
    if (hp->head_dim % 2 != 0)
        return sk_error_set(err, SK_ERR_FORMAT, "head dimension %d is odd", hp->head_dim);
    if (hp->n_rot < 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return sk_error_set(err, SK_ERR_FORMAT,
                            "rope.dimension_count %d must be even and <= head dimension %d",
                            hp->n_rot, hp->head_dim);
    if (!(hp->rope_base > 1.0) || hp->rope_base > 1e12)
        return sk_error_set(err, SK_ERR_FORMAT, "rope.freq_base %g out of range", hp->rope_base);
    if (!(hp->rope_scale > 0.0) || hp->rope_scale > 1e6)
        return sk_error_set(err, SK_ERR_FORMAT, "rope scaling factor %g out of range",
                            hp->rope_scale);
    if (!(hp->norm_eps > 0.0f) || hp->norm_eps > 1.0f)
        return sk_error_set(err, SK_ERR_FORMAT, "layer_norm_rms_epsilon %g out of range",
                            (double)hp->norm_eps);
    if (hp->n_vocab < 1 || hp->n_vocab > (1 << 24))
        return sk_error_set(err, SK_ERR_FORMAT, "vocabulary size %lld out of range",
                            (long long)hp->n_vocab);
    return SK_OK;
}

/* Read an integer key "<arch>.<suffix>" into *out; absent keys keep *out
 * unless required. Values above INT32_MAX are rejected. */
static sk_status arch_int(const gguf_ctx *g, const char *arch, const char *suffix, int required,
                          int *out, sk_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (!gguf_find_kv(g, key)) {
        if (required) return sk_error_set(err, SK_ERR_FORMAT, "missing metadata key %s", key);
        return SK_OK;
    }
    uint64_t v;
    sk_status st = gguf_get_u64(g, key, &v, err);
    if (st) return st;
    if (v > INT32_MAX) return sk_error_set(err, SK_ERR_FORMAT, "%s = %llu is too large", key,
                                           (unsigned long long)v);
    *out = (int)v;
    return SK_OK;
}

static sk_status arch_f64(const gguf_ctx *g, const char *arch, const char *suffix, double *out,
                          sk_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (!gguf_find_kv(g, key)) return SK_OK;
    return gguf_get_f64(g, key, out, err);
}

/* Look up a weight and check its type and shape: ne0 x ne1 (ne1 = 1 for a
 * vector). Norm vectors must be F32. */
static sk_status bind(const gguf_ctx *g, const char *name, int64_t ne0, int64_t ne1, int is_vec,
                      sk_tensor *t, sk_error *err) {
    const gguf_tensor *gt = gguf_find_tensor(g, name);
    if (!gt) return sk_error_set(err, SK_ERR_FORMAT, "missing tensor %s", name);
    if (gt->ne[0] != ne0 || gt->ne[1] != ne1 || gt->ne[2] != 1 || gt->ne[3] != 1)
        return sk_error_set(err, SK_ERR_FORMAT,
                            "tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                            name, (long long)gt->ne[0], (long long)gt->ne[1],
                            (long long)gt->ne[2], (long long)gt->ne[3], (long long)ne0,
                            (long long)ne1);
    const sk_type_traits *tt = sk_type_get((int)gt->type);
    if (is_vec) {
        if (gt->type != SK_TYPE_F32)
            return sk_error_set(err, SK_ERR_UNSUPPORTED, "tensor %s: type %s, expected F32", name,
                                tt ? tt->name : "unknown");
    } else if (!tt || !tt->vec_dot || !tt->to_float) {
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "tensor %s: type %u cannot be a weight",
                            name, gt->type);
    }
    t->data = gt->data;
    t->type = (int)gt->type;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->row_size = sk_row_size(t->type, ne0);
    t->tt = tt;
    return SK_OK;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static sk_status load_hparams(sk_model *m, sk_error *err) {
    const gguf_ctx *g = m->gguf;
    sk_hparams *hp = &m->hp;
    gguf_str arch;
    sk_status st = gguf_get_str(g, "general.architecture", &arch, err);
    if (st) return st;
    if (!gguf_str_eq(arch, "llama"))
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "architecture '%.*s' is not supported (llama)",
                            (int)(arch.len > 32 ? 32 : arch.len), arch.ptr);
    snprintf(hp->arch, sizeof hp->arch, "llama");
    gguf_str name;
    if (gguf_find_kv(g, "general.name") && gguf_get_str(g, "general.name", &name, NULL) == SK_OK)
        snprintf(hp->name, sizeof hp->name, "%.*s", (int)(name.len > 127 ? 127 : name.len),
                 name.ptr);
    const char *a = hp->arch;
    int ctx = 0;
    if ((st = arch_int(g, a, "block_count", 1, &hp->n_layer, err))) return st;
    if ((st = arch_int(g, a, "embedding_length", 1, &hp->n_embd, err))) return st;
    if ((st = arch_int(g, a, "feed_forward_length", 1, &hp->n_ff, err))) return st;
    if ((st = arch_int(g, a, "attention.head_count", 1, &hp->n_head, err))) return st;
    hp->n_head_kv = hp->n_head;
    if ((st = arch_int(g, a, "attention.head_count_kv", 0, &hp->n_head_kv, err))) return st;
    if ((st = arch_int(g, a, "context_length", 0, &ctx, err))) return st;
    hp->n_ctx_train = ctx;
    if (hp->n_head < 1)
        return sk_error_set(err, SK_ERR_FORMAT, "attention.head_count %d out of range",
                            hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    hp->n_rot = hp->head_dim;
    if ((st = arch_int(g, a, "rope.dimension_count", 0, &hp->n_rot, err))) return st;
    hp->rope_base = 10000.0;
    if ((st = arch_f64(g, a, "rope.freq_base", &hp->rope_base, err))) return st;
    hp->rope_scale = 1.0;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    gguf_str stype = {0};
    if (gguf_find_kv(g, key) && (st = gguf_get_str(g, key, &stype, err))) return st;
    double factor = 1.0;
    if ((st = arch_f64(g, a, "rope.scaling.factor", &factor, err))) return st;
    if (stype.len && !gguf_str_eq(stype, "none") && !gguf_str_eq(stype, "linear"))
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "rope scaling '%.*s' is not supported",
                            (int)(stype.len > 32 ? 32 : stype.len), stype.ptr);
    if (gguf_str_eq(stype, "linear") || (!stype.len && factor != 1.0 && factor > 0))
        hp->rope_scale = factor;
    double eps = 1e-5;
    if ((st = arch_f64(g, a, "attention.layer_norm_rms_epsilon", &eps, err))) return st;
    hp->norm_eps = (float)eps;
    hp->rope_neox = 0; /* llama stores Q/K permuted for the interleaved layout */
    hp->file_type = -1;
    uint64_t ft;
    if (gguf_find_kv(g, "general.file_type") && gguf_get_u64(g, "general.file_type", &ft, NULL) == SK_OK)
        hp->file_type = (int)(ft & 0xffff);
    const gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return sk_error_set(err, SK_ERR_FORMAT, "missing tensor token_embd.weight");
    hp->n_vocab = emb->ne[1];
    return sk_hparams_validate(hp, err);
}

static sk_status load_weights(sk_model *m, sk_error *err) {
    const gguf_ctx *g = m->gguf;
    const sk_hparams *hp = &m->hp;
    sk_status st;
    int64_t d = hp->n_embd, hd = hp->head_dim, nq = (int64_t)hp->n_head * hd,
            nkv = (int64_t)hp->n_head_kv * hd, ff = hp->n_ff, nv = hp->n_vocab;
    if ((st = bind(g, "token_embd.weight", d, nv, 0, &m->tok_embd, err))) return st;
    if ((st = bind(g, "output_norm.weight", d, 1, 1, &m->output_norm, err))) return st;
    if (gguf_find_tensor(g, "output.weight")) {
        if ((st = bind(g, "output.weight", d, nv, 0, &m->output, err))) return st;
        m->hp.tied_output = 0;
    } else {
        m->output = m->tok_embd;
        m->hp.tied_output = 1;
    }
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return sk_error_set(err, SK_ERR_NOMEM, "out of memory (layers)");
    for (int l = 0; l < hp->n_layer; l++) {
        sk_layer *L = &m->layers[l];
        struct { const char *suffix; int64_t ne0, ne1; int vec; sk_tensor *t; } w[] = {
            {"attn_norm.weight", d, 1, 1, &L->attn_norm},
            {"attn_q.weight", d, nq, 0, &L->wq},
            {"attn_k.weight", d, nkv, 0, &L->wk},
            {"attn_v.weight", d, nkv, 0, &L->wv},
            {"attn_output.weight", nq, d, 0, &L->wo},
            {"ffn_norm.weight", d, 1, 1, &L->ffn_norm},
            {"ffn_gate.weight", d, ff, 0, &L->w_gate},
            {"ffn_up.weight", d, ff, 0, &L->w_up},
            {"ffn_down.weight", ff, d, 0, &L->w_down},
        };
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s", l, w[i].suffix);
            if ((st = bind(g, name, w[i].ne0, w[i].ne1, w[i].vec, w[i].t, err))) return st;
        }
    }
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) bytes += g->tensors[i].nbytes;
    m->weight_bytes = bytes;
    return SK_OK;
}

/* The weight matrices that the matmul reads, in model order. */
static int matmul_tensors(sk_model *m, sk_tensor **t) {
    int n = 0;
    for (int l = 0; l < m->hp.n_layer; l++) {
        sk_layer *L = &m->layers[l];
        sk_tensor *lt[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof lt / sizeof *lt; i++) t[n++] = lt[i];
    }
    t[n++] = &m->output;
    return n;
}

/* Copy every packable matrix into the pack.h layout (one anonymous
 * mapping, 64-byte aligned tensors). Without packing, or when the mapping
 * fails, the matmul uses the original layout: not an error. */
typedef struct pack_job {
    sk_tensor **t;
    char **dst;
    int lo, hi;
} pack_job;

static void *pack_range(void *arg) {
    pack_job *j = arg;
    for (int i = j->lo; i < j->hi; i++) {
        sk_tensor *w = j->t[i];
        sk_pack_rows(w->type, w->ne[0], w->ne[1] / SK_PACK_ROWS, w->data, w->row_size, j->dst[i]);
    }
    return NULL;
}

/* Copy every packable matrix into the pack.h layout (one anonymous
 * mapping, 64-byte aligned tensors), on two threads: half of the bytes
 * each (the copy and the page faults of fresh memory both scale). Without
 * packing, or when memory is short, the matmul uses the original layout:
 * not an error. */
static void pack_weights(sk_model *m) {
    if (!sk_pack_enabled()) return;
    int cap = 7 * m->hp.n_layer + 1, n = 0;
    sk_tensor **all = malloc(sizeof *all * (size_t)cap), **t = malloc(sizeof *t * (size_t)cap);
    char **dst = malloc(sizeof *dst * (size_t)cap);
    if (!all || !t || !dst) goto out;
    int n_all = matmul_tensors(m, all);
    size_t total = 0;
    for (int i = 0; i < n_all; i++)
        if (sk_pack_supported(all[i]->type, all[i]->ne[0], all[i]->ne[1])) {
            t[n] = all[i];
            dst[n++] = (char *)(uintptr_t)total; /* offset until the mapping exists */
            total += (sk_pack_group_size(all[i]->type, all[i]->ne[0]) *
                          (size_t)(all[i]->ne[1] / SK_PACK_ROWS) + 63) & ~(size_t)63;
        }
    if (!total) goto out;
    void *mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) goto out;
    madvise(mem, total, MADV_HUGEPAGE);
    int half = 0; /* first tensor that starts in the second half of the bytes */
    while (half < n && (size_t)(uintptr_t)dst[half] * 2 < total) half++;
    for (int i = 0; i < n; i++) dst[i] = (char *)mem + (uintptr_t)dst[i];
    pack_job j0 = {t, dst, 0, half}, j1 = {t, dst, half, n};
    pthread_t th;
    int threaded = pthread_create(&th, NULL, pack_range, &j1) == 0;
    pack_range(&j0);
    if (threaded) pthread_join(th, NULL);
    else pack_range(&j1);
    for (int i = 0; i < n; i++) {
        t[i]->packed = dst[i];
        t[i]->pack_gs = sk_pack_group_size(t[i]->type, t[i]->ne[0]);
    }
    if (m->hp.tied_output && m->output.packed) { /* lookups read the packed copy too */
        m->tok_embd.packed = m->output.packed;
        m->tok_embd.pack_gs = m->output.pack_gs;
    }
    mprotect(mem, total, PROT_READ);
    m->pack_mem = mem;
    m->pack_size = total;
out:
    free(all);
    free(t);
    free(dst);
}

/* Give back the file pages of the packed matrices (the matmul reads the
 * packed copies; a later read, e.g. an embedding row, faults the page back
 * in from the page cache). Only for file mappings that we own. */
static void drop_packed_originals(sk_model *m) {
    if (!m->pack_mem || !m->map) return;
    int cap = 7 * m->hp.n_layer + 1;
    sk_tensor **t = malloc(sizeof *t * (size_t)cap);
    if (!t) return;
    int n = matmul_tensors(m, t);
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < n; i++) {
        if (!t[i]->packed) continue;
        uintptr_t a = ((uintptr_t)t[i]->data + pg - 1) & ~(pg - 1);
        uintptr_t b = ((uintptr_t)t[i]->data + t[i]->row_size * (size_t)t[i]->ne[1]) & ~(pg - 1);
        if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
    }
    free(t);
}

sk_status sk_model_from_span(const void *data, uint64_t size, sk_model **out, sk_error *err) {
    *out = NULL;
    sk_quant_init();
    sk_model *m = calloc(1, sizeof *m);
    if (!m) return sk_error_set(err, SK_ERR_NOMEM, "out of memory (model)");
    sk_status st = gguf_parse(data, size, &m->gguf, err);
    if (!st) st = load_hparams(m, err);
    if (!st) st = load_weights(m, err);
    if (!st) st = sk_tokenizer_from_gguf(m->gguf, &m->tok, err);
    if (!st && sk_tokenizer_n_vocab(m->tok) != m->hp.n_vocab)
        st = sk_error_set(err, SK_ERR_FORMAT,
                          "vocabulary has %lld tokens but token_embd.weight has %lld rows",
                          (long long)sk_tokenizer_n_vocab(m->tok), (long long)m->hp.n_vocab);
    if (!st && gguf_find_kv(m->gguf, "tokenizer.chat_template")) {
        gguf_str t;
        if (gguf_get_str(m->gguf, "tokenizer.chat_template", &t, NULL) == SK_OK &&
            t.len < (1u << 20)) {
            m->chat_template = malloc(t.len + 1);
            if (!m->chat_template) st = sk_error_set(err, SK_ERR_NOMEM, "out of memory");
            else {
                memcpy(m->chat_template, t.ptr, t.len);
                m->chat_template[t.len] = 0;
            }
        }
    }
    if (st) {
        sk_model_free(m);
        return st;
    }
    pack_weights(m);
    /* fingerprint: header + tensor infos (up to the data section) and a
     * sample of each tensor's bytes (start, middle, end), so that two
     * fine-tunes of one shape differ */
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv1a(h, data, m->gguf->data_offset < size ? m->gguf->data_offset : size);
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const gguf_tensor *t = &m->gguf->tensors[i];
        size_t nb = (size_t)t->nbytes, k = nb < 64 ? nb : 64;
        const char *d = t->data;
        h = fnv1a(h, d, k);
        h = fnv1a(h, d + nb / 2 - (nb / 2 < k ? nb / 2 : k / 2), k);
        h = fnv1a(h, d + nb - k, k);
    }
    m->fingerprint = h;
    const char *ftn[] = {"F32", "F16", "Q4_0", "Q4_1", "?", "?", "?", "Q8_0", "Q5_0", "Q5_1",
                         "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S",
                         "Q5_K_M", "Q6_K"};
    const char *ft = (m->hp.file_type >= 0 && m->hp.file_type < (int)(sizeof ftn / sizeof *ftn))
                         ? ftn[m->hp.file_type] : m->tok_embd.tt->name;
    double params = 0;
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const gguf_tensor *t = &m->gguf->tensors[i];
        params += (double)t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    m->n_params = (uint64_t)params;
    snprintf(m->desc, sizeof m->desc, "%s %.0fM %s", m->hp.arch, params / 1e6, ft);
    *out = m;
    return SK_OK;
}

sk_status sk_model_load(const char *path, sk_model **out, sk_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return sk_error_set(err, SK_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return sk_error_set(err, SK_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return sk_error_set(err, SK_ERR_IO, "%s: not a regular file (%s)", path,
                            S_ISDIR(sb.st_mode) ? "a directory" : S_ISFIFO(sb.st_mode) ? "a FIFO"
                            : S_ISCHR(sb.st_mode) ? "a character device" : "special file");
    }
    if (sb.st_size < 8) {
        close(fd);
        return sk_error_set(err, SK_ERR_FORMAT, "%s: file too small to be GGUF (%lld bytes)", path,
                            (long long)sb.st_size);
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE | (sk_pack_enabled() ? MAP_POPULATE : 0), fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return sk_error_set(err, SK_ERR_IO, "%s: mmap: %s", path, strerror(e));
    sk_model *m;
    sk_status st = sk_model_from_span(map, (uint64_t)sb.st_size, &m, err);
    if (st) {
        munmap(map, (size_t)sb.st_size);
        if (err) {
            char tmp[SK_ERRMSG_LEN];
            snprintf(tmp, sizeof tmp, "%s", err->msg);
            sk_error_set(err, st, "%s: %s", path, tmp);
        }
        return st;
    }
    m->map = map;
    m->map_size = (uint64_t)sb.st_size;
    drop_packed_originals(m);
    *out = m;
    return SK_OK;
}

void sk_model_free(sk_model *m) {
    if (!m) return;
    sk_tokenizer_free(m->tok);
    gguf_free(m->gguf);
    free(m->layers);
    free(m->chat_template);
    if (m->map) munmap(m->map, (size_t)m->map_size);
    if (m->pack_mem) munmap(m->pack_mem, m->pack_size);
    free(m);
}

const sk_hparams *sk_model_hparams(const sk_model *m) { return &m->hp; }
const sk_tokenizer *sk_model_tokenizer(const sk_model *m) { return m->tok; }
uint64_t sk_model_size(const sk_model *m) { return m->weight_bytes; }
uint64_t sk_model_n_params(const sk_model *m) { return m->n_params; }
const char *sk_model_desc(const sk_model *m) { return m->desc; }
const char *sk_model_chat_template(const sk_model *m) { return m->chat_template; }
