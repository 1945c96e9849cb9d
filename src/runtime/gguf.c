/* gguf.c - GGUF reader over a read-only byte span (see gguf.h).
 *
 * Every read goes through a cursor that checks the bytes that remain before
 * it touches them; every count is compared against the remaining bytes
 * (times the smallest encoding one element can have) BEFORE anything is
 * allocated, so a hostile file can make us allocate at most a constant times
 * its own size. Duplicate keys and tensor names are found by sorting an index
 * (O(n log n)); the same sorted index serves the lookups. Tensor data is
 * checked for alignment, overlap (by sorting on offset) and bounds.
 *
 * Owns: the kv and tensor arrays, the string/nested-array tables hanging off
 * array values, and the sorted indexes in ctx->priv. Never copies the span. */
#include "gguf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/quant.h"

/* Nested arrays deeper than this are rejected: bounds the recursion (and so
 * the stack) no matter what the file says. Real files use depth 1. */
#define GGUF_MAX_NEST 16

/* Smallest encodings, used to bound counts before allocating. */
#define MIN_STR_BYTES 8u                      /* uint64 len */
#define MIN_NESTED_ARR_BYTES 12u              /* uint32 type + uint64 n */
#define MIN_KV_BYTES (8u + 4u + 1u)           /* key len + type + 1-byte value */
#define MIN_TENSOR_BYTES (8u + 4u + 8u + 4u + 8u) /* name + n_dims + 1 dim + type + offset */

typedef struct gguf_priv {
    const gguf_kv **kv_sorted;         /* n_kv, by key */
    const gguf_tensor **t_sorted;      /* n_tensors, by name */
} gguf_priv;

typedef struct cursor {
    const uint8_t *p;
    uint64_t size;
    uint64_t pos;
    sk_error *err;
} cursor;

static uint64_t cur_left(const cursor *c) { return c->size - c->pos; }

static sk_status cur_need(cursor *c, uint64_t n, const char *what) {
    if (n > cur_left(c))
        return sk_error_set(c->err, SK_ERR_FORMAT,
                            "gguf: truncated: %s needs %llu bytes at offset %llu, %llu left",
                            what, (unsigned long long)n, (unsigned long long)c->pos,
                            (unsigned long long)cur_left(c));
    return SK_OK;
}

static uint64_t ld_le(const uint8_t *p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static sk_status cur_uint(cursor *c, unsigned n, uint64_t *out, const char *what) {
    sk_status st = cur_need(c, n, what);
    if (st) return st;
    *out = ld_le(c->p + c->pos, n);
    c->pos += n;
    return SK_OK;
}

static sk_status cur_u32(cursor *c, uint32_t *out, const char *what) {
    uint64_t v;
    sk_status st = cur_uint(c, 4, &v, what);
    if (st) return st;
    *out = (uint32_t)v;
    return SK_OK;
}

static sk_status cur_u64(cursor *c, uint64_t *out, const char *what) {
    return cur_uint(c, 8, out, what);
}

static sk_status cur_str(cursor *c, gguf_str *out, const char *what) {
    uint64_t start = c->pos, len;
    sk_status st = cur_u64(c, &len, what);
    if (st) return st;
    if (len > cur_left(c))
        return sk_error_set(c->err, SK_ERR_FORMAT,
                            "gguf: %s at offset %llu: string length %llu runs past the end "
                            "(%llu bytes left)",
                            what, (unsigned long long)start, (unsigned long long)len,
                            (unsigned long long)cur_left(c));
    out->ptr = (const char *)(c->p + c->pos);
    out->len = len;
    c->pos += len;
    return SK_OK;
}

/* Printable, bounded copy of a span string for error messages. */
static const char *str_show(gguf_str s, char *buf, size_t cap) {
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        buf[i] = isprint(ch) ? (char)ch : '?';
    }
    buf[n] = '\0';
    if (s.len > n && cap > 4) memcpy(buf + cap - 4, "...", 4);
    return buf;
}

static unsigned type_size(uint32_t t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0; /* STRING, ARRAY, invalid */
    }
}

static int type_is_int(uint32_t t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16:
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64:
        return 1;
    default:
        return 0;
    }
}

static int type_is_signed(uint32_t t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 ||
           t == GGUF_TYPE_INT64;
}

