// chat_template: renders a model's Jinja chat template (SmolLM2, Llama 3.x, Qwen2.5, Mistral...)
// over OpenAI-style messages the way transformers' apply_chat_template does (trim_blocks,
// lstrip_blocks, raise_exception, strftime_now, tojson). Parsed once; render() is const and thread-safe.
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "config/error.h"

namespace troupe {

namespace jinja {
struct stmt;
}

struct chat_template_options {
  std::string bos_token;                  // exposed to the template as bos_token
  std::string eos_token;                  // exposed to the template as eos_token
  std::optional<std::time_t> fixed_time;  // strftime_now() renders this instead of now (tests)
};

class chat_template {
 public:
  // Parses the template; syntax errors come back as invalid_argument with the line number.
  static result<chat_template> parse(const std::string& source, chat_template_options options = {});

  // messages: [{"role": ..., "content": ...}, ...]; extra: more variables (tools, date_string...),
  // which override bos_token/eos_token too. raise_exception() and runtime errors -> invalid_argument.
  result<std::string> render(const nlohmann::json& messages, bool add_generation_prompt,
                             const nlohmann::json& extra = nlohmann::json::object()) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  chat_template_options options_;
  std::shared_ptr<const std::vector<std::unique_ptr<jinja::stmt>>> program_;
};

}  // namespace troupe
