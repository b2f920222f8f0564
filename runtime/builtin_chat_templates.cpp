// The chat templates troupe uses when a model file carries none, chosen by architecture: each is
// its model card's tokenizer_config.json template, byte for byte (tools/make_chat_template_refs.py
// holds the same text and renders the reference cases the tests compare against).
#include "runtime/builtin_chat_templates.h"

#include <fstream>
#include <sstream>

namespace troupe {
namespace {

// google/gemma-3-270m-it: the system message folds into the first user turn; roles must alternate;
// the assistant's role is "model".
constexpr const char* kGemma3 = R"tmpl({{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '

' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '

' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '
' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>
' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model
'}}
{%- endif -%}
)tmpl";

// microsoft/Phi-3-mini-4k-instruct.
constexpr const char* kPhi3 = R"tmpl({% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>
' + message['content'] + '<|end|>
'}}{% elif message['role'] == 'user' %}{{'<|user|>
' + message['content'] + '<|end|>
'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>
' + message['content'] + '<|end|>
'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>
' }}{% else %}{{ eos_token }}{% endif %})tmpl";

}  // namespace

const char* builtin_chat_template(const std::string& architecture) {
  if (architecture == "gemma3") return kGemma3;
  if (architecture == "phi3") return kPhi3;
  return nullptr;
}

result<chat_template_choice> choose_chat_template(const std::string& from_model, const std::string& architecture,
                                                  const std::string& override_value) {
  chat_template_choice c;
  if (!override_value.empty()) {
    // vLLM's --chat-template: a file, or the template itself when it holds Jinja markup.
    if (override_value.find("{{") != std::string::npos || override_value.find("{%") != std::string::npos) {
      c.source = override_value;
      c.origin = chat_template_origin::option;
      return c;
    }
    std::ifstream f(override_value, std::ios::binary);
    if (!f)
      return make_error(errc::invalid_argument,
                        "--chat-template: cannot read '" + override_value + "' (a Jinja file or the template itself)");
    std::ostringstream text;
    text << f.rdbuf();
    c.source = text.str();
    c.origin = chat_template_origin::option;
    return c;
  }
  if (!from_model.empty()) {
    c.source = from_model;
    c.origin = chat_template_origin::model;
    return c;
  }
  if (const char* b = builtin_chat_template(architecture)) {
    c.source = b;
    c.origin = chat_template_origin::builtin;
  }
  return c;
}

}  // namespace troupe
