"""Every rejection answers the right status with an OpenAI error body
{"error": {"message", "type", "param", "code"}}, and the server keeps answering good requests after
each one. Two servers: a small one with a 16 KiB body limit, and one with --session-len 64 and
--api-key."""
import json
import socket

import pytest
import requests

API_KEY = "sk-e2e-secret"
BODY_LIMIT = 16384


@pytest.fixture(scope="module")
def small(server_factory):
    return server_factory("--max-body-bytes", str(BODY_LIMIT)).url


@pytest.fixture(scope="module")
def keyed(server_factory):
    return server_factory("--session-len", "64", "--api-key", API_KEY).url


def assert_error(r, status, type_=None, code=None, param=None):
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert {"message", "type", "code", "param"} <= set(err), err
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["type"], str) and err["type"], err
    if type_ is not None:
        assert err["type"] == type_, err
    if code is not None:
        assert err["code"] == code, err
    if param is not None:
        assert err["param"] == param, err
    return err


def assert_alive(url, headers=None):
    """A good request right after a bad one still works."""
    r = requests.post(url + "/v1/completions", headers=headers, timeout=60,
                      json={"prompt": "Hello", "max_tokens": 2, "temperature": 0})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] >= 1


def post_raw(url, path, data, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return requests.post(url + path, data=data, headers=h, timeout=30)


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"])
@pytest.mark.parametrize("body", ['{"prompt": "hi"', "not json at all", "", '{"a": 1}}', "[1, 2]", '"str"'])
def test_malformed_json_is_400(small, path, body):
    assert_error(post_raw(small, path, body), 400, "invalid_request_error")
    assert_alive(small)


WRONG_TYPES = [
    ("/v1/completions", {"prompt": 5}, "prompt"),
    ("/v1/completions", {"prompt": {"text": "hi"}}, "prompt"),
    ("/v1/completions", {"prompt": ["a", [1]]}, "prompt"),
    ("/v1/completions", {"prompt": ["a"] * 65}, "prompt"),  # more prompts than the bound (64)
    ("/v1/completions", {"prompt": "hi", "echo": True, "n": 2}, "echo"),
    ("/v1/completions", {"prompt": "hi", "echo": True, "best_of": 2}, "echo"),
    ("/v1/completions", {"prompt": "hi", "prompt_logprobs": 21}, "prompt_logprobs"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "prompt_logprobs": 99},
     "prompt_logprobs"),
    ("/v1/completions", {"prompt": "hi", "logprobs_mode": "sideways"}, "logprobs_mode"),
    ("/v1/completions", {"prompt": [1, "two"]}, "prompt"),
    ("/v1/completions", {"prompt": "hi", "max_tokens": "10"}, "max_tokens"),
    ("/v1/completions", {"prompt": "hi", "max_tokens": 2.5}, "max_tokens"),
    ("/v1/completions", {"prompt": "hi", "temperature": "hot"}, "temperature"),
    ("/v1/completions", {"prompt": "hi", "stream": "yes"}, "stream"),
    ("/v1/completions", {"prompt": "hi", "n": 1.5}, "n"),
    ("/v1/completions", {"prompt": "hi", "stop": 5}, "stop"),
    ("/v1/completions", {"prompt": "hi", "seed": "x"}, "seed"),
    ("/v1/completions", {"prompt": "hi", "logprobs": True}, "logprobs"),
    ("/v1/completions", {"prompt": "hi", "model": 3}, "model"),
    ("/v1/completions", {"prompt": "hi", "logit_bias": {"notanid": 1}}, "logit_bias"),
    ("/v1/completions", {"prompt": [999999999]}, "prompt"),
    ("/v1/chat/completions", {"messages": "hi"}, "messages"),
    ("/v1/chat/completions", {"messages": []}, "messages"),
    ("/v1/chat/completions", {"messages": [{"content": "no role"}]}, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}, "messages"),
    ("/v1/chat/completions", {"prompt": "completions field on chat"}, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "logprobs": 2}, "logprobs"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2},
     "top_logprobs"),
    ("/v1/completions", {"prompt": "hi", "stream_options": {"include_usage": True}}, "stream_options"),
    ("/detokenize", {"tokens": "abc"}, "tokens"),
]


