"""``slmkit serve`` under faults: a backend exception fails only the requests it touches, every request ends by
its deadline wherever it waits, a client that goes away is noticed within 100 ms, a chunked body over the
limit is a 413, errors are found before a request is queued, and the fault campaign (devtools/serve_faults.py)
ends with nothing hung, no unexplained 5xx and no leaked slot.

How the old engine failed (2026-12-07): the campaign, with its faults put into the old backend call for a
prompt (``_slot_prefill``), 150 requests at rate 0.05: 15 hung, 16 answered 503 "shutting down" (the worker
thread had ended on the first exception), 8 slots leaked, and /health still said "ok" with 17 queued. By
reading the old code, each other test here fails there: deadlines were kept only by the worker, between
backend calls; a client's connection was checked only after 0.5 s without an event; a chunked body over the
limit raised inside ``receive``, which FastAPI answers with 400; prompts were checked in the worker, so a
busy server answered 503 first, and its context error told HTTP clients to pass ``truncate=True``.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from devtools.serve_faults import FaultyServer, main as campaign

pytest.importorskip("fastapi")


def served(artifact: Path, *args: str) -> FaultyServer:
    return FaultyServer(artifact, "--rate", "0", "--parallel", "2", *args)


def answer_within(server: FaultyServer, body: dict, seconds: float) -> tuple[int, dict | str]:
    """The request's status and body, or a failure when it has no answer in ``seconds`` (a hang)."""
    out: list = []
    t = threading.Thread(target=lambda: out.append(server.request("POST", "/v1/completions", body, timeout=seconds + 5)),
                         daemon=True)
    t.start()
    t.join(seconds)
    assert out, f"no answer within {seconds} s: the request hangs"
    return out[0][0], out[0][2]


def test_a_backend_exception_fails_only_its_request_and_the_server_goes_on(tiny_gguf):
    s = served(tiny_gguf, "--fail-first", "1", "--timeout", "5")
    try:
        status, reply = answer_within(s, {"prompt": "a cozy cabin", "max_tokens": 4}, 10)
        assert status == 500 and "InjectedFault: injected fault in prefill" in reply["error"]["message"], reply
        for _ in range(3):
            status, reply = answer_within(s, {"prompt": "a cozy cabin", "max_tokens": 4}, 10)
            assert status == 200 and reply["choices"][0]["finish_reason"] in ("length", "stop"), reply
        status, _, health = s.request("GET", "/health")
        assert status == 200 and health["slots_free"] == 2 and health["active"] == 0, health
    finally:
        assert s.stop() == 0


def test_a_worker_that_ends_makes_health_and_requests_503_at_once(tiny_gguf):
    s = served(tiny_gguf, "--exit-at", "1", "--timeout", "5")
    try:
        status, reply = answer_within(s, {"prompt": "a", "max_tokens": 4}, 10)
        assert status == 503 and reply["error"]["code"] == "unavailable", reply
        status, _, health = s.request("GET", "/health")
        assert status == 503 and health["status"] == "unavailable" and "worker stopped" in health["reason"], health
        t0 = time.monotonic()
        status, reply = answer_within(s, {"prompt": "a", "max_tokens": 4}, 10)
        assert status == 503 and time.monotonic() - t0 < 2, reply
    finally:
        s.stop()


def test_the_deadline_holds_where_the_request_waits_even_when_the_backend_is_stuck(tiny_gguf):
    s = served(tiny_gguf, "--delay", "2", "--timeout", "0.3")
    try:
        t0 = time.monotonic()
        status, reply = answer_within(s, {"prompt": "a", "max_tokens": 4}, 10)
        assert status == 504 and reply["error"]["code"] == "timeout", reply
        assert time.monotonic() - t0 < 1.5
    finally:
        s.stop()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streaming"])
def test_a_client_that_goes_away_is_noticed_within_100_ms(tiny_gguf, stream):
    """Each backend call takes 20 ms, so the 200 tokens would run 4 s: the slot must come free soon after the
    client closes its connection (100 ms to notice, a step to leave; a margin for a busy machine)."""
    s = served(tiny_gguf, "--delay", "0.02", "--timeout", "30")
    try:
        body = json.dumps({"prompt": "a", "max_tokens": 200, "ignore_eos": True, "stream": stream}).encode()
        sock = socket.create_connection(("127.0.0.1", s.port))
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(0.5)
        assert s.request("GET", "/health")[2]["active"] == 1
        sock.close()
        closed = time.monotonic()
        while s.request("GET", "/health")[2]["active"] and time.monotonic() - closed < 5:
            time.sleep(0.01)
        assert time.monotonic() - closed < 0.3
        assert s.request("GET", "/health")[2]["slots_free"] == 2
    finally:
        s.stop()


def test_a_chunked_body_over_the_limit_is_413(tiny_gguf):
    s = served(tiny_gguf)
    try:
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        piece = b"x" * 65536
        try:
            for _ in range(20):
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        head = b""
        while b"}}" not in head:  # the whole JSON error
            got = sock.recv(4096)
            if not got:
                break
            head += got
        sock.close()
        assert head.startswith(b"HTTP/1.1 413") and b"body_too_large" in head, head[:200]
    finally:
        s.stop()


def test_bad_requests_are_refused_before_they_queue_and_speak_http(tiny_gguf):
    """With the only slot busy and no queue, a prompt too long for the context is still a 400 naming
    max_tokens (not a 503, and not the Python API's ``truncate=True``)."""
    s = served(tiny_gguf, "--parallel", "1", "--max-queue", "0", "--delay", "0.02", "--timeout", "30")
    try:
        busy = threading.Thread(target=lambda: s.request("POST", "/v1/completions",
                                                         {"prompt": "a", "max_tokens": 60, "ignore_eos": True}))
        busy.start()
        time.sleep(0.4)
        status, _, reply = s.request("POST", "/v1/completions", {"prompt": "word " * 300, "max_tokens": 16})
        assert status == 400 and reply["error"]["code"] == "context_length_exceeded", reply
        assert "max_tokens" in reply["error"]["message"] and "truncate" not in reply["error"]["message"]
        status, _, reply = s.request("POST", "/v1/completions", {"prompt": [10**9], "max_tokens": 4})
        assert status == 400 and "outside the vocabulary" in reply["error"]["message"], reply
        status, _, reply = s.request("POST", "/v1/completions", {"prompt": "a", "seed": -1})
        assert status == 400 and reply["error"]["param"] == "seed", reply
        busy.join(30)
    finally:
        s.stop()


def test_the_fault_campaign_ends_with_nothing_hung_failed_or_leaked(tiny_gguf, tmp_path):
    r = campaign([str(tiny_gguf), "--requests", "300", "--rate", "0.03", "--timeout", "10", "--clients", "8",
                  "--json", str(tmp_path / "faults.json")])
    assert (r["hung"], r["uninjected_5xx"], r["slots_leaked"], r["other_failures"]) == (0, 0, 0, {}), r
    assert r["requests"] == 300 and r["outcomes"].get("injected", 0) > 0 and r["outcomes"].get("ok", 0) > 50, r
    assert r["outcomes"].get("rejected", 0) > 0 and r["outcomes"].get("dropped", 0) > 0, r
