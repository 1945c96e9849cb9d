#!/usr/bin/env python3
"""make_embed_golden.py - llama.cpp's embeddings of a few texts, for
tests/integration/test_embeddings.py (make golden).

llama.cpp through its Python binding on the peer build (scripts/build-peer.sh),
embedding=True with mean pooling: the mean over the text's tokens of the
final normed hidden state (the output norm's result), L2-normalized as
llama-server's /v1/embeddings returns it. Writes OUT/embeddings.json:
{"model": basename, "pooling": "mean", "items": [{"text", "tokens",
"embedding"}]}.

    PYTHONPATH=$(sh scripts/build-peer.sh)/py python scripts/make_embed_golden.py \
        --model models/SmolLM2-135M-Instruct.Q4_1.gguf --out tests/golden
"""
import argparse
import json
import math
import os

import llama_cpp

TEXTS = [
    "Call me Ishmael.",
    "The whale surfaced near the ship, and the sailors cheered as the harpoons flew.",
    "Attention sinks keep the first tokens in the cache forever.",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    llm = llama_cpp.Llama(model_path=a.model, embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                          n_ctx=512, n_batch=512, n_threads=2, verbose=False)
    items = []
    for t in TEXTS:
        toks = llm.tokenize(t.encode(), add_bos=True, special=False)
        e = llm.embed(t, normalize=False)
        if isinstance(e[0], list):
            e = e[0]
        n = math.sqrt(sum(x * x for x in e))
        items.append({"text": t, "tokens": toks, "embedding": [x / n for x in e]})
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "embeddings.json"), "w") as f:
        json.dump({"model": os.path.basename(a.model), "pooling": "mean", "items": items}, f)
    print(f"wrote {len(items)} embeddings of {len(items[0]['embedding'])} dims")


if __name__ == "__main__":
    main()
