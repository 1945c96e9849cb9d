"""A model trained with a sink token (issue 15 point 3): `serve` puts the
token first in every prompt, as training put it first in every sample, and
keeps it as the only sink unless --sinks says otherwise (`run`, `chat` and
`ppl` do the same: tests/test_cli.sh, tests/test_train.c). The tiny model
is trained here, in a few seconds, on the start of Moby-Dick.
"""
import os
import subprocess

import numpy as np
import pytest
import requests

from test_server import BIN, MODEL, ROOT, Server, import_binding

sinkllm = import_binding()

TEXT = "Call me Ishmael. Some years ago"


@pytest.fixture(scope="module")
def sink_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("sinktok")
    with open(os.path.join(ROOT, "data", "moby-dick.txt"), "rb") as f:
        (d / "c.txt").write_bytes(f.read(3000))
    out = str(d / "s.gguf")
    subprocess.run([BIN, "train", "-m", MODEL, "-f", str(d / "c.txt"), "--layers", "1", "--dim", "16",
                    "--heads", "2", "--ctx", "16", "--batch", "2", "--steps", "6", "--warmup", "2", "-t", "1",
                    "-q", "--sink-token", "<|endoftext|>", "--export", out], check=True, capture_output=True)
    return out


def meta(srv):
    j = requests.get(srv.url + "/v1/models", timeout=30).json()
    return (j["data"][0] if "data" in j else j)["meta"]


def tokenize(srv, add_special):
    r = srv.post("/tokenize", {"content": TEXT, "add_special": add_special})
    assert r.status_code == 200, r.text
    return r.json()["tokens"]


def direct_logprobs(path, ids, n):
    """Greedy continuation of ids through the binding: [(token, logprob)]."""
    model = sinkllm.Model(path)
    ctx = sinkllm.Context(model, threads=1)
    ctx.eval(list(ids))
    out = []
    for _ in range(n):
        l = np.array(ctx.logits, dtype=np.float64)
        t = int(np.argmax(l))
        out.append((t, float(l[t] - l.max() - np.log(np.exp(l - l.max()).sum()))))
        ctx.eval([t])
    ctx.close()
    model.close()
    return out


def test_serve_puts_the_sink_token_first_and_keeps_only_it(sink_model, tmp_path):
    srv = Server(tmp_path, "-m", sink_model, "--slots", "1", name="sink1")
    try:
        assert meta(srv)["sinks"] == 1
        with_sink, plain = tokenize(srv, True), tokenize(srv, False)
        assert with_sink == [0] + plain  # <|endoftext|> is id 0 in SmolLM2's vocabulary
    finally:
        srv.stop()
    srv = Server(tmp_path, "-m", sink_model, "--slots", "1", "--sinks", "4", name="sink4")
    try:
        assert meta(srv)["sinks"] == 4  # chosen by hand: kept
        assert tokenize(srv, True)[0] == 0  # and the token still starts the sequence
    finally:
        srv.stop()


def test_a_completion_is_computed_after_the_sink_token(sink_model, tmp_path):
    srv = Server(tmp_path, "-m", sink_model, "--slots", "1", name="sinkc")
    try:
        plain = tokenize(srv, False)
        r = srv.post("/v1/completions", {"prompt": TEXT, "max_tokens": 4, "temperature": 0, "logprobs": 1})
        assert r.status_code == 200, r.text
        got = r.json()["choices"][0]["logprobs"]["token_logprobs"]
        assert r.json()["usage"]["prompt_tokens"] == len(plain) + 1
    finally:
        srv.stop()
    want = direct_logprobs(sink_model, [0] + plain, 4)
    without = direct_logprobs(sink_model, plain, 4)
    assert max(abs(g - w) for g, (_, w) in zip(got, want)) < 1e-4
    assert max(abs(g - w) for g, (_, w) in zip(got, without)) > 1e-3  # the test can tell
