"""The Responses API with the official `openai` package against the real server: create (plain and
streamed with the SDK's stream helper), retrieve, delete, input items, previous_response_id chains
whose cached_tokens cover the previous turn's prompt and whose answers equal the stateless
conversation, the WebSocket mode (client.responses.connect()) for a 5-turn conversation, and bad
input: unknown or another key's ids (404), oversized input (400), malformed socket events. Function
tools: a round trip (function_call item, then its function_call_output chained by
previous_response_id), streamed (the arguments in several deltas, byte-equal to the non-streamed
call) and over the socket, and text.format json_schema output."""
import json
import time

import jsonschema
import openai
import pydantic
import pytest
import requests
from websockets.sync.client import connect as ws_connect

from conftest import metrics

BLOCK = 16  # --cache-block-seq-len: cached_tokens are whole blocks
QUESTIONS = ["What is the capital of France?", "And of Germany?", "Which of the two is larger?",
             "Name a river in the first one.", "Say goodbye."]


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory("--cache-block-seq-len", str(BLOCK), "--response-store-size", "64")


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="key-one", timeout=120, max_retries=0)


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id


def ask(client, model, **kw):
    return client.responses.create(model=model, max_output_tokens=24, temperature=0, **kw)


def test_create_answers_like_chat_and_reports_usage(client, model):
    r = ask(client, model, input=QUESTIONS[0], instructions="Answer briefly.")
    assert r.id.startswith("resp_")
    assert r.object == "response"
    assert r.status in ("completed", "incomplete")
    assert r.output[0].type == "message" and r.output[0].role == "assistant"
    assert r.output_text
    chat = client.chat.completions.create(model=model, max_tokens=24, temperature=0,
                                          messages=[{"role": "system", "content": "Answer briefly."},
                                                    {"role": "user", "content": QUESTIONS[0]}])
    assert r.output_text == chat.choices[0].message.content
    assert r.usage.input_tokens == chat.usage.prompt_tokens
    assert r.usage.output_tokens == chat.usage.completion_tokens
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.usage.input_tokens_details.cached_tokens >= 0
    assert r.instructions == "Answer briefly."


def test_max_output_tokens_makes_an_incomplete_response(client, model):
    r = client.responses.create(model=model, input="Count from one to one hundred.", max_output_tokens=3,
                                temperature=0)
    assert r.status == "incomplete"
    assert r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens == 3


