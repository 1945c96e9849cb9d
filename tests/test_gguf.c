/* test_gguf.c - the GGUF reader against hand-built files and the real model.
 *
 * Files are assembled in memory with a small byte builder (bb_*), then copied
 * into a buffer of exactly their size before parsing, so that AddressSanitizer
 * catches any read past the end. Every corrupt case must return a non-OK
 * status, a NULL context and a message that names the problem; the valid
 * file must read back value by value; every proper prefix of it must fail.
 *
 * Set GGUF_WRITE_CORPUS=dir to also write the valid files as fuzz seeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/gguf.h"
#include "kernels/quant.h"
#include "util_model.h"

/* ---- byte builder ----------------------------------------------------- */

typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static void bb_raw(bb *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        assert_non_null(b->p);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void bb_le(bb *b, uint64_t v, unsigned n) {
    uint8_t t[8];
    for (unsigned i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * i));
    bb_raw(b, t, n);
}

static void bb_u8(bb *b, uint8_t v) { bb_le(b, v, 1); }
static void bb_u16(bb *b, uint16_t v) { bb_le(b, v, 2); }
static void bb_u32(bb *b, uint32_t v) { bb_le(b, v, 4); }
static void bb_u64(bb *b, uint64_t v) { bb_le(b, v, 8); }
static void bb_f32(bb *b, float f) { uint32_t u; memcpy(&u, &f, 4); bb_u32(b, u); }
static void bb_f64(bb *b, double f) { uint64_t u; memcpy(&u, &f, 8); bb_u64(b, u); }
static void bb_str(bb *b, const char *s) { bb_u64(b, strlen(s)); bb_raw(b, s, strlen(s)); }
static void bb_free(bb *b) { free(b->p); memset(b, 0, sizeof *b); }

static void bb_hdr(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bb_raw(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}

static void kv_u32(bb *b, const char *key, uint32_t v) {
    bb_str(b, key); bb_u32(b, GGUF_TYPE_UINT32); bb_u32(b, v);
}

static void kv_str(bb *b, const char *key, const char *v) {
    bb_str(b, key); bb_u32(b, GGUF_TYPE_STRING); bb_str(b, v);
}

/* tensor info with n_dims dims taken from ne[] */
static void tinfo(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                  uint64_t offset) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims && i < 5; i++) bb_u64(b, ne[i]); /* ne[] holds <= 5 */
    bb_u32(b, type);
    bb_u64(b, offset);
}

/* pad to align, then n data bytes with a pattern */
static void bb_data(bb *b, uint64_t align, size_t n) {
    while (b->n % align) bb_u8(b, 0);
    for (size_t i = 0; i < n; i++) bb_u8(b, (uint8_t)(i * 7 + 1));
}

/* ---- parse helpers ---------------------------------------------------- */

/* Parse a copy of exactly n bytes (ASAN sees over-reads). Caller frees *copy. */
static sk_status parse_copy(const uint8_t *p, size_t n, uint8_t **copy, gguf_ctx **ctx,
                            sk_error *err) {
    *copy = malloc(n ? n : 1);
    assert_non_null(*copy);
    if (n) memcpy(*copy, p, n);
    memset(err, 0, sizeof *err);
    return gguf_parse(*copy, n, ctx, err);
}

static int contains_ci(const char *hay, const char *needle) {
    size_t hn = strlen(hay), nn = strlen(needle);
    for (size_t i = 0; i + nn <= hn; i++) {
        size_t j = 0;
        while (j < nn && tolower((unsigned char)hay[i + j]) == tolower((unsigned char)needle[j])) j++;
        if (j == nn) return 1;
    }
    return 0;
}

/* The file in b must be rejected with a message containing `needle`. */
static void expect_fail_n(const uint8_t *p, size_t n, const char *needle) {
    uint8_t *copy;
    gguf_ctx *ctx = (gguf_ctx *)&ctx; /* poison: must come back NULL */
    sk_error err;
    sk_status st = parse_copy(p, n, &copy, &ctx, &err);
    int bad = st == SK_OK || ctx != NULL || err.msg[0] == '\0' || err.code != st ||
              (needle && !contains_ci(err.msg, needle));
    if (bad)
        print_error("expected failure mentioning '%s'; got status %d, msg '%s'\n",
                    needle ? needle : "", (int)st, err.msg);
    if (st == SK_OK) gguf_free(ctx);
    free(copy);
    assert_false(bad);
}

static void expect_fail(bb *b, const char *needle) {
    expect_fail_n(b->p, b->n, needle);
    bb_free(b);
}

/* ---- the valid file --------------------------------------------------- */

enum { V_NT = 3, V_NKV = 20 };

