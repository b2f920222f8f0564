"""Hostile JSON against the real binary (issue 19): bodies well inside --max-body-bytes that nest
deeper than --max-json-depth are a 400 naming the limit on every JSON route and on /v1/ws (they
used to overflow the stack: a recursive copy or dump of the value); prompts of the wrong shape are
a 400 rather than unwrapped; structured-output and tool fields are refused rather than ignored."""
import asyncio
import json
import time

import pytest
import requests
from websockets.asyncio.client import connect

DEPTH = 100000  # 200 KB of brackets: a recursive walk of this overflows an 8 MiB stack


def deep_list(depth=DEPTH):
    return "[" * depth + "]" * depth


def deep_object(depth=DEPTH):
    return '{"a":' * depth + "1" + "}" * depth


@pytest.fixture(scope="module")
def srv(server_factory):
    return server_factory()


def post_raw(srv, path, body):
    return requests.post(srv.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=60)


def assert_error(r, status, param=None, code=None):
    assert r.status_code == status, r.text[:300]
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"], err
    if param is not None:
        assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err
    return err


def assert_alive(srv):
    assert srv.proc.poll() is None, "the server died"
    r = requests.post(srv.url + "/v1/completions", json={"prompt": "Hi", "max_tokens": 2}, timeout=60)
    assert r.status_code == 200, r.text


MESSAGES = '[{"role":"user","content":"Hi"}]'
DEEP_BODIES = [
    ("/v1/completions", lambda: '{"prompt":"hi","x":' + deep_list() + "}"),
    ("/v1/completions", lambda: '{"prompt":"hi","x":' + deep_object() + "}"),
    ("/v1/completions", lambda: '{"prompt":' + deep_list() + "}"),
    ("/v1/chat/completions", lambda: '{"messages":' + MESSAGES + ',"chat_template_kwargs":{"k":' + deep_list() + "}}"),
    ("/v1/chat/completions", lambda: '{"messages":' + MESSAGES + ',"x":' + deep_object() + "}"),
    ("/tokenize", lambda: '{"prompt":' + deep_list() + "}"),
    ("/tokenize", lambda: '{"messages":' + MESSAGES + ',"chat_template_kwargs":' + deep_object() + "}"),
    ("/detokenize", lambda: '{"tokens":[' + deep_list() + "]}"),
    ("/detokenize", lambda: '{"tokens":[' + deep_object() + "]}"),
]


@pytest.mark.parametrize("path,body", DEEP_BODIES)
def test_deep_json_is_a_400_naming_the_limit(srv, path, body):
    r = post_raw(srv, path, body())
    err = assert_error(r, 400, code="json_too_deep")
    assert "64" in err["message"] and "--max-json-depth" in err["message"], err
    assert len(r.content) < 1000
    assert_alive(srv)


def test_bad_values_are_quoted_as_a_bounded_prefix(srv):
    r = post_raw(srv, "/detokenize", '{"tokens":["' + "x" * 100000 + '"]}')
    assert_error(r, 400, param="tokens")
    assert len(r.content) < 1000
    r = post_raw(srv, "/detokenize", '{"tokens":[' + deep_list(60) + "]}")
    assert_error(r, 400, param="tokens")
    assert len(r.content) < 1000


def test_websocket_deep_messages_are_error_frames(srv):
    async def run():
        async with connect(srv.url.replace("http://", "ws://") + "/v1/ws", open_timeout=10, close_timeout=5) as ws:
            frames = []
            for msg in ['{"type":"generate","id":"a","prompt":' + deep_list() + "}",
                        '{"type":"generate","id":"b","prompt":"hi","x":' + deep_object() + "}",
                        '{"type":"generate","id":"c","messages":' + MESSAGES +
                        ',"chat_template_kwargs":{"k":' + deep_list() + "}}"]:
                await ws.send(msg)
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
            await ws.send(json.dumps({"type": "generate", "id": "ok", "prompt": "Hi", "max_tokens": 2}))
            while True:
                f = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if f["type"] in ("done", "error"):
                    return frames, f

    frames, last = asyncio.run(run())
    for f in frames:
        assert f["type"] == "error" and f["error"]["code"] == "json_too_deep", f
    assert last["type"] == "done" and last["id"] == "ok", last
    assert_alive(srv)


def tokens_of(srv, prompt):
    r = requests.post(srv.url + "/tokenize", json={"prompt": prompt}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["tokens"]


# [[1], [2]] and ["a", "b"] are batches on /v1/completions (tests/e2e/test_openai_conformance.py).
@pytest.mark.parametrize("prompt", [[[[1]]], [["Hi"]], [[1], "a"], [[1, "a"]], [[]], [1, [2]], {"a": 1},
                                    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]])
def test_wrongly_shaped_prompts_are_400_not_unwrapped(srv, prompt):
    t0 = time.monotonic()
    for path in ("/v1/completions", "/tokenize"):
        r = requests.post(srv.url + path, json={"prompt": prompt, "max_tokens": 2}, timeout=30)
        assert_error(r, 400, param="prompt")
    assert time.monotonic() - t0 < 10


def test_single_prompt_lists_are_the_prompt(srv):
    hi = tokens_of(srv, "Hi")
    assert tokens_of(srv, ["Hi"]) == hi
    assert tokens_of(srv, [[5, 6]]) == [5, 6]
    for prompt in (["Hi"], [hi]):
        r = requests.post(srv.url + "/v1/completions", json={"prompt": prompt, "max_tokens": 2}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["prompt_tokens"] == len(hi)


CHAT = {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 2}


@pytest.mark.parametrize("extra,param", [
    ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
    ({"function_call": "auto"}, "function_call"),
])
def test_legacy_function_fields_are_refused(srv, extra, param):
    r = requests.post(srv.url + "/v1/chat/completions", json={**CHAT, **extra}, timeout=60)
    err = assert_error(r, 400, param=param, code="unsupported")
    assert "not supported" in err["message"], err


def test_tools_belong_to_chat_and_tool_choice_needs_tools(srv):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    r = requests.post(srv.url + "/v1/completions", json={"prompt": "x", "max_tokens": 2, "tools": tools}, timeout=60)
    assert_error(r, 400, param="tools", code="unsupported")
    for choice in ("auto", "required", {"type": "function", "function": {"name": "f"}}):
        r = requests.post(srv.url + "/v1/chat/completions", json={**CHAT, "tool_choice": choice}, timeout=60)
        assert_error(r, 400, param="tool_choice")


@pytest.mark.parametrize("extra", [{"response_format": {"type": "text"}}, {"tool_choice": "none"},
                                   {"tools": [], "functions": []}, {"function_call": "none"}])
def test_default_tool_fields_are_accepted(srv, extra):
    r = requests.post(srv.url + "/v1/chat/completions", json={**CHAT, **extra}, timeout=60)
    assert r.status_code == 200, r.text


def test_max_json_depth_option_sets_the_limit(server_factory):
    s = server_factory("--max-json-depth", "8")
    ok = post_raw(s, "/tokenize", '{"prompt":' + "[" * 6 + "]" * 6 + "}")
    assert_error(ok, 400, param="prompt")  # within the limit: judged by shape
    r = post_raw(s, "/tokenize", '{"prompt":' + "[" * 8 + "]" * 8 + "}")
    err = assert_error(r, 400, code="json_too_deep")
    assert "8 levels" in err["message"], err
