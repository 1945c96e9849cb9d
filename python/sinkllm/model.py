"""model.py - Model: a GGUF model loaded by libsinkllm, with its tokenizer.

A model is immutable once loaded (weights are views into a read-only mmap of
the file) and may back any number of Contexts; it is freed by close() (which
first closes its contexts), by `with`, or when garbage-collected.
"""
import ctypes
import os
import types
import weakref
from ctypes import byref, c_void_p

from ._lib import Detok, Error, Handle, check, fill_ids, lib

PIECE_CAP = 512  # bytes of one detokenized piece (256 + 8 always suffice)


class Model(Handle):
    """Model(path): load a GGUF file. Raises SinkError with the library's
    message when the file is missing, malformed or unsupported."""

    def __init__(self, path):
        self._contexts = weakref.WeakSet()
        L = lib()
        h, err = c_void_p(), Error()
        check(L.sk_model_load(os.fsencode(path), byref(h), byref(err)), err)
        self._h = h
        self._tok = c_void_p(L.sk_model_tokenizer(h))
        self.path = str(path)
        hp = L.sk_model_hparams(h).contents
        self.hparams = types.SimpleNamespace(**{
            name: (getattr(hp, name).decode("utf-8", "replace")
                   if isinstance(getattr(hp, name), bytes) else getattr(hp, name))
            for name, _ in hp._fields_})
        self.n_vocab = int(hp.n_vocab)

    # ---- life ------------------------------------------------------------
    def close(self):
        """Free the model (and first every context still open on it)."""
        for c in list(self._contexts):
            c.close()
        super().close()

    def _free(self, h):
        lib().sk_model_free(h)

    # ---- description -------------------------------------------------------
    @property
    def desc(self):
        """A short description ("llama 135M Q4_1")."""
        return lib().sk_model_desc(self._handle()).decode("utf-8", "replace")

    @property
    def size(self):
        """Bytes of weights mapped."""
        return int(lib().sk_model_size(self._handle()))

    @property
    def n_params(self):
        return int(lib().sk_model_n_params(self._handle()))

    @property
    def chat_template(self):
        """The GGUF tokenizer.chat_template text, or None."""
        t = lib().sk_model_chat_template(self._handle())
        return t.decode("utf-8", "replace") if t is not None else None

    # ---- tokenizer -----------------------------------------------------------
    def _special(self, fn):
        self._handle()
        v = fn(self._tok)
        return None if v < 0 else int(v)

    @property
    def bos(self):
        """Id of the beginning-of-sequence token, None when absent."""
        return self._special(lib().sk_tokenizer_bos)

    @property
    def eos(self):
        return self._special(lib().sk_tokenizer_eos)

    @property
    def eot(self):
        """Id of the end-of-turn token (e.g. <|im_end|>), None when absent."""
        return self._special(lib().sk_tokenizer_eot)

    def is_eog(self, token):
        """Does token end a generation (EOS, EOT, ...)?"""
        self._handle()
        return bool(lib().sk_token_is_eog(self._tok, token))

    def token_id(self, text):
        """The id of a token by its exact text (e.g. "<|im_start|>"), None if none."""
        self._handle()
        b = text.encode("utf-8")
        v = lib().sk_token_lookup(self._tok, b, len(b))
        return None if v < 0 else int(v)

    def token_type(self, token):
        """The GGUF token type of an id (1 normal, 3 control, 6 byte, ...)."""
        self._handle()
        return int(lib().sk_token_type(self._tok, token))

    def tokenize(self, text, add_special=True, parse_special=False):
        """Token ids of text. add_special: BOS/EOS as the vocabulary adds
        them; parse_special: read special-token spellings ("<|im_start|>")
        in text as those tokens (off: text from a user is plain text)."""
        self._handle()
        b = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        L = lib()
        return fill_ids(lambda out, cap, n, err: L.sk_tokenize(
            self._tok, b, len(b), int(add_special), int(parse_special), out, cap, n, err))

    def token_to_piece(self, token, render_special=False):
        """The bytes of one token (may be part of a UTF-8 character)."""
        self._handle()
        buf = ctypes.create_string_buffer(PIECE_CAP)
        n = lib().sk_token_to_piece(self._tok, token, int(render_special), buf, PIECE_CAP)
        if n < 0:
            raise ValueError(f"token {token} is not an id in 0..{self.n_vocab - 1}")
        if n > PIECE_CAP:
            buf = ctypes.create_string_buffer(n)
            lib().sk_token_to_piece(self._tok, token, int(render_special), buf, n)
        return buf.raw[:n]

    def detokenize(self, tokens, render_special=False):
        """The text of tokens, as the streaming detokenizer emits it (whole
        UTF-8 characters; invalid sequences as U+FFFD)."""
        d = Detokenizer(self, render_special)
        return "".join(d.push(t) for t in tokens) + d.flush()

    def perplexity(self, text, **kw):
        """Streaming perplexity of text, the protocol of `sinkllm ppl`: see
        sinkllm.perplexity.perplexity for the options."""
        from .perplexity import perplexity
        return perplexity(self, text, **kw)


class Detokenizer:
    """Token ids to text, piece by piece: push() returns only whole UTF-8
    characters and holds back an unfinished tail until the next token."""

    def __init__(self, model, render_special=False):
        self.model = model
        self.render_special = int(render_special)
        self._d = Detok()
        self._buf = ctypes.create_string_buffer(PIECE_CAP)
        lib().sk_detok_init(byref(self._d))

    def push(self, token):
        m = self.model
        m._handle()
        if not 0 <= token < m.n_vocab:
            raise ValueError(f"token {token} is not an id in 0..{m.n_vocab - 1}")
        n = lib().sk_detok_push(byref(self._d), m._tok, token, self.render_special, self._buf,
                                PIECE_CAP)
        return self._buf.raw[:n].decode("utf-8", "replace")

    def flush(self):
        n = lib().sk_detok_flush(byref(self._d), self._buf, PIECE_CAP)
        return self._buf.raw[:n].decode("utf-8", "replace")
