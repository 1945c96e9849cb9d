"""Integration tests of the Python package (python/sinkllm over ctypes on
libsinkllm.so) against the command-line tool and the server:

  - the ctypes structs match the C structs (offsets and sizes from cc);
  - tokens equal the server's POST /tokenize, text round-trips;
  - greedy and seeded generation equal `sinkllm run`, streaming yields
    pieces that join to the same text, chat equals the server's reply;
  - perplexity equals `sinkllm ppl` to the printed digits (sink with
    eviction, dense, q8_0 KV, recompute);
  - save/load, and library errors raise SinkError with the library's message;
  - the package finds a libsinkllm.so next to itself.

  SINKLLM_LIB    the shared library (default build/libsinkllm.so; empty: skip,
                 as make asan does: a sanitizer build cannot load into Python)
  SINKLLM_BIN    the binary (default build/sinkllm)
  SINKLLM_MODEL  the model (default models/SmolLM2-135M-Instruct.Q4_1.gguf)

Run: SINKLLM_LIB=build/libsinkllm.so python -m pytest -q tests/integration/test_python.py
"""
import ctypes
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SINKLLM_BIN", os.path.join(ROOT, "build", "sinkllm"))
MODEL = os.environ.get("SINKLLM_MODEL",
                       os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
LIB = os.environ.get("SINKLLM_LIB", os.path.join(ROOT, "build", "libsinkllm.so"))

if not LIB:
    pytest.skip("SINKLLM_LIB is empty (sanitizer build)", allow_module_level=True)
if not (os.path.exists(LIB) and os.access(BIN, os.X_OK) and os.path.exists(MODEL)):
    pytest.skip(f"needs {LIB}, {BIN} and {MODEL}", allow_module_level=True)
os.environ["SINKLLM_LIB"] = LIB
sys.path.insert(0, os.path.join(ROOT, "python"))
import sinkllm  # noqa: E402
from sinkllm import _lib  # noqa: E402

PROMPT = "The capital of France is"
# about 150 tokens: prose, code, numbers and non-ASCII text
TEXT = ("StreamingLLM keeps the first few tokens of a stream, the attention sinks, "
        "next to a rolling window of recent ones, so that a model trained on short "
        "contexts keeps a stable perplexity over millions of tokens.\n\n"
        "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\n"
        "Prices rose 3.5% in 2023; café, naïve, Zürich, 東京, emoji 🙂.\n"
        "The quick brown fox jumps over the lazy dog. " * 2)


def cli(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def model():
    m = sinkllm.Model(MODEL)
    yield m
    m.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path_factory.mktemp("py") / "serve.log", "wb")
    proc = subprocess.Popen([BIN, "serve", "-m", MODEL, "--host", "127.0.0.1", "--port",
                             str(port), "-t", "1"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        assert proc.poll() is None
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.05)
    yield url
    proc.terminate()
    assert proc.wait(timeout=20) == 0
    log.close()


def post(url, body):
    r = requests.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"},
                      timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


# ---- the ctypes mirror of the C structs -----------------------------------

STRUCTS = {"sk_error": _lib.Error, "sk_hparams": _lib.Hparams,
           "sk_cache_params": _lib.CacheParams, "sk_context_params": _lib.ContextParams,
           "sk_context_stats": _lib.ContextStats, "sk_sampler_params": _lib.SamplerParams,
           "sk_chat_msg": _lib.ChatMsg, "sk_detok": _lib.Detok}


def test_structs_match_c(tmp_path):
    cc = shutil.which(os.environ.get("CC", "cc"))
    if not cc:
        pytest.skip("no C compiler")
    lines = []
    for cname, py in STRUCTS.items():
        lines.append(f'printf("{cname} %zu\\n", sizeof({cname}));')
        for field, _ in py._fields_:
            lines.append(f'printf("{cname}.{field} %zu\\n", offsetof({cname}, {field}));')
    src = tmp_path / "sizes.c"
    # the tokenizer, sampler and chat types are in include/ once public,
    # in src/text before
    src.write_text('#include <stddef.h>\n#include <stdio.h>\n#include "sinkllm.h"\n'
                   '#ifndef SK_SEED_RANDOM\n#include "text/chat.h"\n#include "text/sampler.h"\n'
                   '#endif\nint main(void) {\n' + "\n".join(lines) + "\nreturn 0;\n}\n")
    exe = tmp_path / "sizes"
    subprocess.run([cc, "-std=c11", "-I", os.path.join(ROOT, "include"), "-I",
                    os.path.join(ROOT, "src"), str(src), "-o", str(exe)], check=True)
    want = dict(line.split() for line in subprocess.check_output([str(exe)], text=True).split("\n")
                if line)
    got = {}
    for cname, py in STRUCTS.items():
        got[cname] = str(ctypes.sizeof(py))
        for field, _ in py._fields_:
            got[f"{cname}.{field}"] = str(getattr(py, field).offset)
    assert got == want


def test_version_matches_header():
    with open(os.path.join(ROOT, "include", "sinkllm.h")) as f:
        v = re.search(r'#define SINKLLM_VERSION "([^"]+)"', f.read()).group(1)
    assert sinkllm.__version__ == v
    with open(os.path.join(ROOT, "python", "pyproject.toml")) as f:
        assert f'version = "{v}"' in f.read()


# ---- model and tokenizer -----------------------------------------------------

def test_hparams(model):
    hp = model.hparams
    assert hp.arch == "llama" and hp.n_vocab == model.n_vocab == 49152
    assert hp.n_layer > 0 and hp.n_embd == hp.n_head * hp.head_dim
    assert model.desc.startswith("llama") and model.size > 0 and model.n_params > 0
    assert "<|im_start|>" in model.chat_template


@pytest.mark.parametrize("text,add,parse", [
    (TEXT, False, False), ("Hello world, héllo", True, False),
    ("<|im_start|>user\nhi<|im_end|>", False, False),
    ("<|im_start|>user\nhi<|im_end|>", False, True), ("", True, False)])
def test_tokens_equal_server(model, server, text, add, parse):
    want = post(server + "/tokenize", {"content": text, "add_special": add,
                                       "parse_special": parse})["tokens"]
    assert model.tokenize(text, add_special=add, parse_special=parse) == want


def test_detokenize_and_special_tokens(model):
    ids = model.tokenize(TEXT, add_special=False)
    assert model.detokenize(ids) == TEXT
    im_end = model.token_id("<|im_end|>")
    assert im_end is not None and model.is_eog(im_end) and model.eot == im_end
    assert model.token_type(im_end) == 3  # CONTROL
    assert model.detokenize([im_end]) == "" and model.detokenize([im_end], True) == "<|im_end|>"
    assert model.token_id("no such token text") is None
    # a character split over byte tokens comes out whole, never half
    d = sinkllm.Detokenizer(model)
    pieces = [d.push(t) for t in model.tokenize("🙂", add_special=False)] + [d.flush()]
    assert "".join(pieces) == "🙂" and all(p in ("", "🙂") for p in pieces)


# ---- generation ----------------------------------------------------------------

def test_greedy_equals_cli(model):
    want = cli("run", "-m", MODEL, "-p", PROMPT, "-n", "32", "--temp", "0", "-t", "1",
               "--no-display-prompt")
    with sinkllm.Context(model, threads=1) as ctx:
        got = ctx.generate(PROMPT, max_tokens=32, temperature=0, stream=False)
        assert got + "\n" == want and len(got) > 20
        assert ctx.n_past == len(model.tokenize(PROMPT)) + len(model.tokenize(got, False))


def test_seeded_sampling_equals_cli(model):
    want = cli("run", "-m", MODEL, "-p", PROMPT, "-n", "24", "--temp", "0.9", "--top-k", "50",
               "-s", "1234", "-t", "1", "--no-display-prompt", "--cache", "window",
               "--window", "16")
    with sinkllm.Context(model, threads=1, cache="window", window=16) as ctx:
        got = ctx.generate(PROMPT, max_tokens=24, temperature=0.9, top_k=50, seed=1234,
                           stream=False)
        assert ctx.stats["n_evicted"] > 0
    assert got + "\n" == want


def test_streaming_yields_pieces(model):
    with sinkllm.Context(model, threads=1) as ctx:
        it = ctx.generate(PROMPT, max_tokens=16, temperature=0)
        assert iter(it) is it
        pieces = list(it)
        whole = ctx.generate(PROMPT, max_tokens=16, temperature=0, stream=False)
    assert len(pieces) >= 8 and all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == whole


def test_chat_equals_server(model, server):
    msgs = [{"role": "user", "content": "Name three colors."}]
    r = post(server + "/v1/chat/completions", {"messages": msgs, "max_tokens": 24,
                                               "temperature": 0})
    with sinkllm.Context(model, threads=1) as ctx:
        got = ctx.chat(msgs, max_tokens=24, temperature=0, stream=False)
    assert got == r["choices"][0]["message"]["content"] and got
    assert sinkllm.chat_tokens(model, msgs)[:1] == [model.token_id("<|im_start|>")]


# ---- perplexity ----------------------------------------------------------------

@pytest.mark.parametrize("args,kw", [
    (["--sinks", "4", "--window", "28", "-b", "16"],
     dict(n_sinks=4, window=28, batch=16)),
    (["--cache", "dense", "--kv-type", "q8_0"], dict(cache="dense", kv_type="q8_0")),
    (["--cache", "recompute", "--window", "24", "--score-every", "10"],
     dict(cache="recompute", window=24, score_every=10)),
])
def test_perplexity_equals_cli(model, tmp_path, args, kw):
    path = tmp_path / "text.txt"
    path.write_text(TEXT)
    out = cli("ppl", "-m", MODEL, "-f", str(path), "-t", "1", "-q", *args)
    want = re.search(r"PPL = ([0-9.]+)", out).group(1)
    got = model.perplexity(TEXT, threads=1, **kw)
    assert f"{got:.4f}" == want


# ---- context: logits, sessions, errors ------------------------------------

def test_logits_and_nll(model):
    ids = model.tokenize(PROMPT)
    with sinkllm.Context(model, threads=1, logits_all=True, batch=16) as ctx:
        assert ctx.logits is None
        ctx.eval(ids)
        last = ctx.logits
        assert len(last) == model.n_vocab
        assert list(ctx.logits_ith(len(ids) - 1)) == list(last)
        nll = ctx.nll(ids[1:] + [-1])
        assert math.isnan(nll[-1]) and all(v > 0 for v in nll[:-1])


def test_logits_numpy_view(model):
    np = pytest.importorskip("numpy")
    with sinkllm.Context(model, threads=1) as ctx:
        ctx.eval(model.tokenize(PROMPT))
        a = ctx.logits
        assert isinstance(a, np.ndarray) and not a.flags.writeable
        assert a.ctypes.data == ctypes.addressof(_lib.lib().sk_logits(ctx._handle()).contents)


def test_save_load(model, tmp_path):
    path = str(tmp_path / "s.session")
    with sinkllm.Context(model, threads=1, window=60) as a, \
            sinkllm.Context(model, threads=1, window=60) as b:
        a.eval(model.tokenize(PROMPT))
        a.save(path, b"transcript")
        assert b.load(path) == b"transcript"
        assert list(b.logits) == list(a.logits) and b.n_past == a.n_past
        a.reset()
        assert a.n_past == 0 and a.logits is None
        with sinkllm.Context(model, threads=1, window=61) as c, \
                pytest.raises(sinkllm.SinkError):
            c.load(path)  # another configuration


def test_errors_carry_library_message(model, tmp_path):
    missing = str(tmp_path / "missing.gguf")
    with pytest.raises(sinkllm.SinkError) as e:
        sinkllm.Model(missing)
    assert missing in str(e.value) and e.value.status == 1  # SK_ERR_IO
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    with pytest.raises(sinkllm.SinkError) as e:
        sinkllm.Model(str(bad))
    assert str(e.value)
    with pytest.raises(sinkllm.SinkError, match="window 0 out of range"):
        sinkllm.Context(model, window=0)
    with pytest.raises(sinkllm.SinkError, match="unknown cache policy 'nope'"):
        sinkllm.Context(model, cache="nope")
    with sinkllm.Context(model, threads=1) as ctx:
        with pytest.raises(sinkllm.SinkError, match="out of range"):
            ctx.eval([model.n_vocab])
        with pytest.raises(sinkllm.SinkError, match="top_p"):
            ctx.generate(PROMPT, top_p=1.5)
        with pytest.raises(sinkllm.SinkError, match="role"):
            ctx.chat([{"role": "robot", "content": "hi"}])
        with pytest.raises(sinkllm.SinkError):
            ctx.load(str(tmp_path / "none.session"))


# ---- installation ----------------------------------------------------------------

def test_finds_library_next_to_package(tmp_path):
    """A copy of the package with libsinkllm.so beside it loads that library
    without SINKLLM_LIB (what a wheel that bundles it does)."""
    pkg = tmp_path / "sinkllm"
    shutil.copytree(os.path.join(ROOT, "python", "sinkllm"), pkg,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.realpath(LIB), pkg / "libsinkllm.so")
    env = {k: v for k, v in os.environ.items() if k != "SINKLLM_LIB"}
    code = ("import sinkllm, sys; m = sinkllm.Model(sys.argv[1]); "
            "print(sinkllm.library_path()); print(m.tokenize('hi there', add_special=False))")
    out = subprocess.run([sys.executable, "-c", code, MODEL], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == str(pkg / "libsinkllm.so")
    assert json.loads(lines[1]) == sinkllm.Model(MODEL).tokenize("hi there", add_special=False)