static void arr_release(gguf_arr *a) {
    if (a->arrs) {
        for (uint64_t i = 0; i < a->n; i++) arr_release(&a->arrs[i]);
        free(a->arrs);
        a->arrs = NULL;
    }
    free(a->strs);
    a->strs = NULL;
}

/* Parse an array body (after the ARRAY type tag) into *a. On failure *a may
 * hold partial tables; arr_release() frees them (tables are calloc'd so that
 * unfilled entries are NULL). */
static sk_status parse_arr(cursor *c, gguf_arr *a, int depth, const char *what) {
    uint64_t start = c->pos;
    uint32_t et;
    uint64_t n;
    sk_status st;
    memset(a, 0, sizeof *a);
    if ((st = cur_u32(c, &et, what)) || (st = cur_u64(c, &n, what))) return st;
    if (et >= GGUF_TYPE_COUNT)
        return sk_error_set(c->err, SK_ERR_FORMAT,
                            "gguf: %s at offset %llu: array element type %u out of range",
                            what, (unsigned long long)start, et);
    a->type = (enum gguf_type)et;
    uint64_t left = cur_left(c);
    unsigned es = type_size(et);
    uint64_t min = es ? es : et == GGUF_TYPE_STRING ? MIN_STR_BYTES : MIN_NESTED_ARR_BYTES;
    if (n > left / min)
        return sk_error_set(c->err, SK_ERR_FORMAT,
                            "gguf: %s at offset %llu: array count %llu of %s cannot fit in "
                            "%llu remaining bytes",
                            what, (unsigned long long)start, (unsigned long long)n,
                            gguf_type_name(et), (unsigned long long)left);
    if (es) {
        a->data = c->p + c->pos;
        if (et == GGUF_TYPE_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (a->data[i] > 1)
                    return sk_error_set(c->err, SK_ERR_FORMAT,
                                        "gguf: %s at offset %llu: bool element %llu is %u, "
                                        "not 0 or 1",
                                        what, (unsigned long long)start, (unsigned long long)i,
                                        a->data[i]);
        a->n = n;
        c->pos += n * es;
        return SK_OK;
    }
    if (et == GGUF_TYPE_STRING) {
        a->strs = calloc(n ? n : 1, sizeof *a->strs);
        if (!a->strs) return sk_error_set(c->err, SK_ERR_NOMEM, "gguf: out of memory");
        a->n = n;
        for (uint64_t i = 0; i < n; i++)
            if ((st = cur_str(c, &a->strs[i], what))) return st;
        return SK_OK;
    }
    /* nested array */
    if (depth + 1 > GGUF_MAX_NEST)
        return sk_error_set(c->err, SK_ERR_FORMAT,
                            "gguf: %s at offset %llu: arrays nested deeper than %d",
                            what, (unsigned long long)start, GGUF_MAX_NEST);
    a->arrs = calloc(n ? n : 1, sizeof *a->arrs);
    if (!a->arrs) return sk_error_set(c->err, SK_ERR_NOMEM, "gguf: out of memory");
    a->n = n;
    for (uint64_t i = 0; i < n; i++)
        if ((st = parse_arr(c, &a->arrs[i], depth + 1, what))) return st;
    return SK_OK;
}

static sk_status parse_value(cursor *c, gguf_kv *kv, const char *what) {
    uint64_t start = c->pos, v;
    sk_status st;
    unsigned es = type_size(kv->type);
    if (es) {
        if ((st = cur_uint(c, es, &v, what))) return st;
        switch (kv->type) {
        case GGUF_TYPE_INT8: kv->v.i = (int8_t)(uint8_t)v; break;
        case GGUF_TYPE_INT16: kv->v.i = (int16_t)(uint16_t)v; break;
        case GGUF_TYPE_INT32: kv->v.i = (int32_t)(uint32_t)v; break;
        case GGUF_TYPE_INT64: memcpy(&kv->v.i, &v, 8); break;
        case GGUF_TYPE_FLOAT32: {
            uint32_t u = (uint32_t)v;
            float f;
            memcpy(&f, &u, 4);
            kv->v.f = f;
            break;
        }
        case GGUF_TYPE_FLOAT64: memcpy(&kv->v.f, &v, 8); break;
        case GGUF_TYPE_BOOL:
            if (v > 1)
                return sk_error_set(c->err, SK_ERR_FORMAT,
                                    "gguf: %s at offset %llu: bool value %llu is not 0 or 1",
                                    what, (unsigned long long)start, (unsigned long long)v);
            kv->v.u = v;
            break;
        default: kv->v.u = v; break;
        }
        return SK_OK;
    }
    if (kv->type == GGUF_TYPE_STRING) return cur_str(c, &kv->v.s, what);
    return parse_arr(c, &kv->v.a, 0, what);
}

/* Lexicographic byte order, shorter first on a common prefix. */
static int str_cmp(gguf_str a, gguf_str b) {
    uint64_t n = a.len < b.len ? a.len : b.len;
    int r = n ? memcmp(a.ptr, b.ptr, (size_t)n) : 0;
    if (r) return r;
    return a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

static int cmp_kv(const void *x, const void *y) {
    return str_cmp((*(const gguf_kv *const *)x)->key, (*(const gguf_kv *const *)y)->key);
}

static int cmp_tensor_name(const void *x, const void *y) {
    return str_cmp((*(const gguf_tensor *const *)x)->name,
                   (*(const gguf_tensor *const *)y)->name);
}

static int cmp_tensor_off(const void *x, const void *y) {
    uint64_t a = (*(const gguf_tensor *const *)x)->offset;
    uint64_t b = (*(const gguf_tensor *const *)y)->offset;
    return a < b ? -1 : a > b ? 1 : 0;
}

static int cmp_key_kv(const void *key, const void *elem) {
    return str_cmp(*(const gguf_str *)key, (*(const gguf_kv *const *)elem)->key);
}

static int cmp_key_tensor(const void *key, const void *elem) {
    return str_cmp(*(const gguf_str *)key, (*(const gguf_tensor *const *)elem)->name);
}

/* Block geometry of a tensor type, probed through sk_row_size so that this
 * file needs no copy of the quant table: every block size divides SK_QK_K. */
static int type_block(uint32_t type, uint64_t *blck, uint64_t *bsize) {
    static const int64_t probes[] = {1, SK_QK, SK_QK_K};
    if (type > INT32_MAX) return 0;
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        size_t s = sk_row_size((int)type, probes[i]);
        if (s) {
            *blck = (uint64_t)probes[i];
            *bsize = s;
            return 1;
        }
    }
    return 0;
}

static sk_status parse_tensor(cursor *c, gguf_tensor *t, uint64_t idx) {
    char what[48], nb[72];
    uint64_t start = c->pos;
    sk_status st;
    snprintf(what, sizeof what, "tensor info %llu", (unsigned long long)idx);
    if ((st = cur_str(c, &t->name, what)) || (st = cur_u32(c, &t->n_dims, what))) return st;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return sk_error_set(c->err, SK_ERR_FORMAT,
                            "gguf: tensor '%s' at offset %llu: n_dims %u not in 1..%d",
                            str_show(t->name, nb, sizeof nb), (unsigned long long)start,
                            t->n_dims, GGUF_MAX_DIMS);
    uint64_t nelem = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        if ((st = cur_u64(c, &ne, what))) return st;
        if (ne == 0 || ne > (uint64_t)INT64_MAX)
            return sk_error_set(c->err, SK_ERR_FORMAT,
                                "gguf: tensor '%s': dimension %u is %lld (must be > 0)",
                                str_show(t->name, nb, sizeof nb), d, (long long)(int64_t)ne);
        if (nelem > (uint64_t)INT64_MAX / ne)
            return sk_error_set(c->err, SK_ERR_FORMAT,
                                "gguf: tensor '%s': element count overflows int64 at dimension %u",
                                str_show(t->name, nb, sizeof nb), d);
        nelem *= ne;
        t->ne[d] = (int64_t)ne;
    }
    if ((st = cur_u32(c, &t->type, what)) || (st = cur_u64(c, &t->offset, what))) return st;
    uint64_t blck, bsize;
    if (!type_block(t->type, &blck, &bsize))
        return sk_error_set(c->err, SK_ERR_UNSUPPORTED,
                            "gguf: tensor '%s': tensor type %u is unknown or unsupported",
                            str_show(t->name, nb, sizeof nb), t->type);
    if ((uint64_t)t->ne[0] % blck)
        return sk_error_set(c->err, SK_ERR_FORMAT,
                            "gguf: tensor '%s': row length %lld is not a multiple of the "
                            "block size %llu of type %u",
                            str_show(t->name, nb, sizeof nb), (long long)t->ne[0],
                            (unsigned long long)blck, t->type);
    uint64_t nblocks = nelem / blck;
    if (nblocks > UINT64_MAX / bsize || nblocks * bsize > c->size)
        return sk_error_set(c->err, SK_ERR_FORMAT,
                            "gguf: tensor '%s': data size exceeds the file size %llu",
                            str_show(t->name, nb, sizeof nb), (unsigned long long)c->size);
    t->nbytes = nblocks * bsize;
    return SK_OK;
}

