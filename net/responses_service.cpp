// The Responses API's use of the store (see responses_service.h).
#include "net/responses_service.h"

#include <algorithm>
#include <cctype>

#include "net/openai_response.h"  // dump_json

namespace troupe {

using json = nlohmann::json;

response_run::response_run(responses_params p, openai_request g, json conv, std::string own, std::string model)
    : params(std::move(p)), gen(std::move(g)), conversation(std::move(conv)), owner(std::move(own)),
      builder(params, new_response_object_id("resp_"), std::move(model)) {
  if (gen.tool_calls) builder.expect_tool_envelope(gen.tool_names, gen.tool_syntax);
}

stored_response response_run::entry() const {
  stored_response r;
  r.id = builder.id();
  r.owner = owner;
  r.response = builder.object();
  r.input_items = params.input_items;
  r.conversation = conversation;
  r.conversation.push_back(builder.assistant_message());
  r.tokens = gen.gen.prompt_ids;
  r.tokens.insert(r.tokens.end(), builder.output_ids().begin(), builder.output_ids().end());
  return r;
}

std::string bearer_token(std::string_view h) {
  constexpr std::string_view scheme = "bearer ";
  if (h.size() < scheme.size()) return {};
  for (size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(h[i])) != scheme[i]) return {};
  }
  h.remove_prefix(scheme.size());
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) h.remove_suffix(1);
  return std::string(h);
}

uint64_t conversation_key(const std::string& response_id) {
  // FNV-1a: stable, and a collision only makes one pin replace another (a cache miss, never wrong KV).
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : response_id) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::shared_ptr<const stored_response> settle_response(const response_run& run, response_store& store,
                                                       conversation_cache* cache, bool keep_pinned) {
  auto entry = std::make_shared<const stored_response>(run.entry());
  const bool ok = run.builder.status() != "failed";
  if (!run.params.previous_response_id.empty()) {
    store.count_turn(run.builder.usage().prompt_tokens, run.builder.usage().cached_prompt_tokens);
  }
  if (cache && ok && (run.params.store || keep_pinned)) {
    if (!run.params.previous_response_id.empty()) cache->unpin(conversation_key(run.params.previous_response_id));
    cache->pin(conversation_key(entry->id), entry->tokens);
  }
  if (run.params.store && ok) store.put(*entry);
  return entry;
}

api_error response_not_found(const std::string& id, const char* param) {
  const bool previous = std::string_view(param) == "previous_response_id";
  return api_error{404, std::string(previous ? "Previous response" : "Response") + " with id '" + id.substr(0, 256) +
                            "' not found.",
                   "invalid_request_error", param, previous ? "previous_response_not_found" : "not_found"};
}

api_result<std::unique_ptr<response_run>> prepare_response(const json& body, bool websocket, response_store& store,
                                                           const std::string& owner, const api_context& ctx,
                                                           const stored_response* local, std::string_view raw) {
  auto parsed = parse_responses_body(body, websocket, raw);
  if (is_error(parsed)) return std::get<api_error>(parsed);
  responses_params& p = std::get<responses_params>(parsed);
  json history = json::array();
  if (!p.previous_response_id.empty()) {
    std::shared_ptr<const stored_response> prev;
    if (local && local->id == p.previous_response_id) {
      history = local->conversation;
    } else if ((prev = store.get(p.previous_response_id, owner))) {
      history = prev->conversation;
    } else {
      return response_not_found(p.previous_response_id, "previous_response_id");
    }
  }
  size_t kept = history.size();
  auto gen = build_responses_generation(p, history, ctx, &kept);
  if (is_error(gen)) return std::get<api_error>(gen);
  // The conversation a next turn continues: the history that was kept, then this input.
  json conv = json::array();
  for (size_t i = history.size() - kept; i < history.size(); ++i) conv.push_back(history[i]);
  for (json& m : items_to_messages(p.input_items)) conv.push_back(std::move(m));
  openai_request& g = std::get<openai_request>(gen);
  std::string model = g.model;
  return std::make_unique<response_run>(std::move(p), std::move(g), std::move(conv), owner, std::move(model));
}

namespace {

std::string query_param(const std::string& query, std::string_view name) {
  size_t at = 0;
  while (at <= query.size()) {
    const size_t amp = query.find('&', at);
    std::string_view param = std::string_view(query).substr(at, amp == std::string::npos ? std::string::npos : amp - at);
    if (param.size() > name.size() && param.substr(0, name.size()) == name && param[name.size()] == '=') {
      return std::string(param.substr(name.size() + 1));
    }
    if (amp == std::string::npos) break;
    at = amp + 1;
  }
  return {};
}

http_response input_items(const stored_response& r, const http_request& req) {
  const std::string order = query_param(req.query, "order");
  if (!order.empty() && order != "asc" && order != "desc") {
    return http_response::error(bad_request("order must be asc or desc", "order"));
  }
  int limit = 20;
  if (const std::string l = query_param(req.query, "limit"); !l.empty()) {
    if (l.size() > 3 || l.find_first_not_of("0123456789") != std::string::npos || std::stoi(l) < 1 || std::stoi(l) > 100) {
      return http_response::error(bad_request("limit must be an integer in [1, 100]", "limit"));
    }
    limit = std::stoi(l);
  }
  const std::string after = query_param(req.query, "after");
  std::vector<json> items(r.input_items.begin(), r.input_items.end());
  if (order != "asc") std::reverse(items.begin(), items.end());  // OpenAI's default order: desc
  size_t start = 0;
  if (!after.empty()) {
    while (start < items.size() && items[start].value("id", "") != after) ++start;
    start = start < items.size() ? start + 1 : items.size();
  }
  json data = json::array();
  for (size_t i = start; i < items.size() && static_cast<int>(data.size()) < limit; ++i) data.push_back(items[i]);
  const bool more = start + data.size() < items.size();
  json body = {{"object", "list"}, {"data", data}, {"has_more", more},
               {"first_id", data.empty() ? json(nullptr) : data.front()["id"]},
               {"last_id", data.empty() ? json(nullptr) : data.back()["id"]}};
  return http_response::json(200, dump_json(body));
}

}  // namespace

http_response stored_response_route(response_store& store, const http_request& req, const std::string& owner) {
  constexpr std::string_view prefix = "/v1/responses/";
  std::string rest = req.path.size() > prefix.size() ? req.path.substr(prefix.size()) : std::string();
  bool items = false;
  constexpr std::string_view suffix = "/input_items";
  if (rest.size() > suffix.size() && rest.compare(rest.size() - suffix.size(), suffix.size(), suffix) == 0) {
    items = true;
    rest.resize(rest.size() - suffix.size());
  }
  if (rest.empty() || rest.find('/') != std::string::npos) {
    return http_response::error(api_error{404, "no route " + req.path.substr(0, 256), "not_found_error", {}, "not_found"});
  }
  if (req.method == "DELETE" && !items) {
    if (!store.erase(rest, owner)) return http_response::error(response_not_found(rest, ""));
    return http_response::json(200, dump_json(json{{"id", rest}, {"object", "response.deleted"}, {"deleted", true}}));
  }
  auto r = store.get(rest, owner);
  if (!r) return http_response::error(response_not_found(rest, ""));
  if (items) return input_items(*r, req);
  return http_response::json(200, dump_json(r->response));
}

}  // namespace troupe
