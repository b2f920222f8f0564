// text_codec: the one adapter between net/ and the model's tokenizer and chat template. Every
// encode/decode/render the HTTP and WebSocket handlers do goes through it, so changes to
// runtime/tokenizer.h or runtime/chat_template.h touch only engine_codec.cpp. Tests use a fake.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/error.h"
#include "troupe/constraint_spec.h"

namespace troupe {

class engine;
class compiled_constraint;

class text_codec {
 public:
  virtual ~text_codec() = default;

  // False when the model has no tokenizer: only token-id prompts work then.
  virtual bool has_tokenizer() const = 0;
  virtual bool has_chat_template() const = 0;
  virtual int64_t vocab_size() const = 0;

  virtual result<std::vector<int32_t>> encode(const std::string& text, bool add_special,
                                              bool parse_special) const = 0;
  virtual result<std::string> decode(const std::vector<int32_t>& ids, bool skip_special) const = 0;
  // The text of the end/begin-of-sequence tokens ("" when none): /tokenizer_info.
  virtual std::string eos_token() const { return {}; }
  virtual std::string bos_token() const { return {}; }
  // messages: [{"role": ..., "content": "..."}] with string contents (already normalized).
  virtual result<std::string> render_chat(const nlohmann::json& messages, bool add_generation_prompt,
                                          const nlohmann::json& extra) const = 0;
  // The chat template's source ("" without one): --reasoning-parser auto looks for <think> in it.
  virtual std::string chat_template_source() const { return ""; }
  // Compiles a structured-output spec for this model's tokenizer (the engine's codec goes through
  // a bounded cache, so a repeated schema costs a lookup). Errors name the JSON path or offset.
  virtual result<std::shared_ptr<const compiled_constraint>> compile(const constraint_spec&) const {
    return make_error(errc::unsupported, "structured outputs need a tokenizer");
  }
};

// The codec over engine.tok() / engine.chat(); the engine must outlive it.
std::shared_ptr<const text_codec> make_engine_codec(const engine& eng);

}  // namespace troupe
