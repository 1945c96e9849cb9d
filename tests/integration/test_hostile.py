"""Hostile and unusual clients against `sinkllm serve` (tools/server_http.c):
slow clients (slowloris) that would hold every connection, idle kept-alive
connections, a client that half-closes its socket after the request, and
one that really hangs up. Servers and helpers come from test_server.py.

Run: python -m pytest -q tests/integration/test_hostile.py
"""
import json
import socket
import threading
import time

import pytest
import requests

from test_server import Server, status_of


@pytest.fixture
def serve(tmp_path):
    """Start servers with serve(*args); those a failing test leaves running
    are stopped at teardown."""
    started = []

    def start(*args):
        started.append(Server(tmp_path, *args))
        return started[-1]
    yield start
    for s in started:
        s.stop()


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


def closed_by_server(sock):
    """True when the server has closed (or reset) this connection."""
    timeout = sock.gettimeout()
    sock.settimeout(0)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)


def post(srv, path, body, timeout):
    return requests.post(srv.url + path, json=body, timeout=timeout)


def metric(srv, name):
    for line in requests.get(srv.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def test_slowloris(serve):
    """100 connections sending one header byte a second (more than the
    server's connection limit, slots + queue + 64 = 69 here) must not lock
    out /health or a completion, and must all be closed by the header
    deadline. Before the header deadline and the eviction of the oldest
    connections still without a request, /health got no answer at all."""
    hdr = 3
    s = serve("--slots", "1", "--queue", "4", "--header-timeout", str(hdr))
    socks, stop = [], threading.Event()
    try:
        t0 = time.time()
        line = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        for _ in range(100):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            c.setblocking(False)
            socks.append(c)

        def trickle():
            i = 0
            while not stop.is_set():
                for c in socks:
                    try:
                        c.send(line[i:i + 1])
                    except OSError:
                        pass
                i += 1
                stop.wait(1.0)

        th = threading.Thread(target=trickle)
        th.start()
        time.sleep(1.0)  # every attacker has sent a byte or two
        t = time.time()
        r = requests.get(s.url + "/health", timeout=10)
        t_health = time.time() - t
        assert r.status_code == 200
        t = time.time()
        r = post(s, "/v1/completions", {"prompt": "Hi", "max_tokens": 4}, 10)
        t_compl = time.time() - t
        assert r.status_code == 200
        print(f"slowloris: /health {t_health * 1e3:.0f} ms, completion {t_compl * 1e3:.0f} ms "
              "under 100 trickling connections")
        assert t_health < 1.0 and t_compl < 5.0, (t_health, t_compl)
        # every trickling connection is closed once the header deadline passes
        deadline = t0 + hdr + 3.0
        while time.time() < deadline and not all(closed_by_server(c) for c in socks):
            time.sleep(0.1)
        open_left = sum(not closed_by_server(c) for c in socks)
        assert open_left == 0, f"{open_left} slow connections still open {time.time() - t0:.1f} s on"
        assert metric(s, "sinkllm_slow_connections_closed_total") >= 1
        assert metric(s, "sinkllm_connections_evicted_total") >= 1
    finally:
        stop.set()
        for c in socks:
            c.close()
    assert s.stop() == 0, s.read_log()


def test_slow_body_closed(serve):
    """A body sent one byte a second is cut once the grace of
    --header-timeout after the headers is over (it needs 16 KiB a second
    on average after that); before, every byte restarted the inactivity
    timeout, and the connection stayed open as long as it trickled."""
    s = serve("--header-timeout", "2")
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
        t = time.time()
        closed = None
        while time.time() - t < 8:
            try:
                c.send(b" ")
            except OSError:
                closed = time.time() - t
                break
            if closed_by_server(c):
                closed = time.time() - t
                break
            time.sleep(0.25)
    print(f"slow body closed after {closed} s")
    assert closed is not None and 1.5 < closed < 4.0, closed
    assert metric(s, "sinkllm_slow_connections_closed_total") == 1
    assert s.stop() == 0, s.read_log()


def test_per_ip_limit_evicts_oldest_waiting(serve):
    """Past --max-conn-per-ip, a newcomer from the same address gets in and
    the oldest of its connections still without a request is closed."""
    s = serve("--max-conn-per-ip", "4")
    # From 127.0.0.2: a connection of the start-up probe that the server has
    # not yet seen closed would count against 127.0.0.1's limit.
    def connect():
        return socket.create_connection(("127.0.0.1", s.port), timeout=10,
                                        source_address=("127.0.0.2", 0))
    idle = [connect() for _ in range(4)]
    try:
        time.sleep(0.3)
        assert not any(closed_by_server(c) for c in idle)
        with connect() as fifth:
            fifth.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert status_of(read_all(fifth, 5)) == 200
        time.sleep(0.3)
        assert [closed_by_server(c) for c in idle] == [True, False, False, False]
        assert metric(s, "sinkllm_connections_evicted_total") >= 1
    finally:
        for c in idle:
            c.close()
    assert s.stop() == 0, s.read_log()


def test_idle_keepalive_closed_long_generation_kept(serve):
    """A kept-alive connection that stays silent is closed after
    --idle-timeout (before, it held its connection for --timeout + 30 s =
    630 s); a generation that stays silent on its socket for longer than
    that is not cut."""
    s = serve("--slots", "1", "--idle-timeout", "2")
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        c.settimeout(10)
        assert status_of(c.recv(65536)) == 200
        t = time.time()
        rest = read_all(c, 8)
        idle = time.time() - t
    print(f"idle kept-alive connection closed after {idle:.2f} s")
    assert rest == b"" and 1.5 < idle < 4.0, (rest, idle)
    # a non-streaming generation, silent on the socket for more than 2 s:
    # the reply length doubles until one generation outlasts the idle
    # timeout, whatever this machine's speed
    n, took = 250, 0.0
    while took <= 3.0 and n <= 16000:
        t = time.time()
        r = s.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": n,
                                       "ignore_eos": True})
        took = time.time() - t
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == n
        n *= 2
    print(f"a {n // 2}-token generation, silent for {took:.1f} s, was kept")
    assert took > 3.0, f"the generation took {took:.1f} s: too short to test --idle-timeout"
    assert s.stop() == 0, s.read_log()


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


def test_half_close_gets_full_reply(serve):
    """A client that shuts down its sending side after the request still
    reads the whole reply, streaming or not (before, the server took the
    end of its stream for a hang-up and cancelled the generation)."""
    s = serve("--slots", "1")
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


def test_hangup_cancels_half_close_does_not(serve):
    """A client that closes its socket for good is still noticed: its
    generation stops and frees the slot at once, streaming or not, and
    sinkllm_disconnects_total counts it; a half-closed client is not
    counted (before, it was)."""
    s = serve("--slots", "1")
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
