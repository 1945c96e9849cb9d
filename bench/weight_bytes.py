#!/usr/bin/env python3
"""weight_bytes.py - bytes of weights that one decoded token reads, from a
GGUF file's tensor table (the `gguf` package).

Decoding one token reads every matrix and norm vector once, plus the output
matrix for the logits, but only one row of the token-embedding table. So:
the data of all tensors, less token_embd.weight when the model has its own
output.weight; a tied model (SmolLM2) reads token_embd.weight whole as its
output matrix, so there it counts.

    python bench/weight_bytes.py MODEL.gguf [-v]

Prints the byte count (an integer) on stdout; -v adds a breakdown by tensor
type on stderr."""

import argparse
import collections
import sys

import gguf


def weight_bytes(path):
    """(bytes read per token, {type name: bytes}, tied) for a GGUF file."""
    r = gguf.GGUFReader(path)
    by_type = collections.Counter()
    names = {}
    for t in r.tensors:
        names[t.name] = int(t.n_bytes)
        by_type[t.tensor_type.name] += int(t.n_bytes)
    tied = "output.weight" not in names
    total = sum(names.values())
    if not tied:
        total -= names.get("token_embd.weight", 0)  # one row per token: negligible
    return total, by_type, tied


def main():
    ap = argparse.ArgumentParser(description="weight bytes read per decoded token")
    ap.add_argument("model")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    total, by_type, tied = weight_bytes(a.model)
    if a.verbose:
        parts = ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in by_type.most_common())
        print(f"{a.model}: {total / 1e6:.1f} MB per token ({parts}; output "
              f"{'tied to token_embd' if tied else 'own matrix, token_embd excluded'})",
              file=sys.stderr)
    print(total)


if __name__ == "__main__":
    main()
