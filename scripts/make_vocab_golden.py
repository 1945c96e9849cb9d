#!/usr/bin/env python3
"""make_vocab_golden.py - llama.cpp's token ids for the experiment's
vocabulary (data/vocab4k.gguf, scripts/make_vocab.py), the golden that
tests/test_tokenizer.c (test_vocab4k_golden) compares sinkllm's tokenizer
with. Run with llama.cpp's Python binding of the peer build:

    make vocab-golden
    (= PYTHONPATH=$(sh scripts/build-peer.sh)/py .venv-ref/bin/python \\
         scripts/make_vocab_golden.py --vocab data/vocab4k.gguf \\
         --corpus build/corpus --out tests/golden/vocab4k.json)

Needs the corpus (make corpus) to draw its cases from; the test then needs
only the committed golden and vocabulary. Cases (the format of
make_tok_golden.py: text as hex, parse_special, add_special, ids, and
llama.cpp's pieces of the ids put together where they are not the input;
pieces, not llama_detokenize, as for the pretok goldens: llama.cpp's
detokenizer also cleans up spaces for BPE vocabularies (" ." -> "."), as
Hugging Face's clean_up_tokenization_spaces, which sinkllm does not):

  - 200 lines of train.txt and 60 of heldout.txt, evenly spaced (every
    k-th non-empty line, cut to at most 400 bytes at a character boundary);
  - 20 runs of 6 consecutive lines of train.txt (blank lines, indentation,
    code) and 40 paragraphs of moby-dick (at most 1,000 bytes), evenly
    spaced;
  - a few strings around the special token <|endoftext|>, with and without
    parse_special;
  - the whole of moby-dick: its token count and a hash of its ids.
"""

import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tok_golden import Vocab, case_rec, moby_rec  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MOBY = os.path.join(HERE, "..", "data", "moby-dick.txt")


def cut(s, n=400):
    b = s.encode("utf-8")
    while len(b) > n:
        s = s[:-1]
        b = s.encode("utf-8")
    return b


def spaced(items, k):
    step = max(1, len(items) // k)
    return items[step // 2::step][:k]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--corpus", required=True, help="folder with train.txt and heldout.txt")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    texts = {}
    for n in ("train", "heldout"):
        with open(os.path.join(a.corpus, n + ".txt"), encoding="utf-8") as f:
            texts[n] = f.read()
    with open(MOBY, "rb") as f:
        moby = f.read()
    strings = []
    for n, k in (("train", 200), ("heldout", 60)):
        lines = [ln for ln in texts[n].split("\n") if ln.strip()]
        strings += [cut(ln) for ln in spaced(lines, k)]
    lines = texts["train"].split("\n")
    starts = spaced(list(range(0, len(lines) - 6)), 20)
    strings += [cut("\n".join(lines[i:i + 6]), 1200) for i in starts]
    paras = [p for p in moby.decode("utf-8").split("\n\n") if len(p.strip()) > 40]
    strings += [cut(p, 1000) for p in spaced(paras, 40)]

    v = Vocab(a.vocab)
    cases = [case_rec(v, s, False, False, "pieces") for s in strings]
    for s in (b"<|endoftext|>", b"<|endoftext|>In the beginning", b"end.<|endoftext|>\n\nNext",
              b"<|endoftext|><|endoftext|>", b"<|endoftext", b""):
        for sp in (False, True):
            cases.append(case_rec(v, s, sp, False, "pieces"))
    with open(a.vocab, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    for c in cases:
        c.pop("text", None)  # the hex is the text; the file stays small
    head = {"vocab": os.path.relpath(os.path.abspath(a.vocab), os.path.join(HERE, "..")),
            "vocab_sha256": sha, "n_vocab": v.n_vocab, "moby": moby_rec(v, moby)}
    v.free()
    with open(a.out + ".tmp", "w", encoding="utf-8") as f:  # one case a line
        f.write(json.dumps(head, indent=1)[:-2] + ',\n "cases": [\n')
        f.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in cases) + "\n]}\n")
    os.replace(a.out + ".tmp", a.out)
    print("wrote %s: %d cases" % (a.out, len(cases)))


if __name__ == "__main__":
    main()
