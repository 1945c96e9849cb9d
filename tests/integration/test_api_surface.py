"""The rest of the API surface applications use (issue 14 point 4): the
`developer` role, GET /v1/models/{id}, and CORS (--cors ORIGIN) with its
preflight, for a browser app on another origin."""
import pytest
import requests

from test_server import KEY, Server

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
                      json={"messages": [{"role": "tool", "content": "x"}], "max_tokens": 1})
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
        for bad in ({"n": 2, "stream": True}, {"n": 17}, {"n": 0}):
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
