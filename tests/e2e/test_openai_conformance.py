"""OpenAI API conformance for evaluation harnesses and client libraries (issue 22), with the
`openai` package against the real server and the default model: echo and prompt logprobs (also
across the prefix cache), max_tokens 0, batched prompts (strings and token ids, n = 2), logprobs that
join to exactly the returned text (stop strings, EOS; streamed and not), top_logprobs best first,
text_offset, logprobs_mode, GET /v1/models/{id}, system_fingerprint and /tokenizer_info."""
import json

import openai
import pytest
import requests

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=base_url + "/v1", api_key="unused", timeout=120, max_retries=0)


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id


def tokenize(base_url, text):
    r = requests.post(base_url + "/tokenize", json={"prompt": text}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["tokens"]


def post(base_url, path, body):
    r = requests.post(base_url + path, json=body, timeout=120)
    assert r.status_code == 200, r.text
    return r


def sse_chunks(resp):
    out = []
    for line in resp.iter_lines():
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


# -- echo and prompt logprobs -----------------------------------------------------------------------

def test_echo_with_max_tokens_zero_scores_the_prompt(client, model, base_url):
    ids = tokenize(base_url, PROMPT)
    r = client.completions.create(model=model, prompt=PROMPT, echo=True, logprobs=2, max_tokens=0)
    c = r.choices[0]
    assert c.text == PROMPT
    assert c.finish_reason == "length"
    lp = c.logprobs
    assert len(lp.tokens) == len(ids)
    assert "".join(lp.tokens) == PROMPT
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert all(x is not None and x < 0 for x in lp.token_logprobs[1:])
    assert lp.text_offset[0] == 0
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    for top in lp.top_logprobs[1:]:
        assert 1 <= len(top) <= 2
    assert r.usage.completion_tokens == 0
    assert r.usage.prompt_tokens == len(ids)


def test_echo_then_generated_tokens_continue_the_logprobs(client, model, base_url):
    ids = tokenize(base_url, PROMPT)
    plain = client.completions.create(model=model, prompt=PROMPT, max_tokens=4, temperature=0, logprobs=1)
    r = client.completions.create(model=model, prompt=PROMPT, echo=True, max_tokens=4, temperature=0, logprobs=1)
    c = r.choices[0]
    assert c.text == PROMPT + plain.choices[0].text
    lp = c.logprobs
    assert lp.tokens[len(ids):] == plain.choices[0].logprobs.tokens
    assert lp.token_logprobs[len(ids):] == pytest.approx(plain.choices[0].logprobs.token_logprobs, abs=1e-6)
    # Without echo text_offset still counts in prompt + completion (OpenAI): it starts after the prompt.
    assert plain.choices[0].logprobs.text_offset[0] == len(PROMPT)
    assert lp.text_offset[len(ids)] == len(PROMPT)


def test_prompt_logprobs_agree_across_echo_vllm_field_chat_and_the_prefix_cache(client, model, base_url):
    text = "Paris is the capital and largest city of France, with an estimated population of two million."
    ids = tokenize(base_url, text)
    # A first plain request fills the prefix cache with this prompt's blocks; a scoring request must
    # not take them (cached positions are never computed), so it still scores every token.
    client.completions.create(model=model, prompt=text, max_tokens=1, temperature=0)
    echo = client.completions.create(model=model, prompt=text, echo=True, logprobs=0, max_tokens=0)
    assert echo.usage.prompt_tokens_details.cached_tokens == 0
    echoed = echo.choices[0].logprobs.token_logprobs
    assert len(echoed) == len(ids) and echoed[0] is None
    again = client.completions.create(model=model, prompt=text, echo=True, logprobs=0, max_tokens=0)
    assert again.choices[0].logprobs.token_logprobs == echoed
    vllm = post(base_url, "/v1/completions", {"prompt": text, "prompt_logprobs": 1, "max_tokens": 0}).json()
    pl = vllm["choices"][0]["prompt_logprobs"]
    assert pl[0] is None and len(pl) == len(ids)
    for pos in range(1, len(ids)):
        entry = pl[pos][str(ids[pos])]
        assert entry["logprob"] == pytest.approx(echoed[pos], abs=1e-6)
        assert len(pl[pos]) in (1, 2)  # the prompt token, plus the best one when it differs
    chat = post(base_url, "/v1/chat/completions", {"messages": [{"role": "user", "content": text}],
                                                    "prompt_logprobs": 0, "max_tokens": 1}).json()
    assert chat["prompt_logprobs"][0] is None and len(chat["prompt_logprobs"]) == chat["usage"]["prompt_tokens"]


def test_streamed_echo_carries_the_prompt_in_the_first_chunk(base_url):
    ids = tokenize(base_url, PROMPT)
    with requests.post(base_url + "/v1/completions", stream=True, timeout=120,
                       json={"prompt": PROMPT, "echo": True, "logprobs": 1, "max_tokens": 3, "temperature": 0,
                             "stream": True}) as r:
        chunks = sse_chunks(r)
    text = "".join(c["choices"][0]["text"] for c in chunks)
    tokens, offsets = [], []
    for c in chunks:
        if c["choices"][0]["logprobs"]:
            tokens += c["choices"][0]["logprobs"]["tokens"]
            offsets += c["choices"][0]["logprobs"]["text_offset"]
    assert chunks[0]["choices"][0]["text"].startswith(PROMPT)
    assert text.startswith(PROMPT)
    assert len(tokens) == len(ids) + 3
    assert "".join(tokens) == text
    assert offsets == [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]


# -- batched prompts ---------------------------------------------------------------------------------

def test_a_list_of_prompts_gives_prompt_major_choices(client, model, base_url):
    prompts = ["Hello, my name is", "The sky is"]
    singles = [client.completions.create(model=model, prompt=p, max_tokens=5, temperature=0).choices[0].text
               for p in prompts]
    r = client.completions.create(model=model, prompt=prompts, n=2, max_tokens=5, temperature=0)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert [c.text for c in r.choices] == [singles[0], singles[0], singles[1], singles[1]]
    assert r.usage.prompt_tokens == sum(len(tokenize(base_url, p)) for p in prompts)
    assert r.usage.completion_tokens == 4 * 5
    ids = [tokenize(base_url, p) for p in prompts]
    t = client.completions.create(model=model, prompt=ids, n=2, max_tokens=5, temperature=0)
    assert [c.text for c in t.choices] == [c.text for c in r.choices]
    # Streamed, the chunks carry the same prompt-major indexes.
    stream = client.completions.create(model=model, prompt=prompts, n=2, max_tokens=5, temperature=0, stream=True)
    texts = {}
    for chunk in stream:
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + c.text
    assert [texts[i] for i in range(4)] == [c.text for c in r.choices]


def test_batched_echo_scores_each_prompt(client, model, base_url):
    prompts = ["One two three", "Four five"]
    r = client.completions.create(model=model, prompt=prompts, echo=True, logprobs=0, max_tokens=0)
    assert [c.text for c in r.choices] == prompts
    for p, c in zip(prompts, r.choices):
        assert len(c.logprobs.tokens) == len(tokenize(base_url, p))


# -- logprobs == text ---------------------------------------------------------------------------------

def greedy(client, model, prompt, n, **kw):
    return client.completions.create(model=model, prompt=prompt, max_tokens=n, temperature=0, logprobs=0,
                                     extra_body={"ignore_eos": True}, **kw)


def pick_stop(tokens):
    """A token (index >= 2) whose text appears first at that token's start: a stop string that ends
    exactly at a token boundary."""
    text = "".join(tokens)
    for k in range(2, len(tokens)):
        t = tokens[k]
        start = sum(len(x) for x in tokens[:k])
        if len(t.strip()) >= 2 and text.find(t) == start:
            return t, k
    return None, None


def test_logprobs_join_to_the_text_with_a_stop_string(client, model, base_url):
    prompt = "Once upon a time, in a small village by the sea,"
    full = greedy(client, model, prompt, 24)
    tokens = full.choices[0].logprobs.tokens
    assert "".join(tokens) == full.choices[0].text
    stop, k = pick_stop(tokens)
    assert stop is not None, tokens
    cut = greedy(client, model, prompt, 24, stop=[stop])
    c = cut.choices[0]
    assert c.finish_reason == "stop"
    assert c.text == "".join(tokens[:k])
    assert "".join(c.logprobs.tokens) == c.text  # the stop string's token and later ones are gone
    # Streamed: the chunks' logprobs join to the chunks' text as well.
    text, toks = "", []
    for chunk in greedy(client, model, prompt, 24, stop=[stop], stream=True):
        ch = chunk.choices[0]
        text += ch.text
        if ch.logprobs:
            toks += ch.logprobs.tokens
    assert text == c.text and "".join(toks) == text
    # A stop string that ends inside a token: that token's text is partly returned, so it stays.
    mid = stop[:-1] if len(stop.strip()) >= 2 else stop
    part = greedy(client, model, prompt, 24, stop=[mid]).choices[0]
    assert "".join(part.logprobs.tokens).startswith(part.text)
    assert len("".join(part.logprobs.tokens)) - len(part.text) < len(stop)


def test_chat_logprobs_exclude_the_end_token(client, model):
    msgs = [{"role": "user", "content": "Answer with one word: what colour is the sky?"}]
    for stream in (False, True):
        if stream:
            content, toks, finish = "", [], None
            for chunk in client.chat.completions.create(model=model, messages=msgs, max_tokens=40, temperature=0,
                                                        logprobs=True, stream=True):
                ch = chunk.choices[0]
                content += ch.delta.content or ""
                if ch.logprobs and ch.logprobs.content:
                    toks += [t.token for t in ch.logprobs.content]
                finish = ch.finish_reason or finish
        else:
            r = client.chat.completions.create(model=model, messages=msgs, max_tokens=40, temperature=0, logprobs=True)
            content, finish = r.choices[0].message.content, r.choices[0].finish_reason
            toks = [t.token for t in r.choices[0].logprobs.content]
            assert r.usage.completion_tokens == len(toks) + 1  # the end token counts, has no logprob
        assert finish == "stop"  # ended by the end token
        assert "".join(toks) == content


def test_top_logprobs_come_best_first(base_url):
    r = post(base_url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 4, "temperature": 0, "logprobs": 5,
                                           "echo": True})
    tops = r.json()["choices"][0]["logprobs"]["top_logprobs"]
    for top in tops[1:]:
        values = list(top.values())  # JSON object order as sent
        assert values == sorted(values, reverse=True), top
    chat = post(base_url, "/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3,
                                                    "temperature": 0, "logprobs": True, "top_logprobs": 5}).json()
    for t in chat["choices"][0]["logprobs"]["content"]:
        values = [x["logprob"] for x in t["top_logprobs"]]
        assert values == sorted(values, reverse=True)