/* Version `version`, alignment `align` (0: leave general.alignment out). */
static void build_valid(bb *b, uint32_t version, uint32_t align) {
    bb_hdr(b, version, V_NT, V_NKV - (align ? 0 : 1));
    kv_str(b, "general.architecture", "llama");
    if (align) kv_u32(b, "general.alignment", align);
    bb_str(b, "t.u8"); bb_u32(b, GGUF_TYPE_UINT8); bb_u8(b, 200);
    bb_str(b, "t.i8"); bb_u32(b, GGUF_TYPE_INT8); bb_u8(b, (uint8_t)-5);
    bb_str(b, "t.u16"); bb_u32(b, GGUF_TYPE_UINT16); bb_u16(b, 65535);
    bb_str(b, "t.i16"); bb_u32(b, GGUF_TYPE_INT16); bb_u16(b, (uint16_t)-300);
    kv_u32(b, "llama.block_count", 30);
    bb_str(b, "t.i32"); bb_u32(b, GGUF_TYPE_INT32); bb_u32(b, (uint32_t)-70000);
    bb_str(b, "t.f32"); bb_u32(b, GGUF_TYPE_FLOAT32); bb_f32(b, 1.5f);
    bb_str(b, "t.bool"); bb_u32(b, GGUF_TYPE_BOOL); bb_u8(b, 1);
    bb_str(b, "t.u64"); bb_u32(b, GGUF_TYPE_UINT64); bb_u64(b, UINT64_MAX);
    bb_str(b, "t.i64"); bb_u32(b, GGUF_TYPE_INT64); bb_u64(b, (uint64_t)INT64_MIN);
    bb_str(b, "t.f64"); bb_u32(b, GGUF_TYPE_FLOAT64); bb_f64(b, -2.25e100);
    kv_str(b, "t.empty_str", "");
    /* [1, -2, 3] int32 */
    bb_str(b, "t.arr_i32"); bb_u32(b, GGUF_TYPE_ARRAY); bb_u32(b, GGUF_TYPE_INT32); bb_u64(b, 3);
    bb_u32(b, 1); bb_u32(b, (uint32_t)-2); bb_u32(b, 3);
    /* ["a", "", "ccc"] */
    bb_str(b, "t.arr_str"); bb_u32(b, GGUF_TYPE_ARRAY); bb_u32(b, GGUF_TYPE_STRING); bb_u64(b, 3);
    bb_str(b, "a"); bb_str(b, ""); bb_str(b, "ccc");
    /* [0.5f, -1.0f] : the f32 elements land at odd offsets (unaligned reads) */
    bb_str(b, "t.arr_f32"); bb_u32(b, GGUF_TYPE_ARRAY); bb_u32(b, GGUF_TYPE_FLOAT32); bb_u64(b, 2);
    bb_f32(b, 0.5f); bb_f32(b, -1.0f);
    /* [[7u8, 8u8], [], [["x", "yz"]]] : nested arrays of mixed element types */
    bb_str(b, "t.nested"); bb_u32(b, GGUF_TYPE_ARRAY); bb_u32(b, GGUF_TYPE_ARRAY); bb_u64(b, 3);
    bb_u32(b, GGUF_TYPE_UINT8); bb_u64(b, 2); bb_u8(b, 7); bb_u8(b, 8);
    bb_u32(b, GGUF_TYPE_INT64); bb_u64(b, 0);
    bb_u32(b, GGUF_TYPE_ARRAY); bb_u64(b, 1);
    bb_u32(b, GGUF_TYPE_STRING); bb_u64(b, 2); bb_str(b, "x"); bb_str(b, "yz");
    /* [true, false] and an empty uint64 array */
    bb_str(b, "t.arr_bool"); bb_u32(b, GGUF_TYPE_ARRAY); bb_u32(b, GGUF_TYPE_BOOL); bb_u64(b, 2);
    bb_u8(b, 1); bb_u8(b, 0);
    bb_str(b, "t.arr_empty"); bb_u32(b, GGUF_TYPE_ARRAY); bb_u32(b, GGUF_TYPE_UINT64); bb_u64(b, 0);

    uint64_t al = align ? align : 32;
    /* F32 {4, 2}: 32 bytes at 0; Q4_1 {32}: 20 bytes; Q8_0 {64, 3}: 204 bytes */
    uint64_t o1 = 0, o2 = (32 + al - 1) / al * al, o3 = (o2 + 20 + al - 1) / al * al;
    tinfo(b, "w.f32", 2, (const uint64_t[]){4, 2}, SK_TYPE_F32, o1);
    tinfo(b, "w.q8", 2, (const uint64_t[]){64, 3}, SK_TYPE_Q8_0, o3);
    tinfo(b, "w.q41", 1, (const uint64_t[]){32}, SK_TYPE_Q4_1, o2);
    bb_data(b, al, (size_t)(o3 + 204));
}

static void maybe_write_seed(const bb *b, const char *name) {
    const char *dir = getenv("GGUF_WRITE_CORPUS");
    if (!dir) return;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b->p, 1, b->n, f), b->n);
    fclose(f);
}