static sk_status check_tensor_data(gguf_ctx *ctx, const gguf_tensor **by_off, sk_error *err) {
    char nb[72], nb2[72];
    uint64_t avail = ctx->size - ctx->data_offset;
    for (uint64_t i = 0; i < ctx->n_tensors; i++) {
        gguf_tensor *t = &ctx->tensors[i];
        if (t->offset % ctx->alignment)
            return sk_error_set(err, SK_ERR_FORMAT,
                                "gguf: tensor '%s': data offset %llu is not a multiple of the "
                                "alignment %llu",
                                str_show(t->name, nb, sizeof nb), (unsigned long long)t->offset,
                                (unsigned long long)ctx->alignment);
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return sk_error_set(err, SK_ERR_FORMAT,
                                "gguf: tensor '%s': data [%llu, +%llu) runs past the end of the "
                                "data section (%llu bytes)",
                                str_show(t->name, nb, sizeof nb), (unsigned long long)t->offset,
                                (unsigned long long)t->nbytes, (unsigned long long)avail);
        t->data = ctx->base + ctx->data_offset + t->offset;
        by_off[i] = t;
    }
    if (ctx->n_tensors > 1) qsort(by_off, (size_t)ctx->n_tensors, sizeof *by_off, cmp_tensor_off);
    for (uint64_t i = 1; i < ctx->n_tensors; i++) {
        const gguf_tensor *a = by_off[i - 1], *b = by_off[i];
        if (a->offset + a->nbytes > b->offset)
            return sk_error_set(err, SK_ERR_FORMAT,
                                "gguf: tensors '%s' and '%s' overlap in the data section",
                                str_show(a->name, nb, sizeof nb),
                                str_show(b->name, nb2, sizeof nb2));
    }
    return SK_OK;
}

