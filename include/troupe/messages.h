// The public messages of troupe: the atoms, CAF 0.17 inspectors and type-ID block (troupe_api) of
// the values every extension sees (error, sampling_params, generation_request/event). Internal
// messages (actors/messages.h, actors/cluster_messages.h) include this header, never the reverse.
// Type-ID ranges (each block asserts it stays in its own range; see docs/custom-actors.md):
//   [first_custom_type_id, first_internal_type_id)  public blocks: troupe_api, troupe_ext
//   [first_internal_type_id, first_user_type_id)    troupe's internal blocks: troupe, troupe_cluster
//   [first_user_type_id, ...)                       free for an extension's own CAF blocks
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/sec.hpp>
#include <caf/type_id.hpp>

#include "troupe/error.h"
#include "troupe/generation.h"

namespace troupe {

// Fixed, so that the public blocks never depend on how many internal types there are.
constexpr caf::type_id_t first_internal_type_id = caf::first_custom_type_id + 64;
constexpr caf::type_id_t first_user_type_id = caf::first_custom_type_id + 256;

// Atoms of the event stream (text <= 10 characters).
using event_atom = caf::atom_constant<caf::atom("event")>;
using fail_atom = caf::atom_constant<caf::atom("fail")>;
constexpr event_atom event_atom_v{};
constexpr fail_atom fail_atom_v{};

// --- inspectors ------------------------------------------------------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, error& x) {
  uint8_t code = static_cast<uint8_t>(x.code);
  return f(caf::meta::type_name("troupe_error"), code, x.message,
           caf::meta::load_callback([&]() -> caf::error {
             x.code = static_cast<errc>(code);
             return caf::none;
           }));
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sampling_params& x) {
  bool has_seed = x.seed.has_value();
  uint64_t seed = x.seed.value_or(0);
  uint8_t mode = static_cast<uint8_t>(x.lp_mode);
  return f(caf::meta::type_name("sampling_params"), x.temperature, x.top_p, x.top_k, x.min_p,
           x.repetition_penalty, x.presence_penalty, x.frequency_penalty, has_seed, seed, x.logit_bias, x.logprobs,
           x.max_tokens, x.min_tokens, x.ignore_eos, x.stop, x.stop_token_ids, x.prompt_logprobs, mode,
           caf::meta::load_callback([&]() -> caf::error {
             x.seed = has_seed ? std::optional<uint64_t>(seed) : std::nullopt;
             x.lp_mode = static_cast<logprobs_mode>(mode);
             return caf::none;
           }));
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, generation_request& x) {
  uint8_t constraint_type = static_cast<uint8_t>(x.constraint.type);
  return f(caf::meta::type_name("generation_request"), x.request_id, x.prompt_ids, x.params, x.n, constraint_type,
           x.constraint.text, x.constraint.strict, caf::meta::load_callback([&]() -> caf::error {
             // A peer's byte outside the enumeration is refused, never cast into a bogus kind.
             if (constraint_type > static_cast<uint8_t>(constraint_spec::kind::grammar))
               return caf::make_error(caf::sec::invalid_argument);
             x.constraint.type = static_cast<constraint_spec::kind>(constraint_type);
             return caf::none;
           }));
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, top_logprob& x) {
  return f(caf::meta::type_name("top_logprob"), x.token, x.logprob);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, token_logprobs& x) {
  return f(caf::meta::type_name("token_logprobs"), x.token, x.logprob, x.top);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, usage_info& x) {
  return f(caf::meta::type_name("usage_info"), x.prompt_tokens, x.completion_tokens, x.cached_prompt_tokens);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, generation_event& x) {
  uint8_t fin = static_cast<uint8_t>(x.finish);
  return f(caf::meta::type_name("generation_event"), x.request_id, x.index, x.token_ids, x.text, x.logprobs, fin,
           x.usage, x.queue_time_s, x.prompt_logprobs, caf::meta::load_callback([&]() -> caf::error {
             x.finish = static_cast<finish_reason>(fin);
             return caf::none;
           }));
}

}  // namespace troupe

CAF_BEGIN_TYPE_ID_BLOCK(troupe_api, caf::first_custom_type_id)
CAF_ADD_TYPE_ID(troupe_api, (troupe::error))
CAF_ADD_TYPE_ID(troupe_api, (troupe::sampling_params))
CAF_ADD_TYPE_ID(troupe_api, (troupe::generation_request))
CAF_ADD_TYPE_ID(troupe_api, (troupe::top_logprob))
CAF_ADD_TYPE_ID(troupe_api, (troupe::token_logprobs))
CAF_ADD_TYPE_ID(troupe_api, (troupe::usage_info))
CAF_ADD_TYPE_ID(troupe_api, (troupe::generation_event))
CAF_END_TYPE_ID_BLOCK(troupe_api)

static_assert(caf::id_block::troupe_api::end <= ::troupe::first_internal_type_id,
              "the public troupe_api block must stay inside the public type-ID range");
