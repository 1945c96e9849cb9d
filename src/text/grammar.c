/* grammar.c - GBNF text -> the flat compiled grammar of grammar.h
 * (API: include/sinkllm.h, section "grammars").
 *
 * The format is llama.cpp's GBNF:
 *   rule     ::= name "::=" alternatives         (one rule per line; a rule
 *                continues over newlines inside ( ), after "::=" or "|",
 *                and on a next line that starts with "|")
 *   alts     ::= sequence ("|" sequence)*
 *   sequence ::= (item postfix*)*
 *   item     ::= "literal" | [class] | [^class] | "." | name | "(" alts ")"
 *   postfix  ::= "*" | "+" | "?" | "{" m "}" | "{" m "," "}" | "{" m "," n "}" | "{" "," n "}"
 * Escapes in literals and classes: \n \r \t \\ \" \' \[ \] \- \^ \/ \xHH
 * \uHHHH \UHHHHHHHH. Names are [A-Za-z0-9_-]+. "#" starts a comment.
 *
 * The parser is recursive descent over groups, bounded by
 * SK_GRAMMAR_MAX_NEST. It builds rules as lists of alternatives (element
 * vectors); repetition copies the repeated item min times and adds helper
 * rules for the optional part (x* -> R ::= x R | "", x{0,3} -> nested
 * optionals), so the matcher only sees classes, references and ends. Every
 * growth is checked against SK_GRAMMAR_MAX_ELEMS before it is made. After
 * parsing: root must exist, every referenced rule must be defined, and no
 * rule may reach itself without consuming a character (left recursion,
 * found as a cycle in the "can start with" graph over nullable prefixes).
 *
 * Error convention: sk_status + sk_error; every message says where
 * ("line L, column C: ..."). Owns nothing after compile returns but the
 * sk_grammar it hands out. */
#include "grammar.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- building blocks ---------------------------------------------------- */

typedef struct seq {
    g_elem *v;
    uint32_t n, cap;
} seq;

typedef struct brule {
    const char *name;  /* into the source text (or the parent's name for helpers) */
    uint32_t name_len;
    seq *alts;
    uint32_t n_alts, cap_alts;
    int defined;       /* has a definition (helpers always) */
    size_t first_use;  /* offset of the first reference, for "undefined rule" */
} brule;

typedef struct parser {
    const char *src, *p, *end;
    sk_error *err;
    sk_status st;           /* first error, SK_OK while none */
    brule *rules;
    uint32_t n_rules, cap_rules;
    uint32_t *ranges;
    uint32_t n_ranges, cap_ranges;
    uint64_t n_elems;       /* elements in all alternatives (budget) */
    uint32_t *hash;         /* (cap_hash) named rule index + 1, 0 = empty */
    uint32_t cap_hash;
    int depth;              /* group nesting */
} parser;

/* line and column (1-based) of offset off */
static void line_col(const parser *ps, size_t off, int *line, int *col) {
    int l = 1, c = 1;
    for (size_t i = 0; i < off && ps->src + i < ps->end; i++) {
        if (ps->src[i] == '\n') l++, c = 1;
        else c++;
    }
    *line = l;
    *col = c;
}

