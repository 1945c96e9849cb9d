#!/usr/bin/env python3
"""make_vocab.py - the small vocabulary of the pre-training experiment
(issue 15): a byte-level BPE of 4,096 tokens trained on the corpus, written
as a vocabulary-only GGUF that `sinkllm train --vocab` reads and copies
into the models it exports.

    .venv-ref/bin/python scripts/make_vocab.py --corpus build/corpus/train.txt \\
        --out build/corpus/vocab4k.gguf          (make vocab)

Training: Hugging Face's `tokenizers` (scripts/requirements-ref.txt), a BPE
model behind the ByteLevel pre-tokenizer (GPT-2's regex, no prefix space):
the 256 byte symbols first, then merges of the most frequent adjacent pair
until the vocabulary has --size tokens. The text is fed in chunks of about
64 KiB cut after a blank line, so that newlines and indentation are learnt
as they occur. One special token, <|endoftext|>, id 0: a control token
that plain text never produces, for `sinkllm train --sink-token
'<|endoftext|>'`; it is also BOS and EOS (as in GPT-2), and no BOS is added
when tokenizing.

The GGUF: general.architecture "llama" (llama.cpp needs one even for a
vocabulary), general.name, tokenizer.ggml.model "gpt2", tokenizer.ggml.pre
"gpt-2" (the pre-tokenizer it was trained with, which sinkllm and llama.cpp
both implement), tokens, token_type (1 normal, 3 control), merges, bos and
eos ids, add_bos_token false; no tensors. The same corpus gives the same
bytes (checked by make vocab against the recorded SHA-256).
"""

import argparse
import json
import os
import sys

os.environ.setdefault("RAYON_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

import gguf  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

SPECIAL = "<|endoftext|>"
CHUNK = 1 << 16


def chunks(text):
    """Pieces of text of about CHUNK characters, each ending after a blank
    line (or at the end)."""
    i = 0
    while i < len(text):
        j = text.find("\n\n", i + CHUNK)
        j = len(text) if j < 0 else j + 2
        yield text[i:j]
        i = j


def train(text, size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=size, special_tokens=[SPECIAL], show_progress=False,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(chunks(text), trainer=tr, length=None)
    return tok


def write_gguf(tok, path, name):
    model = json.loads(tok.to_str())["model"]
    vocab = model["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        if not 0 <= i < len(tokens) or tokens[i] is not None:
            raise SystemExit("make_vocab: token ids are not 0..%d" % (len(tokens) - 1))
        tokens[i] = t
    if tokens[0] != SPECIAL:
        raise SystemExit("make_vocab: %s is not id 0" % SPECIAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    types = [gguf.TokenType.CONTROL if t == SPECIAL else gguf.TokenType.NORMAL for t in tokens]
    w = gguf.GGUFWriter(path + ".tmp", arch="llama")
    w.add_name(name)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.add_add_bos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(path + ".tmp", path)
    return len(tokens), len(merges)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, help="the training text (build/corpus/train.txt)")
    ap.add_argument("--out", required=True, help="the GGUF to write")
    ap.add_argument("--size", type=int, default=4096, help="tokens, the special one included (4096)")
    a = ap.parse_args()
    with open(a.corpus, encoding="utf-8") as f:
        text = f.read()
    tok = train(text, a.size)
    n, m = write_gguf(tok, a.out, "sinkllm corpus BPE %d" % a.size)
    print("vocab: %s: %d tokens (%s, 256 bytes, %d merges), pre-tokenizer gpt-2" %
          (a.out, n, SPECIAL, m), file=sys.stderr)


if __name__ == "__main__":
    main()
