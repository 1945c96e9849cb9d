"""perplexity.py - streaming perplexity, the protocol of `sinkllm ppl`
(tools/cmd_ppl.c), so that both give the same number on the same text,
model and cache: one persistent cache; the text's tokens (with BOS as the
vocabulary adds it, looped to `tokens` when that is longer) are fed in
chunks of `batch` with every token's logits kept, and position p scores
-log p(token p | tokens before it) for 1 <= p < N (only p % score_every ==
0); the library computes the NLLs (sk_context_nll). The recompute policy
re-encodes the last `window` tokens from an empty dense cache for each
scored position. With sink_token, n_sinks copies of that (single) token are
fed first and serve as the sinks.
"""
import math
from ctypes import byref, c_double

from ._lib import ERR_INVALID, Error, SinkError, at, check, int32_array, lib
from .context import Context, context_params


def _nll_of(logits, target):
    """-log softmax(logits)[target], summed in double in index order as
    cmd_ppl.c's nll_of does (the recompute path)."""
    logits = [float(v) for v in logits]  # doubles, also from a float32 numpy view
    mx = max(logits)
    s = 0.0
    for v in logits:
        s += math.exp(v - mx)
    return math.log(s) + mx - logits[target]


def perplexity(model, text, cache="sink", n_sinks=None, window=None, n_ctx=None,
               kv_type="f16", threads=None, batch=64, tokens=None, score_every=1,
               sink_token=None, precise=False, return_nll=False):
    """exp(mean NLL) of text streamed through one cache (`sinkllm ppl -f`
    with --cache, --sinks, --window, -c, --kv-type, -t, -b, --tokens,
    --score-every, --sink-token, --precise). return_nll=True gives
    (perplexity, [(position, nll), ...]) instead."""
    ids = model.tokenize(text, add_special=True, parse_special=False)
    if len(ids) < 2:
        raise SinkError(ERR_INVALID, "text has fewer than 2 tokens")
    N = tokens if tokens and tokens > 0 else len(ids)
    toks = int32_array(ids[i % len(ids)] for i in range(N))
    pre = []
    if sink_token is not None:
        one = model.tokenize(sink_token, add_special=False, parse_special=True)
        if len(one) != 1:
            raise SinkError(ERR_INVALID,
                            f"sink_token '{sink_token}' is {len(one)} tokens, not one")
        if cache not in ("sink", "shift"):
            raise SinkError(ERR_INVALID, "sink_token needs a policy with sinks (sink, shift)")
        n_pre = n_sinks if n_sinks is not None else context_params().cache.n_sinks
        pre = one * n_pre
    recompute = cache == "recompute"
    opts = dict(n_sinks=n_sinks, window=window, n_ctx=n_ctx, kv_type=kv_type,
                threads=threads, batch=batch, precise=precise)
    if recompute:  # a fresh dense pass over the last W tokens per scored token
        W = window if window is not None else context_params().cache.n_window
        opts.update(cache="dense", n_ctx=W, batch=min(batch, W))
    else:
        opts.update(cache=cache, logits_all=True)
        if cache == "dense" and n_ctx is None:
            opts["n_ctx"] = min(N + len(pre), 1 << 24)
    scored = []
    total = 0.0
    with Context(model, **opts) as ctx:
        for t in pre:  # the artificial sinks, one at a time
            ctx.eval(t)
        L, h = lib(), ctx._handle()
        err = Error()
        if recompute:
            for p in range(1, N):
                if p % score_every:
                    continue
                lo = max(p - W, 0)
                ctx.reset()
                check(L.sk_decode(h, at(toks, lo), p - lo, byref(err)), err)
                v = _nll_of(ctx.logits, toks[p])
                total += v
                scored.append((p, v))
        else:
            tgt = int32_array([0] * batch)
            nll = (c_double * batch)()
            for i in range(0, N - 1, batch):
                n = min(N - 1 - i, batch)
                check(L.sk_decode(h, at(toks, i), n, byref(err)), err)
                for j in range(n):
                    tgt[j] = toks[i + j + 1] if (i + j + 1) % score_every == 0 else -1
                check(L.sk_context_nll(h, tgt, n, nll, byref(err)), err)
                for j in range(n):
                    p = i + j + 1
                    if p % score_every == 0:
                        total += nll[j]
                        scored.append((p, nll[j]))
    ppl = math.exp(total / (len(scored) or 1))
    return (ppl, scored) if return_nll else ppl
