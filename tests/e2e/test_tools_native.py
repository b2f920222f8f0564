"""Tool calling through a model's own chat template: the default model (SmolLM2, ChatML tokens)
served from a copy of its GGUF whose tokenizer.chat_template is Qwen2.5's (the same <|im_start|>
tokens, with a native tools section and <tool_call> output). tool_choice required and named are
forced by the grammar into <tool_call> blocks that the server parses back into OpenAI tool_calls
whose arguments validate; auto answers are parsed or returned as text, never a 500."""
import json
import os
import struct

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL = os.path.expanduser("~/.cache/troupe/models/SmolLM2-135M-Instruct.Q4_1.gguf")
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def with_chat_template(src, dst, template):
    """Copies the GGUF at `src` to `dst` with tokenizer.chat_template set to `template` (the key
    must exist): the metadata is rewritten, the tensor data re-aligned and copied unchanged."""
    with open(src, "rb") as f:
        data = f.read()
    pos = 0

    def take(n):
        nonlocal pos
        pos += n
        return data[pos - n:pos]

    def string():
        (n,) = struct.unpack("<Q", take(8))
        return take(n)

    def skip_value(t):
        if t == 8:
            string()
        elif t == 9:
            (et, count) = struct.unpack("<IQ", take(12))
            for _ in range(count):
                skip_value(et)
        else:
            take(SCALAR[t])

    assert take(4) == b"GGUF"
    _, n_tensors, n_kv = struct.unpack("<IQQ", take(20))
    alignment, span = 32, None
    for _ in range(n_kv):
        key = string()
        (t,) = struct.unpack("<I", take(4))
        start = pos
        if key == b"general.alignment":
            (alignment,) = struct.unpack("<I", data[pos:pos + 4])
        skip_value(t)
        if key == b"tokenizer.chat_template":
            span = (start, pos)
    for _ in range(n_tensors):
        string()
        (n_dims,) = struct.unpack("<I", take(4))
        take(8 * n_dims + 4 + 8)
    assert span, "the model has no chat template to replace"
    old_data = (pos + alignment - 1) // alignment * alignment
    body = template.encode()
    head = data[:span[0]] + struct.pack("<Q", len(body)) + body + data[span[1]:pos]
    pad = (-len(head)) % alignment
    with open(dst, "wb") as f:
        f.write(head + b"\0" * pad)
        f.write(data[old_data:])


@pytest.fixture(scope="module")
def client(server_factory, tmp_path_factory):
    with open(os.path.join(ROOT, "tests", "data", "chat_templates", "qwen2_5.jinja")) as f:
        template = f.read()
    path = str(tmp_path_factory.mktemp("native") / "smollm2-qwen-template.gguf")
    with_chat_template(DEFAULT_MODEL, path, template)
    srv = server_factory("--model", path)
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", timeout=120, max_retries=0)


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object",
                   "properties": {"city": {"type": "string", "maxLength": 30},
                                  "unit": {"enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Current time in a time zone",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 30}},
                   "required": ["zone"], "additionalProperties": False}}}
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, TIME)}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_required_and_named_are_native_calls_that_validate(client):
    for choice, only in (("required", None), ({"type": "function", "function": {"name": "get_time"}}, "get_time")):
        r = client.chat.completions.create(model="m", messages=ASK, tools=[WEATHER, TIME], tool_choice=choice,
                                           parallel_tool_calls=False, max_tokens=120, temperature=0)
        c = r.choices[0]
        assert c.finish_reason == "tool_calls", c
        assert c.message.tool_calls
        for call in c.message.tool_calls:
            assert call.function.name == (only or call.function.name)
            jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def test_the_model_writes_its_native_format(client):
    # Cut off by max_tokens, the answer is no whole call and comes back as its raw text: the
    # template's <tool_call> format, not the generic {"tool_calls": ...} envelope.
    r = client.chat.completions.create(model="m", messages=ASK, tools=[WEATHER], tool_choice="required",
                                       max_tokens=6, temperature=0)
    c = r.choices[0]
    assert c.finish_reason == "length"
    assert c.message.content.startswith("<tool_call>"), c.message.content


def test_streamed_native_calls_equal_the_non_streamed(client):
    kw = dict(model="m", messages=ASK, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False,
              max_tokens=120, temperature=0)
    plain = client.chat.completions.create(**kw).choices[0].message.tool_calls
    with client.chat.completions.stream(**kw) as s:
        for _ in s:
            pass
        streamed = s.get_final_completion().choices[0].message.tool_calls
    assert [(c.function.name, c.function.arguments) for c in streamed] == \
        [(c.function.name, c.function.arguments) for c in plain]
    chunks = list(client.chat.completions.create(**kw, stream=True))
    parts = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert parts[0].function.name == "get_weather" and parts[0].function.arguments == ""
    assert len([p for p in parts[1:] if p.function.arguments]) > 1, "the arguments came in one piece"


