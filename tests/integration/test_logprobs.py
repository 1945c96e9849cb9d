"""logprobs in `sinkllm serve` (issue 14 point 1), and the fields it does
not implement refused by name (issue 14 point 4).

The values are checked against a direct computation: the same prompt ids
fed through the library's Python binding (the engine the server runs, with
the same cache and batch), log-softmax of its logits in float64, greedy
continuation. Chat and completions, streamed and not, in OpenAI's shapes.
"""
import json
import math

import numpy as np
import pytest
import requests

from test_server import MODEL, Server, import_binding

sinkllm = import_binding()

TEXT = "The whale surfaced near the ship, and the sailors"
N_GEN = 8
TOP = 5


@pytest.fixture
def fresh(tmp_path):
    """A new server per call: no cache state carried between requests."""
    made = []

    def start():
        s = Server(tmp_path, "--slots", "1", name=f"lp{len(made)}")
        made.append(s)
        return s
    yield start
    for s in made:
        s.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("lp"), "--slots", "1", name="lpshared")
    yield s
    s.stop()


def post(srv, path, body):
    return requests.post(srv.url + path, json=body, timeout=120)


def direct(ids, n):
    """Greedy continuation of ids and, per step, the float64 log-softmax
    of the binding's logits: [(token, logprob, [(alt, logprob)...])]."""
    model = sinkllm.Model(MODEL)
    ctx = sinkllm.Context(model, threads=1)
    out = []
    ctx.eval(list(ids))
    for _ in range(n):
        l = np.array(ctx.logits, dtype=np.float64)
        ls = l - (l.max() + np.log(np.exp(l - l.max()).sum()))
        order = np.argsort(-l, kind="stable")
        t = int(order[0])
        out.append((t, float(ls[t]), [(int(a), float(ls[a])) for a in order[:TOP]]))
        ctx.eval([t])
    ctx.close()
    model.close()
    return out


def test_completion_logprobs_equal_direct_log_softmax(fresh):
    srv = fresh()
    ids = post(srv, "/tokenize", {"content": TEXT})
    ids = ids.json()["tokens"]
    want = direct(ids, N_GEN)
    model = sinkllm.Model(MODEL)
    piece = [model.token_to_piece(t) for t, _, _ in want]
    r = post(srv, "/v1/completions", {"prompt": ids, "max_tokens": N_GEN, "temperature": 0, "logprobs": TOP})
    assert r.status_code == 200, r.text
    c = r.json()["choices"][0]
    lp = c["logprobs"]
    assert len(lp["tokens"]) == N_GEN == r.json()["usage"]["completion_tokens"]
    off = 0
    for i, (t, v, top) in enumerate(want):
        assert abs(lp["token_logprobs"][i] - v) < 1e-4, (i, lp["token_logprobs"][i], v)
        got_top = lp["top_logprobs"][i]
        assert len(got_top) == TOP
        for (a, av), (k, kv) in zip(top, sorted(got_top.items(), key=lambda x: -x[1])):
            assert abs(kv - av) < 1e-4
        assert lp["text_offset"][i] == off
        off += len(piece[i])
    assert "".join(lp["tokens"]).encode() == c["text"].encode()


def test_chat_logprobs_shape_stream_and_not(fresh):
    body = {"messages": [{"role": "user", "content": "Name a sea creature."}], "max_tokens": N_GEN,
            "temperature": 0, "logprobs": True, "top_logprobs": TOP}
    r = post(fresh(), "/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    content = choice["logprobs"]["content"]
    assert choice["logprobs"]["refusal"] is None
    assert len(content) == r.json()["usage"]["completion_tokens"]
    assert b"".join(bytes(e["bytes"]) for e in content) == choice["message"]["content"].encode()
    for e in content:
        top = e["top_logprobs"]
        assert len(top) == TOP
        assert top[0]["token"] == e["token"] and top[0]["logprob"] == e["logprob"]  # greedy: the best
        assert all(top[k]["logprob"] >= top[k + 1]["logprob"] for k in range(TOP - 1))
        assert all(x["logprob"] <= 0 for x in top) and sum(math.exp(x["logprob"]) for x in top) <= 1 + 1e-6
    # streamed: the same entries, spread over the chunks with their text
    r = requests.post(fresh().url + "/v1/chat/completions", json={**body, "stream": True}, stream=True, timeout=120)
    entries, text = [], ""
    for line in r.iter_lines():
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        ch = json.loads(line[6:])["choices"][0]
        text += ch["delta"].get("content") or ""
        if ch["logprobs"]:
            entries += ch["logprobs"]["content"]
    assert text == choice["message"]["content"]
    assert entries == content


def test_logprobs_follow_the_text_a_stop_string_cuts(fresh):
    srv = fresh()
    body = {"prompt": "1, 2, 3, 4, 5,", "max_tokens": 16, "temperature": 0, "logprobs": 0}
    full = post(srv, "/v1/completions", body).json()["choices"][0]
    assert "7" in full["text"], full["text"]
    cut = post(fresh(), "/v1/completions", {**body, "stop": ["7"]}).json()["choices"][0]
    assert cut["finish_reason"] == "stop" and "7" not in cut["text"]
    assert "".join(cut["logprobs"]["tokens"]) == cut["text"]
    assert cut["logprobs"]["top_logprobs"] == [{}] * len(cut["logprobs"]["tokens"])


@pytest.mark.parametrize("path,body,field", [
    ("/v1/chat/completions", {"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
    ("/v1/chat/completions", {"top_logprobs": 2}, "top_logprobs"),
    ("/v1/chat/completions", {"logprobs": 3}, "logprobs"),
    ("/v1/completions", {"logprobs": True}, "logprobs"),
    ("/v1/completions", {"logprobs": 99}, "logprobs"),
    ("/v1/chat/completions", {"functions": [{"name": "f"}]}, "functions"),
    ("/v1/chat/completions", {"function_call": "auto"}, "function_call"),
    ("/v1/completions", {"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ("/v1/chat/completions", {"tool_choice": "required"}, "tool_choice"),
    ("/v1/chat/completions", {"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "string", "pattern": "^a"}}}}, "response_format"),
    ("/v1/chat/completions", {"grammar": "root ::= \"a"}, "grammar"),
    ("/v1/completions", {"echo": True, "stream": True}, "echo"),
    ("/v1/completions", {"echo": True, "logprobs": 1}, "echo"),
    ("/v1/chat/completions", {"echo": True}, "echo"),
    ("/v1/completions", {"suffix": "end"}, "suffix"),
    ("/v1/completions", {"best_of": 2}, "best_of"),
])
def test_unimplemented_fields_are_refused_by_name(shared, path, body, field):
    srv = shared
    base = {"messages": [{"role": "user", "content": "Hi"}]} if "chat" in path else {"prompt": "Hi"}
    r = post(srv, path, {**base, "max_tokens": 2, **body})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == field, r.text


def test_fields_that_ask_for_nothing_are_accepted(fresh):
    srv = fresh()
    r = post(srv, "/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2,
                                          "response_format": {"type": "text"}, "tool_choice": "none",
                                          "tools": [], "logprobs": False, "best_of": 1})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["logprobs"] is None
