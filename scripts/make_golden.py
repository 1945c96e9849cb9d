#!/usr/bin/env python3
"""make_golden.py - golden files from llama.cpp (via llama-cpp-python), the
independent peer our tokenizer and forward pass are checked against.

    python scripts/make_golden.py --model models/X.gguf --out tests/golden
    python scripts/make_golden.py --model models/gemma-3-270m-Q4_K_M.gguf \
        --prompt-set gemma3 --out tests/golden/gemma3

Writes into --out:
  tokens.json  token ids of ~70 varied strings (special=False and True);
               prompt set smollm2 only (Gemma 3's tokens.json is written by
               scripts/make_tok_golden.py and is never touched here)
  logits.json  for a few prompts: prompt ids, top-20 (id, logit) of the last
               position, and max/mean/std of the whole logits vector
  greedy.json  for a few prompts: --steps greedy continuation ids (argmax of
               the raw logits, taken here in Python, ties -> lowest id), with
               the top1-top2 logit gap at each step so a test can tell near-ties
  meta.json    versions, model sha256 and the llama.cpp settings used

Prompt sets: smollm2 (the default: ChatML, no BOS, 64 greedy steps) and
gemma3 (BOS first as the GGUF asks, Gemma turns <start_of_turn>, two prompts
longer than Gemma 3's 512-token sliding window, 32 greedy steps).

llama.cpp settings: n_ctx 2048, n_batch 512, n_threads 2, seed 0, KV cache
F16 for K and V (set explicitly), flash attention disabled
(flash_attn=False -> LLAMA_FLASH_ATTN_TYPE_DISABLED), logits_all=False; raw
logits are read with llama_get_logits (no sampler involved).
Deterministic: same model, package and machine give the same files, except
the date in meta.json. Works with any python that has llama_cpp and numpy
(the repo's .venv or another)."""

import argparse
import datetime
import hashlib
import json
import os
import platform
import sys

import numpy as np

import llama_cpp

N_CTX = 2048
N_BATCH = 512
N_THREADS = 2
SEED = 0
TOP_N = 20
GREEDY_STEPS = 64
GEMMA_STEPS = 32

HERE = os.path.dirname(os.path.abspath(__file__))
MOBY = os.path.join(HERE, "..", "..", "shared", "data", "moby-dick.txt")

PY_SNIPPET = '''def fib(n: int) -> int:
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

if __name__ == "__main__":
    print([fib(i) for i in range(10)])  # [0, 1, 1, 2, ...]
'''

C_SNIPPET = '''#include <stdio.h>

static int sum(const int *a, size_t n) {
\tint s = 0;
\tfor (size_t i = 0; i < n; i++) s += a[i];
\treturn s;
}

int main(void) { int v[] = {1, 2, 3}; printf("%d\\n", sum(v, 3)); return 0; }
'''

CHATML = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
          "Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?"
          "<|im_end|>\n<|im_start|>assistant\n")


