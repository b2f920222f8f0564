"""The official `openai` client against the real server: chat and completions, streamed and not,
usage, n, logprobs, stop strings, seeds, length limits, token-id prompts, /v1/models and the
tokenize/detokenize pair."""
import math

import openai
import pytest
import requests


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=base_url + "/v1", api_key="unused", timeout=120, max_retries=0)


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id


CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]


def test_models_lists_the_served_model(client, base_url):
    models = client.models.list().data
    assert len(models) == 1
    assert models[0].id
    assert models[0].object == "model"
    raw = requests.get(base_url + "/v1/models", timeout=10).json()
    assert raw["object"] == "list"
    assert raw["data"][0]["max_model_len"] == 2048  # --session-len 2048


def test_greedy_chat_knows_the_capital_of_france(client, model):
    r = client.chat.completions.create(model=model, messages=CAPITAL, max_tokens=30, temperature=0)
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert len(r.choices) == 1
    msg = r.choices[0].message
    assert msg.role == "assistant"
    assert "Paris" in msg.content
    assert r.choices[0].finish_reason == "stop"
    u = r.usage
    assert u.prompt_tokens > 0 and u.completion_tokens > 0
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens


def test_streamed_chat_matches_the_unstreamed_answer(client, model):
    full = client.chat.completions.create(model=model, messages=CAPITAL, max_tokens=30, temperature=0)
    stream = client.chat.completions.create(model=model, messages=CAPITAL, max_tokens=30, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks, "no chunks"
    content_chunks = [c for c in chunks if c.choices]
    assert content_chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in content_chunks)
    assert text == full.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in content_chunks if c.choices[0].finish_reason]
    assert finishes == ["stop"]
    # include_usage: a last chunk with no choices and the usage; all others carry usage null.
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == full.usage.completion_tokens
    assert last.usage.prompt_tokens == full.usage.prompt_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_completion_not_streamed_with_usage(client, model):
    r = client.completions.create(model=model, prompt="Once upon a time", max_tokens=8, temperature=0,
                                  extra_body={"ignore_eos": True})
    assert r.object == "text_completion"
    assert len(r.choices) == 1
    assert r.choices[0].text
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + 8


def test_completion_streamed_with_usage_chunk(client, model):
    full = client.completions.create(model=model, prompt="Once upon a time", max_tokens=12, temperature=0)
    chunks = list(client.completions.create(model=model, prompt="Once upon a time", max_tokens=12,
                                            temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == full.choices[0].text
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert chunks[-1].usage.total_tokens == full.usage.total_tokens


def test_stream_without_include_usage_has_no_usage_chunk(client, model):
    chunks = list(client.completions.create(model=model, prompt="Hello", max_tokens=4, temperature=0,
                                            stream=True))
    assert chunks and all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_max_tokens_ends_with_length(client, model):
    r = client.chat.completions.create(model=model, max_tokens=3, temperature=0,
                                       messages=[{"role": "user", "content": "Write a long story about a dragon."}])
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3
    r = client.chat.completions.create(model=model, max_completion_tokens=2, temperature=0,
                                       messages=[{"role": "user", "content": "Write a long story about a dragon."}])
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 2


def test_n_two_gives_two_choices(client, model):
    r = client.chat.completions.create(model=model, messages=CAPITAL, max_tokens=6, temperature=1.0, n=2,
                                       seed=7, extra_body={"ignore_eos": True})
    assert sorted(c.index for c in r.choices) == [0, 1]
    assert all(c.message.content for c in r.choices)
    assert all(c.finish_reason == "length" for c in r.choices)
    assert r.usage.completion_tokens == 12  # usage counts both choices
    assert r.usage.total_tokens == r.usage.prompt_tokens + 12
    chunks = list(client.completions.create(model=model, prompt="Once upon a time", max_tokens=6, n=2,
                                            temperature=1.0, stream=True, extra_body={"ignore_eos": True}))
    by_index = {}
    for c in chunks:
        for ch in c.choices:
            by_index.setdefault(ch.index, []).append(ch)
    assert sorted(by_index) == [0, 1]
    for idx, parts in by_index.items():
        assert [p.finish_reason for p in parts if p.finish_reason] == ["length"], idx


def test_seed_makes_sampling_repeatable(client, model):
    def once(seed):
        r = client.completions.create(model=model, prompt="The best thing about summer is", max_tokens=24,
                                      temperature=0.8, seed=seed, extra_body={"ignore_eos": True})
        return r.choices[0].text

    a, b = once(1234), once(1234)
    assert a == b, "the same seed gave different text"
    others = {once(s) for s in (1, 2, 3)}
    assert len(others | {a}) > 1, "temperature 0.8 with different seeds never differed: is sampling random?"


def test_chat_logprobs_and_top_logprobs(client, model):
    r = client.chat.completions.create(model=model, messages=CAPITAL, max_tokens=5, temperature=0,
                                       logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(t.token for t in content) == r.choices[0].message.content
    for t in content:
        assert t.logprob <= 0 and math.isfinite(t.logprob)
        assert len(t.top_logprobs) == 3
        tops = [x.logprob for x in t.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        # greedy: the chosen token is the most likely one
        assert t.top_logprobs[0].token == t.token
        assert abs(t.top_logprobs[0].logprob - t.logprob) < 1e-3
        assert t.bytes == list(t.token.encode("utf-8"))


def test_completion_logprobs(client, model):
    r = client.completions.create(model=model, prompt="Once upon a time", max_tokens=4, temperature=0,
                                  logprobs=2, extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == 4 == len(lp.token_logprobs) == len(lp.top_logprobs)
    assert "".join(lp.tokens) == r.choices[0].text
    assert all(x <= 0 for x in lp.token_logprobs)
    assert all(len(d) == 2 for d in lp.top_logprobs)
    assert lp.text_offset == sorted(lp.text_offset)


def test_stop_string_ends_and_is_removed(client, model):
    full = client.chat.completions.create(model=model, messages=CAPITAL, max_tokens=30, temperature=0)
    text = full.choices[0].message.content
    assert " is " in text, text
    r = client.chat.completions.create(model=model, messages=CAPITAL, max_tokens=30, temperature=0,
                                       stop=[" is "])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == text[: text.index(" is ")]
    # streamed: the stop string never reaches the client, even split across tokens
    chunks = list(client.chat.completions.create(model=model, messages=CAPITAL, max_tokens=30, temperature=0,
                                                 stop=["Paris"], stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" not in streamed
    assert streamed == text[: text.index("Paris")]


def test_prompt_as_token_ids(client, model, base_url):
    tok = requests.post(base_url + "/tokenize", json={"prompt": "Once upon a time"}, timeout=10).json()
    ids = tok["tokens"]
    assert tok["count"] == len(ids) > 0
    by_text = client.completions.create(model=model, prompt="Once upon a time", max_tokens=8, temperature=0)
    by_ids = client.completions.create(model=model, prompt=ids, max_tokens=8, temperature=0)
    assert by_ids.usage.prompt_tokens == len(ids)
    assert by_ids.choices[0].text == by_text.choices[0].text


def test_tokenize_detokenize_round_trip(base_url):
    text = "Hello world, this is troupe. Ünïcödé ✓"
    tok = requests.post(base_url + "/tokenize", json={"prompt": text, "add_special_tokens": False}, timeout=10)
    assert tok.status_code == 200
    ids = tok.json()["tokens"]
    assert ids and all(isinstance(i, int) for i in ids)
    det = requests.post(base_url + "/detokenize", json={"tokens": ids}, timeout=10)
    assert det.status_code == 200
    assert det.json()["prompt"] == text
