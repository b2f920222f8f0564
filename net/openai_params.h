// The field readers of the OpenAI request mapping (internal to net/openai_api*.cpp): a typed,
// range-checked read of one body field that names the field in its 400, and the readers of the
// sampling parameters, stream options and max_tokens. Nothing here throws.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/openai_api.h"

namespace troupe::api_fields {

using json = nlohmann::json;
using maybe_error = std::optional<api_error>;

// The field `key` of `body`, or null when it is absent or JSON null.
const json* field(const json& body, const char* key);
maybe_error read_float(const json& body, const char* key, float& out, double lo, double hi,
                       bool lo_open = false);
maybe_error read_int(const json& body, const char* key, int32_t& out, int64_t lo, int64_t hi);
maybe_error read_bool(const json& body, const char* key, bool& out);
maybe_error check_token_id(const json& v, const api_context& ctx, const char* param);
maybe_error read_ids(const json& arr, const api_context& ctx, const char* param,
                     std::vector<int32_t>& out);

// temperature, top_p, top_k, min_p, penalties, min_tokens, ignore_eos, stop, logit_bias, seed,
// stop_token_ids, logprobs / top_logprobs, prompt_logprobs, logprobs_mode.
maybe_error read_sampling(const json& body, api_kind kind, const api_context& ctx, openai_request& r);
// stream and stream_options.
maybe_error read_stream(const json& body, openai_request& r);
// max_tokens defaults to what is left of session_len; prompt + max_tokens must fit.
maybe_error read_max_tokens(const json& body, api_kind kind, const api_context& ctx, openai_request& r);

}  // namespace troupe::api_fields
