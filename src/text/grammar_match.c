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
 * Masks: the trie's nodes are walked in preorder with one state per depth;
 * a byte that kills every stack skips the node's whole subtree, so work is
 * proportional to the prefixes the grammar allows, not to the vocabulary.
 * Most of those prefixes lead back to a few states (inside a JSON string,
 * every ordinary character returns to the same one), so the walk runs on a
 * memo: states are interned (tops sorted, partial UTF-8 included) and each
 * (state, byte) transition is computed once, then looked up, for as long
 * as the node pool lives (a reset clears it; past MEMO_STATES states or
 * MEMO_TOPS tops it is cleared before a walk; past MEMO_HARD_TOPS within
 * one walk a new state is refused, which only forbids more tokens). The
 * whole masks of the last MASK_CACHE start states are kept too: a state
 * that comes back (the inside of a string, token after token) costs a
 * copy instead of a walk.
 *
 * Owns: the node pool and its hash, the tops array (the current state
 * first, then the mask walk's states), a work stack. They grow to the
 * working set and are reused; nothing else allocates. */
#include "grammar.h"

#include <stdlib.h>
#include <string.h>

#define NO_NODE UINT32_MAX
#define MASK_CACHE 8 /* whole masks kept per matcher */

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
    uint32_t *walk;         /* (cap_walk) mask walk: the memo state id at each trie depth */
    uint32_t cap_walk;
    /* the mask walk's memo (see "token masks"): interned states, their tops
     * (sorted), and byte transitions between them */
    struct g_istate *ist;   /* (n_ist) */
    uint32_t n_ist, cap_ist;
    uint32_t *ist_tops;     /* (n_ist_tops) the interned states' tops */
    uint32_t n_ist_tops, cap_ist_tops;
    uint32_t *ist_hash;     /* (cap_ist_hash) state id + 1, 0 = empty */
    uint32_t cap_ist_hash;
    uint64_t *tr_key;       /* (cap_tr) state id * 256 + byte + 1, 0 = empty */
    uint32_t *tr_val;       /* (cap_tr) the next state id, or TR_DEAD */
    uint32_t n_tr, cap_tr;
    struct g_mask_entry {   /* whole masks of recent start states (memo ids) */
        uint32_t sid;
        const sk_token_trie *t;
        uint8_t *mask;      /* (t->n_vocab) */
        int64_t count;
        uint64_t used;      /* for least-recently-used replacement; 0 = empty */
    } masks[MASK_CACHE];
    uint64_t mask_clock;
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
    free(m->ist), free(m->ist_tops), free(m->ist_hash), free(m->tr_key), free(m->tr_val);
    for (int i = 0; i < MASK_CACHE; i++) free(m->masks[i].mask);
    free(m);
}

static void memo_clear(sk_grammar_matcher *m);

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
    memo_clear(m); /* its states name nodes of the old pool */
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

#define MEMO_STATES (1u << 16)
#define MEMO_TOPS (1u << 22)
#define MEMO_HARD_TOPS (1u << 24)
#define TR_DEAD UINT32_MAX
#define TR_MISS (UINT32_MAX - 1)

typedef struct g_istate {
    uint32_t off, n;  /* ist_tops[off .. off + n), sorted */
    uint32_t cp, h;   /* partial UTF-8 as in g_state; h the hash */
    uint8_t need, lo, hi, len, accept;
} g_istate;

static void memo_clear(sk_grammar_matcher *m) {
    m->n_ist = m->n_ist_tops = m->n_tr = 0;
    for (int i = 0; i < MASK_CACHE; i++) m->masks[i].used = 0;
    if (m->ist_hash) memset(m->ist_hash, 0, sizeof *m->ist_hash * m->cap_ist_hash);
    if (m->tr_key) memset(m->tr_key, 0, sizeof *m->tr_key * m->cap_tr);
}

static uint32_t ist_hash_of(const uint32_t *tops, uint32_t n, const g_state *s) {
    uint64_t h = 1469598103934665603ULL ^ ((uint64_t)s->cp << 24 | (uint64_t)s->need << 16 | s->lo << 8 | s->hi);
    h = (h ^ ((uint64_t)s->len << 8 | s->accept)) * 1099511628211ULL;
    for (uint32_t i = 0; i < n; i++) h = (h ^ tops[i]) * 1099511628211ULL;
    return (uint32_t)(h ^ (h >> 32));
}

