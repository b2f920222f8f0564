// Which chat template a model is served with: --chat-template when given, else the model file's,
// else a built-in default for architectures whose files often carry none (Gemma 3, Phi-3), else
// none (chat requests are then refused with a 400).
#pragma once

#include <string>

#include "config/error.h"

namespace troupe {

// The built-in template of `architecture` (model_config::architecture), or null.
const char* builtin_chat_template(const std::string& architecture);

enum class chat_template_origin { none, option, model, builtin };

struct chat_template_choice {
  std::string source;  // Jinja text; empty with origin none
  chat_template_origin origin = chat_template_origin::none;
};

// `override_value` is --chat-template: a path to a Jinja file, or the template itself when it holds
// "{{" or "{%" (as vLLM reads it). An unreadable file is invalid_argument naming the option.
result<chat_template_choice> choose_chat_template(const std::string& from_model, const std::string& architecture,
                                                  const std::string& override_value);

}  // namespace troupe