def test_auto_and_a_tool_history_are_served(client):
    history = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"}]
    for messages in (ASK, history):
        r = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER], max_tokens=40,
                                           temperature=0)
        c = r.choices[0]
        assert c.finish_reason in ("stop", "length", "tool_calls")
        if c.finish_reason == "tool_calls":
            for call in c.message.tool_calls:
                assert call.function.name == "get_weather"
                json.loads(call.function.arguments)
        else:
            assert isinstance(c.message.content, str)


class Forecast(BaseModel):
    city: str = Field(max_length=30)
    sunny: bool


def test_tools_with_a_response_format_answer_a_native_call_or_the_format(client):
    # The grammar is the union: a <tool_call> block, or the format's JSON as the content.
    seen = set()
    for seed in range(12):
        msgs = ASK if seed % 2 else [{"role": "user", "content": "Is it sunny in Rome? Answer in JSON."}]
        r = client.chat.completions.parse(model="m", messages=msgs, response_format=Forecast, parallel_tool_calls=False,
                                          tools=[{"type": "function", "function": dict(WEATHER["function"], strict=True)}],
                                          max_tokens=120, temperature=1.0, seed=seed)
        c = r.choices[0]
        if c.message.tool_calls:
            assert c.finish_reason == "tool_calls"
            jsonschema.validate(json.loads(c.message.tool_calls[0].function.arguments), SCHEMAS["get_weather"])
            seen.add("calls")
        else:
            assert c.finish_reason == "stop" and isinstance(c.message.parsed, Forecast), c.message.content
            seen.add("content")
        if seen == {"calls", "content"}:
            break
    assert seen == {"calls", "content"}, seen


def test_a_named_tool_is_exactly_one_native_call(client):
    # parallel_tool_calls stays true: naming a function still means one call, then the answer ends.
    for seed in range(3):
        r = client.chat.completions.create(model="m", messages=ASK, tools=[WEATHER, TIME], max_tokens=200,
                                           tool_choice={"type": "function", "function": {"name": "get_time"}},
                                           temperature=1.0, seed=seed)
        c = r.choices[0]
        assert c.finish_reason == "tool_calls", c
        assert [t.function.name for t in c.message.tool_calls] == ["get_time"]
        assert r.usage.completion_tokens < 200


# A ChatML template that asks for Llama 3.2's pythonic calls, in the words its templates use.
PYTHONIC_TEMPLATE = """{%- if tools %}<|im_start|>system
To call functions, respond with a python list of the calls in the format [func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)].
{% for t in tools %}{{ t | tojson }}
{% endfor %}<|im_end|>
{% endif %}{%- for message in messages %}<|im_start|>{{ message['role'] }}
{{ message['content'] }}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


@pytest.fixture(scope="module")
def pythonic_client(server_factory, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("pythonic") / "smollm2-pythonic-template.gguf")
    with_chat_template(DEFAULT_MODEL, path, PYTHONIC_TEMPLATE)
    srv = server_factory("--model", path)
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", timeout=120, max_retries=0)


def test_pythonic_calls_are_forced_parsed_and_streamed(pythonic_client):
    for choice, only in (("required", None), ({"type": "function", "function": {"name": "get_time"}}, "get_time")):
        kw = dict(model="m", messages=ASK, tools=[WEATHER, TIME], tool_choice=choice, max_tokens=150, temperature=0)
        c = pythonic_client.chat.completions.create(**kw).choices[0]
        assert c.finish_reason == "tool_calls", c
        for call in c.message.tool_calls:
            assert call.function.name == (only or call.function.name)
            jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
        if only:
            assert len(c.message.tool_calls) == 1
        with pythonic_client.chat.completions.stream(**kw) as s:
            # The calls stream as they are written: a call's arguments in several chunks (a keyword
            # each, as its value is whole), before the chunk that ends the choice.
            fragments = sum(1 for e in s if e.type == "chunk" and e.chunk.choices and
                            not e.chunk.choices[0].finish_reason and any(
                                t.function and t.function.arguments for t in e.chunk.choices[0].delta.tool_calls or []))
            streamed = s.get_final_completion().choices[0].message.tool_calls
        assert fragments > 1
        assert [(t.function.name, t.function.arguments) for t in streamed] == \
            [(t.function.name, t.function.arguments) for t in c.message.tool_calls]
    # The model's own words, cut off: the pythonic list, not JSON.
    r = pythonic_client.chat.completions.create(model="m", messages=ASK, tools=[WEATHER], tool_choice="required",
                                                max_tokens=4, temperature=0)
    assert r.choices[0].finish_reason == "length" and r.choices[0].message.content.startswith("[get_weather")
