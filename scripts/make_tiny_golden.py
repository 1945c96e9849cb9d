#!/usr/bin/env python3
"""make_tiny_golden.py - llama.cpp's answers on the tiny family models.

    python scripts/make_tiny_golden.py --models DIR --out tests/golden/tiny
    python scripts/make_tiny_golden.py --models DIR --sensitivity

DIR holds the files of scripts/make_tiny_models.py. For each family F,
writes --out/F.json (read by tests/test_families.c):
  model_sha256, model_size  of DIR/F.gguf, so the test can tell a changed
                            generator from an engine bug
  tokens   token ids of ~25 strings (ASCII, whitespace runs, digits, code,
           accents, Cyrillic/Greek, CJK, emoji, the family's special
           tokens), each with special=False and special=True, no BOS
  logits   for 6 prompts (the prompt ids, with BOS where the vocabulary adds
           it): the top-20 (id, logit) of the last position
  greedy   for the same prompts: 32 greedy steps (argmax of the raw logits,
           taken here, ties -> lowest id; not stopped at EOS), the
           top1-top2 gap and the top-5 (id, logit) at each step
  and the versions and llama.cpp settings (as scripts/make_golden.py: n_ctx
  2048, n_batch 512, 2 threads, F16 KV cache, flash attention off).

--sensitivity rebuilds variants of the models with one feature removed or
changed (what an engine that ignored it would compute) and prints how far
llama.cpp's top-20 logits move: the evidence that tests/test_families.c,
with its limits, fails when a feature is ignored (docs/tiny-models.md).

Needs llama_cpp (llama-cpp-python 0.3.36; `sh scripts/build-peer.sh`
prints DIR, then PYTHONPATH=DIR/py), numpy and gguf."""

import argparse
import copy
import datetime
import os
import platform
import sys
import tempfile

import numpy as np

import llama_cpp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden as mg  # noqa: E402  (f32, top_n, write_json, sha256, last_logits)
import make_tiny_models as mtm  # noqa: E402

N_CTX = 2048
N_BATCH = 512
N_THREADS = 2
TOP_N = 20
GREEDY_STEPS = 32
STEP_TOP_N = 5  # top-5 (id, logit) at each greedy step

# per family: the chat-turn prompt (parsed with special=True) and special
# token texts for the tokenizer cases
SPECIAL = {
    "llama2": dict(chat="<bos>[INST] What is the capital of France? [/INST]",
                   specials="<bos>Hello<eos> <unk> <start_of_turn>"),
    "llama3": dict(chat=("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
                         "What is the capital of France?<|eot_id|><|start_header_id|>assistant"
                         "<|end_header_id|>\n\n"),
                   specials="<|begin_of_text|>Hi<|eot_id|><|end_of_text|> <|im_start|>"),
    "qwen2": dict(chat=("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
                        "<|im_start|>assistant\n"),
                  specials="<|im_start|>user\nHi<|im_end|><|endoftext|>"),
    "qwen3": dict(chat=("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
                        "<|im_start|>assistant\n"),
                  specials="<|im_start|>assistant\n<|im_end|>\n<|endoftext|>"),
    "gemma3": dict(chat=("<bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n"
                         "<start_of_turn>model\n"),
                   specials="<start_of_turn>model\nHi<end_of_turn><eos><pad>"),
    "phi3": dict(chat="<|user|>\nWhat is the capital of France?<|end|>\n<|assistant|>\n",
                 specials="<|system|>Be brief.<|end|><|user|>Hi<|end|><|endoftext|>"),
}
SPECIAL["phi3long"] = SPECIAL["phi3"]

LONG = ("The lighthouse keeper kept a ledger of every ship that passed the point: "
        "its name, its flag, the hour, the state of the sea and, when he could read "
        "it through the glass, the cargo written on its crates. In forty-one years "
        "he filled nineteen volumes. Most entries are dull - 'schooner, Norwegian, "
        "06:40, swell from the west, timber' - but the margins are not. There he "
        "drew gulls, wrote the prices of lamp oil (1.20 a gallon in 1931, 2.05 in "
        "1947), copied out verses, and argued with himself about the weather. "
        "When the light was automated the ledgers went to the county archive, "
        "where a clerk numbered the pages, 3,812 of them, and filed them under "
        "'Maritime, miscellaneous'.")

