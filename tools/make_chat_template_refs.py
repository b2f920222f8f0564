#!/usr/bin/env python3
"""Writes tests/data/chat_templates/builtin_reference.json: the chat templates troupe falls back to
when a model file carries none (runtime/builtin_chat_templates.cpp), each as its model card's
tokenizer_config.json holds it, rendered by jinja2 the way transformers' apply_chat_template does
(trim_blocks, lstrip_blocks, raise_exception, the model's bos/eos tokens) over a set of
conversations. troupe's Jinja engine must reproduce every rendering byte for byte
(tests/runtime/builtin_chat_template_test.cpp), and its built-in source must equal the text here.

Usage: tools/make_chat_template_refs.py [--out PATH]   (needs jinja2: the test venv has it)
"""
import argparse
import json
import os

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

# google/gemma-3-270m-it (and gemma-3-1b/4b-it), tokenizer_config.json "chat_template".
GEMMA3 = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\n'}}\n"
    "{%- endif -%}\n"
)

# microsoft/Phi-3-mini-4k-instruct, tokenizer_config.json "chat_template".
PHI3 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

TEMPLATES = {
    "gemma3": {"template": GEMMA3, "bos_token": "<bos>", "eos_token": "<eos>"},
    "phi3": {"template": PHI3, "bos_token": "<s>", "eos_token": "<|endoftext|>"},
}

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "  What is the capital of France?\n"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}],
    [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello"},
     {"role": "assistant", "content": "Bonjour !"}, {"role": "user", "content": "How are you?"}],
    [{"role": "user", "content": "Line one\nline two"}, {"role": "assistant", "content": " spaced "},
     {"role": "user", "content": "ünïcödé ✓ 日本"}],
    [{"role": "user", "content": [{"type": "text", "text": " part one "}, {"type": "text", "text": "part two"}]}],
    [{"role": "system", "content": [{"type": "text", "text": "System as parts."}]},
     {"role": "user", "content": "ok"}],
    # Gemma refuses these (roles out of order); Phi-3 renders them.
    [{"role": "assistant", "content": "I speak first"}],
    [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
]


class TemplateError(Exception):
    pass


def raise_exception(message):
    raise TemplateError(message)


def render(source, bos, eos, messages, add_generation_prompt):
    # transformers' _compile_jinja_template: an immutable sandbox with these options.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.globals["raise_exception"] = raise_exception
    tmpl = env.from_string(source)
    return tmpl.render(messages=messages, add_generation_prompt=add_generation_prompt, bos_token=bos,
                       eos_token=eos)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "chat_templates",
                                                  "builtin_reference.json"))
    args = ap.parse_args()
    out = {"note": "made by tools/make_chat_template_refs.py with jinja2 " + jinja2.__version__, "templates": {}}
    for arch, t in TEMPLATES.items():
        cases = []
        for messages in CONVERSATIONS:
            if arch == "phi3" and any(not isinstance(m["content"], str) for m in messages):
                continue  # Phi-3's template concatenates content as a string: parts are a TypeError there
            for agp in (True, False):
                case = {"messages": messages, "add_generation_prompt": agp}
                try:
                    case["expected"] = render(t["template"], t["bos_token"], t["eos_token"], messages, agp)
                except TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
        out["templates"][arch] = dict(t, cases=cases)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n = sum(len(v["cases"]) for v in out["templates"].values())
    print(f"wrote {args.out}: {n} cases")


if __name__ == "__main__":
    main()