static int istate_eq(const sk_grammar_matcher *m, const g_istate *a, const uint32_t *tops, const g_state *s, uint32_t h) {
    return a->h == h && a->n == s->n && a->cp == s->cp && a->need == s->need && a->lo == s->lo && a->hi == s->hi &&
           a->len == s->len && a->accept == s->accept && !memcmp(m->ist_tops + a->off, tops, sizeof *tops * s->n);
}

static void sort_u32(uint32_t *v, uint32_t n) {
    for (uint32_t i = 1; i < n; i++) { /* states are small; insertion sort */
        uint32_t x = v[i], j = i;
        while (j > 0 && v[j - 1] > x) v[j] = v[j - 1], j--;
        v[j] = x;
    }
}

/* The memo id of state s (its tops in m->tops, sorted here in place),
 * interned on first sight; TR_DEAD when the memo is full or memory ran out. */
static uint32_t intern(sk_grammar_matcher *m, g_state *s) {
    if (s->need == 0) s->cp = 0, s->lo = s->hi = s->len = 0; /* no partial character: one form */
    uint32_t *tops = m->tops + s->off;
    sort_u32(tops, s->n);
    uint32_t h = ist_hash_of(tops, s->n, s);
    if (m->cap_ist_hash) {
        for (uint32_t j = h & (m->cap_ist_hash - 1); m->ist_hash[j]; j = (j + 1) & (m->cap_ist_hash - 1))
            if (istate_eq(m, &m->ist[m->ist_hash[j] - 1], tops, s, h)) return m->ist_hash[j] - 1;
    }
    if ((uint64_t)m->n_ist_tops + s->n > MEMO_HARD_TOPS) return TR_DEAD;
    if (2 * ((uint64_t)m->n_ist + 1) > m->cap_ist_hash) { /* rehash at half load */
        uint32_t c = m->cap_ist_hash ? m->cap_ist_hash * 2 : 1024;
        uint32_t *nh = calloc(c, sizeof *nh);
        if (!nh) return TR_DEAD;
        for (uint32_t k = 0; k < m->n_ist; k++) {
            uint32_t j = m->ist[k].h & (c - 1);
            while (nh[j]) j = (j + 1) & (c - 1);
            nh[j] = k + 1;
        }
        free(m->ist_hash);
        m->ist_hash = nh;
        m->cap_ist_hash = c;
    }
    if (m->n_ist == m->cap_ist) {
        uint32_t c = m->cap_ist ? m->cap_ist * 2 : 256;
        g_istate *v = realloc(m->ist, sizeof *v * c);
        if (!v) return TR_DEAD;
        m->ist = v;
        m->cap_ist = c;
    }
    if (grow_u32(&m->ist_tops, &m->cap_ist_tops, (uint64_t)m->n_ist_tops + s->n + 1)) return TR_DEAD;
    tops = m->tops + s->off;
    memcpy(m->ist_tops + m->n_ist_tops, tops, sizeof *tops * s->n);
    g_istate *e = &m->ist[m->n_ist];
    *e = (g_istate){m->n_ist_tops, s->n, s->cp, h, s->need, s->lo, s->hi, s->len, s->accept};
    m->n_ist_tops += s->n;
    uint32_t j = h & (m->cap_ist_hash - 1);
    while (m->ist_hash[j]) j = (j + 1) & (m->cap_ist_hash - 1);
    m->ist_hash[j] = m->n_ist + 1;
    return m->n_ist++;
}

static uint32_t tr_slot(const sk_grammar_matcher *m, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ULL;
    uint32_t j = (uint32_t)(h >> 32) & (m->cap_tr - 1);
    while (m->tr_key[j] && m->tr_key[j] != key) j = (j + 1) & (m->cap_tr - 1);
    return j;
}

static uint32_t tr_get(const sk_grammar_matcher *m, uint32_t sid, uint8_t b) {
    if (!m->cap_tr) return TR_MISS;
    uint32_t j = tr_slot(m, (uint64_t)sid * 256 + b + 1);
    return m->tr_key[j] ? m->tr_val[j] : TR_MISS;
}