/* Record the first error, at offset off. Returns -1. */
static int fail_at(parser *ps, size_t off, sk_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int fail_at(parser *ps, size_t off, sk_status code, const char *fmt, ...) {
    if (ps->st) return -1;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line, col;
    line_col(ps, off, &line, &col);
    ps->st = sk_error_set(ps->err, code, "grammar: line %d, column %d: %s", line, col, msg);
    return -1;
}
#define HERE(ps) ((size_t)((ps)->p - (ps)->src))

static int nomem(parser *ps) {
    if (!ps->st) ps->st = sk_error_set(ps->err, SK_ERR_NOMEM, "grammar: out of memory");
    return -1;
}

/* Grow *v (elements of size sz) to hold need; 0 or -1 (no memory). */
static int grow(parser *ps, void **v, uint32_t *cap, uint64_t need, size_t sz) {
    if (need <= *cap) return 0;
    uint64_t c = *cap ? *cap : 8;
    while (c < need) c *= 2;
    if (c > UINT32_MAX / 2) return nomem(ps);
    void *nv = realloc(*v, (size_t)c * sz);
    if (!nv) return nomem(ps);
    *v = nv;
    *cap = (uint32_t)c;
    return 0;
}

/* Count k more elements against the budget. */
static int budget(parser *ps, uint64_t k) {
    if (ps->n_elems + k > SK_GRAMMAR_MAX_ELEMS)
        return fail_at(ps, HERE(ps), SK_ERR_UNSUPPORTED, "the grammar expands to more than %d elements",
                       SK_GRAMMAR_MAX_ELEMS);
    ps->n_elems += k;
    return 0;
}

static int seq_push(parser *ps, seq *s, g_elem e) {
    if (budget(ps, 1) || grow(ps, (void **)&s->v, &s->cap, (uint64_t)s->n + 1, sizeof *s->v)) return -1;
    s->v[s->n++] = e;
    return 0;
}

/* A new rule; its index, or -1. */
static int64_t rule_new(parser *ps, const char *name, uint32_t name_len, int defined) {
    if (ps->n_rules >= (1u << 24)) return fail_at(ps, HERE(ps), SK_ERR_UNSUPPORTED, "too many rules");
    if (grow(ps, (void **)&ps->rules, &ps->cap_rules, (uint64_t)ps->n_rules + 1, sizeof *ps->rules)) return -1;
    brule *r = &ps->rules[ps->n_rules];
    memset(r, 0, sizeof *r);
    r->name = name;
    r->name_len = name_len;
    r->defined = defined;
    r->first_use = HERE(ps);
    return ps->n_rules++;
}

/* A new, empty alternative of rule r; NULL on error. */
static seq *alt_new(parser *ps, uint32_t r) {
    brule *b = &ps->rules[r];
    if (budget(ps, 1) || grow(ps, (void **)&b->alts, &b->cap_alts, (uint64_t)b->n_alts + 1, sizeof *b->alts))
        return NULL;
    seq *s = &b->alts[b->n_alts++];
    memset(s, 0, sizeof *s);
    return s;
}

static uint32_t name_hash(const char *s, uint32_t n) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The named rule `name`: its index, or -1 when there is none. */
static int64_t rule_lookup(const parser *ps, const char *name, uint32_t len) {
    if (!ps->cap_hash) return -1;
    for (uint32_t j = name_hash(name, len) & (ps->cap_hash - 1); ps->hash[j]; j = (j + 1) & (ps->cap_hash - 1)) {
        const brule *r = &ps->rules[ps->hash[j] - 1];
        if (r->name_len == len && !memcmp(r->name, name, len)) return ps->hash[j] - 1;
    }
    return -1;
}

/* The named rule `name`, created undefined on first sight; index or -1. */
static int64_t rule_named(parser *ps, const char *name, uint32_t len) {
    if (ps->cap_hash < 2 * (ps->n_rules + 1)) { /* rehash at half load */
        uint32_t cap = ps->cap_hash ? ps->cap_hash * 2 : 64;
        while (cap < 2 * (ps->n_rules + 1)) cap *= 2;
        uint32_t *h = calloc(cap, sizeof *h);
        if (!h) return nomem(ps);
        for (uint32_t i = 0; i < ps->cap_hash; i++) {
            if (!ps->hash[i]) continue;
            const brule *r = &ps->rules[ps->hash[i] - 1];
            uint32_t j = name_hash(r->name, r->name_len) & (cap - 1);
            while (h[j]) j = (j + 1) & (cap - 1);
            h[j] = ps->hash[i];
        }
        free(ps->hash);
        ps->hash = h;
        ps->cap_hash = cap;
    }
    uint32_t j = name_hash(name, len) & (ps->cap_hash - 1);
    for (; ps->hash[j]; j = (j + 1) & (ps->cap_hash - 1)) {
        const brule *r = &ps->rules[ps->hash[j] - 1];
        if (r->name_len == len && !memcmp(r->name, name, len)) return ps->hash[j] - 1;
    }
    int64_t id = rule_new(ps, name, len, 0);
    if (id < 0) return -1;
    ps->rules[id].first_use = (size_t)(name - ps->src);
    ps->hash[j] = (uint32_t)id + 1;
    return id;
}

/* ---- lexing ------------------------------------------------------------ */

static int is_name_char(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Skip blanks and comments; newlines too when nl. */
static void skip_space(parser *ps, int nl) {
    while (ps->p < ps->end) {
        char c = *ps->p;
        if (c == ' ' || c == '\t' || c == '\r' || (nl && c == '\n')) {
            ps->p++;
        } else if (c == '#') {
            while (ps->p < ps->end && *ps->p != '\n') ps->p++;
        } else {
            break;
        }
    }
}

/* At a newline outside any group: does the rule continue on a later line
 * that starts with "|"? Then move there. */
static int continues(parser *ps) {
    const char *save = ps->p;
    skip_space(ps, 1);
    if (ps->p < ps->end && *ps->p == '|') return 1;
    ps->p = save;
    return 0;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One UTF-8 code point from the source (the grammar text is UTF-8). */
static int64_t decode_utf8(parser *ps) {
    const unsigned char *s = (const unsigned char *)ps->p;
    size_t left = (size_t)(ps->end - ps->p);
    unsigned c = s[0];
    int n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
    if (n < 0 || (size_t)n >= left) return fail_at(ps, HERE(ps), SK_ERR_FORMAT, "invalid UTF-8");
    uint32_t cp = n == 0 ? c : c & (0x3F >> n);
    for (int i = 1; i <= n; i++) {
        if ((s[i] & 0xC0) != 0x80) return fail_at(ps, HERE(ps), SK_ERR_FORMAT, "invalid UTF-8");
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return fail_at(ps, HERE(ps), SK_ERR_FORMAT, "invalid UTF-8");
    ps->p += n + 1;
    return cp;
}

/* One character of a literal or class, escapes decoded; -1 on error. */
static int64_t parse_char(parser *ps) {
    if (ps->p >= ps->end) return fail_at(ps, HERE(ps), SK_ERR_FORMAT, "unexpected end of grammar");
    if (*ps->p != '\\') return decode_utf8(ps);
    size_t at = HERE(ps);
    if (++ps->p >= ps->end) return fail_at(ps, at, SK_ERR_FORMAT, "unexpected end of grammar after '\\'");
    char c = *ps->p++;
    int digits = 0;
    switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/': return c;
    case 'x': digits = 2; break;
    case 'u': digits = 4; break;
    case 'U': digits = 8; break;
    default: return fail_at(ps, at, SK_ERR_FORMAT, "unknown escape '\\%c'", c >= 0x20 && c < 0x7F ? c : '?');
    }
    uint32_t v = 0;
    for (int i = 0; i < digits; i++) {
        int h = ps->p < ps->end ? hexval((unsigned char)*ps->p) : -1;
        if (h < 0) return fail_at(ps, at, SK_ERR_FORMAT, "'\\%c' needs %d hex digits", c, digits);
        v = v * 16 + (uint32_t)h;
        ps->p++;
    }
    if (v > 0x10FFFF) return fail_at(ps, at, SK_ERR_FORMAT, "code point U+%X is out of range", v);
    return v;
}

static int range_push(parser *ps, uint32_t lo, uint32_t hi) {
    if (grow(ps, (void **)&ps->ranges, &ps->cap_ranges, (uint64_t)ps->n_ranges + 2, sizeof *ps->ranges)) return -1;
    ps->ranges[ps->n_ranges++] = lo;
    ps->ranges[ps->n_ranges++] = hi;
    return 0;
}

/* "literal": one class element per code point. */
static int parse_literal(parser *ps, seq *s) {
    size_t at = HERE(ps);
    ps->p++;
    while (ps->p < ps->end && *ps->p != '"') {
        if (*ps->p == '\n') break;
        int64_t cp = parse_char(ps);
        if (cp < 0) return -1;
        g_elem e = {G_CHARS, 0, ps->n_ranges, 1};
        if (range_push(ps, (uint32_t)cp, (uint32_t)cp) || seq_push(ps, s, e)) return -1;
    }
    if (ps->p >= ps->end || *ps->p != '"') return fail_at(ps, at, SK_ERR_FORMAT, "unterminated string literal");
    ps->p++;
    return 0;
}

/* [class] or [^class]: one element. */
static int parse_class(parser *ps, seq *s) {
    size_t at = HERE(ps);
    ps->p++;
    g_elem e = {G_CHARS, 0, ps->n_ranges, 0};
    if (ps->p < ps->end && *ps->p == '^') {
        e.neg = 1;
        ps->p++;
    }
    while (ps->p < ps->end && *ps->p != ']') {
        if (*ps->p == '\n') break;
        int64_t lo = parse_char(ps), hi = lo;
        if (lo < 0) return -1;
        if (ps->p + 1 < ps->end && ps->p[0] == '-' && ps->p[1] != ']') {
            ps->p++;
            size_t at_hi = HERE(ps);
            if ((hi = parse_char(ps)) < 0) return -1;
            if (hi < lo) return fail_at(ps, at_hi, SK_ERR_FORMAT, "range end U+%04X is before its start U+%04X",
                                        (unsigned)hi, (unsigned)lo);
        }
        if (e.n >= 4096) return fail_at(ps, at, SK_ERR_UNSUPPORTED, "more than 4096 ranges in one class");
        if (range_push(ps, (uint32_t)lo, (uint32_t)hi)) return -1;
        e.n++;
    }
    if (ps->p >= ps->end || *ps->p != ']') return fail_at(ps, at, SK_ERR_FORMAT, "unterminated character class");
    ps->p++;
    return seq_push(ps, s, e);
}

/* A decimal count of a {m,n} postfix; -1 when none is there. */
static int64_t parse_count(parser *ps) {
    const char *start = ps->p;
    int64_t v = 0;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        if (v <= SK_GRAMMAR_MAX_REPEAT) v = v * 10 + (*ps->p - '0');
        ps->p++;
    }
    return ps->p == start ? -1 : v;
}

/* ---- repetition -------------------------------------------------------- */

/* Append elements x[0..n) to s. */
static int seq_append(parser *ps, seq *s, const g_elem *x, uint32_t n) {
    if (n == 0) return 0;
    if (budget(ps, n) || grow(ps, (void **)&s->v, &s->cap, (uint64_t)s->n + n, sizeof *s->v)) return -1;
    memcpy(s->v + s->n, x, sizeof *x * n);
    s->n += n;
    return 0;
}

/* The elements s->v[from..] repeated min..max times (max < 0: no bound),
 * in place. *s may move (helper rules are created): the caller passes the
 * owner rule and alternative index, not a pointer it keeps. */
static int repeat(parser *ps, uint32_t owner, uint32_t alt, uint32_t from, int64_t min, int64_t max) {
    seq *s = &ps->rules[owner].alts[alt];
    uint32_t n = s->n - from;
    g_elem *x = malloc(sizeof *x * (n ? n : 1));
    if (!x) return nomem(ps);
    if (n) memcpy(x, s->v + from, sizeof *x * n);
    ps->n_elems -= n;
    s->n = from;
    int rc = 0;
    for (int64_t i = 0; i < min && !rc; i++) rc = seq_append(ps, &ps->rules[owner].alts[alt], x, n);
    if (!rc && max != min) {
        const brule *o = &ps->rules[owner];
        /* helper: max < 0: R ::= x R | "" ; else R_k ::= x R_{k-1} | "" with R_0 = "" */
        int64_t k = max < 0 ? 1 : max - min, prev = -1;
        for (int64_t i = 0; i < k && !rc; i++) {
            int64_t r = rule_new(ps, o->name, o->name_len, 1);
            seq *a;
            if (r < 0 || !(a = alt_new(ps, (uint32_t)r)) || seq_append(ps, a, x, n)) {
                rc = -1;
                break;
            }
            int64_t tail = max < 0 ? r : prev;
            if (tail >= 0) rc = seq_push(ps, &ps->rules[r].alts[0], (g_elem){G_RULE, 0, (uint32_t)tail, 0});
            if (!rc && !alt_new(ps, (uint32_t)r)) rc = -1;
            prev = r;
            o = &ps->rules[owner];
        }
        if (!rc) rc = seq_push(ps, &ps->rules[owner].alts[alt], (g_elem){G_RULE, 0, (uint32_t)prev, 0});
    }
    free(x);
    return rc;
}

/* ---- rules ------------------------------------------------------------- */

static int parse_alternates(parser *ps, uint32_t r, int nested);

/* One sequence into alternative alt of rule r. */
static int parse_sequence(parser *ps, uint32_t r, uint32_t alt, int nested) {
    uint32_t last = UINT32_MAX; /* start of the last item, for a postfix */
    while (ps->p < ps->end && !ps->st) {
        seq *s = &ps->rules[r].alts[alt];
        char c = *ps->p;
        size_t at = HERE(ps);
        if (c == '"') {
            last = s->n;
            if (parse_literal(ps, s)) return -1;
        } else if (c == '[') {
            last = s->n;
            if (parse_class(ps, s)) return -1;
        } else if (c == '.') {
            last = s->n;
            ps->p++;
            if (seq_push(ps, s, (g_elem){G_CHARS, 1, ps->n_ranges, 0})) return -1;
        } else if (is_name_char((unsigned char)c)) {
            const char *name = ps->p;
            while (ps->p < ps->end && is_name_char((unsigned char)*ps->p)) ps->p++;
            if ((size_t)(ps->p - name) > 256) return fail_at(ps, at, SK_ERR_UNSUPPORTED, "rule name longer than 256");
            int64_t ref = rule_named(ps, name, (uint32_t)(ps->p - name));
            if (ref < 0) return -1;
            last = ps->rules[r].alts[alt].n;
            if (seq_push(ps, &ps->rules[r].alts[alt], (g_elem){G_RULE, 0, (uint32_t)ref, 0})) return -1;
        } else if (c == '(') {
            if (ps->depth >= SK_GRAMMAR_MAX_NEST)
                return fail_at(ps, at, SK_ERR_UNSUPPORTED, "groups nested deeper than %d", SK_GRAMMAR_MAX_NEST);
            ps->p++;
            int64_t g = rule_new(ps, ps->rules[r].name, ps->rules[r].name_len, 1);
            if (g < 0) return -1;
            ps->depth++;
            skip_space(ps, 1);
            if (parse_alternates(ps, (uint32_t)g, 1)) return -1;
            ps->depth--;
            if (ps->p >= ps->end || *ps->p != ')') return fail_at(ps, at, SK_ERR_FORMAT, "'(' without its ')'");
            ps->p++;
            last = ps->rules[r].alts[alt].n;
            if (seq_push(ps, &ps->rules[r].alts[alt], (g_elem){G_RULE, 0, (uint32_t)g, 0})) return -1;
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (last == UINT32_MAX) return fail_at(ps, at, SK_ERR_FORMAT, "'%c' has nothing before it to repeat", c);
            int64_t min = 0, max = -1;
            ps->p++;
            if (c == '+') min = 1;
            else if (c == '?') max = 1;
            else if (c == '{') {
                skip_space(ps, 0);
                min = parse_count(ps);
                skip_space(ps, 0);
                if (ps->p < ps->end && *ps->p == ',') {
                    ps->p++;
                    skip_space(ps, 0);
                    max = parse_count(ps);
                    if (min < 0 && max < 0) return fail_at(ps, at, SK_ERR_FORMAT, "'{,}' needs a count");
                    if (min < 0) min = 0;
                } else {
                    if (min < 0) return fail_at(ps, at, SK_ERR_FORMAT, "'{' needs a count");
                    max = min;
                }
                skip_space(ps, 0);
                if (ps->p >= ps->end || *ps->p != '}') return fail_at(ps, at, SK_ERR_FORMAT, "'{' without its '}'");
                ps->p++;
                if (min > SK_GRAMMAR_MAX_REPEAT || max > SK_GRAMMAR_MAX_REPEAT)
                    return fail_at(ps, at, SK_ERR_UNSUPPORTED, "repetition count above %d", SK_GRAMMAR_MAX_REPEAT);
                if (max >= 0 && max < min)
                    return fail_at(ps, at, SK_ERR_FORMAT, "repetition {%lld,%lld}: the maximum is below the minimum",
                                   (long long)min, (long long)max);
            }
            if (repeat(ps, r, alt, last, min, max)) return -1;
        } else {
            break;
        }
        skip_space(ps, nested);
        if (!nested && ps->p < ps->end && *ps->p == '\n') {
            if (continues(ps)) break;
        }
    }
    return ps->st ? -1 : 0;
}

static int parse_alternates(parser *ps, uint32_t r, int nested) {
    for (;;) {
        if (!alt_new(ps, r)) return -1;
        if (parse_sequence(ps, r, ps->rules[r].n_alts - 1, nested)) return -1;
        if (ps->p < ps->end && *ps->p == '|') {
            ps->p++;
            skip_space(ps, 1);
            continue;
        }
        return 0;
    }
}

/* name ::= alternatives, up to the end of its line. */
static int parse_rule(parser *ps) {
    size_t at = HERE(ps);
    const char *name = ps->p;
    while (ps->p < ps->end && is_name_char((unsigned char)*ps->p)) ps->p++;
    uint32_t len = (uint32_t)(ps->p - name);
    if (len == 0) return fail_at(ps, at, SK_ERR_FORMAT, "expected a rule name");
    if (len > 256) return fail_at(ps, at, SK_ERR_UNSUPPORTED, "rule name longer than 256");
    skip_space(ps, 0);
    if (ps->end - ps->p < 3 || memcmp(ps->p, "::=", 3))
        return fail_at(ps, HERE(ps), SK_ERR_FORMAT, "expected '::=' after rule name '%.*s'", (int)(len > 40 ? 40 : len),
                       name);
    ps->p += 3;
    int64_t r = rule_named(ps, name, len);
    if (r < 0) return -1;
    if (ps->rules[r].defined)
        return fail_at(ps, at, SK_ERR_FORMAT, "rule '%.*s' is defined twice", (int)(len > 40 ? 40 : len), name);
    ps->rules[r].defined = 1;
    skip_space(ps, 1);
    if (parse_alternates(ps, (uint32_t)r, 0)) return -1;
    if (ps->p < ps->end && *ps->p != '\n') {
        char c = *ps->p;
        return fail_at(ps, HERE(ps), SK_ERR_FORMAT, "unexpected %s%c%s", c > 0x20 && c < 0x7F ? "'" : "byte 0x",
                       c > 0x20 && c < 0x7F ? c : '?', c > 0x20 && c < 0x7F ? "'" : "");
    }
    return 0;
}

/* ---- checks ------------------------------------------------------------ */

/* nullable[r]: rule r can match the empty string. Linear worklist: an
 * alternative made of rule references only waits for its count of
 * not-yet-nullable references to reach 0. Returns 0 or -1 (no memory). */
static int find_nullable(parser *ps, uint8_t *nullable) {
    uint32_t n = ps->n_rules, n_alts = 0;
    for (uint32_t r = 0; r < n; r++) n_alts += ps->rules[r].n_alts;
    uint32_t *cnt = calloc(n_alts + 1, sizeof *cnt), *owner = malloc(sizeof *owner * (n_alts + 1));
    uint32_t *first = calloc(n + 1, sizeof *first), *occ = NULL, *queue = malloc(sizeof *queue * (n + 1));
    uint64_t n_occ = 0;
    int rc = -1;
    if (!cnt || !owner || !first || !queue) goto out;
    /* occurrences of each rule in reference-only alternatives (CSR) */
    for (uint32_t r = 0, k = 0; r < n; r++)
        for (uint32_t a = 0; a < ps->rules[r].n_alts; a++, k++) {
            const seq *s = &ps->rules[r].alts[a];
            owner[k] = r;
            uint32_t i = 0;
            while (i < s->n && s->v[i].type == G_RULE) i++;
            if (i < s->n) continue;
            cnt[k] = s->n;
            for (i = 0; i < s->n; i++) first[s->v[i].a + 1]++, n_occ++;
        }
    for (uint32_t r = 0; r < n; r++) first[r + 1] += first[r];
    if (!(occ = malloc(sizeof *occ * (size_t)(n_occ + 1)))) goto out;
    uint32_t qn = 0;
    for (uint32_t r = 0, k = 0; r < n; r++)
        for (uint32_t a = 0; a < ps->rules[r].n_alts; a++, k++) {
            const seq *s = &ps->rules[r].alts[a];
            uint32_t i = 0;
            while (i < s->n && s->v[i].type == G_RULE) i++;
            if (i < s->n) continue;
            for (i = 0; i < s->n; i++) occ[first[s->v[i].a]++] = k;
            if (s->n == 0 && !nullable[r]) nullable[r] = 1, queue[qn++] = r;
        }
    for (uint32_t r = n; r > 0; r--) first[r] = first[r - 1]; /* undo the fill's advance */
    first[0] = 0;
    for (uint32_t q = 0; q < qn; q++) {
        uint32_t r = queue[q];
        for (uint32_t j = first[r]; j < first[r + 1]; j++) {
            uint32_t k = occ[j];
            if (--cnt[k] == 0 && !nullable[owner[k]]) nullable[owner[k]] = 1, queue[qn++] = owner[k];
        }
    }
    rc = 0;
out:
    free(cnt), free(owner), free(first), free(occ), free(queue);
    return rc ? nomem(ps) : 0;
}

/* A rule that can reach itself without consuming input: -1 with the error.
 * Edges r -> s: s is referenced in an alternative of r after only
 * nullable references; a cycle (iterative DFS, colors) is left recursion. */
static int check_left_recursion(parser *ps) {
    uint32_t n = ps->n_rules;
    uint8_t *nullable = calloc(n + 1, 1), *color = calloc(n + 1, 1);
    uint32_t *first = calloc(n + 2, sizeof *first), *edge = NULL;
    uint32_t *stk = malloc(sizeof *stk * 2 * (n + 1)); /* (rule, next edge) pairs */
    int rc = -1;
    if (!nullable || !color || !first || !stk) goto out;
    if (find_nullable(ps, nullable)) goto done;
    uint64_t n_edges = 0;
    for (int pass = 0; pass < 2; pass++) {
        uint64_t k = 0;
        for (uint32_t r = 0; r < n; r++) {
            if (pass == 1) first[r] = (uint32_t)k;
            for (uint32_t a = 0; a < ps->rules[r].n_alts; a++) {
                const seq *s = &ps->rules[r].alts[a];
                for (uint32_t i = 0; i < s->n && s->v[i].type == G_RULE; i++) {
                    if (pass == 1) edge[k] = s->v[i].a;
                    k++;
                    if (!nullable[s->v[i].a]) break;
                }
            }
        }
        if (pass == 0 && !(edge = malloc(sizeof *edge * (size_t)((n_edges = k) + 1)))) goto out;
    }
    first[n] = (uint32_t)n_edges;
    rc = 0;
    for (uint32_t s0 = 0; s0 < n && !rc; s0++) {
        if (color[s0]) continue;
        uint32_t sp = 1;
        stk[0] = s0, stk[1] = first[s0];
        color[s0] = 1;
        while (sp && !rc) {
            uint32_t r = stk[2 * (sp - 1)], k = stk[2 * (sp - 1) + 1];
            if (k >= first[r + 1]) {
                color[r] = 2;
                sp--;
                continue;
            }
            stk[2 * (sp - 1) + 1]++;
            uint32_t next = edge[k];
            if (color[next] == 1) {
                const brule *b = &ps->rules[next];
                rc = fail_at(ps, b->first_use, SK_ERR_FORMAT,
                             "rule '%.*s' is left-recursive (it can reach itself without consuming a character, "
                             "e.g. by repeating something that can be empty)",
                             (int)(b->name_len > 40 ? 40 : b->name_len), b->name);
            } else if (!color[next]) {
                color[next] = 1;
                stk[2 * sp] = next, stk[2 * sp + 1] = first[next];
                sp++;
            }
        }
    }
    goto done;
out:
    rc = nomem(ps);
done:
    free(nullable), free(color), free(first), free(edge), free(stk);
    return rc;
}

/* ---- the whole --------------------------------------------------------- */

static void parser_free(parser *ps) {
    for (uint32_t r = 0; r < ps->n_rules; r++) {
        for (uint32_t a = 0; a < ps->rules[r].n_alts; a++) free(ps->rules[r].alts[a].v);
        free(ps->rules[r].alts);
    }
    free(ps->rules);
    free(ps->ranges);
    free(ps->hash);
}

void sk_grammar_free(sk_grammar *g) {
    if (!g) return;
    free(g->elems);
    free(g->ranges);
    free(g->alts);
    free(g->rule_alt0);
    free(g->rule_nalt);
    free(g);
}

/* Flatten the parsed rules into an sk_grammar. */
static sk_status flatten(parser *ps, uint32_t root, sk_grammar **out) {
    sk_grammar *g = calloc(1, sizeof *g);
    uint64_t n_alts = 0, n_elems = 0;
    for (uint32_t r = 0; r < ps->n_rules; r++) {
        n_alts += ps->rules[r].n_alts;
        for (uint32_t a = 0; a < ps->rules[r].n_alts; a++) n_elems += ps->rules[r].alts[a].n + 1;
    }
    if (!g) return nomem(ps), ps->st;
    g->elems = malloc(sizeof *g->elems * (size_t)(n_elems + 1));
    g->alts = malloc(sizeof *g->alts * (size_t)(n_alts + 1));
    g->rule_alt0 = malloc(sizeof *g->rule_alt0 * (ps->n_rules + 1));
    g->rule_nalt = malloc(sizeof *g->rule_nalt * (ps->n_rules + 1));
    g->ranges = malloc(sizeof *g->ranges * (ps->n_ranges + 2));
    if (!g->elems || !g->alts || !g->rule_alt0 || !g->rule_nalt || !g->ranges) {
        sk_grammar_free(g);
        return nomem(ps), ps->st;
    }
    if (ps->n_ranges) memcpy(g->ranges, ps->ranges, sizeof *g->ranges * ps->n_ranges);
    g->n_ranges = ps->n_ranges;
    uint32_t e = 0, k = 0;
    for (uint32_t r = 0; r < ps->n_rules; r++) {
        g->rule_alt0[r] = k;
        g->rule_nalt[r] = ps->rules[r].n_alts;
        for (uint32_t a = 0; a < ps->rules[r].n_alts; a++) {
            const seq *s = &ps->rules[r].alts[a];
            g->alts[k++] = e;
            if (s->n) memcpy(g->elems + e, s->v, sizeof *s->v * s->n);
            e += s->n;
            g->elems[e++] = (g_elem){G_END, 0, 0, 0};
        }
    }
    g->n_elems = e;
    g->n_alts = k;
    g->n_rules = ps->n_rules;
    g->root = root;
    *out = g;
    return SK_OK;
}

sk_status sk_grammar_compile(const char *text, size_t len, sk_grammar **out, sk_error *err) {
    *out = NULL;
    if (!text && len) return sk_error_set(err, SK_ERR_INVALID, "grammar: NULL text");
    if (len > SK_GRAMMAR_MAX_TEXT)
        return sk_error_set(err, SK_ERR_UNSUPPORTED, "grammar: %zu bytes, at most %d", len, SK_GRAMMAR_MAX_TEXT);
    parser ps = {0};
    ps.src = ps.p = text ? text : "";
    ps.end = ps.src + len;
    ps.err = err;
    for (;;) {
        skip_space(&ps, 1);
        if (ps.p >= ps.end) break;
        if (parse_rule(&ps)) break;
    }
    int64_t root = -1;
    if (!ps.st) {
        for (uint32_t r = 0; r < ps.n_rules && !ps.st; r++) {
            const brule *b = &ps.rules[r];
            if (!b->defined)
                fail_at(&ps, b->first_use, SK_ERR_FORMAT, "undefined rule '%.*s'",
                        (int)(b->name_len > 40 ? 40 : b->name_len), b->name);
        }
        if (!ps.st) root = rule_lookup(&ps, "root", 4);
        if (!ps.st && root < 0) fail_at(&ps, len, SK_ERR_FORMAT, "no rule named 'root'");
    }
    if (!ps.st) check_left_recursion(&ps);
    if (!ps.st) flatten(&ps, (uint32_t)root, out);
    sk_status st = ps.st;
    parser_free(&ps);
    return st;
}
