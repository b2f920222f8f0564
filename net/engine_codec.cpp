// The text_codec over the engine's troupe::tokenizer and troupe::chat_template. The only file in
// net/ that calls those classes: adjust here when their signatures change. Until their headers
// exist, text prompts answer `unsupported` and token-id prompts still work.
#include "net/text_codec.h"

#include "actors/engine.h"

#include <mutex>

#include "runtime/constraint_cache.h"

#if __has_include("runtime/tokenizer.h")
#include "runtime/tokenizer.h"
#define TROUPE_NET_HAVE_TOKENIZER 1
#endif
#if __has_include("runtime/chat_template.h")
#include "runtime/chat_template.h"
#define TROUPE_NET_HAVE_CHAT_TEMPLATE 1
#endif

namespace troupe {
namespace {

class engine_codec final : public text_codec {
 public:
  explicit engine_codec(const engine& eng) : eng_(eng) {}

  bool has_tokenizer() const override {
#ifdef TROUPE_NET_HAVE_TOKENIZER
    return eng_.tok() != nullptr;
#else
    return false;
#endif
  }
  bool has_chat_template() const override {
#ifdef TROUPE_NET_HAVE_CHAT_TEMPLATE
    return has_tokenizer() && eng_.chat() != nullptr;
#else
    return false;
#endif
  }
  int64_t vocab_size() const override {
#ifdef TROUPE_NET_HAVE_TOKENIZER
    if (const tokenizer* t = eng_.tok()) return t->vocab_size();
#endif
    return eng_.model().vocab_size;
  }

  result<std::vector<int32_t>> encode(const std::string& text, bool add_special,
                                      bool parse_special) const override {
#ifdef TROUPE_NET_HAVE_TOKENIZER
    if (const tokenizer* t = eng_.tok()) {
      try {
        return t->encode(text, add_special, parse_special);
      } catch (const std::exception& e) {
        return make_error(errc::invalid_argument, std::string("tokenizer: ") + e.what());
      }
    }
#endif
    return make_error(errc::unsupported, "this model has no tokenizer: send token ids");
  }

  result<std::string> decode(const std::vector<int32_t>& ids, bool skip_special) const override {
#ifdef TROUPE_NET_HAVE_TOKENIZER
    if (const tokenizer* t = eng_.tok()) {
      try {
        return t->decode(ids, skip_special);
      } catch (const std::exception& e) {
        return make_error(errc::invalid_argument, std::string("tokenizer: ") + e.what());
      }
    }
#endif
    return make_error(errc::unsupported, "this model has no tokenizer");
  }

  std::string eos_token() const override {
#ifdef TROUPE_NET_HAVE_TOKENIZER
    if (const tokenizer* t = eng_.tok(); t && t->eos_id() >= 0) return t->token_text(t->eos_id());
#endif
    return {};
  }
  std::string bos_token() const override {
#ifdef TROUPE_NET_HAVE_TOKENIZER
    if (const tokenizer* t = eng_.tok(); t && t->bos_id() >= 0) return t->token_text(t->bos_id());
#endif
    return {};
  }
  std::string chat_template_source() const override {
#ifdef TROUPE_NET_HAVE_CHAT_TEMPLATE
    if (const chat_template* c = eng_.chat()) return c->source();
#endif
    return "";
  }

  result<std::string> render_chat(const nlohmann::json& messages, bool add_generation_prompt,
                                  const nlohmann::json& extra) const override {
#ifdef TROUPE_NET_HAVE_CHAT_TEMPLATE
    if (const chat_template* c = eng_.chat()) {
      try {
        return c->render(messages, add_generation_prompt, extra);
      } catch (const std::exception& e) {
        return make_error(errc::invalid_argument, std::string("chat template: ") + e.what());
      }
    }
#endif
    return make_error(errc::unsupported, "this model has no chat template: use /v1/completions");
  }

  result<std::shared_ptr<const compiled_constraint>> compile(const constraint_spec& spec) const override {
#ifdef TROUPE_NET_HAVE_TOKENIZER
    if (const tokenizer* t = eng_.tok()) {
      try {
        // One bounded cache per served model: a repeated schema costs a lookup.
        std::call_once(cache_once_, [&] { cache_ = std::make_unique<constraint_cache>(*t); });
        return cache_->get(spec);
      } catch (const std::exception& e) {
        return make_error(errc::invalid_argument, std::string("structured output: ") + e.what());
      }
    }
#endif
    return make_error(errc::unsupported, "structured outputs need a tokenizer; this model has none");
  }

 private:
  const engine& eng_;
  mutable std::once_flag cache_once_;
  mutable std::unique_ptr<constraint_cache> cache_;
};

}  // namespace

std::shared_ptr<const text_codec> make_engine_codec(const engine& eng) {
  return std::make_shared<engine_codec>(eng);
}

}  // namespace troupe
