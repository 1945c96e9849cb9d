/* token_trie.c - the piece trie of a vocabulary, for grammar token masks
 * (struct in grammar.h; API: include/sinkllm.h, section "grammars").
 *
 * Every token that can be part of constrained text (its piece, as
 * sk_token_to_piece gives it without rendering control tokens, is 1..1024
 * bytes, and it is not CONTROL, UNKNOWN, UNUSED or end-of-generation) goes
 * into a byte trie. The trie is laid out in preorder from the pieces sorted
 * bytewise: each token adds the nodes past its longest common prefix with
 * the token before it, and a node's subtree ends where the next node of
 * its depth or above starts. Tokens with equal pieces share a node.
 *
 * Owns its arrays; borrows nothing after construction. */
#include "grammar.h"

#include <stdlib.h>
#include <string.h>

#define MAX_PIECE 1024

void sk_token_trie_free(sk_token_trie *t) {
    if (!t) return;
    free(t->byte), free(t->depth), free(t->end), free(t->tok0), free(t->ntok), free(t->ids);
    free(t->piece_off), free(t->piece_len), free(t->bytes), free(t->kind);
    free(t);
}

static int by_piece(const void *a, const void *b, void *arg) {
    const sk_token_trie *t = arg;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = t->piece_len[x], ly = t->piece_len[y];
    int c = memcmp(t->bytes + t->piece_off[x], t->bytes + t->piece_off[y], lx < ly ? lx : ly);
    if (c) return c;
    if (lx != ly) return lx < ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

sk_status sk_token_trie_new(const sk_tokenizer *tok, sk_token_trie **out, sk_error *err) {
    *out = NULL;
    int64_t nv = sk_tokenizer_n_vocab(tok);
    sk_token_trie *t = calloc(1, sizeof *t);
    char buf[MAX_PIECE];
    if (!t) goto nomem;
    t->n_vocab = nv;
    t->piece_off = calloc((size_t)nv + 1, sizeof *t->piece_off);
    t->piece_len = calloc((size_t)nv + 1, sizeof *t->piece_len);
    t->kind = calloc((size_t)nv + 1, 1);
    if (!t->piece_off || !t->piece_len || !t->kind) goto nomem;
    /* pass 1: kinds and sizes */
    uint64_t total = 0;
    for (int32_t id = 0; id < nv; id++) {
        int ty = sk_token_type(tok, id);
        if (sk_token_is_eog(tok, id)) {
            t->kind[id] = TT_EOG;
            continue;
        }
        if (ty == SK_TOKTYPE_CONTROL || ty == SK_TOKTYPE_UNKNOWN || ty == SK_TOKTYPE_UNUSED) continue;
        int len = sk_token_to_piece(tok, id, 0, buf, sizeof buf);
        if (len <= 0 || len > MAX_PIECE) continue;
        t->kind[id] = TT_PIECE;
        t->piece_off[id] = total;
        t->piece_len[id] = (uint32_t)len;
        total += (uint64_t)len;
        t->n_in++;
    }
    t->bytes = malloc((size_t)total + 1);
    t->ids = malloc(sizeof *t->ids * (t->n_in + 1));
    uint64_t cap = total + 1;
    t->byte = malloc(cap);
    t->depth = malloc(sizeof *t->depth * cap);
    t->end = malloc(sizeof *t->end * cap);
    t->tok0 = calloc(cap, sizeof *t->tok0);
    t->ntok = calloc(cap, sizeof *t->ntok);
    if (!t->bytes || !t->ids || !t->byte || !t->depth || !t->end || !t->tok0 || !t->ntok) goto nomem;
    /* pass 2: the bytes, the ids in piece order */
    uint32_t k = 0;
    for (int32_t id = 0; id < nv; id++) {
        if (t->kind[id] != TT_PIECE) continue;
        sk_token_to_piece(tok, id, 0, t->bytes + t->piece_off[id], t->piece_len[id]);
        t->ids[k++] = id;
    }
    qsort_r(t->ids, t->n_in, sizeof *t->ids, by_piece, t);
    /* preorder nodes: path[d] is the open node at depth d */
    uint32_t path[MAX_PIECE + 1], n = 1, plen = 0;
    const char *prev = NULL;
    t->byte[0] = 0;
    t->depth[0] = 0;
    path[0] = 0;
    for (uint32_t i = 0; i < t->n_in; i++) {
        int32_t id = t->ids[i];
        const char *p = t->bytes + t->piece_off[id];
        uint32_t len = t->piece_len[id], lcp = 0;
        while (prev && lcp < len && lcp < plen && p[lcp] == prev[lcp]) lcp++;
        for (uint32_t d = plen; d > lcp; d--) t->end[path[d]] = n; /* close the nodes below the prefix */
        for (uint32_t d = lcp + 1; d <= len; d++) {
            t->byte[n] = (uint8_t)p[d - 1];
            t->depth[n] = (uint16_t)d;
            t->tok0[n] = i;
            path[d] = n++;
        }
        uint32_t at = path[len];
        if (t->ntok[at] == 0) t->tok0[at] = i;
        t->ntok[at]++;
        if (len > t->max_depth) t->max_depth = len;
        prev = p;
        plen = len;
    }
    for (uint32_t d = plen; d > 0; d--) t->end[path[d]] = n;
    t->end[0] = n;
    t->n_nodes = n;
    *out = t;
    return SK_OK;
nomem:
    sk_token_trie_free(t);
    return sk_error_set(err, SK_ERR_NOMEM, "token trie: out of memory");
}
