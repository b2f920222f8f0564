"""Tool calling on /v1/chat/completions with the official `openai` client, on the default model
(SmolLM2, whose template has no tools: the generic format, constrained by the grammar): required
and named choices return calls whose arguments validate against the tool's schema, streamed calls
assembled by the SDK equal the non-streamed ones, tool_choice none/auto behave as OpenAI documents,
a history with tool calls and results is served, and bad tool requests are 400s."""
import json

import jsonschema
import openai
import pytest
import requests
from pydantic import BaseModel, Field


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=base_url + "/v1", api_key="unused", timeout=120, max_retries=0)


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id


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
TOOLS = [WEATHER, TIME]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def check_calls(message, only=None):
    assert message.tool_calls, message
    for call in message.tool_calls:
        assert call.type == "function"
        assert call.id.startswith("call_")
        assert call.function.name in SCHEMAS
        if only:
            assert call.function.name == only
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def test_required_returns_calls_whose_arguments_validate(client, model):
    r = client.chat.completions.create(model=model, messages=ASK, tools=TOOLS, tool_choice="required",
                                       max_tokens=120, temperature=0)
    c = r.choices[0]
    assert c.finish_reason == "tool_calls"
    assert c.message.content is None
    check_calls(c.message)


def test_a_named_function_is_the_one_called(client, model):
    for seed in range(2):
        r = client.chat.completions.create(
            model=model, messages=ASK, tools=TOOLS, max_tokens=120, temperature=1.0, seed=seed,
            tool_choice={"type": "function", "function": {"name": "get_time"}}, parallel_tool_calls=False)
        c = r.choices[0]
        assert c.finish_reason == "tool_calls"
        check_calls(c.message, only="get_time")
        assert len(c.message.tool_calls) == 1  # parallel_tool_calls false


def test_streamed_calls_equal_the_non_streamed_ones(client, model):
    kw = dict(model=model, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=120, temperature=0)
    whole = client.chat.completions.create(**kw).choices[0].message
    with client.chat.completions.stream(**kw) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    streamed = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    # Byte for byte: the arguments are sent as the model writes them, and the whole answer has them so.
    assert [(t.function.name, t.function.arguments) for t in streamed.tool_calls] == \
           [(t.function.name, t.function.arguments) for t in whole.tool_calls]


def test_streamed_arguments_arrive_in_fragments_as_they_are_written(client, model):
    chunks = list(client.chat.completions.create(model=model, messages=ASK, tools=TOOLS, tool_choice="required",
                                                 max_tokens=120, temperature=0, stream=True))
    parts = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert parts[0].id.startswith("call_") and parts[0].type == "function"
    assert parts[0].function.name in SCHEMAS and parts[0].function.arguments == ""
    fragments = [p.function.arguments for p in parts[1:] if p.index == 0 and not p.id]
    assert len(fragments) > 1, "the arguments came in one piece"
    jsonschema.validate(json.loads("".join(fragments)), SCHEMAS[parts[0].function.name])
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_auto_streams_a_text_answer_as_content_while_it_is_written(client, model):
    kw = dict(model=model, messages=[{"role": "user", "content": "Say hello."}], tools=TOOLS, max_tokens=60,
              temperature=0)
    whole = client.chat.completions.create(**kw).choices[0]
    chunks = list(client.chat.completions.create(**kw, stream=True))
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    if whole.message.tool_calls:  # the model chose a call: the stream says the same
        assert calls and chunks[-1].choices[0].finish_reason == "tool_calls"
    else:
        assert not calls
        assert "".join(content) == whole.message.content
        assert len(content) > 1, "the content was held back to the end"
        assert chunks[-1].choices[0].finish_reason == whole.finish_reason


def test_tool_choice_none_answers_in_text(client, model):
    r = client.chat.completions.create(model=model, messages=ASK, tools=TOOLS, tool_choice="none",
                                       max_tokens=30, temperature=0)
    c = r.choices[0]
    assert not c.message.tool_calls
    assert isinstance(c.message.content, str) and c.message.content
    assert c.finish_reason in ("stop", "length")


def test_auto_answers_with_calls_or_text_never_both_broken(client, model):
    for msgs in (ASK, [{"role": "user", "content": "Say hello."}]):
        r = client.chat.completions.create(model=model, messages=msgs, tools=TOOLS, max_tokens=120,
                                           temperature=0)
        c = r.choices[0]
        if c.message.tool_calls:
            assert c.finish_reason == "tool_calls"
            check_calls(c.message)
        else:
            assert isinstance(c.message.content, str)
            assert c.finish_reason in ("stop", "length")


def test_a_history_with_tool_calls_and_results_is_served(client, model):
    history = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "18 degrees, sunny"},
    ]
    r = client.chat.completions.create(model=model, messages=history, tools=TOOLS, tool_choice="none",
                                       max_tokens=30, temperature=0)
    assert isinstance(r.choices[0].message.content, str)