def moby_paragraph(path, start="Call me Ishmael."):
    """The opening paragraph of chapter 1 (a long, plain-prose case)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    i = text.index(start)
    j = text.index("\n\n", i)
    return text[i:j]


def token_strings(moby):
    s = [
        "Hello world",
        "Hello, world!",
        "The quick brown fox jumps over the lazy dog.",
        " leading space",
        "trailing space ",
        "   three leading spaces",
        "runs  of   spaces    here     and      there",
        "                ",
        "tab\tseparated\tvalues",
        "\t\tdouble tab indent",
        "line one\nline two\nline three",
        "\n",
        "\n\n\n",
        "windows\r\nline\r\nendings",
        "mixed \t \n \t\n whitespace",
        "12345",
        "1234567890123456789012345678901234567890",
        "3.14159",
        "-2.5e-10 and 6.022e23",
        "In 1969, 600 million people watched; 42 is the answer.",
        "$1,234.56 (15%)",
        "!!!???...",
        "Wait... what?! No way!!!",
        "--- *** ### @@@ ~~~ ^^^",
        "(a[b]{c}<d>)",
        "Café naïve façade",
        "résumé coöperate jalapeño Ærø",
        "Über die Straße gehen Müller und Söhne.",
        "L'été dernier, nous étions à Paris où il faisait très chaud.",
        "¿Dónde está la biblioteca? ¡Mañana!",
        "Ελληνικά γράμματα",
        "Русский текст для проверки",
        "你好世界",
        "日本語のテキスト",
        "漢字とひらがなとカタカナ",
        "안녕하세요 세계",
        "مرحبا بالعالم",
        "שלום עולם",
        "हिन्दी पाठ",
        "ไทย",
        "😀👍🏽🇺🇸",
        "🎉 party time 🎉",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𐍈 𝄞",
        "👨‍👩‍👧‍👦 family",
        "∑ ∫ √ ∞ ≠ ≤ ≥ ± × ÷ → ←",
        "zero\u200bwidth space and non\u00a0breaking",
        PY_SNIPPET,
        C_SNIPPET,
        "    return x  # indented code",
        "x = {'a': 1, \"b\": [2, 3]}",
        "don't I'll we're 'S they've she'd it's",
        "DON'T I'LL WE'RE 'S",
        "'quoted' \"double\" `back`",
        "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct?x=1&y=2#frag",
        "mailto:someone@example.com",
        "/usr/local/bin/python3 --version",
        "CamelCaseIdentifier snake_case_name SCREAMING_CASE",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "the the the the the",
        "<|im_start|>user\nHi<|im_end|>",
        "<|endoftext|>",
        "text<|endoftext|>more text",
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|",
        "",
        " ",
        "a",
        "A",
        moby,
    ]
    cases = [{"text": t, "special": False} for t in s]
    for t in s:
        if "<|" in t:
            cases.append({"text": t, "special": True})
    cases.append({"text": CHATML, "special": True})
    cases.append({"text": "Hello world", "special": True})
    return cases


GEMMA_CHAT = ("<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n"
              "<start_of_turn>model\n")


def moby_passage(path, min_chars, start="Call me Ishmael."):
    """Whole paragraphs of chapter 1 from its first line, at least min_chars
    characters (a long prompt: beyond Gemma 3's sliding window)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    i = text.index(start)
    j = i
    while j - i < min_chars:
        j = text.index("\n\n", j + 2)
    return text[i:j]


def gemma_prompts(moby_path):
    """Six prompts for Gemma 3: four short, two past its 512-token window
    (one of them a chat turn); every one fits in 2048 with 32 steps."""
    long_prose = moby_passage(moby_path, 2200)    # 656 tokens + BOS
    document = moby_passage(moby_path, 3000)      # 814 tokens
    long_chat = ("<start_of_turn>user\nHere is the opening of a novel.\n\n" + document +
                 "\n\nWho is the narrator, and why does he go to sea? Answer in two sentences."
                 "<end_of_turn>\n<start_of_turn>model\n")
    return [
        {"name": "plain", "text": "The three most important ideas in computer science are",
         "special": False},
        {"name": "chat", "text": GEMMA_CHAT, "special": True},
        {"name": "code", "text": "def fibonacci(n):\n    ", "special": False},
        {"name": "multilingual", "text": "Café naïve: 你好世界, Привет! 😀 The answer is",
         "special": False},
        {"name": "moby_long", "text": long_prose, "special": False},
        {"name": "chat_long", "text": long_chat, "special": True},
    ]


def prompts(moby):
    return [
        {"name": "plain", "text": "The three most important ideas in computer science are",
         "special": False},
        {"name": "chatml", "text": CHATML, "special": True},
        {"name": "code", "text": "def fibonacci(n):\n    ", "special": False},
        {"name": "multilingual", "text": "Café naïve: 你好世界, Привет! 😀 The answer is",
         "special": False},
        {"name": "single_token", "text": "The", "special": False},
        {"name": "moby", "text": moby, "special": False},
    ]


def f32(x):
    """Shortest decimal that reads back as the same float32."""
    return float(str(np.float32(x)))


def last_logits(m):
    """Raw logits of the last evaluated position (copy), float32[n_vocab]."""
    ptr = llama_cpp.llama_get_logits(m.ctx)
    return np.ctypeslib.as_array(ptr, shape=(m.n_vocab(),)).copy()


def eval_fresh(m, ids):
    m.reset()  # n_tokens = 0: eval drops the whole KV cache before decoding
    m.eval(ids)
    return last_logits(m)


def top_n(logits, n):
    order = np.lexsort((np.arange(len(logits)), -logits.astype(np.float64)))[:n]
    return [[int(i), f32(logits[i])] for i in order]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path, top):
    """Pretty at the top two levels, one record per line below."""
    def one(v):
        return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))
    lines = ["{"]
    items = list(top.items())
    for k, (key, val) in enumerate(items):
        comma = "," if k + 1 < len(items) else ""
        if isinstance(val, list) and val and isinstance(val[0], dict):
            lines.append(f" {one(key)}: [")
            for j, rec in enumerate(val):
                lines.append("  " + one(rec) + ("," if j + 1 < len(val) else ""))
            lines.append(" ]" + comma)
        else:
            lines.append(f" {one(key)}: {one(val)}{comma}")
    lines.append("}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--moby", default=MOBY, help="path to moby-dick.txt")
    ap.add_argument("--prompt-set", choices=("smollm2", "gemma3"), default="smollm2",
                    help="which prompts (and BOS rule): smollm2 (default) or gemma3")
    ap.add_argument("--steps", type=int, default=None,
                    help=f"greedy steps (default {GREEDY_STEPS}; gemma3: {GEMMA_STEPS})")
    a = ap.parse_args()

    os.makedirs(a.out, exist_ok=True)
    moby = moby_paragraph(a.moby)
    gemma = a.prompt_set == "gemma3"
    steps = a.steps if a.steps else (GEMMA_STEPS if gemma else GREEDY_STEPS)
    plist = gemma_prompts(a.moby) if gemma else prompts(moby)

    m = llama_cpp.Llama(
        model_path=a.model, n_ctx=N_CTX, n_batch=N_BATCH, n_threads=N_THREADS,
        n_threads_batch=N_THREADS, seed=SEED, logits_all=False, flash_attn=False,
        type_k=llama_cpp.GGML_TYPE_F16, type_v=llama_cpp.GGML_TYPE_F16, verbose=False)
    cp = m.context_params
    if cp.flash_attn_type != llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED:
        sys.exit("flash attention could not be disabled")
    eos = m.token_eos()
    add_bos = bool(m._model.add_bos_token())
    # the prompts' BOS: SmolLM2's goldens never had one; Gemma 3 asks for it
    prompt_bos = add_bos if gemma else False

    def prompt_ids(p):
        return [int(t) for t in m.tokenize(p["text"].encode("utf-8"), add_bos=prompt_bos,
                                           special=p["special"])]

    # tokens (SmolLM2 only; Gemma 3's come from scripts/make_tok_golden.py)
    cases = []
    for c in ([] if gemma else token_strings(moby)):
        ids = m.tokenize(c["text"].encode("utf-8"), add_bos=False, special=c["special"])
        cases.append({"text": c["text"], "special": c["special"], "ids": [int(t) for t in ids]})
    if not gemma:
        write_json(os.path.join(a.out, "tokens.json"),
                   {"add_bos": add_bos, "bos_id": int(m.token_bos()), "eos_id": int(eos),
                    "n_vocab": int(m.n_vocab()), "cases": cases})

    # logits
    recs = []
    for p in plist:
        ids = prompt_ids(p)
        if len(ids) + steps > N_CTX:
            sys.exit(f"prompt {p['name']}: {len(ids)} tokens + {steps} steps > n_ctx {N_CTX}")
        lg = eval_fresh(m, ids)
        d = lg.astype(np.float64)
        recs.append({"name": p["name"], "text": p["text"], "special": p["special"], "ids": ids,
                     "top": top_n(lg, TOP_N),
                     "stats": {"max": f32(d.max()), "mean": f32(d.mean()),
                               "std": f32(d.std())}})
    write_json(os.path.join(a.out, "logits.json"), {"top_n": TOP_N, "prompts": recs})

    # greedy
    recs = []
    for p in plist:
        ids = prompt_ids(p)
        lg = eval_fresh(m, ids)
        out, gaps, stopped = [], [], False
        for _ in range(steps):
            best = int(np.argmax(lg))  # first maximum: ties -> lowest id
            second = np.partition(lg.astype(np.float64), -2)[-2]
            out.append(best)
            gaps.append(f32(float(lg[best]) - second))
            if best == eos:
                stopped = True
                break
            m.eval([best])
            lg = last_logits(m)
        recs.append({"name": p["name"], "text": p["text"], "special": p["special"],
                     "ids": ids, "continuation": out, "stopped_at_eos": stopped,
                     "gaps": gaps})
    write_json(os.path.join(a.out, "greedy.json"),
               {"steps": steps, "eos_id": int(eos), "prompts": recs})

    # meta
    write_json(os.path.join(a.out, "meta.json"), {
        "generator": "scripts/make_golden.py" + (" --prompt-set gemma3" if gemma else ""),
        "llama_cpp_python": llama_cpp.__version__,
        "model": os.path.basename(a.model),
        "model_sha256": sha256(a.model),
        "n_ctx": N_CTX, "n_batch": N_BATCH, "n_ubatch": int(cp.n_ubatch),
        "n_threads": N_THREADS, "seed": SEED,
        "flash_attn": False,
        "flash_attn_setting": "flash_attn=False -> LLAMA_FLASH_ATTN_TYPE_DISABLED",
        "kv_cache_type_k": "f16" if cp.type_k == llama_cpp.GGML_TYPE_F16 else int(cp.type_k),
        "kv_cache_type_v": "f16" if cp.type_v == llama_cpp.GGML_TYPE_F16 else int(cp.type_v),
        "logits": "raw llama_get_logits of the last position (logits_all=False, no sampler)",
        "tokenize": f"Llama.tokenize(text.encode('utf-8'), add_bos={prompt_bos}, special=...)",
        "system_info": llama_cpp.llama_print_system_info().decode().strip(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
    })


if __name__ == "__main__":
    main()
