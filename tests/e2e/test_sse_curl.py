"""SSE framing as a plain HTTP client sees it (curl -sN): a text/event-stream response whose body is
only `data: {json}\\n\\n` events, ending with exactly one `data: [DONE]\\n\\n`."""
import json
import subprocess

import pytest


def curl_stream(url, body, timeout=120):
    """POST with curl -sN; returns (status, headers {lower: value}, raw body bytes)."""
    out = subprocess.run(
        ["curl", "-sN", "--max-time", str(timeout), "-D", "/dev/stderr", "-H", "Content-Type: application/json",
         "--data-binary", json.dumps(body), url],
        capture_output=True, timeout=timeout + 10)
    assert out.returncode == 0, f"curl failed ({out.returncode}): {out.stderr!r}"
    head = out.stderr.decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return status, headers, out.stdout


def parse_events(raw):
    """Split an SSE body strictly: every event is `data: <payload>\\n\\n`, nothing else."""
    text = raw.decode("utf-8")
    assert text.endswith("data: [DONE]\n\n"), f"body does not end with [DONE]: {text[-200:]!r}"
    events = text.split("\n\n")
    assert events[-1] == "", "trailing bytes after the last event"
    events = events[:-1]
    payloads = []
    for ev in events:
        assert ev.startswith("data: "), f"event is not a data line: {ev!r}"
        assert "\n" not in ev, f"event spans several lines: {ev!r}"
        payloads.append(ev[len("data: "):])
    assert payloads[-1] == "[DONE]"
    assert payloads.count("[DONE]") == 1
    return [json.loads(p) for p in payloads[:-1]]


@pytest.mark.parametrize("route,body", [
    ("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0,
                         "ignore_eos": True}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "What is the capital of France?"}],
                              "max_tokens": 30, "temperature": 0}),
])
def test_stream_is_framed_as_sse(base_url, route, body):
    status, headers, raw = curl_stream(base_url + route, dict(body, stream=True))
    assert status == 200
    assert headers["content-type"].split(";")[0].strip() == "text/event-stream"
    events = parse_events(raw)
    assert events, "no data events before [DONE]"
    obj = "text_completion" if route == "/v1/completions" else "chat.completion.chunk"
    assert all(e["object"] == obj for e in events)
    assert len({e["id"] for e in events}) == 1
    finishes = [c["finish_reason"] for e in events for c in e["choices"] if c.get("finish_reason")]
    assert len(finishes) == 1
    assert finishes[0] == ("length" if route == "/v1/completions" else "stop")


def test_stream_with_usage_and_n2(base_url):
    body = {"prompt": "Hello", "max_tokens": 5, "n": 2, "temperature": 1.0, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True}}
    status, headers, raw = curl_stream(base_url + "/v1/completions", body)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = parse_events(raw)
    usage = events[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 10
    assert {c["index"] for e in events[:-1] for c in e["choices"]} == {0, 1}
    assert all(e["usage"] is None for e in events[:-1])


def test_stream_error_before_start_is_a_json_400(base_url):
    status, headers, raw = curl_stream(base_url + "/v1/completions",
                                       {"prompt": "Hello", "stream": True, "temperature": -1})
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    err = json.loads(raw)["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == "temperature"


def test_non_streamed_is_plain_json(base_url):
    status, headers, raw = curl_stream(base_url + "/v1/completions",
                                       {"prompt": "Hello", "max_tokens": 3, "temperature": 0})
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert not raw.startswith(b"data:")
    assert json.loads(raw)["object"] == "text_completion"
