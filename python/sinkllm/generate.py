"""generate.py - the sampling loop: generate() after a prompt, chat() after
a conversation rendered with the model's chat template.

The loop is `sinkllm run`'s (tools/cmd_run.c): the prompt is tokenized with
BOS as the vocabulary says (an empty prompt starts from BOS), every prompt
token enters the sampler's penalty history, and each step copies the logits
into a buffer of the loop's own, samples, stops on an end-of-generation
token, then records and feeds the token. Text comes out of the streaming
detokenizer, so a piece never ends inside a UTF-8 character. With the same
model, cache and sampling options the text equals `sinkllm run
--no-display-prompt`'s (temperature 0: greedy; a fixed seed otherwise).
"""
import ctypes
from ctypes import byref, c_float, c_int, c_void_p

from ._lib import SEED_RANDOM, ChatMsg, Error, SamplerParams, check, fill_ids, lib
from .model import Detokenizer

# the keyword options of generate()/chat() and their sk_sampler_params fields
SAMPLING = {"temperature": "temp", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p",
            "repeat_penalty": "repeat_penalty", "repeat_last_n": "repeat_last_n",
            "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
            "seed": "seed"}


def sampler_params(**options):
    """sk_sampler_params: llama.cpp's defaults (the library's) with the given
    options (None keeps a default; seed -1 or None: random)."""
    p = SamplerParams()
    lib().sk_sampler_params_default(byref(p))
    for name, v in options.items():
        if name not in SAMPLING:
            raise TypeError(f"unknown sampling option '{name}'")
        if v is None:
            continue
        if name == "seed" and v < 0:
            v = SEED_RANDOM
        setattr(p, SAMPLING[name], v)
    err = Error()
    check(lib().sk_sampler_params_validate(byref(p), byref(err)), err)
    return p


def _pieces(ctx, ids, max_tokens, sp):
    """Yield the text pieces generated after ids (context reset first)."""
    L, m = lib(), ctx.model
    tok = m._tok
    nv = m.n_vocab
    smp, err = c_void_p(), Error()
    check(L.sk_sampler_new(byref(sp), nv, byref(smp), byref(err)), err)
    try:
        ctx.reset()
        if not ids:  # nothing to condition on: start from BOS as the CLI does
            ids = [m.bos if m.bos is not None else 0]
        for t in ids:
            L.sk_sampler_accept(smp, t)
        ctx.eval(ids)
        logits = (c_float * nv)()
        nbytes = ctypes.sizeof(logits)
        det = Detokenizer(m)
        n = 0
        while max_tokens is None or max_tokens < 0 or n < max_tokens:
            ctypes.memmove(logits, L.sk_logits(ctx._handle()), nbytes)
            t = L.sk_sampler_sample(smp, logits)
            if L.sk_token_is_eog(tok, t):
                break
            L.sk_sampler_accept(smp, t)
            n += 1
            ctx.eval(t)  # fed before its text is handed out: the context holds every token yielded
            piece = det.push(t)
            if piece:
                yield piece
        tail = det.flush()
        if tail:
            yield tail
    finally:
        L.sk_sampler_free(smp)


def _run(ctx, ids, max_tokens, stream, sampling):
    sp = sampler_params(**sampling)  # options checked before any work
    it = _pieces(ctx, ids, max_tokens, sp)
    return it if stream else "".join(it)


def generate(ctx, prompt, max_tokens=256, stream=True, special=False, **sampling):
    """Generate after prompt (a str, or a list of token ids) on ctx, from an
    empty context. max_tokens None or < 0: until an end-of-generation token.
    stream=True (default): an iterator of text pieces as they come;
    stream=False: the whole text. special: read special-token spellings in a str prompt. Sampling:
    temperature (0.8; 0 = greedy), top_k (40), top_p (0.95), min_p (0.05),
    repeat_penalty (1.0), repeat_last_n (64), presence_penalty (0),
    frequency_penalty (0), seed (-1 = random)."""
    ids = (ctx.model.tokenize(prompt, add_special=True, parse_special=special)
           if isinstance(prompt, (str, bytes)) else list(prompt))
    return _run(ctx, ids, max_tokens, stream, sampling)


def chat_tokens(model, messages, template=None):
    """Token ids of messages ([{"role": ..., "content": ...}, ...]) rendered
    with the model's chat template (or the named one: "chatml", "llama3",
    ...) and the assistant's generation prompt."""
    L = lib()
    kind, err = c_int(), Error()
    if template is None:
        kind.value = L.sk_chat_detect(model.chat_template and model.chat_template.encode(), None)
    else:
        check(L.sk_chat_kind_parse(template.encode(), byref(kind), byref(err)), err)
    keep = [(m["role"].encode(), m["content"].encode()) for m in messages]
    msgs = (ChatMsg * max(len(keep), 1))(*[ChatMsg(r, c) for r, c in keep])
    model._handle()
    return fill_ids(lambda out, cap, n, e: L.sk_chat_render(
        model._tok, kind.value, msgs, len(keep), 1, out, cap, n, e))  # 1: SK_CHAT_ADD_GEN


def chat(ctx, messages, max_tokens=256, stream=True, template=None, **sampling):
    """The assistant's reply to messages (a list of {"role", "content"},
    roles "system", "user", "assistant"), from an empty context; options as
    generate()."""
    return _run(ctx, chat_tokens(ctx.model, messages, template), max_tokens, stream, sampling)
