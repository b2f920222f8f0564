"""Structured outputs against the real server with the official `openai` client: response_format
(json_object, json_schema through the SDK's parse() helper with a Pydantic model), vLLM's
structured_outputs and guided_* extensions (choice, regex, json), streaming, WebSocket, and bad
schemas refused with a 400 that names where the problem is."""
import asyncio
import json
import re

import jsonschema
import openai
import pytest
import requests
import websockets
from pydantic import BaseModel


class City(BaseModel):
    name: str
    country: str
    population: int


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=base_url + "/v1", api_key="unused", timeout=120, max_retries=0)


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id


ASK_CITY = [{"role": "user", "content": "Describe Paris as JSON with its name, country and population."}]
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer", "minimum": 0},
                   "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3}},
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}


def test_parse_with_a_pydantic_model_returns_a_parsed_object(client, model):
    r = client.chat.completions.parse(model=model, messages=ASK_CITY, response_format=City, max_tokens=200,
                                      temperature=0)
    choice = r.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    city = choice.message.parsed
    assert isinstance(city, City)
    jsonschema.validate(json.loads(choice.message.content), City.model_json_schema())


def test_json_schema_holds_for_every_seed_and_choice(client, model):
    # Sampling at temperature 1 explores the grammar; every choice must still validate.
    for seed in range(3):
        r = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Make up a person."}], n=2, seed=seed,
            temperature=1.0, max_tokens=150,
            response_format={"type": "json_schema",
                             "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True}})
        for c in r.choices:
            assert c.finish_reason == "stop", c.message.content
            jsonschema.validate(json.loads(c.message.content), PERSON_SCHEMA)


def test_json_object_is_json_on_completions_too(client, model):
    # A one-shot prompt: the 135M model closes a short object (unprompted it may ramble past max_tokens).
    r = client.completions.create(model=model, prompt='{"answer": "yes"}\nAnother JSON object with one key:',
                                  max_tokens=60, temperature=0,
                                  extra_body={"response_format": {"type": "json_object"}})
    c = r.choices[0]
    assert c.finish_reason == "stop", c.text
    assert isinstance(json.loads(c.text), dict)


def test_choice_and_regex_extensions(client, model):
    words = ["Paris", "London", "Berlin"]
    for body in ({"structured_outputs": {"choice": words}}, {"guided_choice": words}):
        r = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Capital of France?"}], max_tokens=10,
            temperature=0, extra_body=body)
        assert r.choices[0].message.content in words
        assert r.choices[0].finish_reason == "stop"
    for body in ({"structured_outputs": {"regex": "[0-9]{3}-[a-z]{2}"}}, {"guided_regex": "[0-9]{3}-[a-z]{2}"}):
        r = client.completions.create(model=model, prompt="Code:", max_tokens=12, temperature=0.8, seed=3,
                                      extra_body=body)
        assert re.fullmatch("[0-9]{3}-[a-z]{2}", r.choices[0].text), r.choices[0].text
    r = client.completions.create(model=model, prompt="Person:", max_tokens=150, temperature=0,
                                  extra_body={"guided_json": PERSON_SCHEMA})
    jsonschema.validate(json.loads(r.choices[0].text), PERSON_SCHEMA)


def test_streamed_output_equals_the_non_streamed_one(client, model):
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON_SCHEMA}}
    msgs = [{"role": "user", "content": "A person named Ada."}]
    whole = client.chat.completions.create(model=model, messages=msgs, max_tokens=150, temperature=0,
                                           response_format=fmt)
    parts = []
    for chunk in client.chat.completions.create(model=model, messages=msgs, max_tokens=150, temperature=0,
                                                response_format=fmt, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    assert "".join(parts) == whole.choices[0].message.content
    jsonschema.validate(json.loads(whole.choices[0].message.content), PERSON_SCHEMA)


def test_websocket_generation_honours_response_format(base_url):
    async def run():
        async with websockets.connect(base_url.replace("http", "ws") + "/v1/ws") as ws:
            await ws.send(json.dumps({"type": "generate", "id": "g", "max_tokens": 150, "temperature": 0,
                                      "messages": [{"role": "user", "content": "A person."}],
                                      "response_format": {"type": "json_schema",
                                                          "json_schema": {"name": "p", "schema": PERSON_SCHEMA}}}))
            text = ""
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 120))
                assert frame["type"] in ("token", "done"), frame
                if frame["type"] == "token":
                    text += frame["text"]
                else:
                    return text, frame
    text, done = asyncio.run(run())
    assert done["finish_reason"] == "stop"
    jsonschema.validate(json.loads(text), PERSON_SCHEMA)


@pytest.mark.parametrize("fmt,fragment", [
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"a": {"type": "no-such-type"}}}}}, "$.properties.a.type"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": 7}}, "response_format.json_schema.schema"),
    ({"type": "yaml"}, "response_format.type"),
])
def test_bad_formats_are_400s_that_say_where(base_url, fmt, fragment):
    r = requests.post(base_url + "/v1/chat/completions", timeout=60, json={
        "messages": [{"role": "user", "content": "x"}], "max_tokens": 5, "response_format": fmt})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert fragment in err["message"] or fragment == err["param"], err


def test_logprobs_under_a_constraint_list_only_allowed_tokens(client, model):
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Yes or no?"}],
                                       max_tokens=5, temperature=0, logprobs=True, top_logprobs=5,
                                       extra_body={"guided_choice": ["yes", "no"]})
    c = r.choices[0]
    assert c.message.content in ("yes", "no")
    for entry in c.logprobs.content:
        assert isinstance(entry.logprob, float) and entry.logprob <= 0.0
        for alt in entry.top_logprobs:  # masked tokens (-inf) are not listed
            assert isinstance(alt.logprob, float) and alt.logprob > float("-inf")