static sk_status parse_all(gguf_ctx *ctx, cursor *c) {
    char nb[72], what[48];
    sk_status st;
    uint64_t n_kv, n_tensors;
    if (c->size < 4 || memcmp(c->p, "GGUF", 4) != 0)
        return sk_error_set(c->err, SK_ERR_FORMAT, "gguf: bad magic (not a GGUF file)");
    c->pos = 4;
    if ((st = cur_u32(c, &ctx->version, "header version"))) return st;
    if (ctx->version != 2 && ctx->version != 3)
        return sk_error_set(c->err, SK_ERR_FORMAT,
                            "gguf: unsupported version %u (only 2 and 3 are supported)%s",
                            ctx->version,
                            ctx->version && (ctx->version & 0xffff) == 0 ? " (big-endian file?)" : "");
    if ((st = cur_u64(c, &n_tensors, "header tensor count")) ||
        (st = cur_u64(c, &n_kv, "header kv count")))
        return st;
    if (n_tensors > cur_left(c) / MIN_TENSOR_BYTES)
        return sk_error_set(c->err, SK_ERR_FORMAT,
                            "gguf: tensor count %llu cannot fit in the %llu remaining bytes",
                            (unsigned long long)n_tensors, (unsigned long long)cur_left(c));
    if (n_kv > cur_left(c) / MIN_KV_BYTES)
        return sk_error_set(c->err, SK_ERR_FORMAT,
                            "gguf: kv count %llu cannot fit in the %llu remaining bytes",
                            (unsigned long long)n_kv, (unsigned long long)cur_left(c));

    gguf_priv *pv = ctx->priv;
    ctx->kv = calloc(n_kv ? n_kv : 1, sizeof *ctx->kv);
    pv->kv_sorted = calloc(n_kv ? n_kv : 1, sizeof *pv->kv_sorted);
    if (!ctx->kv || !pv->kv_sorted) return sk_error_set(c->err, SK_ERR_NOMEM, "gguf: out of memory");
    for (uint64_t i = 0; i < n_kv; i++) {
        gguf_kv *kv = &ctx->kv[i];
        uint64_t start = c->pos;
        uint32_t vt;
        snprintf(what, sizeof what, "kv %llu", (unsigned long long)i);
        if ((st = cur_str(c, &kv->key, what))) return st;
        ctx->n_kv = i + 1; /* from here on, gguf_free releases this entry */
        snprintf(what, sizeof what, "kv '%.30s'", str_show(kv->key, nb, sizeof nb));
        if ((st = cur_u32(c, &vt, what))) return st;
        if (vt >= GGUF_TYPE_COUNT)
            return sk_error_set(c->err, SK_ERR_FORMAT,
                                "gguf: %s at offset %llu: value type %u out of range",
                                what, (unsigned long long)start, vt);
        kv->type = (enum gguf_type)vt;
        if ((st = parse_value(c, kv, what))) return st;
        pv->kv_sorted[i] = kv;
    }
    if (n_kv > 1) qsort(pv->kv_sorted, (size_t)n_kv, sizeof *pv->kv_sorted, cmp_kv);
    for (uint64_t i = 1; i < n_kv; i++)
        if (str_cmp(pv->kv_sorted[i - 1]->key, pv->kv_sorted[i]->key) == 0)
            return sk_error_set(c->err, SK_ERR_FORMAT, "gguf: duplicate key '%s'",
                                str_show(pv->kv_sorted[i]->key, nb, sizeof nb));

    ctx->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *al = gguf_find_kv(ctx, "general.alignment");
    if (al) {
        if (al->type != GGUF_TYPE_UINT32)
            return sk_error_set(c->err, SK_ERR_FORMAT,
                                "gguf: general.alignment has type %s, expected uint32",
                                gguf_type_name(al->type));
        if (al->v.u == 0 || al->v.u > (1u << 30) || (al->v.u & (al->v.u - 1)))
            return sk_error_set(c->err, SK_ERR_FORMAT,
                                "gguf: general.alignment %llu is not a power of two in [1, 2^30]",
                                (unsigned long long)al->v.u);
        ctx->alignment = al->v.u;
    }

    if (n_tensors > cur_left(c) / MIN_TENSOR_BYTES)
        return sk_error_set(c->err, SK_ERR_FORMAT,
                            "gguf: tensor count %llu cannot fit in the %llu bytes after the "
                            "metadata",
                            (unsigned long long)n_tensors, (unsigned long long)cur_left(c));
    ctx->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *ctx->tensors);
    pv->t_sorted = calloc(n_tensors ? n_tensors : 1, sizeof *pv->t_sorted);
    if (!ctx->tensors || !pv->t_sorted)
        return sk_error_set(c->err, SK_ERR_NOMEM, "gguf: out of memory");
    for (uint64_t i = 0; i < n_tensors; i++) {
        if ((st = parse_tensor(c, &ctx->tensors[i], i))) return st;
        pv->t_sorted[i] = &ctx->tensors[i];
    }
    ctx->n_tensors = n_tensors;
    if (n_tensors > 1) qsort(pv->t_sorted, (size_t)n_tensors, sizeof *pv->t_sorted, cmp_tensor_name);
    for (uint64_t i = 1; i < n_tensors; i++)
        if (str_cmp(pv->t_sorted[i - 1]->name, pv->t_sorted[i]->name) == 0)
            return sk_error_set(c->err, SK_ERR_FORMAT, "gguf: duplicate tensor name '%s'",
                                str_show(pv->t_sorted[i]->name, nb, sizeof nb));

    /* pos <= size <= UINT64_MAX and alignment <= 2^30: the round-up can only
     * overflow for spans within 2^30 of 2^64, which cannot exist. */
    uint64_t pad = (ctx->alignment - c->pos % ctx->alignment) % ctx->alignment;
    if (pad > cur_left(c))
        return sk_error_set(c->err, SK_ERR_FORMAT,
                            "gguf: truncated: padding before the data section (offset %llu, "
                            "alignment %llu) runs past the end",
                            (unsigned long long)c->pos, (unsigned long long)ctx->alignment);
    ctx->data_offset = c->pos + pad;

    const gguf_tensor **by_off = calloc(n_tensors ? n_tensors : 1, sizeof *by_off);
    if (!by_off) return sk_error_set(c->err, SK_ERR_NOMEM, "gguf: out of memory");
    st = check_tensor_data(ctx, by_off, c->err);
    free(by_off);
    return st;
}

