/* layout.c - where each weight of a training network lives in its flat
 * parameter vector (net.h). */
#include "net.h"

void tr_layout_init(const tr_dims *dm, tr_layout *lay) {
    size_t d = (size_t)dm->d, nq = (size_t)dm->nh * dm->hd, nk = (size_t)dm->nkv * dm->hd,
           ff = (size_t)dm->ff, V = (size_t)dm->V, o = 0;
    lay->tok_embd = o;
    o += V * d;
    for (int l = 0; l < dm->n_layer; l++) {
        tr_block_off *b = &lay->blk[l];
        b->attn_norm = o, o += d;
        b->wq = o, o += nq * d;
        b->wk = o, o += nk * d;
        b->wv = o, o += nk * d;
        b->wo = o, o += d * nq;
        b->ffn_norm = o, o += d;
        b->wg = o, o += ff * d;
        b->wu = o, o += ff * d;
        b->wd = o, o += d * ff;
        if (dm->sink_logit) b->sinks = o, o += (size_t)dm->nh;
    }
    lay->out_norm = o, o += d;
    if (dm->tied) lay->output = lay->tok_embd;
    else lay->output = o, o += V * d;
    lay->n_params = o;
}

int tr_layout_is_norm(const tr_dims *dm, const tr_layout *lay, size_t i) {
    size_t d = (size_t)dm->d;
    if (i >= lay->out_norm && i < lay->out_norm + d) return 1;
    for (int l = 0; l < dm->n_layer; l++) {
        const tr_block_off *b = &lay->blk[l];
        if ((i >= b->attn_norm && i < b->attn_norm + d) || (i >= b->ffn_norm && i < b->ffn_norm + d))
            return 1;
    }
    return 0;
}