STRINGS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "   three leading spaces",
    "runs  of   spaces    here     and      there",
    "                ",
    "tab\tseparated\tvalues\n\nand two newlines",
    "line one\nline two\r\nline three\n\n\n",
    "12345 1234567890 3.14159 -2.5e-10",
    "In 1969, 600 million people watched; 42 is the answer.",
    "Café naïve façade résumé Über Straße",
    "Привет мир, Ελληνικά γράμματα",
    "你好世界 日本語のテキスト 안녕하세요",
    "😀👍🏽🇺🇸 🎉 party 👨‍👩‍👧‍👦",
    "∑ ∫ √ ∞ ≠ ≤ ≥ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝄞",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "x = {'a': 1, \"b\": [2, 3]}  # dict",
    "<div class=\"x\">html</div>\n</span>",
    "don't I'll we're they've DON'T",
    "https://example.com/path?x=1&y=2#frag",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "",
    " ",
    "a",
]


def prompts(family):
    return [
        {"name": "plain", "text": "The three most important ideas in computer science are",
         "special": False},
        {"name": "chat", "text": SPECIAL[family]["chat"], "special": True},
        {"name": "code", "text": "def fibonacci(n):\n    ", "special": False},
        {"name": "multilingual", "text": "Café naïve: 你好世界, Привет! 😀 The answer is",
         "special": False},
        {"name": "short", "text": "The", "special": False},
        {"name": "long", "text": LONG, "special": False},
    ]


def open_model(path):
    m = llama_cpp.Llama(
        model_path=path, n_ctx=N_CTX, n_batch=N_BATCH, n_threads=N_THREADS,
        n_threads_batch=N_THREADS, seed=0, logits_all=False, flash_attn=False,
        type_k=llama_cpp.GGML_TYPE_F16, type_v=llama_cpp.GGML_TYPE_F16, verbose=False)
    if m.context_params.flash_attn_type != llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED:
        sys.exit("flash attention could not be disabled")
    return m


def prompt_ids(m, p):
    """The prompt's ids: BOS where the vocabulary adds it (not twice)."""
    add_bos = bool(m._model.add_bos_token())
    ids = [int(t) for t in m.tokenize(p["text"].encode("utf-8"), add_bos=False,
                                       special=p["special"])]
    if add_bos and (not ids or ids[0] != m.token_bos()):
        ids = [int(m.token_bos())] + ids
    return ids


def top_logits(m, family):
    out = []
    for p in prompts(family):
        ids = prompt_ids(m, p)
        lg = mg.eval_fresh(m, ids)
        d = lg.astype(np.float64)
        out.append({"name": p["name"], "text": p["text"], "special": p["special"], "ids": ids,
                    "top": mg.top_n(lg, TOP_N),
                    "stats": {"max": mg.f32(d.max()), "mean": mg.f32(d.mean()),
                              "std": mg.f32(d.std())}})
    return out


def greedy(m, family):
    out = []
    for p in prompts(family):
        ids = prompt_ids(m, p)
        lg = mg.eval_fresh(m, ids)
        cont, gaps, tops = [], [], []
        for k in range(GREEDY_STEPS):
            best = int(np.argmax(lg))  # first maximum: ties -> lowest id
            second = np.partition(lg.astype(np.float64), -2)[-2]
            cont.append(best)
            gaps.append(mg.f32(float(lg[best]) - second))
            tops.append(mg.top_n(lg, STEP_TOP_N))
            if k + 1 < GREEDY_STEPS:
                m.eval([best])
                lg = mg.last_logits(m)
        out.append({"name": p["name"], "ids": ids, "continuation": cont, "gaps": gaps,
                    "top": tops})
    return out


def golden(family, path):
    m = open_model(path)
    cases = []
    for s in STRINGS + [SPECIAL[family]["chat"], SPECIAL[family]["specials"]]:
        for special in (False, True):
            ids = m.tokenize(s.encode("utf-8"), add_bos=False, special=special)
            cases.append({"text": s, "special": special, "ids": [int(t) for t in ids]})
    cp = m.context_params
    rec = {
        "family": family,
        "generator": "scripts/make_tiny_golden.py",
        "model": os.path.basename(path),
        "model_sha256": mg.sha256(path),
        "model_size": os.path.getsize(path),
        "llama_cpp_python": llama_cpp.__version__,
        "n_ctx": N_CTX, "n_batch": N_BATCH, "n_ubatch": int(cp.n_ubatch),
        "n_threads": N_THREADS, "flash_attn": False,
        "kv_cache_type": "f16",
        "system_info": llama_cpp.llama_print_system_info().decode().strip(),
        "python": platform.python_version(), "numpy": np.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "n_vocab": int(m.n_vocab()),
        "add_bos": bool(m._model.add_bos_token()),
        "bos_id": int(m.token_bos()), "eos_id": int(m.token_eos()),
        "top_n": TOP_N, "steps": GREEDY_STEPS,
        "tokens": cases,
        "logits": top_logits(m, family),
        "greedy": greedy(m, family),
    }
    m.close()
    return rec


