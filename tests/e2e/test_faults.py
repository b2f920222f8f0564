"""Fault injection (--fault-inject, test-only): a failed forward step, slow steps and block-manager
refusals fail only the requests they hit, with an OpenAI error body (HTTP 500) or an SSE error
event, and the server recovers: the next requests succeed, /health is 200, nothing runs and no KV
block stays leased."""
import json
import time

import requests

from conftest import metrics, wait_idle


def complete(url, max_tokens=8, stream=False, timeout=120, **extra):
    body = {"prompt": "Once upon a time", "max_tokens": max_tokens, "ignore_eos": True, "stream": stream, **extra}
    return requests.post(url + "/v1/completions", json=body, timeout=timeout, stream=stream)


def assert_recovered(url):
    for _ in range(2):
        r = complete(url)
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == 8
    assert requests.get(url + "/health", timeout=10).status_code == 200
    idle = wait_idle(url)
    assert idle["troupe:num_requests_running"] == 0, idle
    assert idle["troupe:num_requests_waiting"] == 0, idle
    assert idle["troupe:kv_blocks_used"] == 0, idle


def assert_openai_error(r, status, code):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    assert "fault injection" in err["message"], err
    return err


def test_unset_changes_nothing(server):
    r = complete(server.url)
    assert r.status_code == 200, r.text
    assert "fault injection" not in server.log()


def test_bad_spec_is_rejected():
    import subprocess
    from conftest import BINARY
    p = subprocess.run([BINARY, "serve", "--fault-inject", "explode=1"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "explode" in (p.stdout + p.stderr)


def test_failed_step_fails_only_its_request(server_factory):
    # Step 1 is the prefill, steps 2.. decode: step 5 fails in the middle of the first request.
    srv = server_factory("--fault-inject", "fail_step=5")
    assert_openai_error(complete(srv.url, max_tokens=20), 500, "device_error")
    assert "failing forward step 5" in srv.log()
    assert_recovered(srv.url)


def test_failed_step_mid_stream_is_an_sse_error(server_factory):
    srv = server_factory("--fault-inject", "fail_step=4")
    r = complete(srv.url, max_tokens=20, stream=True)
    assert r.status_code == 200
    events, errors = [], []
    for line in r.iter_lines():
        if not line:
            continue
        assert line.startswith(b"data: "), line
        payload = line[6:]
        if payload == b"[DONE]":
            break
        ev = json.loads(payload)
        (errors if "error" in ev else events).append(ev)
    assert events, "the first tokens arrived before the failure"
    assert len(errors) == 1, errors
    assert errors[0]["error"]["code"] == "device_error", errors
    assert "fault injection" in errors[0]["error"]["message"]
    assert_recovered(srv.url)


def test_slow_steps_still_answer(server_factory):
    srv = server_factory("--fault-inject", "slow_ms=200")
    t0 = time.monotonic()
    r = complete(srv.url, max_tokens=5)
    assert r.status_code == 200, r.text
    assert time.monotonic() - t0 >= 5 * 0.2  # one prefill and four decode steps, 200 ms each
    assert_recovered(srv.url)


def test_block_refusal_fails_only_the_running_request(server_factory):
    # Allocation 1 is the first request's prompt; its next one comes when its output crosses the
    # first 64-token block: refused, so that request fails and only it.
    srv = server_factory("--fault-inject", "refuse_blocks_after=1,refuse_blocks_count=1")
    assert_openai_error(complete(srv.url, max_tokens=100), 500, "out_of_memory")
    assert "refusing allocation request 2" in srv.log()
    assert_recovered(srv.url)


def test_block_refusal_of_a_new_request_is_retried(server_factory):
    # The second request's first allocation is refused: it holds no blocks and is not in a step, so
    # it must be retried (before the fix the scheduler stalled until another request came in).
    srv = server_factory("--fault-inject", "refuse_blocks_after=1,refuse_blocks_count=3")
    assert complete(srv.url, max_tokens=4).status_code == 200
    r = complete(srv.url, max_tokens=4, timeout=30)
    assert r.status_code == 200, r.text
    assert "refusing allocation request 2" in srv.log()
    assert_recovered(srv.url)


def test_a_block_manager_that_keeps_refusing_fails_the_waiting_request(server_factory):
    # Every allocation after the first is refused for good: the second request waits for blocks and
    # is retried a bounded number of times (the scheduler's max_alloc_failures, 200), then fails
    # with a clear error (before: it was retried every 5 ms until the client gave up), and /metrics
    # says why. The first request's allocation is served, so the server itself is fine.
    srv = server_factory("--fault-inject", "refuse_blocks_after=1,refuse_blocks_count=-1")
    assert complete(srv.url, max_tokens=4).status_code == 200
    t0 = time.monotonic()
    err = assert_openai_error(complete(srv.url, max_tokens=4, timeout=60), 500, "out_of_memory")
    assert "allocations in a row" in err["message"], err
    assert time.monotonic() - t0 < 30
    m = metrics(srv.url)
    assert m["troupe:block_alloc_failed_requests_total"] == 1, m
    assert m["troupe:block_alloc_failures_total"] == 200, m
    assert requests.get(srv.url + "/health", timeout=10).status_code == 200
