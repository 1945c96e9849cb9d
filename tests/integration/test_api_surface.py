"""The rest of the API surface applications use (issue 14 point 4): the
`developer` role, GET /v1/models/{id}, CORS (--cors ORIGIN) with its
preflight, for a browser app on another origin, n > 1 (streamed too),
completions with a list of prompts, echo, and suffix (fill in the middle)."""
import json
import struct

import pytest
import requests

from test_server import KEY, MODEL, Server

ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("surface"), "--slots", "1", "--api-key", KEY, "--cors", ORIGIN,
               name="surface")
    yield s
    s.stop()


def auth(extra=None):
    h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    h.update(extra or {})
    return h


def test_developer_role_is_the_system_role(srv):
    def prompt_tokens(role):
        body = {"messages": [{"role": role, "content": "Answer in French."},
                             {"role": "user", "content": "Hello"}], "max_tokens": 1, "temperature": 0}
        r = requests.post(srv.url + "/v1/chat/completions", json=body, headers=auth(), timeout=60)
        assert r.status_code == 200, r.text
        return r.json()["usage"]["prompt_tokens"]
    assert prompt_tokens("developer") == prompt_tokens("system")
    r = requests.post(srv.url + "/v1/chat/completions", headers=auth(), timeout=60,
                      json={"messages": [{"role": "robot", "content": "x"}], "max_tokens": 1})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages[0].role"


def test_model_by_id(srv):
    lst = requests.get(srv.url + "/v1/models", headers=auth(), timeout=10).json()
    mid = lst["data"][0]["id"]
    one = requests.get(f"{srv.url}/v1/models/{mid}", headers=auth(), timeout=10)
    assert one.status_code == 200 and one.json() == lst["data"][0]
    other = requests.get(srv.url + "/v1/models/gpt-4o", headers=auth(), timeout=10)
    assert other.status_code == 404 and other.json()["error"]["param"] == "model"


def test_cors_preflight_and_headers(srv, tmp_path):
    pre = requests.options(srv.url + "/v1/chat/completions", timeout=10, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-session-id"})
    assert pre.status_code == 204  # no key needed: browsers send none on a preflight
    assert pre.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    allowed = pre.headers["Access-Control-Allow-Headers"].lower()
    assert all(h in allowed for h in ("authorization", "content-type", "x-session-id"))
    r = requests.post(srv.url + "/v1/chat/completions", headers=auth({"Origin": ORIGIN}), timeout=60,
                      json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "stream": True})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Prefill-Tokens" in r.headers["Access-Control-Expose-Headers"]
    r = requests.get(srv.url + "/v1/models", headers=auth({"Origin": ORIGIN}), timeout=10)
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    bad = requests.get(srv.url + "/v1/models", headers={"Origin": ORIGIN}, timeout=10)  # no key
    assert bad.status_code == 401 and bad.headers["Access-Control-Allow-Origin"] == ORIGIN
    evil = requests.get(srv.url + "/v1/models", headers=auth({"Origin": "https://evil.example"}), timeout=10)
    assert "Access-Control-Allow-Origin" not in evil.headers
    # without --cors: no preflight, no headers
    plain = Server(tmp_path, "--slots", "1", name="nocors")
    try:
        assert requests.options(plain.url + "/v1/models", headers={"Origin": ORIGIN}, timeout=10).status_code == 405
        r = requests.get(plain.url + "/v1/models", headers={"Origin": ORIGIN}, timeout=10)
        assert "Access-Control-Allow-Origin" not in r.headers
    finally:
        plain.stop()