/* Parse and validate the span (contract in gguf.h). On failure the partly
 * built context is released here and *out stays NULL. */
sk_status gguf_parse(const void *data, uint64_t size, gguf_ctx **out, sk_error *err) {
    if (!out) return sk_error_set(err, SK_ERR_INVALID, "gguf_parse: out is NULL");
    *out = NULL;
    if (!data && size)
        return sk_error_set(err, SK_ERR_INVALID, "gguf_parse: data is NULL with size %llu",
                            (unsigned long long)size);
    gguf_ctx *ctx = calloc(1, sizeof *ctx);
    gguf_priv *pv = calloc(1, sizeof *pv);
    if (!ctx || !pv) {
        free(ctx);
        free(pv);
        return sk_error_set(err, SK_ERR_NOMEM, "gguf: out of memory");
    }
    ctx->priv = pv;
    ctx->base = data;
    ctx->size = size;
    cursor c = {.p = data, .size = size, .pos = 0, .err = err};
    sk_status st = parse_all(ctx, &c);
    if (st) {
        gguf_free(ctx);
        return st;
    }
    *out = ctx;
    return SK_OK;
}

/* Release ctx and every table it owns; NULL is a no-op. */
void gguf_free(gguf_ctx *ctx) {
    if (!ctx) return;
    if (ctx->kv)
        for (uint64_t i = 0; i < ctx->n_kv; i++)
            if (ctx->kv[i].type == GGUF_TYPE_ARRAY) arr_release(&ctx->kv[i].v.a);
    free(ctx->kv);
    free(ctx->tensors);
    gguf_priv *pv = ctx->priv;
    if (pv) {
        free(pv->kv_sorted);
        free(pv->t_sorted);
        free(pv);
    }
    free(ctx);
}