static void check_valid(const gguf_ctx *ctx, uint32_t version, uint64_t align) {
    sk_error err;
    uint64_t u;
    double f;
    int bo;
    gguf_str s;
    const gguf_arr *a;

    assert_int_equal(ctx->version, version);
    assert_int_equal(ctx->n_tensors, V_NT);
    assert_int_equal(ctx->alignment, align);
    assert_int_equal(ctx->data_offset % align, 0);

    assert_int_equal(gguf_get_str(ctx, "general.architecture", &s, &err), SK_OK);
    assert_true(gguf_str_eq(s, "llama"));
    assert_int_equal(gguf_get_u64(ctx, "t.u8", &u, &err), SK_OK);
    assert_int_equal(u, 200);
    assert_int_equal(gguf_find_kv(ctx, "t.i8")->v.i, -5);
    assert_int_equal(gguf_get_u64(ctx, "t.u16", &u, &err), SK_OK);
    assert_int_equal(u, 65535);
    assert_int_equal(gguf_find_kv(ctx, "t.i16")->v.i, -300);
    assert_int_equal(gguf_get_u64(ctx, "llama.block_count", &u, &err), SK_OK);
    assert_int_equal(u, 30);
    assert_int_equal(gguf_find_kv(ctx, "t.i32")->v.i, -70000);
    assert_int_equal(gguf_get_f64(ctx, "t.i32", &f, &err), SK_OK);
    assert_true(f == -70000.0);
    assert_int_equal(gguf_get_f64(ctx, "t.f32", &f, &err), SK_OK);
    assert_true(f == 1.5);
    assert_int_equal(gguf_get_bool(ctx, "t.bool", &bo, &err), SK_OK);
    assert_int_equal(bo, 1);
    assert_int_equal(gguf_get_u64(ctx, "t.u64", &u, &err), SK_OK);
    assert_true(u == UINT64_MAX);
    assert_true(gguf_find_kv(ctx, "t.i64")->v.i == INT64_MIN);
    assert_int_equal(gguf_get_f64(ctx, "t.f64", &f, &err), SK_OK);
    assert_true(f == -2.25e100);
    assert_int_equal(gguf_get_str(ctx, "t.empty_str", &s, &err), SK_OK);
    assert_int_equal(s.len, 0);
    assert_true(gguf_str_eq(s, ""));

    assert_int_equal(gguf_get_arr(ctx, "t.arr_i32", &a, &err), SK_OK);
    assert_int_equal(a->type, GGUF_TYPE_INT32);
    assert_int_equal(a->n, 3);
    assert_int_equal(gguf_arr_i64(a, 0), 1);
    assert_int_equal(gguf_arr_i64(a, 1), -2);
    assert_true(gguf_arr_f64(a, 2) == 3.0);

    assert_int_equal(gguf_get_arr(ctx, "t.arr_str", &a, &err), SK_OK);
    assert_int_equal(a->type, GGUF_TYPE_STRING);
    assert_int_equal(a->n, 3);
    assert_non_null(a->strs);
    assert_true(gguf_str_eq(a->strs[0], "a"));
    assert_true(gguf_str_eq(a->strs[1], ""));
    assert_true(gguf_str_eq(a->strs[2], "ccc"));

    assert_int_equal(gguf_get_arr(ctx, "t.arr_f32", &a, &err), SK_OK);
    assert_int_equal(a->n, 2);
    assert_true(gguf_arr_f64(a, 0) == 0.5);
    assert_true(gguf_arr_f64(a, 1) == -1.0);
    assert_int_equal(gguf_arr_i64(a, 1), -1);

    assert_int_equal(gguf_get_arr(ctx, "t.nested", &a, &err), SK_OK);
    assert_int_equal(a->type, GGUF_TYPE_ARRAY);
    assert_int_equal(a->n, 3);
    assert_non_null(a->arrs);
    assert_int_equal(a->arrs[0].type, GGUF_TYPE_UINT8);
    assert_int_equal(a->arrs[0].n, 2);
    assert_int_equal(gguf_arr_i64(&a->arrs[0], 0), 7);
    assert_int_equal(gguf_arr_i64(&a->arrs[0], 1), 8);
    assert_int_equal(a->arrs[1].type, GGUF_TYPE_INT64);
    assert_int_equal(a->arrs[1].n, 0);
    assert_int_equal(a->arrs[2].type, GGUF_TYPE_ARRAY);
    assert_int_equal(a->arrs[2].n, 1);
    assert_int_equal(a->arrs[2].arrs[0].type, GGUF_TYPE_STRING);
    assert_int_equal(a->arrs[2].arrs[0].n, 2);
    assert_true(gguf_str_eq(a->arrs[2].arrs[0].strs[0], "x"));
    assert_true(gguf_str_eq(a->arrs[2].arrs[0].strs[1], "yz"));

    assert_int_equal(gguf_get_arr(ctx, "t.arr_bool", &a, &err), SK_OK);
    assert_int_equal(a->n, 2);
    assert_int_equal(gguf_arr_i64(a, 0), 1);
    assert_int_equal(gguf_arr_i64(a, 1), 0);
    assert_int_equal(gguf_get_arr(ctx, "t.arr_empty", &a, &err), SK_OK);
    assert_int_equal(a->type, GGUF_TYPE_UINT64);
    assert_int_equal(a->n, 0);

    /* tensors: order of the file, data pointers into the span */
    const gguf_tensor *t = gguf_find_tensor(ctx, "w.f32");
    assert_non_null(t);
    assert_ptr_equal(t, &ctx->tensors[0]);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 4);
    assert_int_equal(t->ne[1], 2);
    assert_int_equal(t->ne[2], 1);
    assert_int_equal(t->ne[3], 1);
    assert_int_equal(t->type, SK_TYPE_F32);
    assert_int_equal(t->nbytes, 32);
    assert_int_equal(t->offset, 0);
    assert_ptr_equal(t->data, ctx->base + ctx->data_offset);
    assert_int_equal(((const uint8_t *)t->data)[0], 1); /* the data pattern starts at 1 */
    t = gguf_find_tensor(ctx, "w.q41");
    assert_non_null(t);
    assert_int_equal(t->n_dims, 1);
    assert_int_equal(t->ne[0], 32);
    assert_int_equal(t->ne[1], 1);
    assert_int_equal(t->nbytes, 20);
    assert_int_equal(t->offset % align, 0);
    assert_ptr_equal(t->data, ctx->base + ctx->data_offset + t->offset);
    t = gguf_find_tensor(ctx, "w.q8");
    assert_non_null(t);
    assert_int_equal(t->type, SK_TYPE_Q8_0);
    assert_int_equal(t->nbytes, 204);
    assert_int_equal(ctx->data_offset + t->offset + t->nbytes, ctx->size);

    assert_null(gguf_find_tensor(ctx, "w"));
    assert_null(gguf_find_tensor(ctx, "w.q8x"));
    assert_null(gguf_find_kv(ctx, "t."));
    assert_null(gguf_find_kv(ctx, "nope"));
}