def test_unknown_tool_names_and_bad_tools_are_400s(base_url, client, model):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model, messages=ASK, tools=TOOLS, max_tokens=5,
                                       tool_choice={"type": "function", "function": {"name": "launch"}})
    assert e.value.status_code == 400
    assert "launch" in str(e.value)
    r = requests.post(base_url + "/v1/chat/completions", timeout=60, json={
        "messages": ASK, "max_tokens": 5, "tools": [{"type": "function", "function": {"name": "bad name"}}]})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "tools"


def test_websocket_token_frames_stream_the_calls_the_done_frame_carries(base_url):
    import asyncio

    import websockets

    async def run():
        frames = []
        async with websockets.connect(base_url.replace("http", "ws") + "/v1/ws") as ws:
            await ws.send(json.dumps({"type": "generate", "id": "t", "messages": ASK, "tools": TOOLS,
                                      "tool_choice": "required", "max_tokens": 120, "temperature": 0}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 120))
                assert frame["type"] in ("token", "done"), frame
                frames.append(frame)
                if frame["type"] == "done":
                    return frames
    frames = asyncio.run(run())
    done = frames[-1]
    choice = done["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    calls = choice["message"]["tool_calls"]
    assert calls
    for call in calls:
        jsonschema.validate(json.loads(call["function"]["arguments"]), SCHEMAS[call["function"]["name"]])
    # The token frames' deltas stream the same calls as chat chunks do: each call opens with its id
    # and name, then its arguments in fragments, several of them before the last frame.
    tokens = frames[:-1]
    assert tokens[-1]["finish_reason"] == "tool_calls"
    streamed, fragments = {}, 0
    for i, frame in enumerate(tokens):
        for part in frame.get("delta", {}).get("tool_calls", []):
            if "id" in part:
                streamed[part["index"]] = {"id": part["id"], "type": part["type"],
                                           "function": {"name": part["function"]["name"], "arguments": ""}}
            streamed[part["index"]]["function"]["arguments"] += part["function"]["arguments"]
            if part["function"]["arguments"] and i + 1 < len(tokens):
                fragments += 1
    assert fragments > 1, "the arguments stream as they are generated"
    assert [streamed[i] for i in sorted(streamed)] == calls  # byte-equal, ids included


class Forecast(BaseModel):
    city: str = Field(max_length=30)
    sunny: bool


STRICT_TOOLS = [{"type": "function", "function": dict(t["function"], strict=True)} for t in TOOLS]


def check_call_or_forecast(message, parsed):
    """Either branch of tools + response_format, each valid: calls whose arguments validate, or
    content that is the format (the SDK parsed it)."""
    if message.tool_calls:
        check_calls(message)
        return "calls"
    assert parsed is not None and isinstance(parsed, Forecast), message
    jsonschema.validate(json.loads(message.content), Forecast.model_json_schema())
    return "content"


def test_tools_with_a_response_format_answer_a_call_or_the_format(client, model):
    # As OpenAI: the model either calls a tool or answers with content in the format. Sampled
    # answers cover both branches; each must be valid.
    seen = set()
    for seed in range(12):
        msgs = ASK if seed % 2 else [{"role": "user", "content": "Is it sunny in Rome? Answer in JSON."}]
        r = client.chat.completions.parse(model=model, messages=msgs, tools=STRICT_TOOLS, response_format=Forecast, parallel_tool_calls=False,
                                          max_tokens=120, temperature=1.0, seed=seed)
        c = r.choices[0]
        assert c.finish_reason == ("tool_calls" if c.message.tool_calls else "stop")
        seen.add(check_call_or_forecast(c.message, c.message.parsed))
        if seen == {"calls", "content"}:
            break
    assert seen == {"calls", "content"}, seen


def test_tools_with_a_text_format_on_responses(client, model):
    tools = [{"type": "function", "name": t["function"]["name"], "description": t["function"]["description"],
              "parameters": t["function"]["parameters"], "strict": True} for t in TOOLS]
    seen = set()
    for seed in range(12):
        prompt = "What is the weather in Paris?" if seed % 2 else "Is it sunny in Rome? Answer in JSON."
        r = client.responses.parse(model=model, input=prompt, tools=tools, text_format=Forecast, parallel_tool_calls=False,
                                   max_output_tokens=120, temperature=1.0, extra_body={"seed": seed})
        calls = [o for o in r.output if o.type == "function_call"]
        if calls:
            for call in calls:
                jsonschema.validate(json.loads(call.arguments), SCHEMAS[call.name])
            seen.add("calls")
        else:
            assert isinstance(r.output_parsed, Forecast), r.output_text
            seen.add("content")
        if seen == {"calls", "content"}:
            break
    assert seen == {"calls", "content"}, seen