def summary(rec):
    """One line: the spread of the logits and how varied greedy output is."""
    gaps = [l["top"][0][1] - l["top"][1][1] for l in rec["logits"]]
    stds = [l["stats"]["std"] for l in rec["logits"]]
    distinct = [len(set(g["continuation"])) for g in rec["greedy"]]
    small = sum(x < 0.25 for g in rec["greedy"] for x in g["gaps"])
    return (f"{rec['family']}: logit std {min(stds):.2f}-{max(stds):.2f}, top-1 gaps "
            f"{min(gaps):.3f}-{max(gaps):.3f}; greedy distinct tokens per prompt {distinct}, "
            f"steps with gap < 0.25: {small} of {sum(len(g['gaps']) for g in rec['greedy'])}")


# ---------------------------------------------------------------- sensitivity
# Each variant: (family, description, change to the generator config).


def _no_rope_freqs(c):
    c.pop("rope_freqs")


def _no_bias(c):
    c.pop("qkv_bias")


def _no_swa(c):
    c["sliding_window"] = 1 << 20


def _swa_global_base(c):
    c["rope_base_swa"] = c["rope_base"]


def _ablate(*what):
    def f(c):
        c["ablate"] = what
    return f


def _phi3_long(c):
    c["phi3_rope"] = dict(orig_ctx=1024)  # n_ctx 2048 > 1024: long factors


def _phi3_short(c):
    c["phi3_rope"] = dict(orig_ctx=4096)  # n_ctx 2048 <= 4096: short factors


VARIANTS = [
    ("llama3", "rope_freqs.weight ignored (tensor removed)", _no_rope_freqs),
    ("qwen2", "Q/K/V biases ignored (tensors removed)", _no_bias),
    ("qwen3", "Q/K norm weights ignored (all 1)", _ablate("qk_norm_weights")),
    ("gemma3", "sliding window ignored (window 2^20)", _no_swa),
    ("gemma3", "local layers on the global RoPE base (freq_base_swa = 1e6)", _swa_global_base),
    ("gemma3", "Q/K norm weights ignored (all 1)", _ablate("qk_norm_weights")),
    ("phi3", "rope factors ignored (tensors removed)", _ablate("rope_factors")),
    ("phi3", "rope.scaling.attn_factor ignored (key removed)", _ablate("attn_factor")),
    ("phi3", "long factors instead of short (and their attn_factor)", _phi3_long),
    ("phi3long", "short factors instead of long (and their attn_factor)", _phi3_short),
]


def top20_diff(a, b):
    """max |logit diff| over a's top-20 ids, b's logits taken at those ids."""
    worst = 0.0
    for pa, pb in zip(a, b):
        want = dict((i, v) for i, v in pb["all"])
        for i, v in pa["top"]:
            worst = max(worst, abs(v - want[i]))
    return worst


def all_logits(m, family):
    out = []
    for p in prompts(family):
        lg = mg.eval_fresh(m, prompt_ids(m, p))
        out.append({"top": mg.top_n(lg, TOP_N), "all": [(i, float(v)) for i, v in enumerate(lg)]})
    return out


def sensitivity(models_dir, smollm, gemma):
    with tempfile.TemporaryDirectory() as tmp:
        for family, what, change in VARIANTS:
            base = open_model(os.path.join(models_dir, family + ".gguf"))
            a = all_logits(base, family)
            base.close()
            cfg = copy.deepcopy(mtm.FAMILIES[family])
            change(cfg)
            path = mtm.build(family, cfg, tmp, smollm, gemma)
            var = open_model(path)
            b = all_logits(var, family)
            var.close()
            per = [top20_diff([x], [y]) for x, y in zip(a, b)]
            print(f"{family}: {what}: max |top-20 logit diff| {max(per):.3f} "
                  f"(per prompt {', '.join(f'{x:.2f}' for x in per)})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", required=True, help="directory of make_tiny_models.py's files")
    ap.add_argument("--out", help="golden directory (tests/golden/tiny)")
    ap.add_argument("--family", action="append", help="only these (default: all)")
    ap.add_argument("--sensitivity", action="store_true")
    ap.add_argument("--smollm", default=os.path.join(mtm.ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--gemma", default=os.path.join(mtm.ROOT, "models", "gemma-3-270m-Q4_K_M.gguf"))
    a = ap.parse_args()
    if a.sensitivity:
        sensitivity(a.models, a.smollm, a.gemma)
        return
    if not a.out:
        ap.error("--out is required (or --sensitivity)")
    os.makedirs(a.out, exist_ok=True)
    for family in mtm.FAMILIES:
        if a.family and family not in a.family:
            continue
        rec = golden(family, os.path.join(a.models, family + ".gguf"))
        mg.write_json(os.path.join(a.out, family + ".json"), rec)
        print(summary(rec))


if __name__ == "__main__":
    main()