def test_stream_helper_sees_openai_events_in_order(client, model):
    # Room to finish: the SDK's get_final_response() needs a response.completed event.
    with client.responses.stream(model=model, input=QUESTIONS[0], max_output_tokens=96, temperature=0) as s:
        events = list(s)
        final = s.get_final_response()
    assert final.status == "completed"
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed" if final.status == "completed" else "response.incomplete"]
    assert set(types[4:-4]) == {"response.output_text.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == final.output_text
    assert text == client.responses.create(model=model, input=QUESTIONS[0], max_output_tokens=96,
                                           temperature=0).output_text


def test_retrieve_input_items_and_delete(client, model):
    r = ask(client, model, input=[{"role": "user", "content": QUESTIONS[0]}], metadata={"topic": "geo"})
    got = client.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == r.output_text and got.metadata == {"topic": "geo"}
    items = client.responses.input_items.list(r.id)
    assert [i.type for i in items.data] == ["message"]
    assert items.data[0].content[0].text == QUESTIONS[0]
    deleted = client.responses.delete(r.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_store_false_is_not_retrievable(client, model):
    r = ask(client, model, input=QUESTIONS[0], store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def stateless_answers(client, model):
    """The 5-turn conversation sent with its whole history each turn."""
    history, answers = [], []
    for q in QUESTIONS:
        history.append({"role": "user", "content": q})
        r = ask(client, model, input=list(history))
        answers.append(r.output_text)
        history.append({"role": "assistant", "content": r.output_text})
    return answers


def test_previous_response_id_chain_reuses_the_cache_and_matches_the_stateless_answers(client, model):
    expected = stateless_answers(client, model)
    prev = None
    for i, q in enumerate(QUESTIONS):
        r = ask(client, model, input=q, previous_response_id=prev.id if prev else None)
        assert r.output_text == expected[i], f"turn {i + 1}"
        assert r.previous_response_id == (prev.id if prev else None)
        if prev is not None:
            # The previous turn's whole prompt is served from the KV cache (whole blocks of it).
            covered = prev.usage.input_tokens // BLOCK * BLOCK
            assert r.usage.input_tokens_details.cached_tokens >= covered, f"turn {i + 1}"
            assert r.usage.input_tokens > prev.usage.input_tokens + prev.usage.output_tokens
        prev = r


def test_websocket_conversation_of_five_turns(client, model):
    expected = stateless_answers(client, model)
    prev_id, prev_usage = None, None
    with client.responses.connect() as conn:
        for i, q in enumerate(QUESTIONS):
            kw = {"previous_response_id": prev_id} if prev_id else {}
            conn.response.create(model=model, input=q, max_output_tokens=24, temperature=0, store=False, **kw)
            types, final = [], None
            for event in conn:
                types.append(event.type)
                if event.type in ("response.completed", "response.incomplete", "response.failed", "error"):
                    final = event
                    break
            assert final.type in ("response.completed", "response.incomplete"), types
            assert types[0] == "response.created"
            assert final.response.output[0].content[0].text == expected[i], f"turn {i + 1}"
            if prev_usage is not None:
                covered = prev_usage.input_tokens // BLOCK * BLOCK
                assert final.response.usage.input_tokens_details.cached_tokens >= covered, f"turn {i + 1}"
            prev_id, prev_usage = final.response.id, final.response.usage


def ws_url(server):
    return server.url.replace("http://", "ws://") + "/v1/responses"


def recv_until_done(ws, timeout=120):
    events = []
    while True:
        e = json.loads(ws.recv(timeout=timeout))
        events.append(e)
        if e["type"] in ("response.completed", "response.incomplete", "response.failed", "error"):
            return events


def test_malformed_socket_events_get_an_error_and_the_socket_stays_usable(server, model):
    with ws_connect(ws_url(server), additional_headers={"Authorization": "Bearer key-one"}) as ws:
        for bad in ["not json", "[1]", json.dumps({"type": "response.nope"}), json.dumps({"input": "x"}),
                    json.dumps({"type": "response.create", "input": 5}),
                    json.dumps({"type": "response.create", "input": "x", "previous_response_id": "resp_missing"})]:
            ws.send(bad)
            e = json.loads(ws.recv(timeout=30))
            assert e["type"] == "error", bad
            assert e["message"]
        ws.send(json.dumps({"type": "response.create", "model": model, "input": QUESTIONS[0],
                            "max_output_tokens": 8, "temperature": 0}))
        events = recv_until_done(ws)
        assert events[-1]["type"] in ("response.completed", "response.incomplete")
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        # A second response on the same connection.
        ws.send(json.dumps({"type": "response.create", "model": model, "input": QUESTIONS[1],
                            "max_output_tokens": 8, "temperature": 0}))
        assert recv_until_done(ws)[-1]["type"] in ("response.completed", "response.incomplete")


def wait_for(url, cond, timeout=30.0):
    """Poll /metrics until cond(sample) holds; return the last sample (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        m = metrics(url)
        if cond(m) or time.monotonic() > deadline:
            return m
        time.sleep(0.2)


def pins(m):
    return m.get("troupe:session_cache_pins", -1)


def test_a_socket_pins_its_conversation_and_closing_it_frees_every_block(server_factory):
    srv = server_factory("--cache-block-seq-len", str(BLOCK))
    m = openai.OpenAI(base_url=srv.url + "/v1", api_key="k", timeout=120, max_retries=0).models.list().data[0].id
    with ws_connect(ws_url(srv), additional_headers={"Authorization": "Bearer k"}) as ws:
        ws.send(json.dumps({"type": "response.create", "model": m, "input": QUESTIONS[0], "store": False,
                            "max_output_tokens": 8, "temperature": 0}))
        assert recv_until_done(ws)[-1]["type"] in ("response.completed", "response.incomplete")
        # Not stored, but its socket is open: its prompt + output stay pinned for the next turn.
        held = wait_for(srv.url, lambda s: pins(s) == 1)
        assert pins(held) == 1 and held["troupe:session_cache_pinned_blocks"] >= 1
        assert held["troupe:kv_blocks_used"] == held["troupe:session_cache_pinned_blocks"]
        # Closing the socket mid-response cancels it and releases the pin: every block comes back.
        ws.send(json.dumps({"type": "response.create", "model": m, "input": "Write a long story about a cat.",
                            "store": False, "max_output_tokens": 1500, "temperature": 0}))
        assert json.loads(ws.recv(timeout=60))["type"] == "response.created"
        ws.close()
    after = wait_for(srv.url, lambda s: pins(s) == 0 and s["troupe:kv_blocks_used"] == 0
                     and s["troupe:num_requests_running"] == 0)
    assert pins(after) == 0
    assert after["troupe:kv_blocks_used"] == 0
    assert after["troupe:num_requests_running"] == 0


def test_pins_go_with_store_eviction_delete_and_age(server_factory):
    srv = server_factory("--cache-block-seq-len", str(BLOCK), "--response-store-size", "1")
    c = openai.OpenAI(base_url=srv.url + "/v1", api_key="k", timeout=120, max_retries=0)
    m = c.models.list().data[0].id
    c.responses.create(model=m, input=QUESTIONS[0], max_output_tokens=8, temperature=0)
    b = c.responses.create(model=m, input=QUESTIONS[3], max_output_tokens=8, temperature=0)  # evicts the first
    s = wait_for(srv.url, lambda s: pins(s) == 1 and s["troupe:response_store_evictions_total"] >= 1)
    assert pins(s) == 1 and s["troupe:response_store_entries"] == 1
    assert s["troupe:kv_blocks_used"] == s["troupe:session_cache_pinned_blocks"]
    c.responses.delete(b.id)
    s = wait_for(srv.url, lambda s: pins(s) == 0 and s["troupe:kv_blocks_used"] == 0)
    assert pins(s) == 0 and s["troupe:kv_blocks_used"] == 0
    # Age: with --response-store-ttl 1 a pin is released about a second after it was made.
    aged = server_factory("--cache-block-seq-len", str(BLOCK), "--response-store-ttl", "1")
    ca = openai.OpenAI(base_url=aged.url + "/v1", api_key="k", timeout=120, max_retries=0)
    ca.responses.create(model=m, input=QUESTIONS[0], max_output_tokens=8, temperature=0)
    s = wait_for(aged.url, lambda s: pins(s) == 0 and s["troupe:kv_blocks_used"] == 0)
    assert pins(s) == 0 and s["troupe:kv_blocks_used"] == 0


def released(url, reason):
    text = requests.get(url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(f'troupe:session_cache_pins_released_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return None


def test_the_session_budget_is_never_exceeded_and_pins_yield_to_requests(server_factory):
    # 64 blocks of 16 tokens; a quarter of them (16 blocks) for pins.
    srv = server_factory("--cache-block-seq-len", str(BLOCK), "--cache-max-entry-count", "64",
                         "--session-len", "1024", "--session-cache-fraction", "0.25")
    c = openai.OpenAI(base_url=srv.url + "/v1", api_key="k", timeout=120, max_retries=0)
    m = c.models.list().data[0].id
    assert "session cache: up to 16 blocks" in srv.log()  # the plan at start-up shows the budget
    budget = metrics(srv.url)["troupe:session_cache_budget_blocks"]
    assert budget == 16
    for i in range(6):  # each conversation pins ~5-7 blocks: the budget fills and overflows
        c.responses.create(model=m, input=f"Topic {i}: " + "tell me about the sea. " * 12, max_output_tokens=4,
                           temperature=0)
        s = metrics(srv.url)
        assert 0 < s["troupe:session_cache_pinned_blocks"] <= budget
    assert released(srv.url, "budget") >= 1
    # A request that needs nearly every block is served at once: the pins give way.
    r = c.responses.create(model=m, input="word " * 900, max_output_tokens=4, temperature=0, store=False)
    assert r.status in ("completed", "incomplete")
    assert released(srv.url, "pressure") >= 1
    assert metrics(srv.url)["troupe:session_cache_pinned_blocks"] <= budget


def test_unknown_or_another_keys_ids_are_404(client, server, model):
    with pytest.raises(openai.NotFoundError) as e:
        ask(client, model, input="x", previous_response_id="resp_does_not_exist")
    assert e.value.body["code"] == "previous_response_not_found"
    assert e.value.body["param"] == "previous_response_id"
    mine = ask(client, model, input=QUESTIONS[0])
    other = openai.OpenAI(base_url=server.url + "/v1", api_key="key-two", timeout=120, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        ask(other, model, input="x", previous_response_id=mine.id)
    assert client.responses.retrieve(mine.id).id == mine.id  # still there for its owner


def test_oversized_input_is_a_400_before_anything_is_queued(client, server, model):
    before = metrics(server.url)
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, model, input="word " * 3000)  # --session-len 2048
    assert e.value.body["code"] == "context_too_long"
    after = metrics(server.url)
    assert after.get("troupe:prompt_tokens_total") == before.get("troupe:prompt_tokens_total")
    r = requests.post(server.url + "/v1/responses", json={"input": "x", "max_output_tokens": "many"},
                      headers={"Authorization": "Bearer key-one"}, timeout=30)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "max_output_tokens"


def test_metrics_show_the_store(client, server, model):
    ask(client, model, input=QUESTIONS[0])
    m = metrics(server.url)
    assert m["troupe:response_store_entries"] >= 1
    assert m["troupe:response_store_bytes"] > 0


def test_the_store_evicts_beyond_its_size(server_factory):
    srv = server_factory("--response-store-size", "2")
    c = openai.OpenAI(base_url=srv.url + "/v1", api_key="k", timeout=120, max_retries=0)
    m = c.models.list().data[0].id
    ids = [c.responses.create(model=m, input=q, max_output_tokens=4, temperature=0).id for q in QUESTIONS[:3]]
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(ids[0])
    assert c.responses.retrieve(ids[2]).id == ids[2]
    assert metrics(srv.url)["troupe:response_store_evictions_total"] >= 1


WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather of a city",
           "parameters": {"type": "object",
                          "properties": {"city": {"type": "string", "maxLength": 30},
                                         "unit": {"enum": ["celsius", "fahrenheit"]}},
                          "required": ["city", "unit"], "additionalProperties": False}}
ASK_WEATHER = "What is the weather in Paris?"


def ask_tool(client, model, **kw):
    return client.responses.create(model=model, tools=[WEATHER], max_output_tokens=120, temperature=0, **kw)


def check_call(item):
    assert item.type == "function_call"
    assert item.id.startswith("fc_") and item.call_id.startswith("call_")
    assert item.name == "get_weather" and item.status == "completed"
    jsonschema.validate(json.loads(item.arguments), WEATHER["parameters"])


def tool_result(call):
    return {"type": "function_call_output", "call_id": call.call_id,
            "output": json.dumps({"temperature": 18, "unit": json.loads(call.arguments)["unit"]})}


def test_function_tool_round_trip_with_previous_response_id(client, model):
    r = ask_tool(client, model, input=ASK_WEATHER, tool_choice="required")
    assert r.status == "completed"
    assert r.output and all(item.type == "function_call" for item in r.output)
    for item in r.output:
        check_call(item)
    assert r.tool_choice == "required" and r.tools[0].name == "get_weather"
    # The result goes back chained to the call. With the same tools and tool_choice the prompt
    # keeps its tool description (which names the choice), so the first turn comes from the cache.
    follow = ask_tool(client, model, input=[tool_result(r.output[0])], previous_response_id=r.id, tool_choice="required")
    assert follow.usage.input_tokens_details.cached_tokens >= r.usage.input_tokens // BLOCK * BLOCK
    assert follow.usage.input_tokens > r.usage.input_tokens + r.usage.output_tokens
    for item in follow.output:
        check_call(item)
    # tool_choice none: the answer is a message.
    answer = ask_tool(client, model, input=[tool_result(r.output[0])], previous_response_id=r.id, tool_choice="none")
    assert answer.status in ("completed", "incomplete")
    assert [item.type for item in answer.output] == ["message"] and answer.output_text
    # The same conversation sent statelessly, the call as an input item, answers the same.
    call = r.output[0]
    stateless = ask_tool(client, model, tool_choice="none", input=[
        {"role": "user", "content": ASK_WEATHER},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        tool_result(call)])
    assert stateless.output_text == answer.output_text


def check_streamed_calls(events, final, whole):
    """The function_call events of one streamed response: each item is added with its name, its
    arguments arrive in several deltas while it is generated, .done holds their concatenation, and
    the calls are byte-equal to the final response's and to the non-streamed response's."""
    calls = [i for i in whole.output if i.type == "function_call"]
    assert calls
    types = [e.type for e in events]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    expected = []
    deltas = {}
    for e in events:
        if e.type == "response.function_call_arguments.delta":
            deltas.setdefault(e.output_index, []).append(e.delta)
    for index in sorted(deltas):
        expected += ["response.output_item.added"] + ["response.function_call_arguments.delta"] * len(deltas[index]) + [
            "response.function_call_arguments.done", "response.output_item.done"]
    assert types[2:-1] == expected
    assert all(len(d) > 1 for d in deltas.values()), "the arguments stream as they are generated"
    for e in events:
        if e.type == "response.output_item.added":
            assert e.item.type == "function_call" and e.item.name == "get_weather" and e.item.arguments == ""
        if e.type == "response.function_call_arguments.done":
            assert e.arguments == "".join(deltas[e.output_index])
    streamed = ["".join(deltas[i]) for i in sorted(deltas)]
    assert streamed == [c.arguments for c in calls]  # byte-equal to the non-streamed calls
    assert [(i.name, i.arguments) for i in final.output] == [(c.name, c.arguments) for c in calls]
    for item in final.output:
        check_call(item)


def test_streamed_function_calls_equal_the_non_streamed_ones(client, model):
    whole = ask_tool(client, model, input=ASK_WEATHER, tool_choice="required")
    with client.responses.stream(model=model, input=ASK_WEATHER, tools=[WEATHER], tool_choice="required",
                                 max_output_tokens=120, temperature=0) as s:
        events = list(s)
        final = s.get_final_response()
    assert [e.type for e in events][:2] == ["response.created", "response.in_progress"]
    assert events[-1].type == "response.completed"
    check_streamed_calls(events, final, whole)
    # A named function: the same order.
    named = {"type": "function", "name": "get_weather"}
    whole = ask_tool(client, model, input=ASK_WEATHER, tool_choice=named)
    with client.responses.stream(model=model, input=ASK_WEATHER, tools=[WEATHER], tool_choice=named,
                                 max_output_tokens=120, temperature=0) as s:
        events = list(s)
        final = s.get_final_response()
    check_streamed_calls(events, final, whole)


def test_function_tool_round_trip_over_the_socket(client, model):
    with client.responses.connect() as conn:
        def run(**kw):
            conn.response.create(model=model, tools=[WEATHER], max_output_tokens=120, temperature=0, store=False, **kw)
            events = []
            for event in conn:
                events.append(event)
                if event.type in ("response.completed", "response.incomplete", "response.failed", "error"):
                    return events, event
        events, final = run(input=ASK_WEATHER, tool_choice="required")
        types = [e.type for e in events]
        assert final.type == "response.completed", types
        assert "response.output_text.delta" not in types
        check_streamed_calls(events, final.response, ask_tool(client, model, input=ASK_WEATHER, tool_choice="required"))
        events, answer = run(input=[tool_result(final.response.output[0])], previous_response_id=final.response.id,
                             tool_choice="none")
        assert answer.type in ("response.completed", "response.incomplete"), [e.type for e in events]
        assert answer.response.output[0].type == "message" and answer.response.output[0].content[0].text


class City(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=40)
    country: str = pydantic.Field(max_length=40)


def test_text_format_json_schema_output_parses(client, model):
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40},
                                               "population": {"type": "integer"}},
              "required": ["city", "population"], "additionalProperties": False}
    r = client.responses.create(model=model, input="Name a large city and its population.", max_output_tokens=120,
                                temperature=0, text={"format": {"type": "json_schema", "name": "city", "schema": schema,
                                                                "strict": True}})
    assert r.status == "completed"
    assert r.text.format.type == "json_schema"
    jsonschema.validate(json.loads(r.output_text), schema)
    # The SDK's parse helper sends a pydantic model's strict schema and parses the answer with it.
    parsed = client.responses.parse(model=model, input="Name the capital of France.", text_format=City,
                                    max_output_tokens=120, temperature=0)
    assert isinstance(parsed.output_parsed, City)
    # json_object: any JSON object.
    r = client.responses.create(model=model, input="Describe Paris as JSON.", max_output_tokens=120, temperature=0,
                                text={"format": {"type": "json_object"}})
    if r.status == "completed":
        assert isinstance(json.loads(r.output_text), dict)
    else:
        assert r.incomplete_details.reason == "max_output_tokens"


def test_text_format_output_keys_follow_the_schemas_property_order(client, model):
    # Not alphabetical: a server that re-sorted the schema's properties would answer alpha first.
    schema = {"type": "object", "properties": {"zeta": {"type": "string", "maxLength": 12},
                                               "alpha": {"type": "integer"}},
              "required": ["zeta", "alpha"], "additionalProperties": False}
    r = client.responses.create(model=model, input="Name a city and a number.", max_output_tokens=60, temperature=0,
                                text={"format": {"type": "json_schema", "name": "pair", "schema": schema, "strict": True}})
    assert r.status == "completed", r.incomplete_details
    keys = [k for k, _ in json.loads(r.output_text, object_pairs_hook=list)]
    assert keys == ["zeta", "alpha"], r.output_text


def test_a_seed_makes_sampled_responses_repeat(client, model):
    # troupe's extension (as vLLM's): the same seed at temperature 1 answers the same, over HTTP.
    def ask(seed):
        return client.responses.create(model=model, input=QUESTIONS[0], max_output_tokens=24, temperature=1.0,
                                       store=False, extra_body={"seed": seed}).output_text
    first = ask(3)
    assert ask(3) == first
    assert len({first, ask(4), ask(5), ask(6)}) > 1  # the seed is what makes them equal
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=model, input="x", extra_body={"seed": "three"})
    assert e.value.body["param"] == "seed"
