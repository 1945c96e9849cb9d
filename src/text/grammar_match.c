/* grammar_match.c - the recognizer of a compiled grammar (grammar.h) and
 * the token masks it gives with a piece trie (API: include/sinkllm.h,
 * section "grammars").
 *
 * A parse is a set of stacks. A stack is a chain of nodes (pos, parent):
 * pos is a position in elems[] (a program counter), parent the node to
 * return to when pos's alternative ends (node 0, the bottom: the grammar
 * is finished). Nodes are hash-consed in a pool, so stacks share their
 * tails and a set of stacks is a set of top node ids. A state keeps only
 * tops whose element is a class (what the next code point must match),
 * plus whether the text so far is complete (accept) and a pending partial
 * UTF-8 sequence.
 *
 * Closure: from seed nodes, follow references (push the continuation,
 * enter each alternative) and ends (return to the parent) until classes
 * are reached. A reference in tail position (followed by the end of its
 * alternative) pushes no continuation, so right recursion (x* is
 * R ::= x R | "") does not deepen the stack. A per-closure stamp on each
 * node visits it once, so a closure costs at most the nodes it reaches.
 * Stacks deeper than SK_GRAMMAR_MAX_DEPTH die; the pool stops at
 * SK_GRAMMAR_MAX_NODES (further stacks die: the text is rejected); a
 * closure that would visit more than SK_GRAMMAR_MAX_STEP nodes (a grammar
 * ambiguous enough that one character continues thousands of parses)
 * fails, so one step costs at most that much.
 *
 * A code point advances every top whose class matches it to pos + 1 and
 * takes the closure. Bytes are decoded as UTF-8 (overlong forms,
 * surrogates and values past U+10FFFF rejected); a partial sequence keeps
 * the tops and is only viable while some top's class meets the interval
 * of code points it can still become.
 *
 * Masks: the trie's nodes are walked in preorder with one state per depth
 * (a stack of states in one array); a byte that kills every stack skips the
 * node's whole subtree. Work is proportional to the prefixes the grammar
 * allows, not to the vocabulary.
 *
 * Owns: the node pool and its hash, the tops array (the current state
 * first, then the mask walk's states), a work stack. They grow to the
 * working set and are reused; nothing else allocates. */
#include "grammar.h"

#include <stdlib.h>
#include <string.h>

#define NO_NODE UINT32_MAX

typedef struct g_state {
    uint32_t off, n;  /* tops[off .. off + n) */
    uint32_t cp;      /* partial UTF-8: bits so far */
    uint8_t need;     /*   continuation bytes still to come (0: none pending) */
    uint8_t lo, hi;   /*   the range of the next byte */
    uint8_t len;      /*   the sequence's length in bytes */
    uint8_t accept;   /* the text so far is a sentence (need == 0 only) */
} g_state;

struct sk_grammar_matcher {
    const sk_grammar *g;
    uint32_t *npos, *npar;  /* (cap_nodes) node k = (npos[k], npar[k]); node 0 the bottom */
    uint16_t *ndepth;       /* (cap_nodes) stack depth of node k */
    uint32_t *stamp;        /* (cap_nodes) closure stamp of the last visit */
    uint32_t n_nodes, cap_nodes;
    uint32_t *hash;         /* (cap_hash) node ids keyed by (pos, parent); 0 = empty */
    uint32_t cap_hash;
    uint32_t cur_stamp;
    uint32_t *tops;         /* (cap_tops) the current state's tops, then scratch states */
    uint32_t cap_tops;
    g_state cur;            /* the current state (off 0) */
    uint32_t *work;         /* (cap_work) closure work stack */
    uint32_t cap_work;
    g_state *walk;          /* (cap_walk) mask walk: the state at each trie depth */
    uint32_t cap_walk;
    uint64_t version;       /* bumped on every change of cur */
};

uint64_t g_matcher_version(const sk_grammar_matcher *m) { return m->version; }

