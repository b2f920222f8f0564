// Parsing the completions `prompt` field, single or batched (see prompt_list.h).
#include "net/prompt_list.h"

#include <optional>

#include "net/json_guard.h"

namespace troupe {
namespace {

using json = nlohmann::json;
using maybe_error = std::optional<api_error>;

const char* const k_shape =
    "prompt must be a string, a list of token ids, a list of strings, or a list of token-id lists";

maybe_error from_text(const std::string& s, const prompt_list_options& o, prompt_item& out) {
  if (s.empty()) return bad_request("prompt must not be empty", "prompt");
  if (!o.codec || !o.codec->has_tokenizer()) {
    return bad_request("this model has no tokenizer: send prompt as token ids", "prompt", "unsupported");
  }
  auto ids = o.codec->encode(s, o.add_special, false);
  if (!ids.ok()) return bad_request(ids.err().message, "prompt");
  out.ids = std::move(ids).value();
  out.text = s;
  return std::nullopt;
}

maybe_error from_ids(const json& arr, const prompt_list_options& o, prompt_item& out) {
  if (arr.empty()) return bad_request("prompt must not be empty", "prompt");
  out.ids.reserve(arr.size());
  for (const json& v : arr) {
    if (!v.is_number_integer()) return bad_request(k_shape, "prompt");
    const bool too_big = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX);
    const int64_t id = too_big ? -1 : v.get<int64_t>();
    if (id < 0 || (o.vocab_size > 0 && id >= o.vocab_size)) {
      return bad_request("token id " + describe_json(v) + " in prompt is outside the vocabulary [0, " +
                             std::to_string(o.vocab_size) + ")", "prompt");
    }
    out.ids.push_back(static_cast<int32_t>(id));
  }
  if (o.codec && o.codec->has_tokenizer()) {
    auto text = o.codec->decode(out.ids, false);
    if (text.ok()) out.text = std::move(text).value();
  }
  return std::nullopt;
}

}  // namespace

std::variant<std::vector<prompt_item>, api_error> parse_prompt_list(const json& prompt,
                                                                    const prompt_list_options& o) {
  std::vector<prompt_item> out;
  maybe_error e;
  if (prompt.is_string()) {
    out.emplace_back();
    if ((e = from_text(prompt.get_ref<const std::string&>(), o, out.back()))) return *e;
    return out;
  }
  if (!prompt.is_array()) return bad_request(k_shape, "prompt");
  if (prompt.empty()) return bad_request("prompt must not be empty", "prompt");
  const json& first = prompt[0];
  if (first.is_number_integer()) {  // one prompt of token ids
    out.emplace_back();
    if ((e = from_ids(prompt, o, out.back()))) return *e;
    return out;
  }
  // A batch: every element of one kind (all strings or all id lists), never deeper.
  if (prompt.size() > o.max_prompts) {
    return bad_request("prompt holds at most " + std::to_string(o.max_prompts) + " prompts, got " +
                           std::to_string(prompt.size()), "prompt");
  }
  const bool strings = first.is_string();
  if (!strings && !first.is_array()) return bad_request(k_shape, "prompt");
  out.reserve(prompt.size());
  for (const json& p : prompt) {
    if (strings != p.is_string() || (!strings && !p.is_array())) {
      return bad_request("prompt lists must hold only strings or only token-id lists", "prompt");
    }
    out.emplace_back();
    if ((e = strings ? from_text(p.get_ref<const std::string&>(), o, out.back()) : from_ids(p, o, out.back()))) {
      return *e;
    }
  }
  return out;
}

}  // namespace troupe
