"""The prompt logprobs troupe returns for `echo` agree with a float64 reference forward pass of the
default model (tools/smollm2_float64_reference.py: numpy over the GGUF's weights dequantized by the
`gguf` package) within 1e-4 nats per token, on every prompt of
tests/data/smollm2_float64_prompt_logprobs.json."""
import json
import os

import pytest
import requests

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                    "smollm2_float64_prompt_logprobs.json")
TOLERANCE_NATS = 1e-4


def reference():
    with open(DATA) as f:
        return json.load(f)["prompts"]


@pytest.mark.parametrize("case", reference(), ids=lambda c: c["text"][:24])
def test_echo_prompt_logprobs_match_the_float64_reference(base_url, case):
    r = requests.post(base_url + "/v1/completions", timeout=120,
                      json={"prompt": case["ids"], "echo": True, "logprobs": 1, "max_tokens": 0})
    assert r.status_code == 200, r.text
    got = r.json()["choices"][0]["logprobs"]["token_logprobs"]
    ref = case["logprobs"]
    assert len(got) == len(ref) and got[0] is None
    worst = max(abs(g - e) for g, e in zip(got[1:], ref[1:]))
    assert worst <= TOLERANCE_NATS, f"largest difference {worst:.2e} nats: {list(zip(got, ref))}"
