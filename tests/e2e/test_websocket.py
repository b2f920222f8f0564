"""The WebSocket API (/v1/ws, docs/websocket.md) with the `websockets` client: concurrent tagged
generations on one connection, cancel, errors as frames, and a dropped socket cancelling its work."""
import asyncio
import json
import time

import pytest
import requests
from websockets.asyncio.client import connect

from conftest import metrics, wait_idle

RECV_TIMEOUT_S = 60.0


def ws_url(base_url):
    return base_url.replace("http://", "ws://") + "/v1/ws"


async def recv_json(ws, timeout=RECV_TIMEOUT_S):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def collect_until_done(ws, ids, timeout=RECV_TIMEOUT_S * 2):
    """Read frames until every id in `ids` has its done (or error) frame. Returns
    (tokens {id: [frames]}, done {id: frame}, order [id of each token frame])."""
    tokens = {i: [] for i in ids}
    done = {}
    order = []
    deadline = time.monotonic() + timeout
    while set(done) != set(ids):
        left = deadline - time.monotonic()
        assert left > 0, f"no done frame for {set(ids) - set(done)} in {timeout} s"
        f = await recv_json(ws, left)
        assert "id" in f, f"frame without id: {f}"
        assert f["id"] in ids, f"frame for an id we never sent: {f}"
        if f["type"] == "token":
            assert f["id"] not in done, f"token frame after done: {f}"
            tokens[f["id"]].append(f)
            order.append(f["id"])
        elif f["type"] in ("done", "error"):
            assert f["id"] not in done, f"second done/error frame: {f}"
            done[f["id"]] = f
        else:
            raise AssertionError(f"unexpected frame type: {f}")
    return tokens, done, order