static void test_valid(void **state) {
    (void)state;
    static const struct { uint32_t version, align; const char *seed; } cases[] = {
        {3, 0, "valid_v3_default_align.gguf"},
        {3, 64, "valid_v3_align64.gguf"},
        {2, 1, "valid_v2_align1.gguf"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bb b = {0};
        uint8_t *copy;
        gguf_ctx *ctx = NULL;
        sk_error err;
        build_valid(&b, cases[i].version, cases[i].align);
        maybe_write_seed(&b, cases[i].seed);
        sk_status st = parse_copy(b.p, b.n, &copy, &ctx, &err);
        if (st != SK_OK) print_error("valid file %zu: %s\n", i, err.msg);
        assert_int_equal(st, SK_OK);
        assert_non_null(ctx);
        assert_int_equal(ctx->n_kv, V_NKV - (cases[i].align ? 0 : 1));
        check_valid(ctx, cases[i].version, cases[i].align ? cases[i].align : 32);
        gguf_free(ctx);
        free(copy);
        bb_free(&b);
    }
    gguf_free(NULL);
}

/* Every proper prefix of the valid file (length 0 .. size-1) must fail. */
static void test_truncations(void **state) {
    (void)state;
    bb b = {0};
    build_valid(&b, 3, 0);
    for (size_t n = 0; n < b.n; n++) {
        uint8_t *copy;
        gguf_ctx *ctx = (gguf_ctx *)&ctx;
        sk_error err;
        sk_status st = parse_copy(b.p, n, &copy, &ctx, &err);
        int bad = st == SK_OK || ctx != NULL || !err.msg[0];
        if (bad) print_error("prefix %zu of %zu: status %d msg '%s'\n", n, b.n, (int)st, err.msg);
        if (st == SK_OK) gguf_free(ctx);
        free(copy);
        if (bad) bb_free(&b);
        assert_false(bad);
    }
    bb_free(&b);
}

static void test_getters(void **state) {
    (void)state;
    bb b = {0};
    uint8_t *copy;
    gguf_ctx *ctx;
    sk_error err;
    uint64_t u;
    double f;
    int bo;
    gguf_str s;
    const gguf_arr *a;
    build_valid(&b, 3, 0);
    assert_int_equal(parse_copy(b.p, b.n, &copy, &ctx, &err), SK_OK);
    /* absent: INVALID naming the key */
    assert_int_equal(gguf_get_u64(ctx, "no.such.key", &u, &err), SK_ERR_INVALID);
    assert_non_null(strstr(err.msg, "no.such.key"));
    /* wrong types: FORMAT naming key and type */
    assert_int_equal(gguf_get_u64(ctx, "t.f32", &u, &err), SK_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "t.f32"));
    assert_non_null(strstr(err.msg, "float32"));
    assert_int_equal(gguf_get_u64(ctx, "t.i8", &u, &err), SK_ERR_FORMAT); /* negative */
    assert_non_null(strstr(err.msg, "negative"));
    assert_int_equal(gguf_get_u64(ctx, "t.bool", &u, &err), SK_ERR_FORMAT);
    assert_int_equal(gguf_get_f64(ctx, "t.arr_f32", &f, &err), SK_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "array"));
    assert_int_equal(gguf_get_bool(ctx, "t.u8", &bo, &err), SK_ERR_FORMAT);
    assert_int_equal(gguf_get_str(ctx, "t.arr_str", &s, &err), SK_ERR_FORMAT);
    assert_int_equal(gguf_get_arr(ctx, "general.architecture", &a, &err), SK_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "string"));
    /* type names */
    assert_string_equal(gguf_type_name(GGUF_TYPE_UINT32), "uint32");
    assert_string_equal(gguf_type_name(GGUF_TYPE_FLOAT64), "float64");
    assert_string_equal(gguf_type_name(13), "invalid");
    assert_string_equal(gguf_type_name(UINT32_MAX), "invalid");
    gguf_free(ctx);
    free(copy);
    bb_free(&b);
}

/* ---- header ----------------------------------------------------------- */

static void test_bad_magic(void **state) {
    (void)state;
    bb b = {0};
    build_valid(&b, 3, 0);
    b.p[3] = 'X';
    expect_fail(&b, "magic");
    expect_fail_n((const uint8_t *)"GGU", 3, "magic");
    expect_fail_n((const uint8_t *)"", 0, "magic");
}

static void test_bad_version(void **state) {
    (void)state;
    static const uint32_t versions[] = {0, 1, 4, 99, 0x03000000u, UINT32_MAX};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        bb b = {0};
        build_valid(&b, versions[i], 0);
        expect_fail(&b, "version");
    }
}