@pytest.mark.parametrize("path,body,param", WRONG_TYPES, ids=[f"{p}-{k}" for p, _, k in WRONG_TYPES])
def test_wrong_types_are_400(small, path, body, param):
    assert_error(requests.post(small + path, json=body, timeout=30), 400, "invalid_request_error", param=param)
    assert_alive(small)


BAD_SAMPLING = [
    ({"temperature": -1}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"n": 0}, "n"),
    ({"n": 17}, "n"),  # --max-n defaults to 16
    ({"top_k": -2}, "top_k"),
    ({"min_p": 2}, "min_p"),
    ({"presence_penalty": 3}, "presence_penalty"),
    ({"frequency_penalty": -2.5}, "frequency_penalty"),
    ({"repetition_penalty": 0}, "repetition_penalty"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": -5}, "max_tokens"),
    ({"logprobs": 21}, "logprobs"),
    ({"min_tokens": 10, "max_tokens": 5}, "min_tokens"),
]


@pytest.mark.parametrize("extra,param", BAD_SAMPLING, ids=[k for _, k in BAD_SAMPLING])
def test_bad_sampling_values_are_400(small, extra, param):
    body = dict({"prompt": "hi"}, **extra)
    err = assert_error(requests.post(small + "/v1/completions", json=body, timeout=30), 400,
                       "invalid_request_error", param=param)
    assert param in err["message"]
    # the same check on the chat route
    chat = dict({"messages": [{"role": "user", "content": "hi"}]}, **extra)
    if param != "logprobs":
        assert_error(requests.post(small + "/v1/chat/completions", json=chat, timeout=30), 400,
                     "invalid_request_error", param=param)
    assert_alive(small)


def test_bad_sampling_in_a_stream_request_is_a_plain_400(small):
    r = requests.post(small + "/v1/chat/completions", timeout=30, stream=True,
                      json={"messages": [{"role": "user", "content": "hi"}], "stream": True, "top_p": 0})
    assert_error(r, 400, "invalid_request_error", param="top_p")
    assert_alive(small)


def test_unknown_route_is_404(small):
    for path in ("/v1/nope", "/nope", "/static/nope.js", "/v2/completions", "/v1/completions/extra"):  # "/" is the playground
        assert_error(requests.get(small + path, timeout=10), 404, code="not_found")
        if not path.startswith("/static/"):  # a static file answers POST with 405
            assert_error(requests.post(small + path, json={}, timeout=10), 404, code="not_found")
        assert_alive(small)


@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/v1/completions", "POST"),
    ("PUT", "/v1/chat/completions", "POST"),
    ("DELETE", "/v1/completions", "POST"),
    ("POST", "/v1/models", "GET"),
    ("POST", "/metrics", "GET"),
    ("GET", "/tokenize", "POST"),
])
def test_wrong_method_is_405(small, method, path, allow):
    r = requests.request(method, small + path, timeout=10)
    assert_error(r, 405, code="method_not_allowed")
    assert r.headers.get("Allow") == allow
    assert_alive(small)


def test_body_over_the_limit_is_413(small):
    big = json.dumps({"prompt": "x " * BODY_LIMIT, "max_tokens": 1})
    assert len(big) > BODY_LIMIT
    assert_error(post_raw(small, "/v1/completions", big), 413, code="body_too_large")
    assert_alive(small)
    # chunked: no Content-Length, the limit is found while reading
    def chunks():
        data = big.encode()
        for i in range(0, len(data), 4096):
            yield data[i:i + 4096]
    try:
        r = requests.post(small + "/v1/completions", data=chunks(), timeout=30,
                          headers={"Content-Type": "application/json"})
    except requests.ConnectionError as e:  # the server may close while we still send
        pytest.fail(f"chunked oversized body: no 413 response, connection error {e}")
    assert_error(r, 413, code="body_too_large")
    assert_alive(small)
    # just under the limit is fine (it is the body, not the prompt, that is limited)
    ok = json.dumps({"prompt": "hi", "max_tokens": 1, "stop": ["x" * 100]})
    assert post_raw(small, "/v1/completions", ok).status_code == 200