/* Binary search of the sorted key index; NULL if absent. */
const gguf_kv *gguf_find_kv(const gguf_ctx *ctx, const char *key) {
    if (!ctx || !key || !ctx->n_kv) return NULL;
    const gguf_priv *pv = ctx->priv;
    gguf_str k = {key, strlen(key)};
    const gguf_kv *const *hit =
        bsearch(&k, pv->kv_sorted, (size_t)ctx->n_kv, sizeof *pv->kv_sorted, cmp_key_kv);
    return hit ? *hit : NULL;
}

/* Binary search of the sorted name index; NULL if absent. */
const gguf_tensor *gguf_find_tensor(const gguf_ctx *ctx, const char *name) {
    if (!ctx || !name || !ctx->n_tensors) return NULL;
    const gguf_priv *pv = ctx->priv;
    gguf_str k = {name, strlen(name)};
    const gguf_tensor *const *hit =
        bsearch(&k, pv->t_sorted, (size_t)ctx->n_tensors, sizeof *pv->t_sorted, cmp_key_tensor);
    return hit ? *hit : NULL;
}

static const gguf_kv *get_kv(const gguf_ctx *ctx, const char *key, sk_error *err) {
    const gguf_kv *kv = gguf_find_kv(ctx, key);
    if (!kv) sk_error_set(err, SK_ERR_INVALID, "gguf: key '%s' not found", key ? key : "(null)");
    return kv;
}

static sk_status wrong_type(const char *key, const gguf_kv *kv, const char *want, sk_error *err) {
    return sk_error_set(err, SK_ERR_FORMAT, "gguf: key '%s' has type %s, expected %s", key,
                        gguf_type_name(kv->type), want);
}

/* Any integer type with a value >= 0; see gguf.h for the error codes. */
sk_status gguf_get_u64(const gguf_ctx *ctx, const char *key, uint64_t *out, sk_error *err) {
    const gguf_kv *kv = get_kv(ctx, key, err);
    if (!kv) return SK_ERR_INVALID;
    if (!type_is_int(kv->type)) return wrong_type(key, kv, "an integer", err);
    if (type_is_signed(kv->type) && kv->v.i < 0)
        return sk_error_set(err, SK_ERR_FORMAT, "gguf: key '%s' is negative (%lld)", key,
                            (long long)kv->v.i);
    *out = type_is_signed(kv->type) ? (uint64_t)kv->v.i : kv->v.u;
    return SK_OK;
}