static void test_huge_counts(void **state) {
    (void)state;
    bb b = {0};
    bb_hdr(&b, 3, UINT64_MAX, 0);
    expect_fail(&b, "tensor count");
    bb_hdr(&b, 3, 0, UINT64_MAX);
    expect_fail(&b, "kv count");
    /* counts that are merely too large for the bytes that follow */
    bb_hdr(&b, 3, 0, 2);
    kv_u32(&b, "a", 1); /* 17 bytes: not enough for 2 kvs of >= 13 bytes each */
    expect_fail(&b, "kv count");
    bb_hdr(&b, 3, 1000000, 1);
    kv_u32(&b, "a", 1);
    expect_fail(&b, "tensor count");
    /* n_tensors fits the header's remaining bytes but not those after the kvs */
    bb_hdr(&b, 3, 2, 1);
    kv_str(&b, "a", "0123456789012345678901234567890123456789");
    bb_data(&b, 1, 20);
    expect_fail(&b, "tensor count");
}

/* ---- metadata --------------------------------------------------------- */

static void test_bad_strings(void **state) {
    (void)state;
    bb b = {0};
    /* key length 2^64-1 */
    bb_hdr(&b, 3, 0, 1);
    bb_u64(&b, UINT64_MAX); bb_u32(&b, GGUF_TYPE_UINT8); bb_u8(&b, 0);
    expect_fail(&b, "past the end");
    /* key length just past the end */
    bb_hdr(&b, 3, 0, 1);
    bb_u64(&b, 14); bb_raw(&b, "abcde", 5); bb_u32(&b, GGUF_TYPE_UINT8); bb_u8(&b, 0);
    expect_fail(&b, "past the end");
    /* string value length 2^64-1 */
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k"); bb_u32(&b, GGUF_TYPE_STRING); bb_u64(&b, UINT64_MAX); bb_raw(&b, "xxxx", 4);
    expect_fail(&b, "past the end");
    /* string value length past the end by one */
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k"); bb_u32(&b, GGUF_TYPE_STRING); bb_u64(&b, 5); bb_raw(&b, "xxxx", 4);
    expect_fail(&b, "past the end");
    /* string inside a string array past the end */
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k"); bb_u32(&b, GGUF_TYPE_ARRAY); bb_u32(&b, GGUF_TYPE_STRING); bb_u64(&b, 2);
    bb_str(&b, "ok"); bb_u64(&b, UINT64_MAX - 3); bb_raw(&b, "12345678", 8);
    expect_fail(&b, "past the end");
    /* tensor name length 2^64-1 */
    bb_hdr(&b, 3, 1, 0);
    bb_u64(&b, UINT64_MAX); bb_u32(&b, 1); bb_u64(&b, 1); bb_u32(&b, 0); bb_u64(&b, 0);
    expect_fail(&b, "past the end");
}

static void test_bad_arrays(void **state) {
    (void)state;
    static const uint32_t elem_types[] = {GGUF_TYPE_UINT8, GGUF_TYPE_UINT64, GGUF_TYPE_STRING,
                                          GGUF_TYPE_ARRAY, GGUF_TYPE_BOOL};
    bb b = {0};
    /* count 2^62 (and 2^64-1) of every kind of element */
    for (size_t i = 0; i < sizeof elem_types / sizeof elem_types[0]; i++) {
        for (int big = 0; big < 2; big++) {
            bb_hdr(&b, 3, 0, 1);
            bb_str(&b, "k"); bb_u32(&b, GGUF_TYPE_ARRAY); bb_u32(&b, elem_types[i]);
            bb_u64(&b, big ? UINT64_MAX : (uint64_t)1 << 62);
            bb_data(&b, 1, 64);
            expect_fail(&b, "array count");
        }
    }
    /* count just one too many for the bytes: 3 uint32 need 12, 11 present */
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k"); bb_u32(&b, GGUF_TYPE_ARRAY); bb_u32(&b, GGUF_TYPE_UINT32); bb_u64(&b, 3);
    bb_data(&b, 1, 11);
    expect_fail(&b, "array count");
    /* element type out of range: 13, 9999, 2^32-1 (top level and nested) */
    static const uint32_t bad_types[] = {13, 9999, UINT32_MAX};
    for (size_t i = 0; i < 3; i++) {
        bb_hdr(&b, 3, 0, 1);
        bb_str(&b, "k"); bb_u32(&b, GGUF_TYPE_ARRAY); bb_u32(&b, bad_types[i]); bb_u64(&b, 1);
        bb_data(&b, 1, 32);
        expect_fail(&b, "element type");
        bb_hdr(&b, 3, 0, 1);
        bb_str(&b, "k"); bb_u32(&b, GGUF_TYPE_ARRAY); bb_u32(&b, GGUF_TYPE_ARRAY); bb_u64(&b, 2);
        bb_u32(&b, GGUF_TYPE_UINT8); bb_u64(&b, 1); bb_u8(&b, 1);
        bb_u32(&b, bad_types[i]); bb_u64(&b, 1);
        bb_data(&b, 1, 32);
        expect_fail(&b, "element type");
    }
    /* nested array whose inner count is too large */
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k"); bb_u32(&b, GGUF_TYPE_ARRAY); bb_u32(&b, GGUF_TYPE_ARRAY); bb_u64(&b, 1);
    bb_u32(&b, GGUF_TYPE_STRING); bb_u64(&b, (uint64_t)1 << 62);
    bb_data(&b, 1, 32);
    expect_fail(&b, "array count");
    /* nesting deeper than the limit (valid shapes otherwise) */
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k"); bb_u32(&b, GGUF_TYPE_ARRAY);
    for (int d = 0; d < 40; d++) { bb_u32(&b, GGUF_TYPE_ARRAY); bb_u64(&b, 1); }
    bb_u32(&b, GGUF_TYPE_UINT8); bb_u64(&b, 0);
    expect_fail(&b, "nested");
    /* but a depth-8 nest parses */
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k"); bb_u32(&b, GGUF_TYPE_ARRAY);
    for (int d = 0; d < 8; d++) { bb_u32(&b, GGUF_TYPE_ARRAY); bb_u64(&b, 1); }
    bb_u32(&b, GGUF_TYPE_UINT16); bb_u64(&b, 1); bb_u16(&b, 4242);
    bb_data(&b, 32, 0);
    {
        uint8_t *copy;
        gguf_ctx *ctx;
        sk_error err;
        assert_int_equal(parse_copy(b.p, b.n, &copy, &ctx, &err), SK_OK);
        const gguf_arr *a = &gguf_find_kv(ctx, "k")->v.a;
        for (int d = 0; d < 8; d++) {
            assert_int_equal(a->type, GGUF_TYPE_ARRAY);
            assert_int_equal(a->n, 1);
            a = &a->arrs[0];
        }
        assert_int_equal(a->type, GGUF_TYPE_UINT16);
        assert_int_equal(gguf_arr_i64(a, 0), 4242);
        gguf_free(ctx);
        free(copy);
        bb_free(&b);
    }
    /* bool array element 2 */
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k"); bb_u32(&b, GGUF_TYPE_ARRAY); bb_u32(&b, GGUF_TYPE_BOOL); bb_u64(&b, 2);
    bb_u8(&b, 1); bb_u8(&b, 2);
    expect_fail(&b, "bool");
}