def test_logprobs_mode_raw_ignores_logit_bias_processed_shows_it(client, model, base_url):
    ids = tokenize(base_url, " banana")
    target = ids[-1]
    body = {"prompt": PROMPT, "max_tokens": 1, "temperature": 0, "logprobs": 1, "logit_bias": {str(target): 100}}
    raw = post(base_url, "/v1/completions", body).json()["choices"][0]["logprobs"]
    processed = post(base_url, "/v1/completions", dict(body, logprobs_mode="processed")).json()["choices"][0]["logprobs"]
    assert raw["tokens"] == processed["tokens"]  # the bias decides the token either way
    assert processed["token_logprobs"][0] > -0.01  # +100 makes it near certain
    assert raw["token_logprobs"][0] < -1.0          # the model itself did not expect it
    assert list(raw["top_logprobs"][0].keys()) != raw["tokens"]  # raw's best token is another one


# -- models, fingerprint, tokenizer_info --------------------------------------------------------------

def test_models_retrieve_and_unknown_model(client, model, base_url):
    m = client.models.retrieve(model)
    assert m.id == model and m.object == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    r = requests.get(base_url + "/v1/models/no-such-model", timeout=10)
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "model_not_found" and err["param"] == "model" and "no-such-model" in err["message"]


def test_system_fingerprint_is_stable(client, model):
    a = client.completions.create(model=model, prompt="a", max_tokens=1)
    b = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "b"}], max_tokens=1)
    assert a.system_fingerprint and a.system_fingerprint.startswith("fp_")
    assert a.system_fingerprint == b.system_fingerprint


