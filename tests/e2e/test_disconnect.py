"""Clients that go away mid-stream: 100 streaming requests, 20 at a time, half of them dropped after a
few events (some with FIN, some with RST, some before the first event). Afterwards nothing runs,
nothing waits and no KV block stays leased."""
import concurrent.futures
import json
import socket
import struct

import pytest
import requests

from conftest import metrics, wait_idle

NUM_REQUESTS = 100
CONCURRENCY = 20
COMPLETE_TOKENS = 16
DROPPED_TOKENS = 1500  # minutes of work if a dropped request were not cancelled


def raw_stream_then_drop(url, i, events_before_drop, reset):
    """POST a streaming completion on a raw socket, read `events_before_drop` SSE events, close."""
    host, port = url.replace("http://", "").split(":")
    body = json.dumps({"prompt": f"Write a very long essay, part {i}.", "max_tokens": DROPPED_TOKENS,
                       "ignore_eos": True, "stream": True}).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    s = socket.create_connection((host, int(port)), timeout=120)
    try:
        s.sendall(head + body)
        data = b""
        while data.count(b"data: ") < events_before_drop:
            chunk = s.recv(4096)
            assert chunk, f"request {i}: server closed before {events_before_drop} events: {data[:300]!r}"
            data += chunk
        if events_before_drop:
            assert data.startswith(b"HTTP/1.1 200"), data[:300]
        if reset:  # abortive close: the server sees a connection reset
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        s.close()
    return {"i": i, "dropped": True}


def full_stream(url, i):
    r = requests.post(url + "/v1/completions", stream=True, timeout=300,
                      json={"prompt": f"Count to ten, try {i}:", "max_tokens": COMPLETE_TOKENS,
                            "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}})
    assert r.status_code == 200, r.text
    usage = None
    done = False
    for line in r.iter_lines():
        if not line:
            continue
        payload = line[len(b"data: "):]
        if payload == b"[DONE]":
            done = True
            break
        ev = json.loads(payload)
        assert "error" not in ev, ev
        if ev.get("usage"):
            usage = ev["usage"]
    r.close()
    return {"i": i, "dropped": False, "done": done, "usage": usage}


def one(url, i):
    if i % 2 == 0:
        return full_stream(url, i)
    k = i // 2
    events = 0 if k % 5 == 0 else 1 + k % 4  # a fifth go before any event arrives
    return raw_stream_then_drop(url, i, events, reset=(k % 3 == 0))


@pytest.mark.parametrize("stream", [True, False])
def test_client_gone_before_the_first_event_is_cancelled(base_url, stream):
    """Send a long request and close at once, before any byte of the answer: the server notices
    the closed socket and must cancel the generation (not run it to max_tokens)."""
    host, port = base_url.replace("http://", "").split(":")
    body = json.dumps({"prompt": "Write a very long essay.", "max_tokens": DROPPED_TOKENS, "ignore_eos": True,
                       "stream": stream}).encode()
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    m = wait_idle(base_url, timeout=10)
    assert m["troupe:num_requests_running"] == 0, (
        f"a request whose client closed before the first event still runs after 10 s: {m}")
    assert m["troupe:kv_blocks_used"] == 0, m


def test_dropped_streams_release_everything(base_url):
    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        results = list(pool.map(lambda i: one(base_url, i), range(NUM_REQUESTS)))
    completed = [r for r in results if not r["dropped"]]
    assert len(completed) == NUM_REQUESTS // 2
    for r in completed:
        assert r["done"], r
        assert r["usage"] and r["usage"]["completion_tokens"] == COMPLETE_TOKENS, r

    m = wait_idle(base_url, timeout=10)
    assert m["troupe:num_requests_running"] == 0, m
    assert m["troupe:num_requests_waiting"] == 0, m
    assert m["troupe:kv_blocks_used"] == 0, m
    # the dropped requests were cut short, not run to their max_tokens
    assert m["troupe:generation_tokens_total"] < NUM_REQUESTS // 2 * (COMPLETE_TOKENS + DROPPED_TOKENS) / 4, m

    # the server still serves
    r = requests.post(base_url + "/v1/completions", json={"prompt": "Hello", "max_tokens": 2}, timeout=60)
    assert r.status_code == 200, r.text