def test_n_choices_share_the_prompt(tmp_path):
    """n > 1: the choices are generated one after the other from the
    prompt's cache (rolled back to it): greedy choices are identical, and
    choice k with seed S is what a lone request with seed S + k gives."""
    a = Server(tmp_path, "--slots", "1", name="n-a")
    b = Server(tmp_path, "--slots", "1", name="n-b")
    try:
        body = {"prompt": "The ship sailed", "max_tokens": 12}
        r = requests.post(a.url + "/v1/completions", json={**body, "n": 3, "temperature": 0}, timeout=60).json()
        texts = [c["text"] for c in r["choices"]]
        assert [c["index"] for c in r["choices"]] == [0, 1, 2]
        assert texts[0] and texts == [texts[0]] * 3, texts
        single = requests.post(b.url + "/v1/completions", json={**body, "temperature": 0}, timeout=60).json()
        assert single["choices"][0]["text"] == texts[0]
        assert r["usage"]["completion_tokens"] == 3 * single["usage"]["completion_tokens"]
        r = requests.post(a.url + "/v1/chat/completions", timeout=60, json={
            "messages": [{"role": "user", "content": "Write a word."}], "n": 3, "temperature": 1.0, "seed": 5,
            "max_tokens": 12}).json()
        sampled = [c["message"]["content"] for c in r["choices"]]
        assert len(set(sampled)) > 1, sampled
        one = requests.post(b.url + "/v1/chat/completions", timeout=60, json={
            "messages": [{"role": "user", "content": "Write a word."}], "temperature": 1.0, "seed": 6,
            "max_tokens": 12}).json()
        assert one["choices"][0]["message"]["content"] == sampled[1]
        for bad in ({"n": 17}, {"n": 0}):
            e = requests.post(a.url + "/v1/completions", json={**body, **bad}, timeout=10)
            assert e.status_code == 400 and e.json()["error"]["param"] == "n", e.text
    finally:
        a.stop()
        b.stop()


def test_completion_echo(srv):
    """echo puts the prompt as given before the completion (the completion
    itself may differ with the cache state: issue 10, so only its presence
    is checked)."""
    body = {"prompt": "Once upon a time", "max_tokens": 6, "temperature": 0}
    echo = requests.post(srv.url + "/v1/completions", json={**body, "echo": True}, headers=auth(), timeout=60).json()
    text = echo["choices"][0]["text"]
    assert text.startswith("Once upon a time") and len(text) > len("Once upon a time"), text
    assert echo["usage"]["completion_tokens"] >= 1
    ids = requests.post(srv.url + "/tokenize", json={"content": "Once upon a time"}, headers=auth(), timeout=10).json()
    by_ids = requests.post(srv.url + "/v1/completions", json={**body, "prompt": ids["tokens"], "echo": True},
                           headers=auth(), timeout=60).json()
    assert by_ids["choices"][0]["text"].startswith("Once upon a time")
    plain = requests.post(srv.url + "/v1/completions", json=body, headers=auth(), timeout=60).json()
    assert not plain["choices"][0]["text"].startswith("Once upon a time")


