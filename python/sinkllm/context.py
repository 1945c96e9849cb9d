"""context.py - Context: a KV cache and forward pass on a Model.

A context owns its KV cache (the cache policy: StreamingLLM "sink" by
default), scratch buffers and thread pool. It is used by one thread at a
time. eval() feeds tokens; logits are those after the last token fed;
generate() and chat() (sinkllm.generate) run the sampling loop on it.
"""
import ctypes
import os
from ctypes import byref, c_double, c_int, c_size_t, c_void_p

from ._lib import (ERR_INVALID, ContextParams, ContextStats, Error, Handle, SinkError, check,
                   int32_array, lib, libc_free)

KV_TYPES = {"f16": 0, "f32": 1, "q8_0": 2}  # enum sk_kv_type

try:
    import numpy as _np
except ImportError:  # logits come as lists
    _np = None


def context_params(cache="sink", n_sinks=None, window=None, n_ctx=None, kv_type="f16",
                   threads=None, batch=None, logits_all=False, precise=False, rollback=None):
    """sk_context_params from the library's defaults and the given options
    (None keeps the default); the library validates them."""
    L = lib()
    p = ContextParams()
    L.sk_context_params_default(byref(p))
    policy, err = c_int(), Error()
    check(L.sk_cache_policy_parse(cache.encode(), byref(policy), byref(err)), err)
    if kv_type not in KV_TYPES:
        raise SinkError(ERR_INVALID, f"kv_type '{kv_type}' is not one of f16, f32, q8_0")
    p.cache.policy = policy.value
    p.cache.kv_type = KV_TYPES[kv_type]
    for field, v in (("n_sinks", n_sinks), ("n_window", window), ("n_ctx", n_ctx),
                     ("n_rollback", rollback)):
        if v is not None:
            setattr(p.cache, field, v)
    for field, v in (("n_threads", threads), ("n_batch", batch)):
        if v is not None:
            setattr(p, field, v)
    p.logits_all, p.precise = int(logits_all), int(precise)
    return p


class Context(Handle):
    """Context(model, cache="sink", n_sinks=4, window=2044, n_ctx=4096,
    kv_type="f16", threads=0, batch=256, logits_all=False, precise=False,
    rollback=0): cache is "sink", "window", "dense", "recompute" or
    "shift" (n_sinks is then the tokens kept); window is the rolling
    window, n_ctx the dense capacity; threads 0 uses every core. Options
    left out keep the library's defaults. Raises SinkError with the
    library's message for a value out of range."""

    def __init__(self, model, **options):
        self.model = model
        self.params = context_params(**options)
        h, err = c_void_p(), Error()
        check(lib().sk_context_new(model._handle(), byref(self.params), byref(h), byref(err)),
              err)
        self._h = h
        self._one = (ctypes.c_int32 * 1)()
        model._contexts.add(self)

    def _free(self, h):
        lib().sk_context_free(h)

    # ---- feeding ---------------------------------------------------------------
    def eval(self, tokens):
        """Feed tokens (a prompt, or generated tokens): pre-filled in chunks
        of batch, evicting as the cache policy says between chunks."""
        err = Error()
        if isinstance(tokens, int):
            self._one[0] = tokens
            arr, n = self._one, 1
        else:
            arr = int32_array(tokens)
            n = len(arr)
        check(lib().sk_decode(self._handle(), arr, n, byref(err)), err)

    def _view(self, ptr):
        if not ptr:
            return None
        if _np is not None:
            a = _np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,))
            a.flags.writeable = False
            return a
        return ptr[:self.model.n_vocab]

    @property
    def logits(self):
        """Logits after the last token fed (n_vocab floats), None before
        any. With numpy: a read-only array over the context's own buffer
        (no copy; valid until the next eval, reset, rollback or load);
        without numpy: a list (a copy)."""
        return self._view(lib().sk_logits(self._handle()))

    def logits_ith(self, i):
        """With logits_all=True: logits after token i of the last eval."""
        return self._view(lib().sk_logits_ith(self._handle(), i))

    def nll(self, targets):
        """With logits_all=True: -log p(targets[i]) after token i of the last
        eval, for each i (a target of -1 gives NaN)."""
        t = int32_array(targets)
        out, err = (c_double * max(len(t), 1))(), Error()
        check(lib().sk_context_nll(self._handle(), t, len(t), out, byref(err)), err)
        return out[:len(t)]

    def reset(self):
        """Forget everything: empty cache, position 0."""
        lib().sk_context_reset(self._handle())

    def rollback(self, n):
        """Take back the last n tokens fed (while the cache still allows it)."""
        err = Error()
        check(lib().sk_context_rollback(self._handle(), n, byref(err)), err)

    @property
    def stats(self):
        """n_past, n_cached, n_evicted, cache_capacity, kv_bytes, scratch_bytes, n_shifts."""
        s = ContextStats()
        lib().sk_context_get_stats(self._handle(), byref(s))
        return {name: int(getattr(s, name)) for name, _ in s._fields_}

    @property
    def n_past(self):
        """Tokens fed since the last reset (the stream position)."""
        return self.stats["n_past"]

    # ---- sessions -------------------------------------------------------------
    def save(self, path, blob=b""):
        """Write the whole state (cache, position, logits) and an optional
        bytes blob to path, crash-safely."""
        err = Error()
        check(lib().sk_context_save(self._handle(), os.fsencode(path), blob or None,
                                    len(blob or b""), byref(err)), err)

    def load(self, path):
        """Restore a state written by save() (same model and cache
        configuration); returns its blob (bytes)."""
        blob, n, err = c_void_p(), c_size_t(0), Error()
        check(lib().sk_context_load(self._handle(), os.fsencode(path), byref(blob), byref(n),
                                    byref(err)), err)
        if not blob.value:
            return b""
        try:
            return ctypes.string_at(blob, n.value)
        finally:
            libc_free(blob)

    # ---- generation -------------------------------------------------------------
    def generate(self, prompt, max_tokens=256, **sampling):
        """Generate after prompt (text, or token ids) from an empty context;
        see sinkllm.generate.generate."""
        from .generate import generate
        return generate(self, prompt, max_tokens=max_tokens, **sampling)

    def chat(self, messages, max_tokens=256, **sampling):
        """The assistant's reply to messages; see sinkllm.generate.chat."""
        from .generate import chat
        return chat(self, messages, max_tokens=max_tokens, **sampling)