static void test_bad_value_type(void **state) {
    (void)state;
    static const uint32_t bad_types[] = {13, 9999, UINT32_MAX};
    bb b = {0};
    for (size_t i = 0; i < 3; i++) {
        bb_hdr(&b, 3, 0, 1);
        bb_str(&b, "k"); bb_u32(&b, bad_types[i]); bb_data(&b, 1, 32);
        expect_fail(&b, "value type");
    }
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k"); bb_u32(&b, GGUF_TYPE_BOOL); bb_u8(&b, 2);
    expect_fail(&b, "bool");
}

static void test_duplicate_keys(void **state) {
    (void)state;
    bb b = {0};
    bb_hdr(&b, 3, 0, 4);
    kv_u32(&b, "a.x", 1);
    kv_str(&b, "b", "v");
    kv_u32(&b, "a", 2); /* prefix of a.x: not a duplicate */
    kv_str(&b, "a.x", "again");
    expect_fail(&b, "duplicate key 'a.x'");
}

/* Many keys: duplicate detection must not be quadratic (300k keys take
 * seconds at O(n^2) under ASAN, milliseconds here). */
static void test_many_keys(void **state) {
    (void)state;
    enum { N = 300000 };
    char key[32];
    for (int dup = 0; dup < 2; dup++) {
        bb b = {0};
        bb_hdr(&b, 3, 0, N);
        for (int i = 0; i < N; i++) {
            snprintf(key, sizeof key, "k%07lld",
                     dup && i == N - 1 ? 12345LL : (long long)i * 7919 % N);
            bb_str(&b, key); bb_u32(&b, GGUF_TYPE_UINT8); bb_u8(&b, (uint8_t)i);
        }
        bb_data(&b, 32, 0);
        if (dup) {
            /* key 12345 appears twice only if (i*7919)%N hits it elsewhere: it does (bijection) */
            expect_fail(&b, "duplicate key 'k0012345'");
        } else {
            uint8_t *copy;
            gguf_ctx *ctx;
            sk_error err;
            assert_int_equal(parse_copy(b.p, b.n, &copy, &ctx, &err), SK_OK);
            assert_int_equal(ctx->n_kv, N);
            assert_non_null(gguf_find_kv(ctx, "k0299999"));
            assert_non_null(gguf_find_kv(ctx, "k0000000"));
            assert_null(gguf_find_kv(ctx, "k0300000"));
            gguf_free(ctx);
            free(copy);
            bb_free(&b);
        }
    }
}

static void test_bad_alignment(void **state) {
    (void)state;
    static const uint32_t bad[] = {0, 3, 13, 48, (uint32_t)1 << 31, UINT32_MAX};
    bb b = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        build_valid(&b, 3, 32);
        /* overwrite the value: general.alignment is the second kv */
        size_t at = 24 + (8 + 20 + 4 + 8 + 5) + (8 + 17 + 4);
        b.p[at] = (uint8_t)bad[i];
        b.p[at + 1] = (uint8_t)(bad[i] >> 8);
        b.p[at + 2] = (uint8_t)(bad[i] >> 16);
        b.p[at + 3] = (uint8_t)(bad[i] >> 24);
        expect_fail(&b, "not a power of two in [1, 2^30]");
    }
    /* wrong type: uint64 64, int32 32, string "32" */
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "general.alignment"); bb_u32(&b, GGUF_TYPE_UINT64); bb_u64(&b, 64);
    bb_data(&b, 64, 0);
    expect_fail(&b, "general.alignment has type uint64");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "general.alignment"); bb_u32(&b, GGUF_TYPE_INT32); bb_u32(&b, 32);
    bb_data(&b, 32, 0);
    expect_fail(&b, "general.alignment has type int32");
    bb_hdr(&b, 3, 0, 1);
    kv_str(&b, "general.alignment", "32");
    bb_data(&b, 32, 0);
    expect_fail(&b, "general.alignment has type string");
}