static int grow_u32(uint32_t **v, uint32_t *cap, uint64_t need) {
    if (need <= *cap) return 0;
    uint64_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    if (c > UINT32_MAX) return -1;
    uint32_t *nv = realloc(*v, sizeof *nv * (size_t)c);
    if (!nv) return -1;
    *v = nv;
    *cap = (uint32_t)c;
    return 0;
}

static uint32_t node_hash(uint32_t pos, uint32_t par) {
    uint64_t h = ((uint64_t)pos << 32 | par) * 0x9E3779B97F4A7C15ULL;
    return (uint32_t)(h >> 32);
}

/* Room for one more node (pool and hash at half load). */
static int pool_reserve(sk_grammar_matcher *m) {
    if (m->n_nodes >= SK_GRAMMAR_MAX_NODES) return -1;
    if (m->n_nodes + 1 > m->cap_nodes) {
        uint32_t c = m->cap_nodes ? m->cap_nodes * 2 : 64;
        uint32_t *p = realloc(m->npos, sizeof *p * c);
        if (!p) return -1;
        m->npos = p;
        if (!(p = realloc(m->npar, sizeof *p * c))) return -1;
        m->npar = p;
        if (!(p = realloc(m->stamp, sizeof *p * c))) return -1;
        m->stamp = p;
        uint16_t *d = realloc(m->ndepth, sizeof *d * c);
        if (!d) return -1;
        m->ndepth = d;
        m->cap_nodes = c;
    }
    if (2 * (m->n_nodes + 1) > m->cap_hash) {
        uint32_t c = m->cap_hash ? m->cap_hash * 2 : 128;
        uint32_t *h = calloc(c, sizeof *h);
        if (!h) return -1;
        for (uint32_t k = 1; k < m->n_nodes; k++) {
            uint32_t j = node_hash(m->npos[k], m->npar[k]) & (c - 1);
            while (h[j]) j = (j + 1) & (c - 1);
            h[j] = k;
        }
        free(m->hash);
        m->hash = h;
        m->cap_hash = c;
    }
    return 0;
}

/* The node (pos, par), made on first use; NO_NODE when the stack would be
 * too deep or the pool is full. */
static uint32_t node_get(sk_grammar_matcher *m, uint32_t pos, uint32_t par) {
    if (m->cap_hash) {
        for (uint32_t j = node_hash(pos, par) & (m->cap_hash - 1); m->hash[j]; j = (j + 1) & (m->cap_hash - 1)) {
            uint32_t k = m->hash[j];
            if (m->npos[k] == pos && m->npar[k] == par) return k;
        }
    }
    if (m->ndepth[par] >= SK_GRAMMAR_MAX_DEPTH || pool_reserve(m)) return NO_NODE;
    uint32_t k = m->n_nodes++;
    m->npos[k] = pos;
    m->npar[k] = par;
    m->ndepth[k] = (uint16_t)(m->ndepth[par] + 1);
    m->stamp[k] = 0;
    uint32_t j = node_hash(pos, par) & (m->cap_hash - 1);
    while (m->hash[j]) j = (j + 1) & (m->cap_hash - 1);
    m->hash[j] = k;
    return k;
}

/* Close the seeds work[0..n_work) into tops appended at tops[out->off ..];
 * sets out->n and out->accept. Returns 0, or -1 when memory ran out or the
 * closure would visit more than SK_GRAMMAR_MAX_STEP nodes (the step then
 * fails: the text is rejected there). */
