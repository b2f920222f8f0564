"""Admission control under a burst: with --max-concurrent-requests 4 and --max-queued-requests 4,
20 simultaneous long requests get at most 4 running at any time, at most 8 accepted, and the rest a
prompt 429 with Retry-After and an OpenAI error body."""
import concurrent.futures
import json
import threading
import time

import pytest
import requests

from conftest import Sampler, metrics, wait_idle

NUM_REQUESTS = 20
MAX_RUNNING = 4
MAX_QUEUED = 4
MAX_TOKENS = 120


@pytest.fixture(scope="module")
def busy(server_factory):
    return server_factory("--max-concurrent-requests", str(MAX_RUNNING),
                          "--max-queued-requests", str(MAX_QUEUED), "--queue-timeout", "60").url


def one_request(url, i, barrier):
    stream = i % 2 == 1
    body = {"prompt": f"Tell me a long story, number {i}.", "max_tokens": MAX_TOKENS, "ignore_eos": True,
            "temperature": 0.7, "seed": i, "stream": stream}
    barrier.wait(timeout=30)
    t0 = time.monotonic()
    r = requests.post(url + "/v1/completions", json=body, stream=stream, timeout=300)
    out = {"i": i, "stream": stream, "status": r.status_code, "headers": dict(r.headers)}
    if r.status_code == 200 and stream:
        tokens = 0
        finish = None
        for line in r.iter_lines():
            if not line:
                continue
            assert line.startswith(b"data: "), line
            payload = line[len(b"data: "):]
            if payload == b"[DONE]":
                break
            ev = json.loads(payload)
            if "error" in ev:
                out["stream_error"] = ev
                break
            for c in ev["choices"]:
                tokens += 1
                finish = c.get("finish_reason") or finish
        out["finish"] = finish
        out["tokens"] = tokens
    else:
        out["body"] = r.json()
        if r.status_code == 200:
            out["finish"] = out["body"]["choices"][0]["finish_reason"]
            out["tokens"] = out["body"]["usage"]["completion_tokens"]
    out["elapsed"] = time.monotonic() - t0
    return out


def test_burst_is_bounded_and_the_excess_gets_429(busy):
    sampler = Sampler(busy, "troupe:num_requests_running", period=0.1)
    waiting = Sampler(busy, "troupe:num_requests_waiting", period=0.25)
    sampler.start()
    waiting.start()
    barrier = threading.Barrier(NUM_REQUESTS)
    try:
        with concurrent.futures.ThreadPoolExecutor(NUM_REQUESTS) as pool:
            results = list(pool.map(lambda i: one_request(busy, i, barrier), range(NUM_REQUESTS)))
    finally:
        sampler.stop()
        waiting.stop()

    ok = [r for r in results if r["status"] == 200]
    rejected = [r for r in results if r["status"] == 429]
    others = [r for r in results if r["status"] not in (200, 429)]
    summary = [(r["i"], r["status"], round(r["elapsed"], 1)) for r in results]
    assert not others, f"statuses other than 200/429: {others}"
    assert len(ok) <= MAX_RUNNING + MAX_QUEUED, f"more than {MAX_RUNNING + MAX_QUEUED} accepted: {summary}"
    assert len(ok) >= MAX_RUNNING, f"fewer than {MAX_RUNNING} accepted: {summary}"
    assert len(rejected) >= NUM_REQUESTS - MAX_RUNNING - MAX_QUEUED, summary
    for r in ok:
        assert "stream_error" not in r, r
        assert r["finish"] == "length" and r["tokens"] == MAX_TOKENS, r
    for r in rejected:
        retry = r["headers"].get("Retry-After")
        assert retry is not None and retry.isdigit() and int(retry) >= 1, r
        err = r["body"]["error"]
        assert err["type"] == "rate_limit_error" and err["message"], r
        assert {"code", "param"} <= set(err), r
    # the excess is refused at once, not after waiting for a slot
    fast = [r for r in rejected if r["elapsed"] < 10]
    assert len(fast) >= NUM_REQUESTS - MAX_RUNNING - MAX_QUEUED, summary

    running = [v for v in sampler.values if v is not None]
    print("burst:", summary, "running:", running, "waiting:", waiting.values)
    assert len(running) >= 5, f"too few /metrics samples during the burst ({sampler.errors} errors)"
    assert max(running) <= MAX_RUNNING, f"num_requests_running above {MAX_RUNNING}: {running}"
    assert max(running) >= 1, "the burst never showed a running request"
    queued = [v for v in waiting.values if v is not None]
    assert queued and max(queued) <= MAX_QUEUED, f"num_requests_waiting above {MAX_QUEUED}: {queued}"

    m = wait_idle(busy, timeout=15)
    assert m["troupe:num_requests_running"] == 0, m
    assert m["troupe:num_requests_waiting"] == 0, m
    assert m["troupe:kv_blocks_used"] == 0, m
    overloaded = [v for k, v in m.items() if k.startswith("troupe:requests_rejected_total") and
                  'reason="overloaded"' in k]
    assert overloaded and overloaded[0] == len(rejected), m

    # and once the burst is over, the server takes requests again
    r = requests.post(busy + "/v1/completions", json={"prompt": "Hello", "max_tokens": 2}, timeout=60)
    assert r.status_code == 200, r.text
