"""The second real model end to end: Gemma 3 270M (base, Q4_K_M GGUF, installed by
`tools/setup.sh --test`) served on the CPU. Greedy completion of a factual prompt, the /v1/models
id, chat through the built-in Gemma 3 template (the GGUF has none) and through --chat-template, and
`troupe plan` for its local/global layers and quantized weights."""
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
def gemma_server(server_factory):
    return server_factory("--model", MODEL, "--num-threads", "2")


@pytest.fixture(scope="module")
def gemma(gemma_server):
    return gemma_server.url


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


def test_chat_uses_the_builtin_gemma3_template(gemma, gemma_server):
    # This base model's GGUF carries no tokenizer.chat_template: troupe falls back to Gemma 3's own
    # (google/gemma-3-270m-it's, tests/data/chat_templates) and says so at start-up.
    assert "using troupe's built-in gemma3 template" in gemma_server.log()
    r = requests.post(gemma + "/v1/chat/completions", timeout=120, json={
        "model": "gemma-3-270m-q4_k_m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8,
        "temperature": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    # <bos> <start_of_turn> user \n Hi <end_of_turn> \n <start_of_turn> model \n
    assert body["usage"]["prompt_tokens"] == 10, body["usage"]
    # The system message folds into the first user turn (no system role in Gemma's format).
    r2 = requests.post(gemma + "/v1/chat/completions", timeout=120, json={
        "model": "gemma-3-270m-q4_k_m", "max_tokens": 1, "temperature": 0,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]})
    assert r2.status_code == 200, r2.text
    assert r2.json()["usage"]["prompt_tokens"] > body["usage"]["prompt_tokens"]


def test_chat_roles_out_of_order_are_a_clear_400(gemma):
    r = requests.post(gemma + "/v1/chat/completions", timeout=30, json={
        "model": "gemma-3-270m-q4_k_m", "max_tokens": 2,
        "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})
    assert r.status_code == 400, r.text
    assert "Conversation roles must alternate" in r.json()["error"]["message"]


def test_chat_template_option_replaces_the_builtin(server_factory, tmp_path):
    # A bare template: the chat prompt is the user's text after <bos>, so greedy chat continues the
    # sentence exactly as the completion endpoint does.
    tmpl = tmp_path / "bare.jinja"
    tmpl.write_text("{{ bos_token }}{{ messages[0]['content'] }}")
    srv = server_factory("--model", MODEL, "--num-threads", "2", "--chat-template", str(tmpl))
    assert "chat template from --chat-template" in srv.log()
    assert "built-in" not in srv.log()
    r = requests.post(srv.url + "/v1/chat/completions", timeout=120, json={
        "model": "gemma-3-270m-q4_k_m", "max_tokens": 6, "temperature": 0,
        "messages": [{"role": "user", "content": "The Eiffel Tower is located in the city of"}]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"].lstrip().startswith("Paris"), r.text


def test_unreadable_chat_template_option_fails_start_up_with_its_name():
    out = subprocess.run([BINARY, "serve", "--model", MODEL, "--host", "127.0.0.1", "--port", "0",
                          "--chat-template", "/nonexistent/t.jinja"], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "--chat-template" in out.stderr + out.stdout and "/nonexistent/t.jinja" in out.stderr + out.stdout


def test_plan_shows_local_layers_and_weights_as_held():
    out = subprocess.run([BINARY, "plan", "--model", MODEL, "--session-len", "2048", "--device-memory", "8GiB"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "gemma3, 18 layers" in out.stdout, out.stdout
    assert "15 local layers with a 512-token window" in out.stdout, out.stdout
    assert "weights: as held:" in out.stdout and "Q4_K" in out.stdout, out.stdout