def greedy_text(base_url, prompt, max_tokens):
    r = requests.post(base_url + "/v1/completions", timeout=120,
                      json={"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["text"]


PROMPTS = {"a": "Once upon a time", "b": "The capital of France is", "c": "def fibonacci(n):"}


def test_concurrent_generations_are_tagged_by_id(base_url):
    expected = {i: greedy_text(base_url, p, 10) for i, p in PROMPTS.items()}

    async def run():
        async with connect(ws_url(base_url), open_timeout=10, close_timeout=5) as ws:
            for i, p in PROMPTS.items():
                await ws.send(json.dumps({"type": "generate", "id": i, "prompt": p, "max_tokens": 10,
                                          "temperature": 0, "ignore_eos": True}))
            # a chat generation on the same connection
            await ws.send(json.dumps({"type": "generate", "id": "chat",
                                      "messages": [{"role": "user", "content": "What is the capital of France?"}],
                                      "max_tokens": 30, "temperature": 0}))
            return await collect_until_done(ws, list(PROMPTS) + ["chat"])

    tokens, done, order = asyncio.run(run())
    for i in PROMPTS:
        frames = tokens[i]
        text = "".join(f["text"] for f in frames)
        assert text == expected[i], f"id {i}: frames of another generation mixed in?"
        assert all(f["index"] == 0 for f in frames)
        assert sum(len(f["token_ids"]) for f in frames) == 10
        assert frames[-1].get("finish_reason") == "length"
        assert all("finish_reason" not in f for f in frames[:-1])
        d = done[i]
        assert d["type"] == "done", d
        assert d["finish_reason"] == "length"
        assert d["choices"] == [{"index": 0, "finish_reason": "length"}]
        assert d["usage"]["completion_tokens"] == 10
        assert d["usage"]["total_tokens"] == d["usage"]["prompt_tokens"] + 10
    chat = "".join(f["text"] for f in tokens["chat"])
    assert "Paris" in chat
    assert done["chat"]["finish_reason"] == "stop"
    # they ran concurrently: the token frames of different ids interleave
    first_done_at = min(max(k for k, x in enumerate(order) if x == i) for i in PROMPTS)
    assert len(set(order[: first_done_at + 1])) > 1, f"generations ran one after the other: {order}"


def test_cancel_stops_one_generation_while_others_finish(base_url):
    async def run():
        async with connect(ws_url(base_url), open_timeout=10, close_timeout=5) as ws:
            await ws.send(json.dumps({"type": "generate", "id": "long", "prompt": "Once upon a time",
                                      "max_tokens": 1500, "ignore_eos": True, "temperature": 0}))
            for i in ("x", "y"):
                await ws.send(json.dumps({"type": "generate", "id": i, "prompt": "Hello there",
                                          "max_tokens": 12, "ignore_eos": True, "temperature": 0.7, "seed": 1}))
            tokens = {"long": [], "x": [], "y": []}
            done = {}
            cancelled = False
            deadline = time.monotonic() + 2 * RECV_TIMEOUT_S
            while len(done) < 3:
                assert time.monotonic() < deadline, f"missing done frames: {set(tokens) - set(done)}"
                f = await recv_json(ws)
                if f["type"] == "token":
                    tokens[f["id"]].append(f)
                    if f["id"] == "long" and len(tokens["long"]) >= 3 and not cancelled:
                        await ws.send(json.dumps({"type": "cancel", "id": "long"}))
                        cancelled = True
                elif f["type"] == "done":
                    done[f["id"]] = f
                else:
                    raise AssertionError(f"unexpected frame: {f}")
            # cancelling what is not running answers an error frame with code not_found
            await ws.send(json.dumps({"type": "cancel", "id": "long"}))
            err = await recv_json(ws)
            return tokens, done, cancelled, err

    tokens, done, cancelled, err = asyncio.run(run())
    assert cancelled
    assert done["long"]["finish_reason"] == "abort"
    assert done["long"]["choices"][0]["finish_reason"] == "abort"
    n_long = done["long"]["usage"]["completion_tokens"]
    assert 3 <= n_long < 1500
    assert n_long == sum(len(f["token_ids"]) for f in tokens["long"])
    for i in ("x", "y"):
        assert done[i]["finish_reason"] == "length"
        assert done[i]["usage"]["completion_tokens"] == 12
    assert err["type"] == "error" and err["id"] == "long"
    assert err["error"]["code"] == "not_found"


def test_bad_frames_answer_error_frames_and_keep_the_connection(base_url):
    async def run():
        async with connect(ws_url(base_url), open_timeout=10, close_timeout=5) as ws:
            out = []
            await ws.send("{not json")
            out.append(await recv_json(ws))
            await ws.send(json.dumps({"type": "generate", "id": "t", "prompt": "Hi", "top_p": 0}))
            out.append(await recv_json(ws))
            await ws.send(json.dumps({"type": "generate", "prompt": "Hi"}))
            out.append(await recv_json(ws))
            await ws.send(json.dumps({"type": "generate", "id": "d", "prompt": "Hi", "max_tokens": 200,
                                      "ignore_eos": True}))
            await ws.send(json.dumps({"type": "generate", "id": "d", "prompt": "Hi", "max_tokens": 2}))
            dup = None
            while dup is None:
                f = await recv_json(ws)
                if f["type"] == "error":
                    dup = f
            out.append(dup)
            await ws.send(json.dumps({"type": "cancel", "id": "d"}))
            while (await recv_json(ws))["type"] != "done":
                pass
            # still usable
            await ws.send(json.dumps({"type": "generate", "id": "ok", "prompt": "Hi", "max_tokens": 3,
                                      "ignore_eos": True}))
            _, done, _ = await collect_until_done(ws, ["ok"])
            out.append(done["ok"])
            return out

    bad_json, bad_top_p, no_id, dup, ok = asyncio.run(run())
    assert bad_json["type"] == "error" and bad_json["id"] is None
    assert bad_json["error"]["type"] == "invalid_request_error"
    assert bad_top_p["id"] == "t" and bad_top_p["error"]["param"] == "top_p"
    assert no_id["type"] == "error" and no_id["id"] is None
    assert dup["id"] == "d" and dup["error"]["code"] == "duplicate_id"
    assert ok["type"] == "done" and ok["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("how", ["close_handshake", "tcp_abort"])
def test_closing_the_socket_cancels_its_generations(base_url, how):
    async def run():
        ws = await connect(ws_url(base_url), open_timeout=10, close_timeout=5)
        for i in range(3):
            await ws.send(json.dumps({"type": "generate", "id": f"g{i}", "prompt": f"Story number {i}:",
                                      "max_tokens": 1500, "ignore_eos": True}))
        seen = 0
        while seen < 6:
            f = await recv_json(ws)
            assert f["type"] == "token", f
            seen += 1
        # each generation would take minutes if left running
        assert metrics(base_url)["troupe:num_requests_running"] >= 1
        if how == "close_handshake":
            await ws.close()
        else:  # the connection is lost: no close frame, just the TCP socket going away
            ws.transport.abort()

    asyncio.run(run())
    m = wait_idle(base_url, timeout=10)
    assert m["troupe:num_requests_running"] == 0, m
    assert m["troupe:num_requests_waiting"] == 0, m
    assert m["troupe:kv_blocks_used"] == 0, m
