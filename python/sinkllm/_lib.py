"""_lib.py - loading libsinkllm.so and its C declarations for ctypes.

The library is looked for, in order: the path in $SINKLLM_LIB; a
libsinkllm.so (or .so.0) next to this package; the system loader
(ldconfig's cache, LD_LIBRARY_PATH). It is loaded on first use, so
`import sinkllm` works without it.

The Structure classes mirror the structs of include/sinkllm.h and
include/status.h field for field (tests/integration/test_python.py compares
their sizes with the C compiler's). Every library call that can fail fills
an Error; check() turns a non-zero status into SinkError with the library's
one-line message.
"""
import ctypes
import ctypes.util
import os
from ctypes import (POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int, c_int32,
                    c_int64, c_size_t, c_ubyte, c_uint64, c_void_p)

ERRMSG_LEN = 256
SEED_RANDOM = 2 ** 64 - 1
ERR_INVALID = 4  # SK_ERR_INVALID


class SinkError(Exception):
    """A library call failed: .status is the sk_status code, str(e) the
    library's message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Error(Structure):  # sk_error
    _fields_ = [("code", c_int), ("msg", c_char * ERRMSG_LEN)]


class Hparams(Structure):  # sk_hparams
    _fields_ = [("arch", c_char * 32), ("name", c_char * 128), ("n_vocab", c_int64),
                ("n_ctx_train", c_int64), ("n_embd", c_int), ("n_layer", c_int),
                ("n_head", c_int), ("n_head_kv", c_int), ("head_dim", c_int), ("n_ff", c_int),
                ("n_rot", c_int), ("rope_neox", c_int), ("rope_base", c_double),
                ("rope_scale", c_double), ("norm_eps", c_float), ("tied_output", c_int),
                ("file_type", c_int), ("n_swa", c_int), ("n_layer_swa", c_int),
                ("rope_base_swa", c_double)]


class CacheParams(Structure):  # sk_cache_params
    _fields_ = [("policy", c_int), ("n_sinks", c_int), ("n_window", c_int), ("n_ctx", c_int),
                ("kv_type", c_int), ("n_rollback", c_int)]


class ContextParams(Structure):  # sk_context_params
    _fields_ = [("n_threads", c_int), ("n_batch", c_int), ("logits_all", c_int),
                ("precise", c_int), ("cache", CacheParams), ("threads", c_void_p)]


class ContextStats(Structure):  # sk_context_stats
    _fields_ = [("n_past", c_int64), ("n_cached", c_int64), ("n_evicted", c_int64),
                ("cache_capacity", c_int64), ("kv_bytes", c_uint64), ("scratch_bytes", c_uint64),
                ("n_shifts", c_int64)]


class SamplerParams(Structure):  # sk_sampler_params
    _fields_ = [("temp", c_float), ("top_k", c_int32), ("top_p", c_float), ("min_p", c_float),
                ("repeat_penalty", c_float), ("repeat_last_n", c_int32),
                ("presence_penalty", c_float), ("frequency_penalty", c_float),
                ("seed", c_uint64)]


class ChatMsg(Structure):  # sk_chat_msg
    _fields_ = [("role", c_char_p), ("content", c_char_p)]


class Detok(Structure):  # sk_detok
    _fields_ = [("pending", c_ubyte * 8), ("n_pending", c_int)]


P = c_void_p  # every opaque handle (sk_model *, sk_context *, ...)
E = POINTER(Error)
I32P = POINTER(c_int32)
# name: (result type, argument types)
_PROTOS = {
    "sk_status_str": (c_char_p, [c_int]),
    "sk_model_load": (c_int, [c_char_p, POINTER(P), E]),
    "sk_model_free": (None, [P]),
    "sk_model_hparams": (POINTER(Hparams), [P]),
    "sk_model_tokenizer": (P, [P]),
    "sk_model_size": (c_uint64, [P]),
    "sk_model_n_params": (c_uint64, [P]),
    "sk_model_desc": (c_char_p, [P]),
    "sk_model_chat_template": (c_char_p, [P]),
    "sk_tokenize": (c_int, [P, c_char_p, c_size_t, c_int, c_int, I32P, c_int64,
                            POINTER(c_int64), E]),
    "sk_token_to_piece": (c_int, [P, c_int32, c_int, c_char_p, c_size_t]),
    "sk_tokenizer_n_vocab": (c_int64, [P]),
    "sk_tokenizer_bos": (c_int32, [P]),
    "sk_tokenizer_eos": (c_int32, [P]),
    "sk_tokenizer_eot": (c_int32, [P]),
    "sk_token_is_eog": (c_int, [P, c_int32]),
    "sk_token_lookup": (c_int32, [P, c_char_p, c_size_t]),
    "sk_token_type": (c_int, [P, c_int32]),
    "sk_detok_init": (None, [POINTER(Detok)]),
    "sk_detok_push": (c_size_t, [POINTER(Detok), P, c_int32, c_int, c_char_p, c_size_t]),
    "sk_detok_flush": (c_size_t, [POINTER(Detok), c_char_p, c_size_t]),
    "sk_chat_detect": (c_int, [c_char_p, POINTER(c_int)]),
    "sk_chat_kind_parse": (c_int, [c_char_p, POINTER(c_int), E]),
    "sk_chat_kind_name": (c_char_p, [c_int]),
    "sk_chat_render": (c_int, [P, c_int, POINTER(ChatMsg), c_int, c_int, I32P, c_int64,
                               POINTER(c_int64), E]),
    "sk_sampler_params_default": (None, [POINTER(SamplerParams)]),
    "sk_sampler_params_validate": (c_int, [POINTER(SamplerParams), E]),
    "sk_sampler_new": (c_int, [POINTER(SamplerParams), c_int64, POINTER(P), E]),
    "sk_sampler_free": (None, [P]),
    "sk_sampler_sample": (c_int32, [P, POINTER(c_float)]),
    "sk_sampler_accept": (None, [P, c_int32]),
    "sk_context_params_default": (None, [POINTER(ContextParams)]),
    "sk_context_new": (c_int, [P, POINTER(ContextParams), POINTER(P), E]),
    "sk_context_free": (None, [P]),
    "sk_decode": (c_int, [P, I32P, c_int64, E]),
    "sk_logits": (POINTER(c_float), [P]),
    "sk_logits_ith": (POINTER(c_float), [P, c_int]),
    "sk_context_nll": (c_int, [P, I32P, c_int, POINTER(c_double), E]),
    "sk_context_reset": (None, [P]),
    "sk_context_rollback": (c_int, [P, c_int64, E]),
    "sk_context_get_stats": (None, [P, POINTER(ContextStats)]),
    "sk_context_save": (c_int, [P, c_char_p, c_void_p, c_size_t, E]),
    "sk_context_load": (c_int, [P, c_char_p, POINTER(c_void_p), POINTER(c_size_t), E]),
    "sk_cache_policy_parse": (c_int, [c_char_p, POINTER(c_int), E]),
    "sk_cache_policy_name": (c_char_p, [c_int]),
}

_lib = None
_libc = None


def library_path():
    """The path (or soname) that lib() loads."""
    env = os.environ.get("SINKLLM_LIB")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("libsinkllm.so", "libsinkllm.so.0"):
        if os.path.exists(os.path.join(here, name)):
            return os.path.join(here, name)
    return ctypes.util.find_library("sinkllm") or "libsinkllm.so.0"


def lib():
    """libsinkllm with every prototype declared (loaded on first call)."""
    global _lib
    if _lib is None:
        path = library_path()
        try:
            handle = ctypes.CDLL(path)
        except OSError as e:
            raise OSError(f"cannot load libsinkllm ({path}): {e}; build it with `make shared` "
                          "and set SINKLLM_LIB to build/libsinkllm.so, or `make install`") from e
        for name, (res, args) in _PROTOS.items():
            fn = getattr(handle, name)
            fn.restype, fn.argtypes = res, args
        _lib = handle
    return _lib


def libc_free(ptr):
    """free() a buffer that the library malloc'ed for the caller."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"))
        _libc.free.argtypes, _libc.free.restype = [c_void_p], None
    _libc.free(ptr)