/* FLOAT32/FLOAT64 or any integer type, converted to double. */
sk_status gguf_get_f64(const gguf_ctx *ctx, const char *key, double *out, sk_error *err) {
    const gguf_kv *kv = get_kv(ctx, key, err);
    if (!kv) return SK_ERR_INVALID;
    if (kv->type == GGUF_TYPE_FLOAT32 || kv->type == GGUF_TYPE_FLOAT64)
        *out = kv->v.f;
    else if (type_is_signed(kv->type))
        *out = (double)kv->v.i;
    else if (type_is_int(kv->type))
        *out = (double)kv->v.u;
    else
        return wrong_type(key, kv, "a number", err);
    return SK_OK;
}

/* BOOL only; *out is 0 or 1. */
sk_status gguf_get_bool(const gguf_ctx *ctx, const char *key, int *out, sk_error *err) {
    const gguf_kv *kv = get_kv(ctx, key, err);
    if (!kv) return SK_ERR_INVALID;
    if (kv->type != GGUF_TYPE_BOOL) return wrong_type(key, kv, "bool", err);
    *out = kv->v.u != 0;
    return SK_OK;
}

/* STRING only; *out points into the span (not NUL-terminated). */
sk_status gguf_get_str(const gguf_ctx *ctx, const char *key, gguf_str *out, sk_error *err) {
    const gguf_kv *kv = get_kv(ctx, key, err);
    if (!kv) return SK_ERR_INVALID;
    if (kv->type != GGUF_TYPE_STRING) return wrong_type(key, kv, "string", err);
    *out = kv->v.s;
    return SK_OK;
}

/* ARRAY only; *out is owned by ctx. */
sk_status gguf_get_arr(const gguf_ctx *ctx, const char *key, const gguf_arr **out, sk_error *err) {
    const gguf_kv *kv = get_kv(ctx, key, err);
    if (!kv) return SK_ERR_INVALID;
    if (kv->type != GGUF_TYPE_ARRAY) return wrong_type(key, kv, "array", err);
    *out = &kv->v.a;
    return SK_OK;
}

/* Element i of a numeric/bool array as int64 (floats truncate and
 * saturate; UINT64 above INT64_MAX wraps). 0 for string/array types.
 * Unaligned-safe; assumes a little-endian host like the rest of the engine. */
int64_t gguf_arr_i64(const gguf_arr *a, uint64_t i) {
    const uint8_t *p;
    unsigned es = type_size(a->type);
    if (!es || !a->data) return 0;
    p = a->data + i * es;
    switch (a->type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_BOOL: return p[0];
    case GGUF_TYPE_INT8: return (int8_t)p[0];
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
    case GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case GGUF_TYPE_UINT64: { uint64_t v; memcpy(&v, p, 8); return (int64_t)v; }
    case GGUF_TYPE_INT64: { int64_t v; memcpy(&v, p, 8); return v; }
    case GGUF_TYPE_FLOAT32: case GGUF_TYPE_FLOAT64: {
        double d = gguf_arr_f64(a, i);
        /* saturate: converting an out-of-range double to int64 is undefined */
        if (d != d) return 0;
        if (d >= 9223372036854775807.0) return INT64_MAX;
        if (d <= -9223372036854775808.0) return INT64_MIN;
        return (int64_t)d;
    }
    default: return 0;
    }
}

/* Element i of a numeric/bool array as double; 0 for string/array types. */
double gguf_arr_f64(const gguf_arr *a, uint64_t i) {
    if (!a->data) return 0.0;
    if (a->type == GGUF_TYPE_FLOAT32) {
        float v;
        memcpy(&v, a->data + i * 4, 4);
        return v;
    }
    if (a->type == GGUF_TYPE_FLOAT64) {
        double v;
        memcpy(&v, a->data + i * 8, 8);
        return v;
    }
    if (a->type == GGUF_TYPE_UINT64) {
        uint64_t v;
        memcpy(&v, a->data + i * 8, 8);
        return (double)v;
    }
    return (double)gguf_arr_i64(a, i);
}

/* Static name of a gguf value type; "invalid" when out of range. */
const char *gguf_type_name(uint32_t t) {
    static const char *const names[GGUF_TYPE_COUNT] = {
        "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
        "bool", "string", "array", "uint64", "int64", "float64",
    };
    return t < GGUF_TYPE_COUNT ? names[t] : "invalid";
}

/* 1 when s holds exactly the bytes of cstr, else 0 (also for cstr NULL). */
int gguf_str_eq(gguf_str s, const char *cstr) {
    if (!cstr) return 0;
    size_t n = strlen(cstr);
    return s.len == n && (n == 0 || memcmp(s.ptr, cstr, n) == 0);
}