/* ---- tensor infos ----------------------------------------------------- */

/* One-tensor file with the given info; data section of data_n bytes. */
static void one_tensor(bb *b, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off,
                       size_t data_n) {
    bb_hdr(b, 3, 1, 0);
    tinfo(b, "w", n_dims, ne, type, off);
    bb_data(b, 32, data_n);
}

static void test_bad_dims(void **state) {
    (void)state;
    bb b = {0};
    const uint64_t ne5[5] = {32, 1, 1, 1, 1};
    one_tensor(&b, 0, ne5, SK_TYPE_F32, 0, 128);
    expect_fail(&b, "n_dims 0");
    one_tensor(&b, 5, ne5, SK_TYPE_F32, 0, 128);
    expect_fail(&b, "n_dims 5");
    one_tensor(&b, UINT32_MAX, ne5, SK_TYPE_F32, 0, 128);
    expect_fail(&b, "n_dims");
    one_tensor(&b, 2, (const uint64_t[]){32, 0}, SK_TYPE_F32, 0, 128);
    expect_fail(&b, "dimension 1 is 0");
    one_tensor(&b, 1, (const uint64_t[]){0}, SK_TYPE_F32, 0, 128);
    expect_fail(&b, "dimension 0 is 0");
    one_tensor(&b, 2, (const uint64_t[]){32, (uint64_t)-1}, SK_TYPE_F32, 0, 128);
    expect_fail(&b, "dimension 1 is -1");
    one_tensor(&b, 1, (const uint64_t[]){(uint64_t)INT64_MIN}, SK_TYPE_F32, 0, 128);
    expect_fail(&b, "must be > 0");
    /* 2^42+1 alone: no overflow, but far more data than the file holds */
    one_tensor(&b, 1, (const uint64_t[]){((uint64_t)1 << 42) + 1}, SK_TYPE_F32, 0, 128);
    expect_fail(&b, "exceeds the file size");
    one_tensor(&b, 2, (const uint64_t[]){32, ((uint64_t)1 << 42) + 1}, SK_TYPE_Q8_0, 0, 128);
    expect_fail(&b, "exceeds the file size");
    /* products that overflow int64 */
    one_tensor(&b, 2, (const uint64_t[]){((uint64_t)1 << 42) + 1, ((uint64_t)1 << 42) + 1},
               SK_TYPE_F32, 0, 128);
    expect_fail(&b, "overflow");
    one_tensor(&b, 4, (const uint64_t[]){1u << 16, 1u << 16, 1u << 16, 1u << 15}, SK_TYPE_F32, 0,
               128);
    expect_fail(&b, "overflow");
    /* product fits int64 exactly (2^62) but bytes (x4) would wrap uint64 */
    one_tensor(&b, 2, (const uint64_t[]){(uint64_t)1 << 31, (uint64_t)1 << 31}, SK_TYPE_F32, 0,
               128);
    expect_fail(&b, "exceeds the file size");
    one_tensor(&b, 1, (const uint64_t[]){(uint64_t)INT64_MAX}, SK_TYPE_F32, 0, 128);
    expect_fail(&b, "exceeds the file size");
}

static void test_bad_types(void **state) {
    (void)state;
    bb b = {0};
    /* Q4_1 row of 33: not a multiple of 32 */
    one_tensor(&b, 2, (const uint64_t[]){33, 2}, SK_TYPE_Q4_1, 0, 1024);
    expect_fail(&b, "not a multiple of the block size 32");
    /* Q6_K row of 32: not a multiple of 256 */
    one_tensor(&b, 1, (const uint64_t[]){32}, SK_TYPE_Q6_K, 0, 1024);
    expect_fail(&b, "block size 256");
    /* unknown / unsupported: 99, 10 (Q2_K), 4 (removed Q4_2), 2^32-1 */
    static const uint32_t bad[] = {99, 10, 4, 31, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        one_tensor(&b, 1, (const uint64_t[]){256}, bad[i], 0, 4096);
        expect_fail(&b, "unknown or unsupported");
    }
}

static void test_duplicate_tensors(void **state) {
    (void)state;
    bb b = {0};
    bb_hdr(&b, 3, 3, 0);
    tinfo(&b, "w", 1, (const uint64_t[]){8}, SK_TYPE_F32, 0);
    tinfo(&b, "v", 1, (const uint64_t[]){8}, SK_TYPE_F32, 32);
    tinfo(&b, "w", 1, (const uint64_t[]){8}, SK_TYPE_F32, 64);
    bb_data(&b, 32, 96);
    expect_fail(&b, "duplicate tensor name 'w'");
}

