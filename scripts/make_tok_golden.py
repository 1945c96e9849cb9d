#!/usr/bin/env python3
"""make_tok_golden.py - tokenizer and chat-template goldens from llama.cpp
(the llama-cpp-python binding of the peer build, scripts/build-peer.sh).

    DIR=$(sh scripts/build-peer.sh)
    PYTHONPATH=$DIR/py /tmp/gv/bin/python scripts/make_tok_golden.py \\
        --gemma models/gemma-3-270m-Q4_K_M.gguf \\
        --smollm models/SmolLM2-135M-Instruct.Q4_1.gguf --out tests/golden

(any python with llama_cpp's imports, typing_extensions and diskcache,
numpy and the gguf package; when the peer's shared libraries are not in
$DIR/bin, point LLAMA_CPP_LIB_PATH at them). Takes about a minute. Writes:

  gemma3/tokens.json   Gemma 3's SentencePiece vocabulary (262,144 tokens,
                       byte fallback, USER_DEFINED whitespace and HTML tokens):
                       ids of every golden string (bytes in hex, so invalid
                       UTF-8 and control bytes are exact) with and without
                       parse_special, a few with add_special; llama.cpp's
                       llama_detokenize of those ids where it is not the
                       input (back_hex); llama_token_to_piece of
                       a set of ids (ids 0-599 with all 256 byte tokens and
                       the specials, the last 300, every id the cases use,
                       every 997th id) in both render modes;
                       the token count and a hash of the ids of the whole
                       of moby-dick.txt.
  pretok/<pre>.json    the SmolLM2 vocabulary (byte-level BPE) with
                       tokenizer.ggml.pre rewritten to <pre> (a copy of the
                       GGUF in a temporary directory, every other key and
                       tensor unchanged): the same strings, ids and the
                       concatenated token_to_piece where it is not the input
                       (back_hex); moby-dick count and hash.
  chat/templates.json  llama_chat_apply_template (by built-in template name)
                       of several conversations per format, and the ids of
                       that text tokenized with add_special and
                       parse_special on a vocabulary that has the format's
                       markers: Gemma's, SmolLM2's, or SmolLM2's with some
                       special tokens renamed to the markers (described in
                       the file, so the test builds the same vocabulary).

The ids of a text are the same on every machine (no arithmetic involved).
"""

import argparse
import ctypes
import json
import os
import shutil
import struct
import sys
import tempfile

