"""The prompt logprobs troupe returns for `echo` agree with a float64 reference forward pass of the
default model (tools/smollm2_float64_reference.py: numpy over the GGUF's weights dequantized by the
`gguf` package) within 1e-4 nats per token with a float32 KV cache, on every prompt of
tests/data/smollm2_float64_prompt_logprobs.json (measured: ~1e-5). The CPU default, a float16 KV
cache, rounds K and V and costs up to ~3.4e-3 nats on one token of these prompts (mean 3.8e-4; the
issue's mean and argmax goals are asserted in tests/runtime/cpu_reference_accuracy_test.cpp):
bounded here at 5e-3 so a regression shows."""
import json
import os

import pytest
import requests

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                    "smollm2_float64_prompt_logprobs.json")
TOLERANCE_NATS = 1e-4
F16_KV_TOLERANCE_NATS = 5e-3


def reference():
    with open(DATA) as f:
        return json.load(f)["prompts"]


@pytest.fixture(scope="module")
def f32_kv_server(server_factory):
    return server_factory("--kv-cache-dtype", "float32")


def worst_difference(url, case):
    r = requests.post(url + "/v1/completions", timeout=120,
                      json={"prompt": case["ids"], "echo": True, "logprobs": 1, "max_tokens": 0})
    assert r.status_code == 200, r.text
    got = r.json()["choices"][0]["logprobs"]["token_logprobs"]
    ref = case["logprobs"]
    assert len(got) == len(ref) and got[0] is None
    return max(abs(g - e) for g, e in zip(got[1:], ref[1:])), list(zip(got, ref))


@pytest.mark.parametrize("case", reference(), ids=lambda c: c["text"][:24])
def test_echo_prompt_logprobs_match_the_float64_reference(f32_kv_server, case):
    worst, pairs = worst_difference(f32_kv_server.url, case)
    assert worst <= TOLERANCE_NATS, f"largest difference {worst:.2e} nats: {pairs}"


def test_the_default_float16_kv_cache_stays_close_to_the_reference(base_url):
    worst = max(worst_difference(base_url, case)[0] for case in reference())
    assert worst <= F16_KV_TOLERANCE_NATS, f"largest difference {worst:.2e} nats"
