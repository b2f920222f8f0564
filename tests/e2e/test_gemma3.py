"""The second real model end to end: Gemma 3 270M (base, Q4_K_M GGUF, installed by
`tools/setup.sh --test`) served on the CPU. Greedy completion of a factual prompt, the /v1/models
id, the chat endpoint's answer for a GGUF without a chat template, and `troupe plan` for its
local/global layers and quantized weights."""
import os
import subprocess

import pytest
import requests

from conftest import BINARY

MODEL = os.path.join(os.environ.get("TROUPE_CACHE_DIR", os.path.expanduser("~/.cache/troupe")), "models",
                     "gemma-3-270m-q4_k_m.gguf")
pytestmark = pytest.mark.skipif(not os.path.exists(MODEL),
                                reason=f"Gemma 3 270M not installed at {MODEL} (tools/setup.sh --test)")


@pytest.fixture(scope="module")
def gemma(server_factory):
    return server_factory("--model", MODEL, "--num-threads", "2").url


def test_models_lists_the_gguf_stem(gemma):
    r = requests.get(gemma + "/v1/models", timeout=30)
    assert r.status_code == 200, r.text
    assert [m["id"] for m in r.json()["data"]] == ["gemma-3-270m-q4_k_m"]


def test_greedy_completion_names_paris(gemma):
    r = requests.post(gemma + "/v1/completions", timeout=120, json={
        "model": "gemma-3-270m-q4_k_m", "prompt": "The Eiffel Tower is located in the city of",
        "max_tokens": 6, "temperature": 0})
    assert r.status_code == 200, r.text
    text = r.json()["choices"][0]["text"]
    assert text.lstrip().startswith("Paris"), repr(text)


def test_chat_without_a_template_in_the_gguf_is_a_clear_400(gemma):
    # This base model's GGUF carries no tokenizer.chat_template: chat is refused, not guessed.
    r = requests.post(gemma + "/v1/chat/completions", timeout=30, json={
        "model": "gemma-3-270m-q4_k_m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
    assert r.status_code == 400, r.text
    assert "chat template" in r.json()["error"]["message"]
    assert requests.post(gemma + "/v1/completions", timeout=60, json={
        "model": "gemma-3-270m-q4_k_m", "prompt": "Hello", "max_tokens": 2}).status_code == 200


def test_plan_shows_local_layers_and_weights_as_held():
    out = subprocess.run([BINARY, "plan", "--model", MODEL, "--session-len", "2048", "--device-memory", "8GiB"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "gemma3, 18 layers" in out.stdout, out.stdout
    assert "15 local layers with a 512-token window" in out.stdout, out.stdout
    assert "weights: as held:" in out.stdout and "Q4_K" in out.stdout, out.stdout
