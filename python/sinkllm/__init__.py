"""sinkllm - Python bindings of libsinkllm (ctypes; no compiler needed).

    import sinkllm
    m = sinkllm.Model("SmolLM2-135M-Instruct.Q4_1.gguf")
    ctx = sinkllm.Context(m, cache="sink", n_sinks=4, window=1020)
    for piece in ctx.generate("The capital of France is", max_tokens=32,
                              temperature=0, stream=True):
        print(piece, end="", flush=True)

Model (load, hparams, tokenizer), Context (KV cache: eval, logits, reset,
save/load, generate, chat), perplexity (the protocol of `sinkllm ppl`).
Failures of the library raise SinkError with its message.
"""
from ._lib import SinkError, library_path
from .context import Context
from .generate import chat, chat_tokens, generate
from .model import Detokenizer, Model
from .perplexity import perplexity

__version__ = "0.1.0"
__all__ = ["Model", "Context", "Detokenizer", "SinkError", "generate", "chat", "chat_tokens",
           "perplexity", "library_path"]