def lone(url, body):
    """One completion request; its text and usage."""
    r = requests.post(url + "/v1/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["text"], r.json()["usage"]


def test_completion_prompt_list(tmp_path):
    """A list of prompts (strings or token-id lists) answers n choices per
    prompt, index = prompt * n + k, each prompt's choices what a lone
    request for it gives (the prompts share no prefix, so each is pre-filled
    from an empty cache, as a lone request on a fresh server is); usage sums
    the prompts and the completions. Through the official client."""
    a = Server(tmp_path, "--slots", "1", name="list-a")
    b = Server(tmp_path, "--slots", "1", name="list-b")
    try:
        prompts = ["The ship sailed", "Once upon a time", "1, 2, 3,"]
        r = a.client().completions.create(model="m", prompt=prompts, n=2, max_tokens=8, temperature=0)
        assert [c.index for c in r.choices] == list(range(6))
        singles = [lone(b.url, {"prompt": p, "max_tokens": 8, "temperature": 0}) for p in prompts]
        for i, (text, _) in enumerate(singles):
            assert text and [r.choices[2 * i + k].text for k in (0, 1)] == [text, text], (i, text)
        assert len({t for t, _ in singles}) == 3
        assert r.usage.prompt_tokens == sum(u["prompt_tokens"] for _, u in singles)
        assert r.usage.completion_tokens == sum(2 * u["completion_tokens"] for _, u in singles)
        # token-id lists, and each prompt's choice k sampled with seed + k
        ids = [requests.post(a.url + "/tokenize", json={"content": p}, timeout=10).json()["tokens"]
               for p in prompts[:2]]
        r = requests.post(a.url + "/v1/completions", timeout=60, json={
            "prompt": ids, "n": 2, "max_tokens": 8, "temperature": 1.0, "seed": 11}).json()
        assert [c["index"] for c in r["choices"]] == [0, 1, 2, 3]
        for k in (0, 1):  # alternating, so that each lone prompt meets a cache it shares nothing with
            for i, p in enumerate(prompts[:2]):
                text, _ = lone(b.url, {"prompt": p, "max_tokens": 8, "temperature": 1.0, "seed": 11 + k})
                assert r["choices"][2 * i + k]["text"] == text, (i, k)
        # echo: each choice starts with its own prompt
        r = requests.post(a.url + "/v1/completions", timeout=60, json={
            "prompt": prompts[:2], "max_tokens": 2, "temperature": 0, "echo": True}).json()
        assert [c["text"][:len(p)] for c, p in zip(r["choices"], prompts)] == prompts[:2]
        for bad in ({"prompt": ["x"] * 65}, {"prompt": ["x"] * 20, "n": 4}, {"prompt": []},
                    {"prompt": ["x", 5]}, {"prompt": [["x"]]}, {"prompt": ["x", ""]}, {"prompt": {"a": 1}}):
            e = requests.post(a.url + "/v1/completions", json={**bad, "max_tokens": 2}, timeout=10)
            assert e.status_code == 400 and e.json()["error"]["param"] == "prompt", (bad, e.text)
    finally:
        a.stop()
        b.stop()


def sse(resp):
    """The events of a stream, up to [DONE] (which must be the last)."""
    events = [line[6:] for line in resp.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert events.count("[DONE]") == 1 and events[-1] == "[DONE]", events[-3:]
    return [json.loads(e) for e in events[:-1]]


def test_stream_n_choices(tmp_path):
    """stream with n > 1 (and a list of prompts): the choices one after the
    other, every chunk carrying its choice's index, each choice closed by
    its own finish_reason chunk, one [DONE], usage in the last chunk; the
    text and logprobs of each index equal the non-streamed response's."""
    a = Server(tmp_path, "--slots", "1", name="sn-a")
    b = Server(tmp_path, "--slots", "1", name="sn-b")
    try:
        chat = {"messages": [{"role": "user", "content": "Write a word."}], "n": 3, "temperature": 1.0,
                "seed": 5, "max_tokens": 10, "logprobs": True, "top_logprobs": 2}
        stream = a.client().chat.completions.create(model="m", stream=True,
                                                    stream_options={"include_usage": True}, **chat)
        text, lps, finish, order, usage = {}, {}, {}, [], None
        for ch in stream:
            if not ch.choices:
                usage = ch.usage
                continue
            c = ch.choices[0]
            assert c.index not in finish, "a chunk after its choice's finish_reason"
            if not order or order[-1] != c.index:
                order.append(c.index)
            text[c.index] = text.get(c.index, "") + (c.delta.content or "")
            lps.setdefault(c.index, []).extend(e.logprob for e in (c.logprobs.content if c.logprobs else []))
            if c.finish_reason:
                finish[c.index] = c.finish_reason
        assert order == [0, 1, 2] and set(finish) == {0, 1, 2}
        whole = requests.post(b.url + "/v1/chat/completions", json=chat, timeout=60).json()
        assert len(set(text.values())) > 1, text
        for c in whole["choices"]:
            i = c["index"]
            assert text[i] == c["message"]["content"] and finish[i] == c["finish_reason"], i
            assert lps[i] == pytest.approx([e["logprob"] for e in c["logprobs"]["content"]], abs=1e-4)
        assert usage.completion_tokens == whole["usage"]["completion_tokens"]
        assert usage.prompt_tokens == whole["usage"]["prompt_tokens"]
        # completions: a list of prompts streamed, n = 2 each
        body = {"prompt": ["The ship sailed", "Once upon a time"], "n": 2, "max_tokens": 6, "temperature": 0,
                "logprobs": 1}
        with requests.post(a.url + "/v1/completions", json={**body, "stream": True}, stream=True,
                           timeout=60) as resp:
            events = sse(resp)
        got, ends = {}, []
        for ev in events:
            c = ev["choices"][0]
            got[c["index"]] = got.get(c["index"], "") + c["text"]
            if c["finish_reason"]:
                ends.append(c["index"])
        assert ends == [0, 1, 2, 3]
        whole = requests.post(b.url + "/v1/completions", json=body, timeout=60).json()
        assert got == {c["index"]: c["text"] for c in whole["choices"]}
        assert got[0] == got[1] != got[2] == got[3]
    finally:
        a.stop()
        b.stop()


def fim_model(src, dst, ids):
    """A copy of the GGUF at src whose metadata names ids (prefix, suffix,
    middle) as its fill-in-the-middle tokens: four key-value pairs inserted
    after the header (the three ids and a string that pads them to a
    multiple of 256 bytes, so that the data section stays aligned)."""
    kv = b""
    for name, tid in zip(("pre", "suf", "mid"), ids):
        key = f"tokenizer.ggml.fim_{name}_token_id".encode()
        kv += struct.pack("<Q", len(key)) + key + struct.pack("<II", 4, tid)  # GGUF type 4: uint32
    key = b"sinkllm.test.pad"
    pad = -(len(kv) + 8 + len(key) + 4 + 8) % 256
    kv += struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, pad) + b" " * pad  # type 8: string
    with open(src, "rb") as f:
        data = f.read()
    magic, version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", data)
    assert magic == b"GGUF" and len(kv) % 256 == 0
    with open(dst, "wb") as f:
        f.write(struct.pack("<4sIQQ", magic, version, n_tensors, n_kv + 4) + kv + data[24:])


def test_suffix_fill_in_the_middle(tmp_path):
    """suffix: on a model with fill-in-the-middle tokens the prompt is
    FIM_PRE prefix FIM_SUF suffix FIM_MID (llama.cpp's /infill order), so
    the reply equals a completion of those very token ids; SmolLM2's GGUF
    names no such tokens (checked with the gguf package: no fim_* key, no
    <fim_...> text), so a copy with three of its control tokens named in
    the metadata stands in. On the model without them: a 400 naming suffix."""
    fim_ids = (8, 9, 10)  # <issue_start>, <issue_comment>, <issue_closed>: control tokens, not end-of-generation
    path = str(tmp_path / "smollm2-fim.gguf")
    fim_model(MODEL, path, fim_ids)
    a = Server(tmp_path, "--slots", "1", "-m", path, name="fim-a")
    b = Server(tmp_path, "--slots", "1", "-m", path, name="fim-b")
    plain = Server(tmp_path, "--slots", "1", name="fim-none")
    try:
        prefix, suffix = "def add(a, b):\n", "\n\nprint(add(1, 2))\n"
        body = {"max_tokens": 12, "temperature": 0}
        r = requests.post(a.url + "/v1/completions", json={**body, "prompt": prefix, "suffix": suffix}, timeout=60)
        assert r.status_code == 200, r.text
        tok = [requests.post(a.url + "/tokenize", json={"content": t, "parse_special": True}, timeout=10).json()["tokens"]
               for t in (prefix, suffix)]
        ids = [fim_ids[0], *tok[0], fim_ids[1], *tok[1], fim_ids[2]]
        text, usage = lone(b.url, {**body, "prompt": ids})
        assert r.json()["choices"][0]["text"] == text and r.json()["usage"]["prompt_tokens"] == len(ids) == usage["prompt_tokens"]
        # a token-id prefix is laid out the same way
        r2 = requests.post(b.url + "/v1/completions", json={**body, "prompt": tok[0], "suffix": suffix}, timeout=60)
        assert r2.json()["usage"]["prompt_tokens"] == len(ids)
        # without the suffix the model continues the prefix alone
        assert lone(a.url, {**body, "prompt": prefix})[1]["prompt_tokens"] == len(tok[0])
        for srv, extra, path_ in ((plain, {"prompt": prefix, "suffix": suffix}, "/v1/completions"),
                                  (a, {"prompt": prefix, "suffix": 3}, "/v1/completions"),
                                  (a, {"messages": [{"role": "user", "content": "x"}], "suffix": "y"},
                                   "/v1/chat/completions")):
            e = requests.post(srv.url + path_, json={**body, **extra}, timeout=10)
            assert e.status_code == 400 and e.json()["error"]["param"] == "suffix", e.text
        assert "fill-in-the-middle" in requests.post(plain.url + "/v1/completions", timeout=10, json={
            **body, "prompt": prefix, "suffix": suffix}).json()["error"]["message"]
    finally:
        a.stop()
        b.stop()
        plain.stop()