def test_tokenizer_info_names_the_special_tokens(base_url):
    info = requests.get(base_url + "/tokenizer_info", timeout=10).json()
    assert info["eos_token"] == "<|im_end|>" or info["eos_token"] == "<|endoftext|>"
    assert info["model_max_length"] == 2048


# -- WebSocket ------------------------------------------------------------------------------------------

def test_websocket_logprobs_follow_the_text_and_carry_prompt_logprobs(client, model, base_url):
    import asyncio

    from websockets.asyncio.client import connect
    from test_websocket import collect_until_done, ws_url

    prompt = "Once upon a time, in a small village by the sea,"
    full = greedy(client, model, prompt, 24)
    stop, k = pick_stop(full.choices[0].logprobs.tokens)
    assert stop is not None

    async def run():
        async with connect(ws_url(base_url)) as ws:
            await ws.send(json.dumps({"type": "generate", "id": "s", "prompt": prompt, "max_tokens": 24,
                                      "temperature": 0, "logprobs": 0, "stop": [stop], "prompt_logprobs": 0}))
            await ws.send(json.dumps({"type": "generate", "id": "b", "prompt": ["a", "b"]}))
            return await collect_until_done(ws, {"s", "b"})

    tokens, done, _ = asyncio.run(run())
    frames = tokens["s"]
    text = "".join(f["text"] for f in frames)
    toks = [t["token"] for f in frames for t in f.get("logprobs", [])]
    assert text == "".join(full.choices[0].logprobs.tokens[:k])
    assert "".join(toks) == text
    assert len(frames[0]["prompt_logprobs"]) == len(tokenize(base_url, prompt)) - 1
    assert done["b"]["type"] == "error" and done["b"]["error"]["param"] == "prompt"
