/* json_schema.c - JSON schema -> GBNF (API: include/sinkllm.h, section
 * "grammars": sk_json_schema_to_gbnf, sk_grammar_from_json_schema).
 *
 * Two steps. A small JSON reader (RFC 8259: strict syntax, depth at most
 * MAX_JSON_DEPTH, \u escapes decoded, lone surrogates refused) builds a
 * tree of nodes in one array (children as first/next links, object members
 * carry their key). Then every schema node becomes one rule "rN" (memoized
 * per node, registered before its body is written, so $ref recursion is
 * grammar recursion), on top of fixed rules for JSON itself (value, object,
 * array, string, number, integer, boolean, null, ws).
 *
 * Choices that keep every output valid against the schema:
 *   - an object lists its known properties in the schema's order, the
 *     required ones always, the others optionally; extra properties only
 *     when none are listed (additionalProperties true or absent: any
 *     object; a schema: a map of it; false: "{}");
 *   - a string escape is one code point (no surrogate \u escapes), so
 *     minLength/maxLength count what a validator counts;
 *   - oneOf is written as anyOf (alternatives that overlap would let an
 *     instance match two);
 *   - enum/const values are written as compact JSON, filtered by "type"
 *     when both are present;
 *   - whitespace is [ \t\n]{0,20} (a model cannot loop on it forever),
 *     numbers have at most 16 digits before and after the point.
 * Unknown keywords are refused by name (a validator would enforce what the
 * grammar ignores), annotations are ignored.
 *
 * Error convention: sk_status + sk_error; the message names the keyword
 * and where it is ("at /properties/a"). Owns nothing after it returns but
 * the GBNF text it hands out. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinkllm.h"

#define MAX_JSON_DEPTH 64
#define MAX_GEN_DEPTH 256  /* schema nesting, $ref chains included */
#define MAX_COUNT 1000     /* minItems, maxItems, minLength, maxLength */

/* ---- a small JSON reader ------------------------------------------------ */

enum { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jnode {
    int type;
    uint32_t first, next;   /* first child, next sibling (0 = none; node 0 is never a child) */
    uint32_t n_kids;
    uint64_t s, len;        /* J_STR: decoded bytes in strs; J_NUM: the source text in src */
    uint64_t key, key_len;  /* a member of an object: its key in strs */
} jnode;

typedef struct jdoc {
    const char *src, *p, *end;
    jnode *n;
    uint32_t n_nodes, cap;
    char *strs;
    uint64_t n_strs, cap_strs;
    sk_error *err;
    sk_status st;
} jdoc;

static int jfail(jdoc *d, sk_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Record the first error of d: "json schema: MESSAGE" (malformed JSON) or
 * "MESSAGE (at PATH)" (a schema keyword; where is the JSON pointer). */
static int vfail(jdoc *d, sk_status code, const char *where, const char *fmt, va_list ap) {
    if (d->st) return -1;
    char msg[200];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (where) d->st = sk_error_set(d->err, code, "%s (at %s)", msg, where);
    else d->st = sk_error_set(d->err, code, "json schema: %s", msg);
    return -1;
}

static int jfail(jdoc *d, sk_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(d, code, NULL, fmt, ap);
    va_end(ap);
    return -1;
}

static int64_t jnew(jdoc *d, int type) {
    if (d->n_nodes == d->cap) {
        uint32_t c = d->cap ? d->cap * 2 : 64;
        jnode *v = realloc(d->n, sizeof *v * c);
        if (!v) return jfail(d, SK_ERR_NOMEM, "out of memory");
        d->n = v;
        d->cap = c;
    }
    memset(&d->n[d->n_nodes], 0, sizeof d->n[0]);
    d->n[d->n_nodes].type = type;
    return d->n_nodes++;
}

static int sput(jdoc *d, const char *b, size_t k) {
    if (d->n_strs + k > d->cap_strs) {
        uint64_t c = d->cap_strs ? d->cap_strs : 256;
        while (c < d->n_strs + k) c *= 2;
        char *v = realloc(d->strs, (size_t)c);
        if (!v) return jfail(d, SK_ERR_NOMEM, "out of memory");
        d->strs = v;
        d->cap_strs = c;
    }
    memcpy(d->strs + d->n_strs, b, k);
    d->n_strs += k;
    return 0;
}

static void jspace(jdoc *d) {
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r')) d->p++;
}

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* A JSON string at d->p into strs; *off, *len its decoded bytes. */
static int jstring(jdoc *d, uint64_t *off, uint64_t *len) {
    d->p++;
    *off = d->n_strs;
    while (d->p < d->end && *d->p != '"') {
        unsigned char c = (unsigned char)*d->p;
        if (c < 0x20) return jfail(d, SK_ERR_FORMAT, "malformed JSON: control character in a string");
        if (c >= 0x80) { /* a whole, valid UTF-8 sequence */
            size_t k = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
            const unsigned char *q = (const unsigned char *)d->p;
            int ok = k && (size_t)(d->end - d->p) >= k;
            for (size_t i = 1; ok && i < k; i++) ok = (q[i] & 0xC0) == 0x80;
            if (ok && k == 3) ok = !(c == 0xE0 && q[1] < 0xA0) && !(c == 0xED && q[1] > 0x9F);
            if (ok && k == 4) ok = !(c == 0xF0 && q[1] < 0x90) && !(c == 0xF4 && q[1] > 0x8F);
            if (!ok) return jfail(d, SK_ERR_FORMAT, "malformed JSON: invalid UTF-8 in a string");
            if (sput(d, d->p, k)) return -1;
            d->p += k;
            continue;
        }
        if (c != '\\') {
            if (sput(d, d->p++, 1)) return -1;
            continue;
        }
        if (d->end - d->p < 2) break;
        char e = d->p[1];
        d->p += 2;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char out[] = "\"\\/\b\f\n\r\t";
            if (sput(d, &out[simple - "\"\\/bfnrt"], 1)) return -1;
            continue;
        }
        if (e != 'u' || d->end - d->p < 4) return jfail(d, SK_ERR_FORMAT, "malformed JSON: bad escape in a string");
        int u = hex4(d->p);
        if (u < 0) return jfail(d, SK_ERR_FORMAT, "malformed JSON: bad \\u escape");
        d->p += 4;
        uint32_t cp = (uint32_t)u;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            int lo = d->end - d->p >= 6 && d->p[0] == '\\' && d->p[1] == 'u' ? hex4(d->p + 2) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF) return jfail(d, SK_ERR_FORMAT, "malformed JSON: lone surrogate \\u%04X", cp);
            cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
            d->p += 6;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return jfail(d, SK_ERR_FORMAT, "malformed JSON: lone surrogate \\u%04X", cp);
        }
        char b[4];
        size_t k = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (k == 1) b[0] = (char)cp;
        else if (k == 2) b[0] = (char)(0xC0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3F));
        else if (k == 3) b[0] = (char)(0xE0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[2] = (char)(0x80 | (cp & 0x3F));
        else b[0] = (char)(0xF0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3F)), b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F));
        if (sput(d, b, k)) return -1;
    }
    if (d->p >= d->end) return jfail(d, SK_ERR_FORMAT, "malformed JSON: unterminated string");
    d->p++;
    *len = d->n_strs - *off;
    return 0;
}