static int closure(sk_grammar_matcher *m, uint32_t n_work, g_state *out) {
    const sk_grammar *g = m->g;
    if (++m->cur_stamp == 0) { /* wrapped: forget every visit */
        for (uint32_t k = 0; k < m->n_nodes; k++) m->stamp[k] = 0;
        m->cur_stamp = 1;
    }
    out->n = 0;
    out->accept = 0;
    uint32_t visits = 0;
    while (n_work) {
        uint32_t k = m->work[--n_work];
        if (m->stamp[k] == m->cur_stamp) continue;
        m->stamp[k] = m->cur_stamp;
        if (++visits > SK_GRAMMAR_MAX_STEP) return -1; /* too ambiguous: this step fails */
        uint32_t pos = m->npos[k];
        const g_elem *e = &g->elems[pos];
        if (e->type == G_CHARS) {
            if (grow_u32(&m->tops, &m->cap_tops, (uint64_t)out->off + out->n + 1)) return -1;
            m->tops[out->off + out->n++] = k;
        } else if (e->type == G_END) {
            uint32_t par = m->npar[k];
            if (par == 0) out->accept = 1;
            else m->work[n_work++] = par; /* room: k's slot was just freed */
        } else {
            uint32_t par = m->npar[k];
            uint32_t cont = g->elems[pos + 1].type == G_END ? par : node_get(m, pos + 1, par);
            if (cont == NO_NODE) continue;
            uint32_t a0 = g->rule_alt0[e->a], na = g->rule_nalt[e->a];
            if (grow_u32(&m->work, &m->cap_work, (uint64_t)n_work + na)) return -1;
            for (uint32_t i = 0; i < na; i++) {
                uint32_t c = node_get(m, g->alts[a0 + i], cont);
                if (c != NO_NODE) m->work[n_work++] = c;
            }
        }
    }
    return 0;
}

/* Advance state in by code point cp into *out (appended after in's tops
 * and everything before). 1 when some stack survives or the text is
 * complete, else 0. */
static int step_cp(sk_grammar_matcher *m, const g_state *in, uint32_t cp, g_state *out) {
    const sk_grammar *g = m->g;
    if (grow_u32(&m->work, &m->cap_work, (uint64_t)in->n + 1)) return 0;
    uint32_t n_work = 0;
    for (uint32_t i = 0; i < in->n; i++) {
        uint32_t k = m->tops[in->off + i];
        uint32_t pos = m->npos[k];
        if (!g_class_has(g, &g->elems[pos], cp)) continue;
        uint32_t c = node_get(m, pos + 1, m->npar[k]);
        if (c != NO_NODE) m->work[n_work++] = c;
    }
    if (!n_work) return 0;
    out->off = in->off + in->n;
    out->need = 0;
    if (closure(m, n_work, out)) return 0;
    return out->n > 0 || out->accept;
}

/* Can some top still match a code point in [lo, hi]? */
static int viable(const sk_grammar_matcher *m, const g_state *s, uint32_t lo, uint32_t hi) {
    const sk_grammar *g = m->g;
    for (uint32_t i = 0; i < s->n; i++) {
        const g_elem *e = &g->elems[m->npos[m->tops[s->off + i]]];
        const uint32_t *r = g->ranges + e->a;
        if (e->neg) {
            int covered = 0;
            for (uint32_t j = 0; j < e->n && !covered; j++) covered = r[2 * j] <= lo && r[2 * j + 1] >= hi;
            if (!covered) return 1;
        } else {
            for (uint32_t j = 0; j < e->n; j++)
                if (r[2 * j] <= hi && r[2 * j + 1] >= lo) return 1;
        }
    }
    return 0;
}

/* Advance state in by one byte b into *out. 1 when viable, else 0. */
static int step_byte(sk_grammar_matcher *m, const g_state *in, uint8_t b, g_state *out) {
    g_state t = *in;
    t.accept = 0;
    if (in->need == 0) {
        if (b < 0x80) return step_cp(m, in, b, out);
        if (b >= 0xC2 && b <= 0xDF) t.need = 1, t.cp = b & 0x1F, t.lo = 0x80, t.hi = 0xBF;
        else if (b >= 0xE0 && b <= 0xEF)
            t.need = 2, t.cp = b & 0x0F, t.lo = b == 0xE0 ? 0xA0 : 0x80, t.hi = b == 0xED ? 0x9F : 0xBF;
        else if (b >= 0xF0 && b <= 0xF4)
            t.need = 3, t.cp = b & 0x07, t.lo = b == 0xF0 ? 0x90 : 0x80, t.hi = b == 0xF4 ? 0x8F : 0xBF;
        else return 0;
        t.len = (uint8_t)(t.need + 1);
    } else {
        if (b < in->lo || b > in->hi) return 0;
        t.cp = (in->cp << 6) | (b & 0x3F);
        t.need--;
        t.lo = 0x80, t.hi = 0xBF;
        if (t.need == 0) {
            g_state base = *in;
            base.need = 0;
            return step_cp(m, &base, t.cp, out);
        }
    }
    /* the code points the sequence can still become: the bits so far, any
     * low bits, within the range of its length (no overlong forms) */
    uint32_t sh = 6u * t.need, lo = t.cp << sh, hi = lo | ((1u << sh) - 1);
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000}, max[5] = {0, 0, 0x7FF, 0xFFFF, 0x10FFFF};
    if (lo < min[t.len]) lo = min[t.len];
    if (hi > max[t.len]) hi = max[t.len];
    if (lo > hi || !viable(m, in, lo, hi)) return 0;
    *out = t; /* the same tops: nothing consumed yet */
    return 1;
}