static void test_bad_offsets(void **state) {
    (void)state;
    bb b = {0};
    /* misaligned (16 with default alignment 32) */
    one_tensor(&b, 1, (const uint64_t[]){8}, SK_TYPE_F32, 16, 64);
    expect_fail(&b, "not a multiple of the alignment");
    /* misaligned against an explicit alignment 64 */
    bb_hdr(&b, 3, 1, 1);
    kv_u32(&b, "general.alignment", 64);
    tinfo(&b, "w", 1, (const uint64_t[]){8}, SK_TYPE_F32, 32);
    bb_data(&b, 64, 128);
    expect_fail(&b, "alignment 64");
    /* past the end: offset beyond, data crossing the end by one byte, 2^64-32 */
    one_tensor(&b, 1, (const uint64_t[]){8}, SK_TYPE_F32, 64, 64);
    expect_fail(&b, "past the end");
    one_tensor(&b, 1, (const uint64_t[]){8}, SK_TYPE_F32, 0, 31);
    expect_fail(&b, "past the end");
    one_tensor(&b, 1, (const uint64_t[]){8}, SK_TYPE_F32, UINT64_MAX - 31, 64);
    expect_fail(&b, "past the end");
    /* no data section at all */
    bb_hdr(&b, 3, 1, 0);
    tinfo(&b, "w", 1, (const uint64_t[]){8}, SK_TYPE_F32, 0);
    expect_fail(&b, NULL);
    /* overlap: second starts inside the first (listed out of order) */
    bb_hdr(&b, 3, 3, 0);
    tinfo(&b, "c", 1, (const uint64_t[]){8}, SK_TYPE_F32, 128);
    tinfo(&b, "a", 1, (const uint64_t[]){16}, SK_TYPE_F32, 0); /* 64 bytes: [0, 64) */
    tinfo(&b, "b", 1, (const uint64_t[]){8}, SK_TYPE_F32, 32);
    bb_data(&b, 32, 256);
    expect_fail(&b, "overlap");
    /* overlap: same offset */
    bb_hdr(&b, 3, 2, 0);
    tinfo(&b, "a", 1, (const uint64_t[]){8}, SK_TYPE_F32, 32);
    tinfo(&b, "b", 1, (const uint64_t[]){8}, SK_TYPE_F32, 32);
    bb_data(&b, 32, 256);
    expect_fail(&b, "overlap");
    /* adjacent, unordered: fine */
    bb_hdr(&b, 3, 2, 0);
    tinfo(&b, "b", 1, (const uint64_t[]){8}, SK_TYPE_F32, 32);
    tinfo(&b, "a", 1, (const uint64_t[]){8}, SK_TYPE_F32, 0);
    bb_data(&b, 32, 64);
    {
        uint8_t *copy;
        gguf_ctx *ctx;
        sk_error err;
        assert_int_equal(parse_copy(b.p, b.n, &copy, &ctx, &err), SK_OK);
        assert_int_equal(ctx->n_tensors, 2);
        assert_int_equal(gguf_find_tensor(ctx, "b")->offset, 32);
        gguf_free(ctx);
        free(copy);
        bb_free(&b);
    }
}

/* ---- the real model --------------------------------------------------- */

static void test_real_model(void **state) {
    (void)state;
    const char *path = test_model_path();
    if (!test_need_file("the model (SINKLLM_MODEL)", path)) skip();
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    assert_true(map != MAP_FAILED);

    gguf_ctx *ctx = NULL;
    sk_error err = {0};
    sk_status st = gguf_parse(map, (uint64_t)sb.st_size, &ctx, &err);
    if (st) print_error("%s: %s\n", path, err.msg);
    assert_int_equal(st, SK_OK);
    assert_int_equal(ctx->version, 3);
    assert_int_equal(ctx->n_tensors, 272);
    assert_int_equal(ctx->n_kv, 33); /* the header's own count (gguf-py adds 3 synthetic) */
    assert_int_equal(ctx->alignment, 32);

    uint64_t u;
    gguf_str s;
    const gguf_arr *a;
    assert_int_equal(gguf_get_u64(ctx, "llama.block_count", &u, &err), SK_OK);
    assert_int_equal(u, 30);
    assert_int_equal(gguf_get_str(ctx, "general.architecture", &s, &err), SK_OK);
    assert_true(gguf_str_eq(s, "llama"));
    assert_int_equal(gguf_get_arr(ctx, "tokenizer.ggml.tokens", &a, &err), SK_OK);
    assert_int_equal(a->type, GGUF_TYPE_STRING);
    assert_int_equal(a->n, 49152);
    assert_non_null(a->strs);

    const gguf_tensor *t = gguf_find_tensor(ctx, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->type, SK_TYPE_Q8_0);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 576);
    assert_int_equal(t->ne[1], 49152);
    assert_int_equal(t->nbytes, (uint64_t)576 / 32 * 34 * 49152);
    for (uint64_t i = 0; i < ctx->n_tensors; i++) {
        const gguf_tensor *ti = &ctx->tensors[i];
        assert_true((const uint8_t *)ti->data + ti->nbytes <= ctx->base + ctx->size);
    }
    assert_non_null(gguf_find_tensor(ctx, "blk.29.ffn_down.weight"));

    gguf_free(ctx);
    munmap(map, (size_t)sb.st_size);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_bad_version),
        cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_bad_strings),
        cmocka_unit_test(test_bad_arrays),
        cmocka_unit_test(test_bad_value_type),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_bad_alignment),
        cmocka_unit_test(test_bad_dims),
        cmocka_unit_test(test_bad_types),
        cmocka_unit_test(test_duplicate_tensors),
        cmocka_unit_test(test_bad_offsets),
        cmocka_unit_test(test_real_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
