"""End-to-end tests of the custom-actor extension API against example_server (examples/server.cpp),
which links the example extensions: a request filter (rate_limiter), a deliberately broken filter
(faulty_filter), a stream observer (audit_log) and a custom route (echo_stats /v1/echo-stats).

example_server is found beside the troupe binary's build tree (<build>/tools/troupe -> <build>/examples/example_server) or
through TROUPE_EXAMPLE_SERVER.
"""
import asyncio
import json
import os
import tempfile
import time

import pytest
import requests

import conftest

FLAGS = ["--cache-max-entry-count", "256", "--session-len", "1024", "--num-threads", "1",
         "--drain-timeout", "5"]


def example_server_path():
    explicit = os.environ.get("TROUPE_EXAMPLE_SERVER", "")
    if explicit:
        return explicit
    binary = os.environ.get("TROUPE_BINARY", "")
    return os.path.join(os.path.dirname(os.path.dirname(binary)), "examples", "example_server")


EXAMPLE = example_server_path()
pytestmark = pytest.mark.skipif(not os.path.exists(EXAMPLE), reason=f"example_server not built ({EXAMPLE})")


def start_example(*flags, env=None):
    """Start example_server with `flags` (plus the small defaults), `env` added to the environment."""
    saved_binary, saved_env = conftest.BINARY, dict(os.environ)
    conftest.BINARY = EXAMPLE
    os.environ.update(env or {})
    try:
        return conftest.start_server(*(FLAGS + list(flags)), small=False)
    finally:
        conftest.BINARY = saved_binary
        os.environ.clear()
        os.environ.update(saved_env)


@pytest.fixture(scope="module")
def audit_path():
    fd, path = tempfile.mkstemp(prefix="troupe-audit-", suffix=".jsonl")
    os.close(fd)
    yield path
    os.unlink(path)


@pytest.fixture(scope="module")
def srv(audit_path):
    s = start_example("--extensions", "faulty_filter,rate_limiter,audit_log,echo_stats",
                      env={"TROUPE_RATE_LIMIT_REQUESTS": "3", "TROUPE_RATE_LIMIT_WINDOW_S": "600",
                           "TROUPE_RATE_LIMIT_MAX_TOKENS": "4", "TROUPE_AUDIT_LOG": audit_path})
    yield s
    conftest.stop_server_checked(s)


def complete(srv, key, max_tokens=8, headers=None, timeout=60):
    h = {"Authorization": f"Bearer {key}"}
    h.update(headers or {})
    return requests.post(srv.url + "/v1/completions", headers=h, timeout=timeout,
                         json={"model": "x", "prompt": "Once upon a time", "max_tokens": max_tokens,
                               "temperature": 0})


def assert_openai_error(r, status, code):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    assert err["message"]
    assert err["type"]


def test_custom_route_answers_and_keeps_state(srv):
    r1 = requests.post(srv.url + "/v1/echo-stats", data="hello", timeout=10)
    assert r1.status_code == 200, r1.text
    assert r1.headers["Content-Type"].startswith("application/json")
    b1 = r1.json()
    assert b1["echo"] == "hello" and b1["method"] == "POST" and b1["path"] == "/v1/echo-stats"
    r2 = requests.get(srv.url + "/v1/echo-stats", timeout=10)
    assert r2.status_code == 200
    assert r2.json()["calls"] == b1["calls"] + 1
    assert r2.json()["bytes_total"] == b1["bytes_total"]
    # Built-in routes are unaffected; unknown routes still 404.
    assert requests.get(srv.url + "/v1/models", timeout=10).status_code == 200
    assert requests.get(srv.url + "/v1/echo-nothing", timeout=10).status_code == 404


def test_rate_limiter_rejects_per_key_and_rewrites_max_tokens(srv):
    for _ in range(3):
        r = complete(srv, "key-limited", max_tokens=40)
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] <= 4  # the filter capped max_tokens
    r = complete(srv, "key-limited")
    assert_openai_error(r, 429, "rate_limited")
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert complete(srv, "key-other").status_code == 200  # another key has its own budget


def test_crashing_filter_fails_only_its_request(srv):
    r = complete(srv, "key-crash", headers={"X-Troupe-Fault": "crash"})
    assert_openai_error(r, 500, "filter_failed")
    assert "faulty_filter" in r.json()["error"]["message"]
    # The server goes on, and the filter was respawned.
    assert complete(srv, "key-crash").status_code == 200
    assert requests.get(srv.url + "/health", timeout=10).status_code == 200


