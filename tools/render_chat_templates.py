#!/usr/bin/env python3
"""Renders tests/data/chat_templates/*.jinja with Python jinja2 the way Hugging Face transformers
does (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, raise_exception,
strftime_now, HF's tojson) into tests/data/chat_templates/expected.json. The C++ renderer must
reproduce every output byte for byte (tests/runtime/chat_template_test.cpp).

Object keys are sorted in every input: troupe's value model (nlohmann::json) keeps keys sorted, so
the reference uses the same order. strftime_now is pinned to FIXED_TIME for determinism.
Usage: python3 tools/render_chat_templates.py
"""
import datetime
import json
import os

from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIR = os.path.join(ROOT, "tests", "data", "chat_templates")
FIXED_TIME = 1727352000  # 2024-09-26 12:00:00 UTC

SPECIAL = {
    "smollm2": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"},
    "llama3_1": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama3_2": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "qwen2_5": {"bos_token": "", "eos_token": "<|im_end|>"},
    "mistral_v0_3": {"bos_token": "<s>", "eos_token": "</s>"},
    "qwen3": {"bos_token": "", "eos_token": "<|im_end|>"},
}

SYSTEM = {"role": "system", "content": "  You are a terse assistant.\n"}
USER1 = {"role": "user", "content": "Hello! What's 2+2?"}
ASSIST1 = {"role": "assistant", "content": "  It's 4.  "}
USER2 = {"role": "user", "content": "Héllo 😀 — and 日本語?\n\nSecond line.\t"}

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                   "required": ["city"]}}}]
TOOL_CALL = {"role": "assistant", "content": "", "tool_calls": [{
    "id": "abc123XYZ", "type": "function",
    "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}
TOOL_RESULT = {"role": "tool", "tool_call_id": "abc123XYZ", "content": "{\"temp_c\": 21}"}

TIME_TOOL = {"type": "function", "function": {
    "name": "get_time", "description": "Current time in a time zone",
    "parameters": {"properties": {"zone": {"type": "string"}}, "required": ["zone"], "type": "object"}}}
PARALLEL_CALLS = {"role": "assistant", "content": "", "tool_calls": [
    {"id": "abc123XYZ", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
    {"id": "def456UVW", "type": "function", "function": {"name": "get_time", "arguments": {"zone": "CET"}}}]}
PARALLEL_RESULTS = [{"role": "tool", "tool_call_id": "abc123XYZ", "content": "{\"temp_c\": 21}"},
                    {"role": "tool", "tool_call_id": "def456UVW", "content": "12:00"}]

ASSIST_THINK = {"role": "assistant", "content": "<think>\nAdd them.\n</think>\n\nIt's 4."}

CONVERSATIONS = {
    "user_only": ([USER1], {}),
    "system_user": ([SYSTEM, USER1], {}),
    "multi_turn_system": ([SYSTEM, USER1, ASSIST1, USER2], {}),
    "multi_turn_no_system": ([USER1, ASSIST1, USER2], {}),
    "ends_with_assistant": ([USER1, ASSIST1], {}),
    "tools": ([SYSTEM, USER1, TOOL_CALL, TOOL_RESULT], {"tools": TOOLS}),
    # Two calls in one answer and their two results (Llama 3.x templates refuse several calls).
    "tools_parallel": ([USER1, PARALLEL_CALLS] + PARALLEL_RESULTS, {"tools": TOOLS + [TIME_TOOL]}),
    "not_alternating": ([USER1, USER2], {}),
    "extra_date_string": ([USER1], {"date_string": "01 Jan 2025"}),
    # chat_template_kwargs as vLLM passes them (Qwen3's enable_thinking), and an earlier answer
    # that carried its reasoning inline.
    "thinking_off": ([SYSTEM, USER1], {"enable_thinking": False}),
    "thinking_on": ([USER1], {"enable_thinking": True}),
    "assistant_with_think": ([USER1, ASSIST_THINK, USER2, ASSIST_THINK], {}),
}


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # Exactly transformers' chat-template tojson (no HTML escaping, keeps unicode).
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise TemplateError(message)


def strftime_now(fmt):
    return datetime.datetime.fromtimestamp(FIXED_TIME, datetime.timezone.utc).strftime(fmt)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def sorted_keys(x):
    return json.loads(json.dumps(x, sort_keys=True))


def main():
    env = environment()
    cases = []
    for name in sorted(SPECIAL):
        with open(os.path.join(DIR, name + ".jinja"), encoding="utf-8") as f:
            template = env.from_string(f.read())
        for conv, (messages, extra) in CONVERSATIONS.items():
            for add_gen in (False, True):
                messages = sorted_keys(messages)
                extra_all = sorted_keys(dict(SPECIAL[name], **extra))
                case = {"template": name, "conversation": conv, "add_generation_prompt": add_gen,
                        "messages": messages, "extra": extra_all}
                try:
                    case["output"] = template.render(messages=messages, add_generation_prompt=add_gen,
                                                     **extra_all)
                except TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    with open(os.path.join(DIR, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"fixed_time": FIXED_TIME, "cases": cases}, f, indent=1, ensure_ascii=False)
    print(f"wrote {len(cases)} cases, {sum('error' in c for c in cases)} expected errors")


if __name__ == "__main__":
    main()