def test_malformed_http_is_400(small):
    host, port = small.replace("http://", "").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        s.settimeout(10)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), data[:200]
    assert "error" in json.loads(body)
    assert_alive(small)


def test_prompt_beyond_session_len_is_400(keyed):
    auth = {"Authorization": f"Bearer {API_KEY}"}
    long_prompt = "one two three four five six seven eight nine ten " * 10  # ~100 tokens > 64
    r = requests.post(keyed + "/v1/completions", headers=auth, timeout=30,
                      json={"prompt": long_prompt, "max_tokens": 1})
    assert_error(r, 400, "invalid_request_error", code="context_too_long")
    assert_alive(keyed, auth)
    r = requests.post(keyed + "/v1/chat/completions", headers=auth, timeout=30,
                      json={"messages": [{"role": "user", "content": long_prompt}]})
    assert_error(r, 400, "invalid_request_error", code="context_too_long")
    assert_alive(keyed, auth)
    # the prompt fits but prompt + max_tokens does not
    r = requests.post(keyed + "/v1/completions", headers=auth, timeout=30,
                      json={"prompt": "Hello", "max_tokens": 64})
    assert_error(r, 400, "invalid_request_error", code="context_too_long", param="max_tokens")
    assert_alive(keyed, auth)
    # token-id prompts are measured the same way
    r = requests.post(keyed + "/v1/completions", headers=auth, timeout=30,
                      json={"prompt": [1] * 64, "max_tokens": 1})
    assert_error(r, 400, code="context_too_long")
    assert_alive(keyed, auth)


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-key"},
    {"Authorization": API_KEY},
    {"Authorization": f"Basic {API_KEY}"},
    {"Authorization": f"Bearer {API_KEY}x"},
    {"Authorization": "Bearer "},
], ids=["missing", "wrong", "no-scheme", "basic", "longer", "empty"])
def test_api_key_is_required(keyed, headers):
    body = {"prompt": "Hello", "max_tokens": 2}
    for path, payload in (("/v1/completions", body),
                          ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}),
                          ("/tokenize", {"prompt": "hi"})):
        r = requests.post(keyed + path, json=payload, headers=headers, timeout=30)
        assert_error(r, 401, "authentication_error")
        assert_alive(keyed, {"Authorization": f"Bearer {API_KEY}"})
    assert_error(requests.get(keyed + "/v1/models", headers=headers, timeout=10), 401, "authentication_error")


def test_right_api_key_is_200_and_probes_need_none(keyed):
    auth = {"Authorization": f"Bearer {API_KEY}"}
    assert requests.get(keyed + "/v1/models", headers=auth, timeout=10).status_code == 200
    r = requests.post(keyed + "/v1/chat/completions", headers=auth, timeout=60,
                      json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert r.status_code == 200, r.text
    for probe in ("/health", "/ready", "/metrics"):
        assert requests.get(keyed + probe, timeout=10).status_code == 200, probe


def test_websocket_upgrade_needs_the_key(keyed):
    from websockets.sync.client import connect
    from websockets.exceptions import InvalidStatus
    ws_url = keyed.replace("http://", "ws://") + "/v1/ws"
    with pytest.raises(InvalidStatus) as e:
        connect(ws_url, open_timeout=10)
    assert e.value.response.status_code == 401
    with connect(ws_url, open_timeout=10, additional_headers={"Authorization": f"Bearer {API_KEY}"}) as ws:
        ws.send(json.dumps({"type": "generate", "id": "k", "prompt": "Hi", "max_tokens": 2, "ignore_eos": True}))
        while True:
            f = json.loads(ws.recv(timeout=60))
            if f["type"] != "token":
                break
        assert f["type"] == "done" and f["usage"]["completion_tokens"] == 2