/* ---- the matcher -------------------------------------------------------- */

void sk_grammar_matcher_free(sk_grammar_matcher *m) {
    if (!m) return;
    free(m->npos), free(m->npar), free(m->ndepth), free(m->stamp), free(m->hash);
    free(m->tops), free(m->work), free(m->walk);
    free(m);
}

/* Empty the pool but for the bottom node; start state = closure of root. */
static int matcher_start(sk_grammar_matcher *m) {
    const sk_grammar *g = m->g;
    m->n_nodes = 1;
    m->npos[0] = m->npar[0] = 0;
    m->ndepth[0] = 0;
    m->stamp[0] = 0;
    if (m->hash) memset(m->hash, 0, sizeof *m->hash * m->cap_hash);
    uint32_t a0 = g->rule_alt0[g->root], na = g->rule_nalt[g->root];
    if (grow_u32(&m->work, &m->cap_work, (uint64_t)na + 1)) return -1;
    uint32_t n = 0;
    for (uint32_t i = 0; i < na; i++) {
        uint32_t c = node_get(m, g->alts[a0 + i], 0);
        if (c == NO_NODE) return -1;
        m->work[n++] = c;
    }
    memset(&m->cur, 0, sizeof m->cur);
    m->version++;
    if (closure(m, n, &m->cur)) m->cur.n = 0, m->cur.accept = 0; /* too ambiguous at the start: dead */
    return 0;
}

sk_status sk_grammar_matcher_new(const sk_grammar *g, sk_grammar_matcher **out, sk_error *err) {
    *out = NULL;
    sk_grammar_matcher *m = calloc(1, sizeof *m);
    if (!m) return sk_error_set(err, SK_ERR_NOMEM, "grammar: out of memory");
    m->g = g;
    if (pool_reserve(m) || grow_u32(&m->tops, &m->cap_tops, 64) || grow_u32(&m->work, &m->cap_work, 64) ||
        matcher_start(m)) {
        sk_grammar_matcher_free(m);
        return sk_error_set(err, SK_ERR_NOMEM, "grammar: out of memory");
    }
    *out = m;
    return SK_OK;
}

void sk_grammar_matcher_reset(sk_grammar_matcher *m) {
    if (matcher_start(m)) m->cur.n = 0, m->cur.accept = 0; /* out of memory: a dead matcher */
}

