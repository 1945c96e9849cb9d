"""The same request gives the same answer (issue 10 point 3): a greedy
reply and its log-probabilities do not depend on whether the prompt's
prefix was reused from a slot's cache or pre-filled, in one chunk or
several, nor on the thread count; a seeded sampled reply is reproduced on
any cache state.

Before the fix, the follow-up turn of a conversation served from a warm
slot (its first turn and reply already in the cache, the new turn
pre-filled as a short chunk) and the same turn served cold (everything
pre-filled at once) gave different text and different log-probabilities
(the decode and pre-fill paths rounded differently, and the decode
attention split its keys by thread count)."""
import pytest

from test_server import server_pair

SYS = {"role": "system", "content": "You are a helpful assistant who answers in full sentences."}
TURN1 = [SYS, {"role": "user", "content": "Name the arrondissements of Paris that touch the Seine."}]
LEN = 48


def chat(srv, messages, **kw):
    body = {"messages": messages, "max_tokens": LEN, "temperature": 0, "logprobs": True,
            "top_logprobs": 2, **kw}
    r = srv.post("/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    ch = r.json()["choices"][0]
    lps = [(t["token"], t["logprob"], [(a["token"], a["logprob"]) for a in t["top_logprobs"]])
           for t in ch["logprobs"]["content"]]
    return ch["message"]["content"], lps


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    # -t 1 is the fixture's default; the second server has two threads
    yield from server_pair(tmp_path_factory, "det", ("--slots", "1", "-b", "16"), ("--slots", "1", "-t", "2"))


def test_warm_cold_chunks_threads_agree(servers):
    a, b = servers
    text1, _ = chat(a, TURN1)
    turn2 = TURN1 + [{"role": "assistant", "content": text1},
                     {"role": "user", "content": "And which of them is the largest?"}]
    # warm: the slot holds turn 1 and its reply; only turn 2 is pre-filled
    warm = chat(a, turn2)
    # cold, in 16-token chunks: another conversation took the slot first
    chat(a, [SYS, {"role": "user", "content": "Say something about whales."}])
    cold_chunked = chat(a, turn2)
    # cold, in one chunk (the default batch), on two threads
    cold_2t = chat(b, turn2)
    assert warm == cold_chunked, (warm[0], cold_chunked[0])
    assert warm == cold_2t, (warm[0], cold_2t[0])
    assert len(warm[1]) > 10


def test_seed_reproduces_on_any_cache_state(servers):
    a, b = servers
    req = TURN1 + [{"role": "assistant", "content": "The Seine crosses many of them."},
                   {"role": "user", "content": "Tell me a story about the river."}]
    kw = {"temperature": 0.9, "seed": 1234}
    first = chat(a, req, **kw)
    again_warm = chat(a, req, **kw)       # the whole prompt is in the slot now
    chat(a, TURN1)                        # the slot moves to another transcript
    again_cold = chat(a, req, **kw)
    other_server = chat(b, req, **kw)
    assert first == again_warm == again_cold == other_server, (first[0], again_warm[0], again_cold[0],
                                                               other_server[0])