def check(status, err):
    """Raise SinkError(status, the library's message) when status != 0."""
    if status:
        msg = err.msg.decode("utf-8", "replace")
        if not msg:
            msg = lib().sk_status_str(status).decode()
        raise SinkError(status, msg)


def int32_array(tokens):
    """tokens (any iterable of ints) as a ctypes int32 array."""
    tokens = list(tokens)
    return (c_int32 * len(tokens))(*tokens)


def fill_ids(call):
    """The ids of a C call that writes at most cap ids and the full count
    (sk_tokenize, sk_chat_render): call(out, cap, n_out, err) -> status is
    made once to size the buffer and once to fill it."""
    n = c_int64(0)
    err = Error()
    check(call(None, 0, ctypes.byref(n), ctypes.byref(err)), err)
    out = (c_int32 * max(n.value, 1))()
    check(call(out, n.value, ctypes.byref(n), ctypes.byref(err)), err)
    return out[:n.value]


def at(arr, i):
    """A pointer to element i of a ctypes int32 array (C's arr + i)."""
    return ctypes.cast(ctypes.addressof(arr) + 4 * i, I32P)


class Handle:
    """Base of the objects that own a C handle (self._h): close() frees it
    once (through _free); `with` and garbage collection close it too."""
    _h = None

    def _free(self, h):
        raise NotImplementedError

    def close(self):
        if self._h:
            h, self._h = self._h, None
            self._free(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def _handle(self):
        if not self._h:
            raise ValueError(f"the {type(self).__name__.lower()} is closed")
        return self._h