def test_hanging_filter_times_out_with_503(srv):
    t0 = time.monotonic()
    r = complete(srv, "key-hang", headers={"X-Troupe-Fault": "hang"})
    elapsed = time.monotonic() - t0
    assert_openai_error(r, 503, "filter_timeout")
    assert 0.9 <= elapsed < 10, elapsed
    assert complete(srv, "key-hang").status_code == 200


def test_audit_log_has_a_line_per_finished_request(srv, audit_path):
    r = complete(srv, "key-audit", max_tokens=3)
    assert r.status_code == 200
    rid = r.json()["id"]
    deadline = time.monotonic() + 10
    lines = []
    while time.monotonic() < deadline:
        with open(audit_path) as f:
            lines = [json.loads(x) for x in f if x.strip()]
        if any(l["status"] == "ok" and l["api_key"] == "key-***" and l["completion_tokens"] <= 3 for l in lines):
            break
        time.sleep(0.1)
    mine = [l for l in lines if l.get("api_key") == "key-***" and l["status"] == "ok"]
    assert mine, lines
    line = mine[-1]
    assert line["path"] == "/v1/completions"
    assert line["prompt_tokens"] > 0 and 0 < line["completion_tokens"] <= 3
    assert line["finish_reasons"] and line["request_id"]
    assert rid  # the response id and the audit id are both set (formats differ: chatcmpl-/cmpl- prefix)


def ws_generate(srv, frames, url_suffix="", headers=None, timeout=60):
    """Sends each generate frame on one /v1/ws connection, waits for each one's done or error frame;
    returns {id: last frame}."""
    from websockets.asyncio.client import connect

    async def run():
        url = srv.url.replace("http://", "ws://") + "/v1/ws" + url_suffix
        async with connect(url, additional_headers=headers or {}, open_timeout=10, close_timeout=5) as ws:
            out = {}
            for f in frames:  # one at a time: the rate limiter counts them in order
                await ws.send(json.dumps({"type": "generate", "prompt": "Once upon a time", "temperature": 0, **f}))
                while f["id"] not in out:
                    m = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                    if m["type"] in ("done", "error"):
                        out[m["id"]] = m
            return out

    return asyncio.run(run())


def test_websocket_generations_pass_the_request_filters(srv):
    # The same per-key budget as HTTP: 3 requests, then 429, whether the key comes as a header or
    # (for browsers) the api_key query parameter; the max_tokens rewrite applies too.
    frames = [{"id": f"w{i}", "max_tokens": 40} for i in range(3)]
    out = ws_generate(srv, frames, headers={"Authorization": "Bearer key-ws"})
    for f in frames:
        assert out[f["id"]]["type"] == "done", out
        assert out[f["id"]]["usage"]["completion_tokens"] <= 4, out  # the filter capped max_tokens
    out = ws_generate(srv, [{"id": "w3", "max_tokens": 2}], url_suffix="?api_key=key-ws")
    err = out["w3"]
    assert err["type"] == "error", err
    assert err["error"]["code"] == "rate_limited" and err["error"]["type"] == "rate_limit_error", err
    assert complete(srv, "key-ws").status_code == 429  # one budget across HTTP and WebSocket
    out = ws_generate(srv, [{"id": "c", "max_tokens": 2}], headers={"Authorization": "Bearer key-ws-crash",
                                                                     "X-Troupe-Fault": "crash"})
    assert out["c"]["type"] == "error" and out["c"]["error"]["code"] == "filter_failed", out
    assert ws_generate(srv, [{"id": "ok", "max_tokens": 2}], headers={"Authorization": "Bearer key-ws-ok"})[
        "ok"]["type"] == "done"


def test_extensions_from_config_file_and_unknown_name(tmp_path):
    cfg = tmp_path / "troupe.json"
    cfg.write_text(json.dumps({"extensions": ["echo_stats"]}))
    s = start_example("--config", str(cfg))
    try:
        r = requests.post(s.url + "/v1/echo-stats", data="x", timeout=10)
        assert r.status_code == 200 and r.json()["echo"] == "x"
    finally:
        conftest.stop_server_checked(s)
    with pytest.raises(RuntimeError, match="unknown extension 'nope'"):
        start_example("--extensions", "nope")