static void tr_put(sk_grammar_matcher *m, uint32_t sid, uint8_t b, uint32_t to) {
    if (2 * ((uint64_t)m->n_tr + 1) > m->cap_tr) {
        uint32_t c = m->cap_tr ? m->cap_tr * 2 : 4096;
        uint64_t *ok = m->tr_key;
        uint32_t *ov = m->tr_val, oc = m->cap_tr;
        uint64_t *nk = calloc(c, sizeof *nk);
        uint32_t *nv = malloc(sizeof *nv * c);
        if (!nk || !nv) { /* not remembered: computed again next time */
            free(nk), free(nv);
            return;
        }
        m->tr_key = nk, m->tr_val = nv, m->cap_tr = c;
        for (uint32_t i = 0; i < oc; i++)
            if (ok[i]) {
                uint32_t j = tr_slot(m, ok[i]);
                m->tr_key[j] = ok[i], m->tr_val[j] = ov[i];
            }
        free(ok), free(ov);
    }
    uint64_t key = (uint64_t)sid * 256 + b + 1;
    uint32_t j = tr_slot(m, key);
    if (!m->tr_key[j]) m->n_tr++;
    m->tr_key[j] = key;
    m->tr_val[j] = to;
}

/* The state memo id sid reaches by byte b (TR_DEAD: rejected). */
static uint32_t memo_step(sk_grammar_matcher *m, uint32_t sid, uint8_t b) {
    uint32_t to = tr_get(m, sid, b);
    if (to != TR_MISS) return to;
    const g_istate e = m->ist[sid];
    /* the state's tops, after the current state's (nothing else is live) */
    g_state in = {m->cur.n, e.n, e.cp, e.need, e.lo, e.hi, e.len, e.accept}, out;
    if (grow_u32(&m->tops, &m->cap_tops, (uint64_t)in.off + in.n + 1)) return TR_DEAD;
    memcpy(m->tops + in.off, m->ist_tops + e.off, sizeof *m->tops * e.n);
    to = step_byte(m, &in, b, &out) ? intern(m, &out) : TR_DEAD;
    tr_put(m, sid, b, to);
    return to;
}

int64_t sk_grammar_mask(sk_grammar_matcher *m, const sk_token_trie *t, uint8_t *allowed) {
    memset(allowed, 0, (size_t)t->n_vocab);
    int64_t count = 0;
    if (m->n_ist > MEMO_STATES || m->n_ist_tops > MEMO_TOPS) memo_clear(m);
    if (m->cap_walk < t->max_depth + 1) {
        uint32_t *w = realloc(m->walk, sizeof *w * (t->max_depth + 1));
        if (w) m->walk = w, m->cap_walk = t->max_depth + 1;
    }
    uint32_t sid0 = m->cur.n > 0 && m->cap_walk >= t->max_depth + 1 ? intern(m, &m->cur) : TR_DEAD;
    struct g_mask_entry *slot = &m->masks[0];
    for (int i = 0; i < MASK_CACHE && sid0 != TR_DEAD; i++) {
        struct g_mask_entry *e = &m->masks[i];
        if (e->used && e->sid == sid0 && e->t == t) { /* seen: the same mask */
            e->used = ++m->mask_clock;
            memcpy(allowed, e->mask, (size_t)t->n_vocab);
            return e->count;
        }
        if (e->used < slot->used) slot = e;
    }
    if (sid0 != TR_DEAD) {
        uint32_t *st = m->walk;
        st[0] = sid0;
        for (uint32_t i = 1; i < t->n_nodes;) {
            uint32_t d = t->depth[i];
            uint32_t to = memo_step(m, st[d - 1], t->byte[i]);
            if (to == TR_DEAD) {
                i = t->end[i];
                continue;
            }
            st[d] = to;
            for (uint32_t j = 0; j < t->ntok[i]; j++) allowed[t->ids[t->tok0[i] + j]] = 1;
            count += t->ntok[i];
            i++;
        }
    }
    int eog = sk_grammar_matcher_accepts(m) || count == 0;
    for (int64_t id = 0; id < t->n_vocab && eog; id++)
        if (t->kind[id] == TT_EOG) allowed[id] = 1, count++;
    if (sid0 != TR_DEAD) { /* remember it in the least recently used slot */
        if (slot->t != t || !slot->mask) {
            free(slot->mask);
            slot->mask = malloc((size_t)t->n_vocab);
            slot->used = 0;
        }
        if (slot->mask) {
            memcpy(slot->mask, allowed, (size_t)t->n_vocab);
            slot->sid = sid0, slot->t = t, slot->count = count, slot->used = ++m->mask_clock;
        } else {
            slot->t = NULL;
        }
    }
    return count;
}

int sk_grammar_accept_token(sk_grammar_matcher *m, const sk_token_trie *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return 0;
    if (t->kind[id] == TT_EOG) return sk_grammar_matcher_accepts(m);
    if (t->kind[id] != TT_PIECE) return 0;
    return sk_grammar_matcher_advance(m, t->bytes + t->piece_off[id], t->piece_len[id]);
}