static int64_t jvalue(jdoc *d, int depth);

/* Append child c to parent's list (tail kept in *tail). */
static void jlink(jdoc *d, uint32_t parent, uint32_t *tail, uint32_t c) {
    if (*tail) d->n[*tail].next = c;
    else d->n[parent].first = c;
    *tail = c;
    d->n[parent].n_kids++;
}

static int64_t jcontainer(jdoc *d, int depth, int obj) {
    if (depth >= MAX_JSON_DEPTH) return jfail(d, SK_ERR_UNSUPPORTED, "JSON nested deeper than %d", MAX_JSON_DEPTH);
    int64_t me = jnew(d, obj ? J_OBJ : J_ARR);
    if (me < 0) return -1;
    uint32_t tail = 0;
    d->p++;
    jspace(d);
    if (d->p < d->end && *d->p == (obj ? '}' : ']')) {
        d->p++;
        return me;
    }
    for (;;) {
        uint64_t key = 0, key_len = 0;
        if (obj) {
            jspace(d);
            if (d->p >= d->end || *d->p != '"') return jfail(d, SK_ERR_FORMAT, "malformed JSON: expected a key");
            if (jstring(d, &key, &key_len)) return -1;
            jspace(d);
            if (d->p >= d->end || *d->p != ':') return jfail(d, SK_ERR_FORMAT, "malformed JSON: expected ':'");
            d->p++;
        }
        int64_t v = jvalue(d, depth + 1);
        if (v < 0) return -1;
        d->n[v].key = key;
        d->n[v].key_len = key_len;
        jlink(d, (uint32_t)me, &tail, (uint32_t)v);
        jspace(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (d->p < d->end && *d->p == (obj ? '}' : ']')) {
            d->p++;
            return me;
        }
        return jfail(d, SK_ERR_FORMAT, "malformed JSON: expected ',' or '%c'", obj ? '}' : ']');
    }
}

static int64_t jvalue(jdoc *d, int depth) {
    jspace(d);
    if (d->p >= d->end) return jfail(d, SK_ERR_FORMAT, "malformed JSON: unexpected end");
    char c = *d->p;
    if (c == '{' || c == '[') return jcontainer(d, depth, c == '{');
    if (c == '"') {
        int64_t me = jnew(d, J_STR);
        if (me < 0 || jstring(d, &d->n[me].s, &d->n[me].len)) return -1;
        return me;
    }
    static const char *const words[] = {"null", "false", "true"};
    for (int i = 0; i < 3; i++) {
        size_t k = strlen(words[i]);
        if ((size_t)(d->end - d->p) >= k && !memcmp(d->p, words[i], k)) {
            d->p += k;
            return jnew(d, J_NULL + i);
        }
    }
    /* number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
    const char *s = d->p;
    if (d->p < d->end && *d->p == '-') d->p++;
#define DIGITS(min_one)                                                                        \
    do {                                                                                       \
        const char *q = d->p;                                                                  \
        while (d->p < d->end && *d->p >= '0' && *d->p <= '9') d->p++;                          \
        if ((min_one) && d->p == q) return jfail(d, SK_ERR_FORMAT, "malformed JSON: bad number"); \
    } while (0)
    if (d->p < d->end && *d->p == '0') d->p++;
    else DIGITS(1);
    if (d->p < d->end && *d->p == '.') {
        d->p++;
        DIGITS(1);
    }
    if (d->p < d->end && (*d->p == 'e' || *d->p == 'E')) {
        d->p++;
        if (d->p < d->end && (*d->p == '+' || *d->p == '-')) d->p++;
        DIGITS(1);
    }
#undef DIGITS
    int64_t me = jnew(d, J_NUM);
    if (me < 0) return -1;
    d->n[me].s = (uint64_t)(s - d->src);
    d->n[me].len = (uint64_t)(d->p - s);
    return me;
}

static void jdoc_free(jdoc *d) {
    free(d->n);
    free(d->strs);
}

/* The member `key` of object node o (the last one of that name), or 0. */
static uint32_t jget(const jdoc *d, uint32_t o, const char *key) {
    if (d->n[o].type != J_OBJ) return 0;
    size_t k = strlen(key);
    uint32_t found = 0;
    for (uint32_t c = d->n[o].first; c; c = d->n[c].next)
        if (d->n[c].key_len == k && !memcmp(d->strs + d->n[c].key, key, k)) found = c;
    return found;
}

/* ---- output ------------------------------------------------------------- */

typedef struct sbuf {
    char *b;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *s, const char *p, size_t k) {
    if (s->oom) return;
    if (s->n + k + 1 > s->cap) {
        size_t c = s->cap ? s->cap : 1024;
        while (c < s->n + k + 1) c *= 2;
        char *v = realloc(s->b, c);
        if (!v) {
            s->oom = 1;
            return;
        }
        s->b = v;
        s->cap = c;
    }
    memcpy(s->b + s->n, p, k);
    s->n += k;
    s->b[s->n] = 0;
}

static void sb_printf(sbuf *s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void sb_printf(sbuf *s, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k > 0) sb_put(s, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

#define SB_LIT(s, lit) sb_put((s), (lit), sizeof(lit) - 1)

/* Bytes as a GBNF literal: "..." with \" \\ and control bytes escaped. */
static void sb_literal(sbuf *s, const char *p, size_t k) {
    SB_LIT(s, "\"");
    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\') sb_printf(s, "\\%c", c);
        else if (c < 0x20 || c == 0x7F) sb_printf(s, "\\x%02X", c);
        else sb_put(s, (const char *)&c, 1);
    }
    SB_LIT(s, "\"");
}

/* Bytes as a JSON string (compact, with the escapes JSON needs). */
static void sb_json_string(sbuf *s, const char *p, size_t k) {
    SB_LIT(s, "\"");
    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\') sb_printf(s, "\\%c", c);
        else if (c < 0x20) sb_printf(s, "\\u%04x", c);
        else sb_put(s, (const char *)&c, 1);
    }
    SB_LIT(s, "\"");
}

/* Node v as compact JSON. */
static void sb_json(sbuf *s, const jdoc *d, uint32_t v) {
    const jnode *n = &d->n[v];
    switch (n->type) {
    case J_NULL: SB_LIT(s, "null"); break;
    case J_FALSE: SB_LIT(s, "false"); break;
    case J_TRUE: SB_LIT(s, "true"); break;
    case J_NUM: sb_put(s, d->src + n->s, (size_t)n->len); break;
    case J_STR: sb_json_string(s, d->strs + n->s, (size_t)n->len); break;
    default: {
        int obj = n->type == J_OBJ;
        sb_put(s, obj ? "{" : "[", 1);
        for (uint32_t c = n->first; c; c = d->n[c].next) {
            if (c != n->first) SB_LIT(s, ",");
            if (obj) {
                sb_json_string(s, d->strs + d->n[c].key, (size_t)d->n[c].key_len);
                SB_LIT(s, ":");
            }
            sb_json(s, d, c);
        }
        sb_put(s, obj ? "}" : "]", 1);
    }
    }
}

/* ---- schema -> rules ---------------------------------------------------- */

typedef struct gen {
    jdoc *d;
    sbuf out;
    int32_t *rule;      /* (n_nodes) rule number of a schema node, -1 = none yet */
    int32_t n_rules;
    int depth;
    char path[256];     /* where we are, for messages (JSON pointer, truncated) */
    size_t path_len;
} gen;

#define ANNOTATIONS "title", "description", "default", "examples", "$schema", "$id", "$comment", \
                    "readOnly", "writeOnly", "deprecated", "$defs", "definitions"

static int is_in(const char *k, size_t kl, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == kl && !memcmp(list[i], k, kl)) return 1;
    return 0;
}

static int gfail(gen *g, sk_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int gfail(gen *g, sk_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(g->d, code, g->path_len ? g->path : "/", fmt, ap);
    va_end(ap);
    return -1;
}

/* Enter path segment seg (restore with path_pop(g, saved)). */
static size_t path_push(gen *g, const char *seg, size_t k) {
    size_t saved = g->path_len;
    int w = snprintf(g->path + g->path_len, sizeof g->path - g->path_len, "/%.*s", (int)(k > 40 ? 40 : k), seg);
    if (w > 0) g->path_len += (size_t)w < sizeof g->path - g->path_len ? (size_t)w : sizeof g->path - g->path_len - 1;
    return saved;
}
static void path_pop(gen *g, size_t saved) {
    g->path_len = saved;
    g->path[saved] = 0;
}

static int64_t gen_schema(gen *g, uint32_t v);

/* A count keyword (non-negative integer <= MAX_COUNT); -1 when absent, -2 on error. */
static int64_t count_kw(gen *g, uint32_t v, const char *kw) {
    uint32_t c = jget(g->d, v, kw);
    if (!c) return -1;
    const jnode *n = &g->d->n[c];
    const char *s = g->d->src + n->s;
    if (n->type != J_NUM || n->len > 12 || memchr(s, '.', (size_t)n->len) || memchr(s, 'e', (size_t)n->len) ||
        memchr(s, 'E', (size_t)n->len) || s[0] == '-')
        return gfail(g, SK_ERR_FORMAT, "'%s' must be a non-negative integer", kw), -2;
    int64_t x = strtoll(s, NULL, 10);
    if (x > MAX_COUNT) return gfail(g, SK_ERR_UNSUPPORTED, "'%s' above %d is not supported", kw, MAX_COUNT), -2;
    return x;
}

/* "{min,max}" or "{min,}" or "*" into s. */
static void sb_rep(sbuf *s, int64_t min, int64_t max) {
    if (max < 0) {
        if (min == 0) SB_LIT(s, "*");
        else sb_printf(s, "{%lld,}", (long long)min);
    } else {
        sb_printf(s, "{%lld,%lld}", (long long)min, (long long)max);
    }
}

/* The JSON types an instance of node v may have (bit per J_*; J_TRUE
 * stands for both booleans; integer as number), for enum filtering. */
enum { T_NULL = 1, T_BOOL = 2, T_INT = 4, T_NUM = 8, T_STR = 16, T_ARR = 32, T_OBJ = 64 };

static int type_bit(const char *s, size_t k) {
    static const char *const names[] = {"null", "boolean", "integer", "number", "string", "array", "object"};
    for (int i = 0; i < 7; i++)
        if (strlen(names[i]) == k && !memcmp(names[i], s, k)) return 1 << i;
    return 0;
}

/* Does value node c have a type in mask? */
static int value_in_types(const jdoc *d, uint32_t c, int mask) {
    const jnode *n = &d->n[c];
    switch (n->type) {
    case J_NULL: return mask & T_NULL;
    case J_FALSE: case J_TRUE: return mask & T_BOOL;
    case J_STR: return mask & T_STR;
    case J_ARR: return mask & T_ARR;
    case J_OBJ: return mask & T_OBJ;
    default: {
        if (mask & T_NUM) return 1;
        const char *s = d->src + n->s;
        int integral = !memchr(s, '.', (size_t)n->len) && !memchr(s, 'e', (size_t)n->len) && !memchr(s, 'E', (size_t)n->len);
        return (mask & T_INT) && integral;
    }
    }
}

/* The body of an object schema. */
static int gen_object(gen *g, uint32_t v, sbuf *body) {
    jdoc *d = g->d;
    uint32_t props = jget(d, v, "properties"), req = jget(d, v, "required"), addl = jget(d, v, "additionalProperties");
    if (props && d->n[props].type != J_OBJ) return gfail(g, SK_ERR_FORMAT, "'properties' must be an object");
    if (req && d->n[req].type != J_ARR) return gfail(g, SK_ERR_FORMAT, "'required' must be an array of names");
    if (req)
        for (uint32_t c = d->n[req].first; c; c = d->n[c].next)
            if (d->n[c].type != J_STR) return gfail(g, SK_ERR_FORMAT, "'required' must be an array of names");
    if (addl && d->n[addl].type != J_TRUE && d->n[addl].type != J_FALSE && d->n[addl].type != J_OBJ)
        return gfail(g, SK_ERR_FORMAT, "'additionalProperties' must be a boolean or a schema");
    uint32_t n_props = (props ? d->n[props].n_kids : 0) + (req ? d->n[req].n_kids : 0);
    if (n_props == 0) {
        if (addl && d->n[addl].type == J_FALSE) {
            SB_LIT(body, "\"{\" ws \"}\"");
        } else if (addl && d->n[addl].type == J_OBJ) {
            size_t sv = path_push(g, "additionalProperties", 20);
            int64_t r = gen_schema(g, addl);
            path_pop(g, sv);
            if (r < 0) return -1;
            sb_printf(body, "\"{\" ws ( string ws \":\" ws r%lld ws ( \",\" ws string ws \":\" ws r%lld ws )* )? \"}\"",
                      (long long)r, (long long)r);
        } else {
            SB_LIT(body, "object");
        }
        return 0;
    }
    /* the property list: those of properties in order, then required names
     * that properties lacks (any value); kv rule and required flag each */
    int64_t *kv = malloc(sizeof *kv * n_props);
    uint8_t *must = calloc(n_props, 1);
    uint32_t k = 0;
    int rc = -1;
    if (!kv || !must) {
        gfail(g, SK_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int pass = 0; pass < 2; pass++) {
        uint32_t list = pass == 0 ? props : req;
        if (!list) continue;
        for (uint32_t c = d->n[list].first; c; c = d->n[c].next) {
            const char *name = d->strs + (pass == 0 ? d->n[c].key : d->n[c].s);
            size_t nl = (size_t)(pass == 0 ? d->n[c].key_len : d->n[c].len);
            int is_req = 0, seen = 0;
            if (pass == 1) { /* a required name already listed? */
                for (uint32_t p = props ? d->n[props].first : 0; p; p = d->n[p].next)
                    if (d->n[p].key_len == nl && !memcmp(d->strs + d->n[p].key, name, nl)) seen = 1;
                for (uint32_t q = d->n[req].first; q != c && !seen; q = d->n[q].next)
                    if (d->n[q].len == nl && !memcmp(d->strs + d->n[q].s, name, nl)) seen = 1;
                if (seen) continue;
                is_req = 1;
            } else if (req) {
                for (uint32_t q = d->n[req].first; q; q = d->n[q].next)
                    if (d->n[q].len == nl && !memcmp(d->strs + d->n[q].s, name, nl)) is_req = 1;
                /* a later duplicate key in properties wins (jget) */
                for (uint32_t q = d->n[c].next; q && !seen; q = d->n[q].next)
                    if (d->n[q].key_len == nl && !memcmp(d->strs + d->n[q].key, name, nl)) seen = 1;
                if (seen) continue;
            } else {
                for (uint32_t q = d->n[c].next; q && !seen; q = d->n[q].next)
                    if (d->n[q].key_len == nl && !memcmp(d->strs + d->n[q].key, name, nl)) seen = 1;
                if (seen) continue;
            }
            int64_t r = -1;
            if (pass == 0) {
                size_t s0 = path_push(g, "properties", 10), s1 = path_push(g, name, nl);
                r = gen_schema(g, c);
                path_pop(g, s1);
                path_pop(g, s0);
                if (r < 0) goto out;
            }
            /* kv rule: "\"name\"" ws ":" ws value ws */
            int64_t me = g->n_rules++;
            sbuf key = {0};
            sb_json_string(&key, name, nl);
            sb_printf(&g->out, "r%lld ::= ", (long long)me);
            sb_literal(&g->out, key.b ? key.b : "", key.n);
            if (r >= 0) sb_printf(&g->out, " ws \":\" ws r%lld ws\n", (long long)r);
            else SB_LIT(&g->out, " ws \":\" ws value ws\n");
            if (key.oom) g->out.oom = 1;
            free(key.b);
            kv[k] = me;
            must[k] = (uint8_t)is_req;
            k++;
        }
    }
    /* A_i: props i.. with nothing written yet; B_i: after something.
     * B_i = ("," ws kv_i)? B_i+1 (optional) or "," ws kv_i B_i+1;
     * A_i = kv_i B_i+1 (required) or kv_i B_i+1 | A_i+1 (optional). */
    int64_t base = g->n_rules;
    g->n_rules += 2 * (int32_t)(k + 1);
#define A(i) (base + 2 * (int64_t)(i))
#define B(i) (base + 2 * (int64_t)(i) + 1)
    sb_printf(&g->out, "r%lld ::= \"\"\nr%lld ::= \"\"\n", (long long)A(k), (long long)B(k));
    for (uint32_t i = k; i-- > 0;) {
        if (must[i]) {
            sb_printf(&g->out, "r%lld ::= \",\" ws r%lld r%lld\n", (long long)B(i), (long long)kv[i], (long long)B(i + 1));
            sb_printf(&g->out, "r%lld ::= r%lld r%lld\n", (long long)A(i), (long long)kv[i], (long long)B(i + 1));
        } else {
            sb_printf(&g->out, "r%lld ::= ( \",\" ws r%lld )? r%lld\n", (long long)B(i), (long long)kv[i], (long long)B(i + 1));
            sb_printf(&g->out, "r%lld ::= r%lld r%lld | r%lld\n", (long long)A(i), (long long)kv[i], (long long)B(i + 1),
                      (long long)A(i + 1));
        }
    }
    sb_printf(body, "\"{\" ws r%lld \"}\"", (long long)A(0));
#undef A
#undef B
    rc = 0;
out:
    free(kv);
    free(must);
    return rc;
}

static int gen_array(gen *g, uint32_t v, sbuf *body) {
    uint32_t items = jget(g->d, v, "items");
    int64_t min = count_kw(g, v, "minItems"), max = count_kw(g, v, "maxItems");
    if (min == -2 || max == -2) return -1;
    if (min < 0) min = 0;
    if (max >= 0 && max < min) return gfail(g, SK_ERR_FORMAT, "'maxItems' %lld is below 'minItems' %lld", (long long)max, (long long)min);
    char item[32] = "value";
    if (items) {
        if (g->d->n[items].type == J_ARR)
            return gfail(g, SK_ERR_UNSUPPORTED, "unsupported JSON schema keyword 'items' as an array (tuple form)");
        size_t sv = path_push(g, "items", 5);
        int64_t r = gen_schema(g, items);
        path_pop(g, sv);
        if (r < 0) return -1;
        snprintf(item, sizeof item, "r%lld", (long long)r);
    }
    if (max == 0) {
        SB_LIT(body, "\"[\" ws \"]\"");
        return 0;
    }
    sb_printf(body, "\"[\" ws %s%s ws ( \",\" ws %s ws )", min == 0 ? "( " : "", item, item);
    sb_rep(body, min > 0 ? min - 1 : 0, max < 0 ? -1 : max - 1);
    sb_printf(body, "%s \"]\"", min == 0 ? " )?" : "");
    return 0;
}

/* A JSON pointer "#..." -> node; 0 (with the error) when it does not resolve. */
static uint32_t resolve(gen *g, const char *ref, size_t k) {
    jdoc *d = g->d;
    if (k == 0 || ref[0] != '#') {
        gfail(g, SK_ERR_UNSUPPORTED, "'$ref' to '%.*s': only local references (\"#...\") are supported", (int)(k > 60 ? 60 : k), ref);
        return 0;
    }
    uint32_t at = 0; /* the document's root is node 0 */
    size_t i = 1;
    if (i < k && ref[i] != '/') {
        gfail(g, SK_ERR_UNSUPPORTED, "'$ref' to '%.*s': only JSON pointers (\"#/...\") are supported", (int)(k > 60 ? 60 : k), ref);
        return 0;
    }
    while (i < k) {
        i++; /* the '/' */
        char seg[256];
        size_t n = 0;
        while (i < k && ref[i] != '/') {
            char c = ref[i++];
            if (c == '~' && i < k && (ref[i] == '0' || ref[i] == '1')) c = ref[i++] == '0' ? '~' : '/';
            if (n < sizeof seg) seg[n++] = c;
        }
        uint32_t next = 0;
        const jnode *cur = &d->n[at];
        if (cur->type == J_OBJ) {
            for (uint32_t c = cur->first; c; c = d->n[c].next)
                if (d->n[c].key_len == n && !memcmp(d->strs + d->n[c].key, seg, n)) next = c;
        } else if (cur->type == J_ARR && n > 0 && n < 10) {
            uint32_t idx = 0, j = 0, ok = 1;
            for (size_t q = 0; q < n; q++) ok &= seg[q] >= '0' && seg[q] <= '9', idx = idx * 10 + (uint32_t)(seg[q] - '0');
            for (uint32_t c = cur->first; c && ok; c = d->n[c].next, j++)
                if (j == idx) next = c;
        }
        if (!next) {
            gfail(g, SK_ERR_FORMAT, "'$ref' to '%.*s' does not resolve", (int)(k > 60 ? 60 : k), ref);
            return 0;
        }
        at = next;
    }
    return at;
}

/* The body of schema v's rule (every keyword checked). */
static int gen_body(gen *g, uint32_t v, sbuf *body) {
    jdoc *d = g->d;
    const jnode *n = &d->n[v];
    if (n->type == J_TRUE) return SB_LIT(body, "value"), 0;
    if (n->type == J_FALSE) return gfail(g, SK_ERR_UNSUPPORTED, "the schema false allows nothing");
    if (n->type != J_OBJ) return gfail(g, SK_ERR_FORMAT, "a schema must be an object or a boolean");
    static const char *const known[] = {ANNOTATIONS, "type", "properties", "required", "additionalProperties", "items",
                                        "minItems", "maxItems", "minLength", "maxLength", "enum", "const", "anyOf",
                                        "oneOf", "nullable", "$ref"};
    static const char *const notes[] = {ANNOTATIONS};
    int others = 0;
    for (uint32_t c = n->first; c; c = d->n[c].next) {
        const char *k = d->strs + d->n[c].key;
        size_t kl = (size_t)d->n[c].key_len;
        if (!is_in(k, kl, known, sizeof known / sizeof known[0]))
            return gfail(g, SK_ERR_UNSUPPORTED, "unsupported JSON schema keyword '%.*s'", (int)(kl > 60 ? 60 : kl), k);
        if (!is_in(k, kl, notes, sizeof notes / sizeof notes[0])) others++;
    }
    uint32_t ref = jget(d, v, "$ref"), any = jget(d, v, "anyOf"), one = jget(d, v, "oneOf");
    if (any && one) return gfail(g, SK_ERR_UNSUPPORTED, "'anyOf' together with 'oneOf' is not supported");
    if (ref || any || one) {
        const char *kw = ref ? "$ref" : any ? "anyOf" : "oneOf";
        if (others > 1) return gfail(g, SK_ERR_UNSUPPORTED, "'%s' together with other keywords is not supported", kw);
        if (ref) {
            if (d->n[ref].type != J_STR) return gfail(g, SK_ERR_FORMAT, "'$ref' must be a string");
            uint32_t t = resolve(g, d->strs + d->n[ref].s, (size_t)d->n[ref].len);
            if (!t && d->st) return -1;
            size_t sv = path_push(g, "$ref", 4);
            int64_t r = gen_schema(g, t);
            path_pop(g, sv);
            if (r < 0) return -1;
            sb_printf(body, "r%lld", (long long)r);
            return 0;
        }
        uint32_t list = any ? any : one;
        if (d->n[list].type != J_ARR || d->n[list].n_kids == 0)
            return gfail(g, SK_ERR_FORMAT, "'%s' must be a non-empty array of schemas", kw);
        uint32_t i = 0;
        for (uint32_t c = d->n[list].first; c; c = d->n[c].next, i++) {
            char idx[16];
            int il = snprintf(idx, sizeof idx, "%u", i);
            size_t s0 = path_push(g, kw, strlen(kw)), s1 = path_push(g, idx, (size_t)il);
            int64_t r = gen_schema(g, c);
            path_pop(g, s1);
            path_pop(g, s0);
            if (r < 0) return -1;
            sb_printf(body, "%sr%lld", i ? " | " : "", (long long)r);
        }
        return 0;
    }
    /* the types */
    int types = 0;
    uint32_t ty = jget(d, v, "type");
    if (ty) {
        if (d->n[ty].type == J_STR) {
            types = type_bit(d->strs + d->n[ty].s, (size_t)d->n[ty].len);
        } else if (d->n[ty].type == J_ARR) {
            for (uint32_t c = d->n[ty].first; c; c = d->n[c].next) {
                int b = d->n[c].type == J_STR ? type_bit(d->strs + d->n[c].s, (size_t)d->n[c].len) : 0;
                if (!b) {
                    types = 0;
                    break;
                }
                types |= b;
            }
        }
        if (!types) return gfail(g, SK_ERR_FORMAT, "'type' must be a type name or a non-empty list of them");
    }
    uint32_t nul = jget(d, v, "nullable");
    if (nul) {
        if (d->n[nul].type != J_TRUE && d->n[nul].type != J_FALSE) return gfail(g, SK_ERR_FORMAT, "'nullable' must be a boolean");
        if (d->n[nul].type == J_TRUE && types) types |= T_NULL;
    }
    /* enum / const: the values themselves */
    uint32_t en = jget(d, v, "enum"), cn = jget(d, v, "const");
    if (en || cn) {
        if (en && d->n[en].type != J_ARR) return gfail(g, SK_ERR_FORMAT, "'enum' must be an array");
        int w = 0;
        uint32_t first = en ? d->n[en].first : cn;
        for (uint32_t c = first; c; c = en ? d->n[c].next : 0) {
            if (types && !value_in_types(d, c, types)) continue;
            if (cn && en) { /* both: the const value, if the enum has it */
                sbuf a = {0}, b = {0};
                sb_json(&a, d, c);
                sb_json(&b, d, cn);
                int same = a.n == b.n && (!a.n || !memcmp(a.b, b.b, a.n));
                free(a.b), free(b.b);
                if (!same) continue;
            }
            sbuf lit = {0};
            sb_json(&lit, d, c);
            if (w++) SB_LIT(body, " | ");
            sb_literal(body, lit.b ? lit.b : "", lit.n);
            if (lit.oom) body->oom = 1;
            free(lit.b);
        }
        if (!w) return gfail(g, SK_ERR_UNSUPPORTED, "'%s' leaves no value (none matches 'type')", en ? "enum" : "const");
        return 0;
    }
    if (!types) { /* no type: what the keywords present imply, else any value */
        if (jget(d, v, "properties") || jget(d, v, "required") || jget(d, v, "additionalProperties")) types |= T_OBJ;
        if (jget(d, v, "items") || jget(d, v, "minItems") || jget(d, v, "maxItems")) types |= T_ARR;
        if (jget(d, v, "minLength") || jget(d, v, "maxLength")) types |= T_STR;
        if (!types) return SB_LIT(body, "value"), 0;
        if (nul && d->n[nul].type == J_TRUE) types |= T_NULL;
    }
    int w = 0;
    for (int b = 1; b <= T_OBJ; b <<= 1) {
        if (!(types & b)) continue;
        if (w++) SB_LIT(body, " | ");
        switch (b) {
        case T_NULL: SB_LIT(body, "null"); break;
        case T_BOOL: SB_LIT(body, "boolean"); break;
        case T_INT: SB_LIT(body, "integer"); break;
        case T_NUM: SB_LIT(body, "number"); break;
        case T_STR: {
            int64_t min = count_kw(g, v, "minLength"), max = count_kw(g, v, "maxLength");
            if (min == -2 || max == -2) return -1;
            if (max >= 0 && min > max)
                return gfail(g, SK_ERR_FORMAT, "'maxLength' %lld is below 'minLength' %lld", (long long)max, (long long)min);
            if (min <= 0 && max < 0) {
                SB_LIT(body, "string");
            } else {
                SB_LIT(body, "\"\\\"\" char");
                sb_rep(body, min < 0 ? 0 : min, max);
                SB_LIT(body, " \"\\\"\"");
            }
            break;
        }
        case T_ARR: if (gen_array(g, v, body)) return -1; break;
        case T_OBJ: if (gen_object(g, v, body)) return -1; break;
        }
    }
    return 0;
}

/* The rule number of schema node v (made on first use). */
static int64_t gen_schema(gen *g, uint32_t v) {
    if (g->rule[v] >= 0) return g->rule[v];
    if (g->depth >= MAX_GEN_DEPTH)
        return gfail(g, SK_ERR_UNSUPPORTED, "schema nested deeper than %d (through '$ref' included)", MAX_GEN_DEPTH);
    int64_t me = g->rule[v] = g->n_rules++;
    sbuf body = {0};
    g->depth++;
    int rc = gen_body(g, v, &body);
    g->depth--;
    if (!rc) {
        sb_printf(&g->out, "r%lld ::= ", (long long)me);
        sb_put(&g->out, body.b ? body.b : "", body.n);
        SB_LIT(&g->out, "\n");
        if (body.oom) g->out.oom = 1;
    }
    free(body.b);
    if (g->out.oom) return gfail(g, SK_ERR_NOMEM, "out of memory");
    if (g->out.n > SK_GRAMMAR_MAX_TEXT)
        return gfail(g, SK_ERR_UNSUPPORTED, "the schema's grammar is over %d bytes", SK_GRAMMAR_MAX_TEXT);
    return rc ? -1 : me;
}

/* The rules of JSON itself, which every schema grammar ends with. */
static const char json_rules[] =
    "ws ::= [ \\t\\n]{0,20}\n"
    "value ::= object | array | string | number | boolean | null\n"
    "object ::= \"{\" ws ( member ( \",\" ws member )* )? \"}\"\n"
    "member ::= string ws \":\" ws value ws\n"
    "array ::= \"[\" ws ( value ws ( \",\" ws value ws )* )? \"]\"\n"
    "string ::= \"\\\"\" char* \"\\\"\"\n"
    "char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" ( [0-9a-cA-Ce-fE-F] hex hex hex | [dD] [0-7] hex hex ) )\n"
    "hex ::= [0-9a-fA-F]\n"
    "number ::= integer ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?\n"
    "integer ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} )\n"
    "boolean ::= \"true\" | \"false\"\n"
    "null ::= \"null\"\n";

sk_status sk_json_schema_to_gbnf(const char *json, size_t len, char **gbnf, size_t *gbnf_len, sk_error *err) {
    *gbnf = NULL;
    if (gbnf_len) *gbnf_len = 0;
    static const char any_object[] = "{\"type\":\"object\"}";
    if (!json) json = any_object, len = sizeof any_object - 1;
    if (len > SK_GRAMMAR_MAX_TEXT)
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "json schema: %zu bytes, at most %d", len, SK_GRAMMAR_MAX_TEXT);
    jdoc d = {0};
    d.src = d.p = json;
    d.end = json + len;
    d.err = err;
    d.strs = malloc(d.cap_strs = 256); /* never NULL below: empty strings point into it */
    if (!d.strs) return sk_error_set(err, SK_ERR_NOMEM, "json schema: out of memory");
    gen g = {0};
    g.d = &d;
    if (jvalue(&d, 0) == 0) {
        jspace(&d);
        if (d.p != d.end) jfail(&d, SK_ERR_FORMAT, "malformed JSON: text after the schema");
    }
    if (!d.st) {
        g.rule = malloc(sizeof *g.rule * d.n_nodes);
        if (!g.rule) jfail(&d, SK_ERR_NOMEM, "out of memory");
        else for (uint32_t i = 0; i < d.n_nodes; i++) g.rule[i] = -1;
    }
    if (!d.st) {
        SB_LIT(&g.out, "root ::= r0\n");
        if (gen_schema(&g, 0) >= 0) sb_put(&g.out, json_rules, sizeof json_rules - 1);
        if (!d.st && g.out.oom) jfail(&d, SK_ERR_NOMEM, "out of memory");
    }
    sk_status st = d.st;
    if (!st) {
        *gbnf = g.out.b;
        if (gbnf_len) *gbnf_len = g.out.n;
    } else {
        free(g.out.b);
    }
    free(g.rule);
    jdoc_free(&d);
    return st;
}

sk_status sk_grammar_from_json_schema(const char *json, size_t len, sk_grammar **out, sk_error *err) {
    *out = NULL;
    char *text = NULL;
    size_t n = 0;
    sk_status st = sk_json_schema_to_gbnf(json, len, &text, &n, err);
    if (st) return st;
    st = sk_grammar_compile(text, n, out, err);
    free(text);
    return st;
}