import llama_cpp as L

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
'''


def golden_strings(moby):
    """The golden strings, as bytes."""
    t = [
        # ASCII, punctuation
        "Hello world", "Hello, world!", "The quick brown fox jumps over the lazy dog.",
        "!!!???...", "Wait... what?! No way!!!", "--- *** ### @@@ ~~~ ^^^", "(a[b]{c}<d>)",
        "'quoted' \"double\" `back`", "don't I'll we're 'S they've she'd it's", "DON'T I'LL WE'RE 'S",
        "a", "A", "", "x_y-z.w/v\\u|t",
        # spaces
        " ", "  ", "   ", "    ", " leading space", "  two leading", "trailing space ", "trailing two  ",
        "runs  of   spaces    here     and      there", " " * 40, "x" + " " * 40 + "y", " " * 70 + "z",
        "\u00a0nbsp\u00a0and\u2003em\u3000ideographic",
        # newlines, tabs, carriage returns
        "\n", "\n\n", "\n\n\n", "\n" * 40, "a\nb", "a\n\nb", "line one\nline two\nline three",
        "windows\r\nline\r\nendings", "\r", "\r\r\n", "mixed \t \n \t\n whitespace",
        "\t", "\t\t\tx", "a\tb\tc", "\t" * 40, "  \n  \n", " \n", "\n ", "text\n    indented\n\ttabbed",
        # digits
        "12345", "1234567890" * 4, "3.14159", "-2.5e-10 and 6.022e23", "$1,234.56 (15%)",
        "In 1969, 600 million people watched; 42 is the answer.", "0x1F 0b1010 0o17",
        "\u0663\u0664\u0665 \u0661\u0662", "\u2460\u2461\u2462 \u216b \u00bd",
        # accents and scripts
        "Caf\u00e9 na\u00efve fa\u00e7ade", "r\u00e9sum\u00e9 co\u00f6perate jalape\u00f1o \u00c6r\u00f8",
        "e\u0301 n\u0303 combining", "!\u0301x \u0301abc \u0301\u0302 a\u0300\u0301b c\u0327", "\u00dcber die Stra\u00dfe gehen M\u00fcller und S\u00f6hne.",
        "L'\u00e9t\u00e9 dernier, nous \u00e9tions \u00e0 Paris.",
        "\u00bfD\u00f3nde est\u00e1? \u00a1Ma\u00f1ana!",
        "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03b3\u03c1\u03ac\u03bc\u03bc\u03b1\u03c4\u03b1",
        "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442",
        "\u4f60\u597d\u4e16\u754c", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
        "\u6f22\u5b57\u3068\u3072\u3089\u304c\u306a\u3068\u30ab\u30bf\u30ab\u30ca",
        "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
        "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd", "\u0939\u093f\u0928\u094d\u0926\u0940 \u092a\u093e\u0920",
        "\u0e44\u0e17\u0e22", "\U00020000\U0002a6d6 ext-B",
        # assigned in Unicode 15.0/15.1 (llama.cpp's table is 15.1): CJK ext. H letters
        # inside a word, Kawi letters and digits, a Kannada mark, ideographic description
        "ab\U00031350\U00031351cd ext-H", "kawi \U00011f04\U00011f05 \U00011f50\U00011f51\U00011f52\U00011f53 x",
        "\u0c95\u0cf3 \u2ffc\u31ef", "x1\U00011f50\U00011f51\U00011f52y",
        # emoji and symbols
        "\U0001f600\U0001f44d\U0001f3fd\U0001f1fa\U0001f1f8", "\U0001f389 party time \U0001f389",
        "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 family", "\U0001f916",
        "\U0001fae8 \U0001fabf new emoji",
        "\U0001d518\U0001d52b\U0001d526\U0001d520\U0001d52c\U0001d521\U0001d522 \U0001d55e\U0001d552\U0001d565\U0001d559 \U00010348 \U0001d11e",
        "\u2211 \u222b \u221a \u221e \u2260 \u2264 \u2265 \u00b1 \u00d7 \u00f7 \u2192 \u2190",
        "zero\u200bwidth and\ufeffBOM", "\ufffd replacement",
        # code and markup
        PY_SNIPPET, C_SNIPPET, "    return x  # indented code", "x = {'a': 1, \"b\": [2, 3]}",
        "<b>bold</b> <table><tr><td>cell</td></tr></table> <div class=\"x\">",
        "# Title\n\n- item\n  - sub item\n\n```python\nprint('hi')\n```\n",
        "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct?x=1&y=2#frag",
        "/usr/local/bin/python3 --version", "CamelCaseIdentifier snake_case_name SCREAMING_CASE",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "the the the the the",
        # SentencePiece's own symbols typed as text
        "\u2581", "\u2581\u2581hello", "a\u2581b", "<0x41>", "<0xZZ>",
        # special-token texts of several families
        "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n", "<bos>", "<eos>",
        "text<eos>more text", "<start_of_turn", "<pad><unk><mask>", "<unused0> <unused99>",
        "<start_of_image>", "[multimodal]", "<s>x</s>",
        "<|im_start|>user\nHi<|im_end|>", "<|endoftext|>", "text<|endoftext|>more text",
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n", "<|im_start|",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
        "<|user|>\nHi<|end|>\n<|assistant|>\n", "[INST] hi [/INST]",
    ]
    out = [s.encode("utf-8") for s in t]
    # control bytes
    out += [b"\x00", b"a\x00b", b"\x01\x02\x1b[31mred\x1b[0m", b"\x7f", b"\x0b\x0c", b"bell\x07"]
    # invalid UTF-8
    out += [b"\xff", b"a\xffb", b"\x80", b"\xc3", b"\xc3(", b"\xe4\xb8", b"\xe4\xb8A", b"\xed\xa0\x80",
            b"\xc0\xaf", b"\xc0\x80", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xfe\xff",
            b"ok \xe2\x82 then \xe2\x82\xac euro", b"\xf0\x9f\x98", b"\xf0\x9f\x98 x"]
    out.append(moby.encode("utf-8"))
    return out


def cases(strings, specials):
    """(bytes, parse_special, add_special) triples: every string plain; the
    ones that contain a special-looking text also with parse_special; a few
    with add_special."""
    c = [(s, False, False) for s in strings]
    c += [(s, True, False) for s in strings if any(m in s for m in specials)]
    c += [(s, False, True) for s in (b"Hello world", b"", b" ", b"<bos>x")]
    c += [(s, True, True) for s in (b"<bos>x", b"Hello<eos>", b"<|endoftext|>x", b"<|im_start|>x")]
    return c


class Vocab:
    """A vocabulary loaded by llama.cpp (vocab_only)."""

    def __init__(self, path):
        p = L.llama_model_default_params()
        p.vocab_only = True
        self.model = L.llama_model_load_from_file(path.encode(), p)
        if not self.model:
            sys.exit(f"llama.cpp could not load {path}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)

    def tokenize(self, text, add_special, parse_special):
        cap = len(text) + 16
        buf = (L.llama_token * cap)()
        n = L.llama_tokenize(self.vocab, text, len(text), buf, cap, add_special, parse_special)
        if n < 0:
            sys.exit(f"llama_tokenize failed on {text[:40]!r}")
        return [int(buf[i]) for i in range(n)]

    def piece(self, tok, special):
        buf = ctypes.create_string_buffer(256)
        n = L.llama_token_to_piece(self.vocab, tok, buf, 256, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = L.llama_token_to_piece(self.vocab, tok, buf, -n, 0, special)
        return buf.raw[:n]

    def detokenize(self, ids, special):
        arr = (L.llama_token * max(1, len(ids)))(*ids)
        cap = 64 + 64 * len(ids)
        buf = ctypes.create_string_buffer(cap)
        n = L.llama_detokenize(self.vocab, arr, len(ids), buf, cap, False, special)
        if n < 0:
            sys.exit("llama_detokenize: buffer too small")
        return buf.raw[:n]

    def free(self):
        L.llama_model_free(self.model)


def text_field(b):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return None


def case_rec(v, s, special, add, detok):
    ids = v.tokenize(s, add, special)
    r = {"hex": s.hex(), "special": special, "add_special": add, "ids": ids}
    t = text_field(s)
    if t is not None and len(s) < 200:
        r["text"] = t
    # llama.cpp's text of the ids, written only where it is not the input
    if detok == "detokenize":
        back = v.detokenize(ids, special)
    else:
        back = b"".join(v.piece(i, special) for i in ids)
    if back != s:
        r["back_hex"] = back.hex()
    return r


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def moby_rec(v, moby_bytes):
    """Token count of the whole book and a 64-bit FNV-1a hash of its ids
    (int32 little-endian), so the test checks every id without a 1 MB file."""
    ids = v.tokenize(moby_bytes, False, False)
    return {"bytes": len(moby_bytes), "n_tokens": len(ids),
            "ids_fnv1a64": "%016x" % fnv1a64(struct.pack(f"<{len(ids)}i", *ids))}


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {path}")


def moby_paragraph(text, start="Call me Ishmael."):
    i = text.index(start)
    return text[i:text.index("\n\n", i)]


# ---------------------------------------------------------------- Gemma 3

SPECIAL_MARKS = [b"<", b"["]


def gemma(path, strings, moby_bytes, out):
    v = Vocab(path)
    recs = [case_rec(v, s, sp, add, "detokenize") for s, sp, add in cases(strings, SPECIAL_MARKS)]
    used = sorted({i for r in recs for i in r["ids"]})
    # ids 0..599: controls, unused, the user-defined whitespace and HTML
    # tokens and all 256 byte tokens (238..493 in Gemma 3); the last 300
    want = set(range(0, 600)) | set(range(v.n_vocab - 300, v.n_vocab)) | set(used)
    want |= set(range(0, v.n_vocab, 997))
    pieces = [{"id": i, "plain_hex": v.piece(i, False).hex(), "special_hex": v.piece(i, True).hex()}
              for i in sorted(want)]
    obj = {"model": os.path.basename(path), "n_vocab": v.n_vocab,
           "bos_id": L.llama_vocab_bos(v.vocab), "eos_id": L.llama_vocab_eos(v.vocab),
           "add_bos": bool(L.llama_vocab_get_add_bos(v.vocab)),
           "cases": recs, "pieces": pieces, "moby": moby_rec(v, moby_bytes)}
    write_json(os.path.join(out, "gemma3", "tokens.json"), obj)
    v.free()


# ---------------------------------------------- GGUF copies with changed keys

def gguf_copy(src, dst, pre=None, rename=None, ints=None, bools=None, strs=None):
    """Copy a GGUF file, every KV pair and tensor, changing only what is
    asked: tokenizer.ggml.pre, token texts and types (rename: id -> text,
    made CONTROL), integer, boolean and string keys."""
    import gguf
    import numpy as np

    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(dst, arch)
    ints, bools, strs = ints or {}, bools or {}, strs or {}
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vt = f.types[0]
        if name == "tokenizer.ggml.pre" and pre is not None:
            w.add_string(name, pre)
            continue
        if name in strs:
            w.add_string(name, strs.pop(name))
            continue
        if name in ints:
            w.add_uint32(name, ints.pop(name))
            continue
        if name in bools:
            w.add_bool(name, bools.pop(name))
            continue
        val = f.contents()
        if name == "tokenizer.ggml.tokens" and rename:
            val = list(val)
            for i, t in rename.items():
                val[i] = t
        if name == "tokenizer.ggml.token_type" and rename:
            val = list(val)
            for i in rename:
                val[i] = 3  # CONTROL
        if vt == gguf.GGUFValueType.ARRAY:
            w.add_key_value(name, val, vt, sub_type=f.types[-1])
        else:
            w.add_key_value(name, val, vt)
    for name, val in strs.items():
        w.add_string(name, val)
    for name, val in ints.items():
        w.add_uint32(name, val)
    for name, val in bools.items():
        w.add_bool(name, val)
    for t in r.tensors:
        w.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def lenient_cpts(b):
    """Code points as llama.cpp's unicode_cpts_from_utf8 decodes bytes."""
    out, i = [], 0
    while i < len(b):
        c = b[i]
        k = 1 if c < 0x80 else 0 if not c & 0x40 else 2 if not c & 0x20 else 3 if not c & 0x10 else \
            4 if not c & 0x08 else 0
        if k == 0 or i + k > len(b) or any(x & 0xC0 != 0x80 for x in b[i + 1:i + k]):
            out.append(0xFFFD)
            i += 1
            continue
        v = c & (0x7F, 0x1F, 0x0F, 0x07)[k - 1]
        for x in b[i + 1:i + k]:
            v = v << 6 | (x & 0x3F)
        out.append(v)
        i += k
    return out


def bpe_safe(b):
    """llama.cpp's byte-level BPE aborts the process (an uncaught
    std::invalid_argument in unicode_cpt_to_utf8) on bytes that decode to a
    code point above U+10FFFF, such as F4 90 80 80; those strings are left
    out of the BPE goldens (we read them as U+FFFD)."""
    return all(c <= 0x10FFFF for c in lenient_cpts(b))


PRETOK = ["default", "gpt-2", "smollm", "llama-bpe", "llama3", "dbrx", "qwen2", "qwen35", "falcon", "stablelm2",
          "glm4"]


def pretok(path, strings, moby_bytes, out, tmp):
    for pre in PRETOK:
        dst = os.path.join(tmp, f"pre-{pre}.gguf")
        gguf_copy(path, dst, pre=pre)
        v = Vocab(dst)
        recs = [case_rec(v, s, sp, add, "pieces") for s, sp, add in cases(strings, [b"<|"]) if bpe_safe(s)]
        obj = {"base": os.path.basename(path), "pre": pre, "n_vocab": v.n_vocab,
               "add_bos": bool(L.llama_vocab_get_add_bos(v.vocab)),
               "cases": recs, "moby": moby_rec(v, moby_bytes)}
        write_json(os.path.join(out, "pretok", f"{pre}.json"), obj)
        v.free()
        os.remove(dst)


# ------------------------------------------------------------ chat templates

CONVS = [
    ("user", [("user", "Hello!")], True),
    ("system_user", [("system", "You are terse."), ("user", "What is the capital of France?")], True),
    ("multi_turn", [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello! How can I help?"),
                    ("user", "Name a colour.")], True),
    ("no_gen", [("user", "One"), ("assistant", "Two"), ("user", "Three"), ("assistant", "Four")], False),
    ("whitespace", [("system", "  spaced system \n"), ("user", "  indented\n\n"), ("assistant", "\n answer \n"),
                    ("user", "\tnext")], True),
    ("unicode", [("user", "Caf\u00e9 \u4f60\u597d \U0001f600 \u0645\u0631\u062d\u0628\u0627")], True),
]

# the smollm2 vocabulary's special ids 3..16 renamed to other formats' markers
MARKERS = {3: "<|begin_of_text|>", 4: "<|end_of_text|>", 5: "<|start_header_id|>", 6: "<|end_header_id|>",
           7: "<|eot_id|>", 8: "<|user|>", 9: "<|assistant|>", 10: "<|system|>", 11: "<|end|>",
           12: "[INST]", 13: "[/INST]", 14: "<s>", 15: "</s>", 16: "<unk>"}

# kind (ours) -> llama.cpp template name, vocabulary
CHAT_KINDS = [
    ("chatml", "chatml", {"base": "smollm2"}),
    ("gemma", "gemma", {"base": "gemma3"}),
    ("llama3", "llama3", {"base": "smollm2", "rename": MARKERS, "bos": 3, "eos": 7, "add_bos": True}),
    ("mistral", "mistral-v3", {"base": "smollm2", "rename": MARKERS, "bos": 14, "eos": 15, "add_bos": True}),
    ("phi3", "phi3", {"base": "smollm2", "rename": MARKERS, "bos": 14, "eos": 11, "add_bos": False,
                      "name": "phi3 markers"}),
]


def apply_template(name, msgs, add_ass):
    arr = (L.llama_chat_message * len(msgs))()
    keep = []
    for i, (role, content) in enumerate(msgs):
        rb, cb = role.encode(), content.encode()
        keep += [rb, cb]
        arr[i].role = rb
        arr[i].content = cb
    cap = 4096
    buf = ctypes.create_string_buffer(cap)
    n = L.llama_chat_apply_template(name.encode(), arr, len(msgs), add_ass, buf, cap)
    if n < 0 or n > cap:
        sys.exit(f"llama_chat_apply_template({name}) failed: {n}")
    return buf.raw[:n].decode("utf-8")


def chat(gemma_path, smollm_path, out, tmp):
    kinds = []
    for kind, name, vspec in CHAT_KINDS:
        if vspec["base"] == "gemma3":
            vpath = gemma_path
        elif "rename" not in vspec:
            vpath = smollm_path
        else:
            vpath = os.path.join(tmp, f"chat-{kind}.gguf")
            strs = {"general.name": vspec["name"]} if "name" in vspec else {}
            gguf_copy(smollm_path, vpath, rename=vspec["rename"],
                      ints={"tokenizer.ggml.bos_token_id": vspec["bos"],
                            "tokenizer.ggml.eos_token_id": vspec["eos"]},
                      bools={"tokenizer.ggml.add_bos_token": vspec["add_bos"]}, strs=strs)
        v = Vocab(vpath)
        recs = []
        for cname, msgs, gen in CONVS:
            text = apply_template(name, msgs, gen)
            recs.append({"name": cname, "messages": [{"role": r, "content": c} for r, c in msgs],
                         "add_generation_prompt": gen, "text": text,
                         "ids": v.tokenize(text.encode("utf-8"), True, True)})
        spec = dict(vspec)
        if "rename" in spec:
            spec["rename"] = {str(k): t for k, t in spec["rename"].items()}
        kinds.append({"kind": kind, "llama_cpp_template": name, "vocab": spec, "conversations": recs})
        v.free()
        if vpath.startswith(tmp):
            os.remove(vpath)
    write_json(os.path.join(out, "chat", "templates.json"), {"kinds": kinds})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gemma", required=True)
    ap.add_argument("--smollm", required=True)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "golden"))
    ap.add_argument("--moby", default=MOBY)
    ap.add_argument("--only", default="gemma,pretok,chat")
    a = ap.parse_args()
    L.llama_backend_init()
    with open(a.moby, "rb") as f:
        moby_bytes = f.read()
    strings = golden_strings(moby_paragraph(moby_bytes.decode("utf-8")))
    only = a.only.split(",")
    tmp = tempfile.mkdtemp(prefix="sk_tok_golden_")
    try:
        if "gemma" in only:
            gemma(a.gemma, strings, moby_bytes, a.out)
        if "pretok" in only:
            pretok(a.smollm, strings, moby_bytes, a.out, tmp)
        if "chat" in only:
            chat(a.gemma, a.smollm, a.out, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
