/* grammar.h - the compiled form of a GBNF grammar, shared by the compiler
 * (grammar.c), the matcher (grammar_match.c) and the token masks
 * (token_trie.c). The API itself is public: include/sinkllm.h, section
 * "grammars".
 *
 * The compiled grammar is flat. Every rule is a list of alternatives; every
 * alternative is a run of elements in elems[] closed by a G_END element.
 * Repetitions, optionals and groups were turned into helper rules by the
 * compiler (x* -> R ::= x R | ""), so only three element kinds remain:
 *   G_CHARS  one code point in a class: ranges[a .. a + 2n) holds n
 *            inclusive [lo, hi] pairs; neg: any code point outside them
 *   G_RULE   a reference to rule a
 *   G_END    the end of an alternative
 * A position in elems[] is a program counter of the recognizer. */
#ifndef SK_GRAMMAR_H
#define SK_GRAMMAR_H

#include <stdint.h>

#include "sinkllm.h"

enum { G_END = 0, G_CHARS = 1, G_RULE = 2 };

typedef struct g_elem {
    uint8_t type;  /* G_END, G_CHARS, G_RULE */
    uint8_t neg;   /* G_CHARS: negated class */
    uint32_t a;    /* G_CHARS: offset into ranges; G_RULE: rule index */
    uint32_t n;    /* G_CHARS: number of [lo, hi] pairs */
} g_elem;

struct sk_grammar {
    g_elem *elems;        /* (n_elems) every alternative, each closed by G_END */
    uint32_t n_elems;
    uint32_t *ranges;     /* (n_ranges) [lo, hi] pairs of the classes */
    uint32_t n_ranges;
    uint32_t *alts;       /* (n_alts) start position of each alternative */
    uint32_t n_alts;
    uint32_t *rule_alt0;  /* (n_rules) index of a rule's first alternative in alts */
    uint32_t *rule_nalt;  /* (n_rules) its number of alternatives */
    uint32_t n_rules;
    uint32_t root;        /* the rule named root */
};

/* The piece trie of a vocabulary (token_trie.c), read by the mask walk
 * (grammar_match.c). Nodes are in preorder, node 0 the root; the subtree
 * of node i is [i, end[i]), so a rejected prefix is skipped by one jump. */
struct sk_token_trie {
    int64_t n_vocab;
    uint32_t n_nodes;
    uint8_t *byte;        /* (n_nodes) the byte that leads to node i */
    uint16_t *depth;      /* (n_nodes) its depth (root 0) */
    uint32_t *end;        /* (n_nodes) first node after its subtree */
    uint32_t *tok0;       /* (n_nodes) tokens whose piece ends at node i: */
    uint32_t *ntok;       /*   ids[tok0[i] .. tok0[i] + ntok[i]) */
    int32_t *ids;         /* (n_in) token ids in piece order */
    uint32_t n_in;        /* tokens in the trie */
    uint32_t max_depth;   /* longest piece */
    uint64_t *piece_off;  /* (n_vocab) token id's piece: bytes[piece_off .. + piece_len) */
    uint32_t *piece_len;  /*   (0 for the tokens not in the trie) */
    char *bytes;
    uint8_t *kind;        /* (n_vocab) TT_NEVER, TT_PIECE, TT_EOG */
};
enum { TT_NEVER = 0, TT_PIECE = 1, TT_EOG = 2 };

/* A number that changes whenever m's state does (advance, reset), so that
 * a mask computed for one state is not reused for another. */
uint64_t g_matcher_version(const sk_grammar_matcher *m);

/* Does class element e match code point cp? */
static inline int g_class_has(const sk_grammar *g, const g_elem *e, uint32_t cp) {
    const uint32_t *r = g->ranges + e->a;
    for (uint32_t i = 0; i < e->n; i++)
        if (cp >= r[2 * i] && cp <= r[2 * i + 1]) return !e->neg;
    return e->neg;
}

#endif
