"""Hostile and unusual clients against `sinkllm serve` (tools/server_http.c):
a client that half-closes its socket after the request, and one that
really hangs up. Servers and helpers come from test_server.py.

Run: python -m pytest -q tests/integration/test_hostile.py
"""
import json
import socket
import time

import requests

from test_server import Server, status_of


def request_bytes(path, body):
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


def read_all(sock, timeout):
    """Everything until the server closes (or timeout)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def post(srv, path, body, timeout):
    return requests.post(srv.url + path, json=body, timeout=timeout)


def metric(srv, name):
    for line in requests.get(srv.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def half_closed_request(port, body):
    """Send body, shut down our sending side (an HTTP/1.1 half-close), and
    return everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        c.sendall(request_bytes("/v1/completions", body))
        c.shutdown(socket.SHUT_WR)
        return read_all(c, 30)


def final_response(raw):
    """Skip interim 1xx responses (the server may probe with 100 Continue)."""
    while raw.startswith(b"HTTP/1.1 1"):
        raw = raw.split(b"\r\n\r\n", 1)[1]
    return raw


def test_half_close_gets_full_reply(tmp_path):
    """A client that shuts down its sending side after the request still
    reads the whole reply, streaming or not (before, the server took the
    end of its stream for a hang-up and cancelled the generation)."""
    s = Server(tmp_path, "--slots", "1")
    body = {"prompt": "Once upon a time", "max_tokens": 40, "ignore_eos": True}
    out = final_response(half_closed_request(s.port, dict(body, stream=True)))
    assert status_of(out) == 200, out[:300]
    assert out.count(b"data: {") >= 40 and b"data: [DONE]" in out, out[-300:]
    out = final_response(half_closed_request(s.port, body))
    assert status_of(out) == 200, out[:300]
    reply = json.loads(out.split(b"\r\n\r\n", 1)[1])
    assert reply["usage"]["completion_tokens"] == 40
    assert metric(s, "sinkllm_disconnects_total") == 0
    assert s.stop() == 0, s.read_log()


def test_hangup_cancels_half_close_does_not(tmp_path):
    """A client that closes its socket for good is still noticed: its
    generation stops and frees the slot at once, streaming or not, and
    sinkllm_disconnects_total counts it; a half-closed client is not
    counted (before, it was)."""
    s = Server(tmp_path, "--slots", "1")
    long = {"prompt": "Once upon a time", "max_tokens": 100000, "ignore_eos": True}
    for stream in (False, True):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c.sendall(request_bytes("/v1/completions", dict(long, stream=stream)))
        time.sleep(0.5)  # generating
        c.close()
        t = time.time()
        r = post(s, "/v1/completions", {"prompt": "Hi", "max_tokens": 1}, 10)
        freed = time.time() - t
        assert r.status_code == 200 and freed < 3.0, (stream, freed)
    out = final_response(half_closed_request(s.port, {"prompt": "Hi", "max_tokens": 8}))
    assert status_of(out) == 200
    assert metric(s, "sinkllm_disconnects_total") == 2
    assert s.stop() == 0, s.read_log()