sk_status sk_grammar_matcher_clone(const sk_grammar_matcher *m, sk_grammar_matcher **out, sk_error *err) {
    *out = NULL;
    sk_grammar_matcher *c = calloc(1, sizeof *c);
    if (!c) return sk_error_set(err, SK_ERR_NOMEM, "grammar: out of memory");
    c->g = m->g;
    c->cap_nodes = m->n_nodes;
    c->n_nodes = m->n_nodes;
    c->cap_hash = m->cap_hash;
    c->cap_tops = m->cur.n + 64;
    c->cap_work = m->cap_work;
    c->cur = m->cur;
    c->cur_stamp = m->cur_stamp;
    c->version = m->version;
    c->npos = malloc(sizeof *c->npos * c->cap_nodes);
    c->npar = malloc(sizeof *c->npar * c->cap_nodes);
    c->stamp = malloc(sizeof *c->stamp * c->cap_nodes);
    c->ndepth = malloc(sizeof *c->ndepth * c->cap_nodes);
    c->hash = malloc(sizeof *c->hash * c->cap_hash);
    c->tops = malloc(sizeof *c->tops * c->cap_tops);
    c->work = malloc(sizeof *c->work * c->cap_work);
    if (!c->npos || !c->npar || !c->stamp || !c->ndepth || !c->hash || !c->tops || !c->work) {
        sk_grammar_matcher_free(c);
        return sk_error_set(err, SK_ERR_NOMEM, "grammar: out of memory");
    }
    memcpy(c->npos, m->npos, sizeof *c->npos * m->n_nodes);
    memcpy(c->npar, m->npar, sizeof *c->npar * m->n_nodes);
    memcpy(c->stamp, m->stamp, sizeof *c->stamp * m->n_nodes);
    memcpy(c->ndepth, m->ndepth, sizeof *c->ndepth * m->n_nodes);
    memcpy(c->hash, m->hash, sizeof *c->hash * m->cap_hash);
    memcpy(c->tops, m->tops, sizeof *c->tops * m->cur.n);
    *out = c;
    return SK_OK;
}

int sk_grammar_matcher_advance(sk_grammar_matcher *m, const char *bytes, size_t n) {
    g_state s = m->cur;
    for (size_t i = 0; i < n; i++) {
        g_state t;
        if (!step_byte(m, &s, (uint8_t)bytes[i], &t)) return 0;
        s = t;
        /* keep the scratch compact: a state's tops move down to just after
         * the current state's (nothing else is live) */
        if (s.off > m->cur.n) {
            memmove(m->tops + m->cur.n, m->tops + s.off, sizeof *m->tops * s.n);
            s.off = m->cur.n;
        }
    }
    if (s.off != 0) memmove(m->tops, m->tops + s.off, sizeof *m->tops * s.n);
    s.off = 0;
    m->cur = s;
    m->version++;
    return 1;
}

int sk_grammar_matcher_accepts(const sk_grammar_matcher *m) { return m->cur.need == 0 && m->cur.accept; }

int sk_grammar_matcher_done(const sk_grammar_matcher *m) { return m->cur.n == 0; }

/* ---- token masks -------------------------------------------------------- */

int64_t sk_grammar_mask(sk_grammar_matcher *m, const sk_token_trie *t, uint8_t *allowed) {
    memset(allowed, 0, (size_t)t->n_vocab);
    int64_t count = 0;
    if (m->cap_walk < t->max_depth + 1) {
        g_state *w = realloc(m->walk, sizeof *w * (t->max_depth + 1));
        if (w) m->walk = w, m->cap_walk = t->max_depth + 1;
    }
    if (m->cap_walk >= t->max_depth + 1 && m->cur.n > 0) {
        g_state *st = m->walk;
        st[0] = m->cur;
        for (uint32_t i = 1; i < t->n_nodes;) {
            uint32_t d = t->depth[i];
            if (!step_byte(m, &st[d - 1], t->byte[i], &st[d])) {
                i = t->end[i];
                continue;
            }
            for (uint32_t j = 0; j < t->ntok[i]; j++) allowed[t->ids[t->tok0[i] + j]] = 1;
            count += t->ntok[i];
            i++;
        }
    }
    int eog = sk_grammar_matcher_accepts(m) || count == 0;
    for (int64_t id = 0; id < t->n_vocab && eog; id++)
        if (t->kind[id] == TT_EOG) allowed[id] = 1, count++;
    return count;
}

int sk_grammar_accept_token(sk_grammar_matcher *m, const sk_token_trie *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return 0;
    if (t->kind[id] == TT_EOG) return sk_grammar_matcher_accepts(m);
    if (t->kind[id] != TT_PIECE) return 0;
    return sk_grammar_matcher_advance(m, t->bytes + t->piece_off[id], t->piece_len[id]);
}
