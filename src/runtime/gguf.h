/* gguf.h - GGUF reader over a read-only byte span.
 *
 * gguf_parse() validates the header, every metadata value (nested arrays
 * included) and every tensor info against the bytes that remain, with
 * overflow checks on every count, length, offset, dimension and product. It
 * never reads outside [data, data + size) and never copies tensor data: the
 * strings and tensor pointers it returns point into the span, which must
 * outlive the context. Supports GGUF versions 2 and 3 (little-endian).
 *
 * Ownership: the gguf_ctx owns the index arrays it allocates (kv, tensors,
 * string and nested-array tables); gguf_free releases them. */
#ifndef SK_GGUF_H
#define SK_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT = 13,
};

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

/* A string inside the span: not NUL-terminated. */
typedef struct gguf_str {
    const char *ptr;
    uint64_t len;
} gguf_str;

typedef struct gguf_arr {
    enum gguf_type type;    /* element type */
    uint64_t n;             /* element count */
    const uint8_t *data;    /* numeric/bool elements: raw little-endian, maybe unaligned */
    gguf_str *strs;         /* type STRING: n entries (owned by ctx) */
    struct gguf_arr *arrs;  /* type ARRAY: n nested arrays (owned by ctx) */
} gguf_arr;

typedef struct gguf_kv {
    gguf_str key;
    enum gguf_type type;
    union {
        uint64_t u;   /* UINT8, UINT16, UINT32, UINT64, BOOL (0/1) */
        int64_t i;    /* INT8, INT16, INT32, INT64 */
        double f;     /* FLOAT32, FLOAT64 */
        gguf_str s;   /* STRING */
        gguf_arr a;   /* ARRAY */
    } v;
} gguf_kv;

typedef struct gguf_tensor {
    gguf_str name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the row length; unused dims are 1 */
    uint32_t type;             /* enum sk_type */
    uint64_t offset;           /* relative to the data section */
    const void *data;          /* absolute pointer into the span */
    uint64_t nbytes;
} gguf_tensor;

typedef struct gguf_ctx {
    uint32_t version;
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    uint64_t alignment;    /* general.alignment or 32 */
    uint64_t data_offset;  /* start of the tensor data section within the span */
    const uint8_t *base;
    uint64_t size;
    void *priv;            /* implementation bookkeeping */
} gguf_ctx;

/* Parse the span. On success *out owns a new context; on failure *out is
 * NULL, err names what is wrong (with the byte offset where useful) and
 * nothing leaks. Rejects: bad magic, versions other than 2/3, counts that
 * cannot fit in the remaining bytes, strings past the end, value types out
 * of range, duplicate keys or tensor names, general.alignment that is not a
 * power of two in [1, 2^30] or not UINT32, n_dims outside 1..4, dimensions
 * <= 0 or whose product overflows, row lengths that are not a multiple of
 * the block size, unknown tensor types, misaligned/overlapping/out-of-span
 * tensor data. */
sk_status gguf_parse(const void *data, uint64_t size, gguf_ctx **out, sk_error *err);

/* Release a context; NULL is a no-op. Does not touch the span. */
void gguf_free(gguf_ctx *ctx);

/* Lookups: NULL if absent. Key/name compared as exact bytes. */
const gguf_kv *gguf_find_kv(const gguf_ctx *ctx, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_ctx *ctx, const char *name);

/* Typed getters: return SK_OK and set *out when key exists with a fitting
 * type; SK_ERR_FORMAT (with message naming key and type) when the key exists
 * with another type or an out-of-range value; SK_ERR_INVALID when absent
 * (message names the key) - callers with defaults test gguf_find_kv first.
 *   get_u64: any integer type, value >= 0
 *   get_f64: FLOAT32/FLOAT64 (or any integer type)
 *   get_bool: BOOL
 *   get_str: STRING
 *   get_arr: ARRAY */
sk_status gguf_get_u64(const gguf_ctx *ctx, const char *key, uint64_t *out, sk_error *err);
sk_status gguf_get_f64(const gguf_ctx *ctx, const char *key, double *out, sk_error *err);
sk_status gguf_get_bool(const gguf_ctx *ctx, const char *key, int *out, sk_error *err);
sk_status gguf_get_str(const gguf_ctx *ctx, const char *key, gguf_str *out, sk_error *err);
sk_status gguf_get_arr(const gguf_ctx *ctx, const char *key, const gguf_arr **out, sk_error *err);

/* Element i (< a->n) of a numeric array converted to double / int64.
 * Caller checks the index and a->type is numeric or bool. */
double gguf_arr_f64(const gguf_arr *a, uint64_t i);
int64_t gguf_arr_i64(const gguf_arr *a, uint64_t i);

/* Name of a gguf value type ("uint32", ...); "invalid" when out of range. */
const char *gguf_type_name(uint32_t t);

/* Compare a gguf_str with a C string. */
int gguf_str_eq(gguf_str s, const char *cstr);

#endif
