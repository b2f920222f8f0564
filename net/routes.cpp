// Route handlers without sockets (see routes.h). Nothing here throws: JSON errors become 400s.
#include "net/routes.h"

#include <cstdio>
#include <ctime>

#include "net/auth.h"
#include "net/openai_response.h"
#include "net/static_files.h"

namespace troupe {

using json = nlohmann::json;

namespace {

int64_t resolve_session_len(const engine& eng) {
  if (eng.plan().session_len > 0) return eng.plan().session_len;
  if (eng.options().engine.session_len > 0) return eng.options().engine.session_len;
  return eng.model().max_position_embeddings;
}

constexpr auto k_stats_timeout = std::chrono::milliseconds(1000);

// "fp_" + 16 hex digits of FNV-1a over the build's version and the model's identity (architecture,
// shapes, vocabulary, name): the same for every response of one process and model, and different
// when either changes, which is what clients compare it for.
std::string make_system_fingerprint(const model_config& m, int64_t vocab) {
  const std::string id = std::string("troupe ") + TROUPE_VERSION_STRING + "|" + m.architecture + "|" + m.name + "|" +
                         std::to_string(m.hidden_size) + "|" + std::to_string(m.num_layers) + "|" +
                         std::to_string(m.num_heads) + "|" + std::to_string(m.num_kv_heads) + "|" +
                         std::to_string(m.intermediate_size) + "|" + std::to_string(vocab);
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
  char buf[24];
  std::snprintf(buf, sizeof(buf), "fp_%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

api_routes::api_routes(engine& eng, const server_options& opts, std::shared_ptr<const text_codec> codec,
                       server_metrics& metrics, server_state& state, double health_stall_s)
    : eng_(eng), opts_(opts), codec_(std::move(codec)), metrics_(metrics), state_(state),
      health_stall_s_(health_stall_s) {
  ctx_.codec = codec_.get();
  ctx_.session_len = resolve_session_len(eng_);
  ctx_.vocab_size = codec_ ? codec_->vocab_size() : eng_.model().vocab_size;
  ctx_.max_n = opts_.max_n;
  ctx_.max_json_depth = opts_.max_json_depth;
  ctx_.default_lp_mode = opts_.logprobs_mode == "processed" ? logprobs_mode::processed : logprobs_mode::raw;
  ctx_.reasoning = opts_.reasoning_parser == "qwen3" || opts_.reasoning_parser == "deepseek_r1" ||
                   (opts_.reasoning_parser == "auto" && codec_ &&
                    codec_->chat_template_source().find("<think>") != std::string::npos);
  ctx_.model_name = !opts_.served_model_name.empty() ? opts_.served_model_name
                    : !eng_.model().name.empty()     ? eng_.model().name
                                                     : std::string("troupe");
  ctx_.system_fingerprint = make_system_fingerprint(eng_.model(), ctx_.vocab_size);
}

route_match api_routes::match(std::string_view path) const {
  if (path == "/v1/completions") return {route_id::completions, "POST", true, false};
  if (path == "/v1/chat/completions") return {route_id::chat_completions, "POST", true, false};
  if (path == "/v1/models") return {route_id::models, "GET", true, false};
  if (path.starts_with("/v1/models/")) return {route_id::model, "GET", true, false};
  if (path == "/tokenize") return {route_id::tokenize, "POST", true, false};
  if (path == "/tokenizer_info") return {route_id::tokenizer_info, "GET", true, false};
  if (path == "/detokenize") return {route_id::detokenize, "POST", true, false};
  if (path == "/health") return {route_id::health, "GET", false, true};
  if (path == "/ready") return {route_id::ready, "GET", false, false};
  if (path == "/metrics") return {route_id::metrics, "GET", false, true};
  if (path == "/v1/ws") return {route_id::websocket, "GET", true, false};
  if (path == "/v1/responses") return {route_id::responses, "POST", true, false, "GET"};
  if (path.starts_with("/v1/responses/")) {
    const bool items = path.ends_with("/input_items");
    return {route_id::response_object, "GET", true, false, items ? nullptr : "DELETE"};
  }
  if (path == "/" || path.starts_with("/static/")) return {route_id::static_file, "GET", false, false};
  return {};
}

http_response api_routes::reject(const api_error& e) const {
  metrics_.count_rejection(rejection_reason(e));
  return http_response::error(e);
}

std::optional<http_response> api_routes::admit(const route_match& m, const http_request& req) const {
  if (m.id == route_id::unknown) {
    api_error e{404, "no route " + req.path, "not_found_error", {}, "not_found"};
    return reject(e);
  }
  const bool head_ok = req.method == "HEAD" && std::string_view(m.method) == "GET";
  const bool alt_ok = m.alt_method && req.method == m.alt_method;
  if (req.method != m.method && !head_ok && !alt_ok) {
    const std::string allowed = m.alt_method ? std::string(m.method) + ", " + m.alt_method : std::string(m.method);
    api_error e{405, "method " + req.method + " is not allowed on " + req.path + "; use " + allowed,
                "invalid_request_error", {}, "method_not_allowed"};
    http_response r = reject(e);
    r.headers.emplace_back("Allow", allowed);
    return r;
  }
  if (m.needs_auth && !authorized(opts_.api_key, req.authorization)) {
    api_error e{401, "invalid or missing API key (Authorization: Bearer <key>)", "authentication_error",
                {}, "invalid_api_key"};
    return reject(e);
  }
  return std::nullopt;
}

http_response api_routes::handle_quick(route_id id, const http_request& req) const {
  switch (id) {
    case route_id::models: return models();
    case route_id::model: return model(req.path.substr(std::string_view("/v1/models/").size()));
    case route_id::tokenize: return tokenize(req);
    case route_id::tokenizer_info: return tokenizer_info();
    case route_id::detokenize: return detokenize(req);
    case route_id::ready: return ready();
    case route_id::static_file: return static_page(req.path);
    default: return reject(api_error{500, "route is not a quick route", "internal_error", {}, {}});
  }
}

http_response api_routes::handle_blocking(route_id id) {
  try {
    return id == route_id::health ? health() : metrics_text();
  } catch (const std::exception& e) {
    return reject(api_error{500, e.what(), "internal_error", {}, {}});
  }
}

api_result<openai_request> api_routes::parse_generation(route_id id, const std::string& body) const {
  auto parsed = parse_json_body(body, ctx_.max_json_depth);
  if (is_error(parsed)) return std::get<api_error>(parsed);
  return parse_openai_request(id == route_id::chat_completions ? api_kind::chat : api_kind::completion,
                              std::get<json>(parsed), ctx_, body);
}

json api_routes::model_card() const {
  return json{{"id", ctx_.model_name},       {"object", "model"},
              {"created", static_cast<int64_t>(std::time(nullptr))},
              {"owned_by", "troupe"},        {"root", ctx_.model_name},
              {"max_model_len", ctx_.session_len}};
}

http_response api_routes::models() const {
  return http_response::json(200, dump_json(json{{"object", "list"}, {"data", json::array({model_card()})}}));
}

// GET /v1/models/{id}: the served model by its name (as /v1/models lists it), else OpenAI's 404.
http_response api_routes::model(const std::string& id) const {
  if (id == ctx_.model_name) return http_response::json(200, dump_json(model_card()));
  return reject(api_error{404, "The model '" + id + "' does not exist", "invalid_request_error", "model",
                          "model_not_found"});
}

// vLLM's GET /tokenizer_info, what clients (lm-eval's remote tokenizer) read besides /tokenize and
// /detokenize: the special tokens' text and the context length.
http_response api_routes::tokenizer_info() const {
  if (!codec_ || !codec_->has_tokenizer()) {
    return reject(api_error{404, "this model has no tokenizer", "not_found_error", {}, "not_found"});
  }
  json info = {{"tokenizer_class", "troupe"}, {"model_max_length", ctx_.session_len}};
  const std::string eos = codec_->eos_token(), bos = codec_->bos_token();
  info["eos_token"] = eos.empty() ? json(nullptr) : json(eos);
  info["bos_token"] = bos.empty() ? json(nullptr) : json(bos);
  info["pad_token"] = nullptr;
  return http_response::json(200, dump_json(info));
}

http_response api_routes::tokenize(const http_request& req) const {
  auto body = parse_json_body(req.body, ctx_.max_json_depth);
  if (is_error(body)) return reject(std::get<api_error>(body));
  auto ids = tokenize_body(std::get<json>(body), ctx_);
  if (is_error(ids)) return reject(std::get<api_error>(ids));
  const auto& tokens = std::get<std::vector<int32_t>>(ids);
  return http_response::json(200, dump_json(json{{"tokens", tokens},
                                                 {"count", tokens.size()},
                                                 {"max_model_len", ctx_.session_len}}));
}

http_response api_routes::detokenize(const http_request& req) const {
  auto body = parse_json_body(req.body, ctx_.max_json_depth);
  if (is_error(body)) return reject(std::get<api_error>(body));
  const json& b = std::get<json>(body);
  auto it = b.find("tokens");
  if (it == b.end() || !it->is_array()) return reject(bad_request("tokens must be a list of token ids", "tokens"));
  std::vector<int32_t> ids;
  for (const json& v : *it) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
        (ctx_.vocab_size > 0 && v.get<int64_t>() >= ctx_.vocab_size)) {
      return reject(bad_request("token id " + describe_json(v) + " is not in the vocabulary", "tokens"));
    }
    ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  if (!codec_ || !codec_->has_tokenizer()) {
    return reject(bad_request("this model has no tokenizer", "tokens", "unsupported"));
  }
  auto text = codec_->decode(ids, false);
  if (!text.ok()) return reject(to_api_error(text.err()));
  return http_response::json(200, dump_json(json{{"prompt", text.value()}}));
}

http_response api_routes::static_page(std::string_view path) const {
  auto f = find_static_file(path);
  if (!f) return reject(api_error{404, "no file " + std::string(path), "not_found_error", {}, "not_found"});
  http_response r = http_response::text(200, std::string(f->body), std::string(f->content_type));
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

http_response api_routes::ready() const {
  if (state_.started.load() && !state_.draining.load()) {
    return http_response::json(200, R"({"status":"ready"})");
  }
  http_response r = http_response::json(
      503, state_.draining.load() ? R"({"status":"draining"})" : R"({"status":"starting"})");
  r.headers.emplace_back("Retry-After", "5");
  return r;
}

http_response api_routes::health() {
  auto stats = eng_.stats(k_stats_timeout);
  if (!stats.ok()) {
    return http_response::json(503, dump_json(json{{"status", "unhealthy"}, {"reason", stats.err().to_string()}}));
  }
  const engine_stats& s = stats.value();
  if (s.busy && s.last_step_age_s > health_stall_s_) {
    return http_response::json(503, dump_json(json{{"status", "unhealthy"},
                                                   {"reason", "no forward step completed for " +
                                                                  prom_number(s.last_step_age_s) + " s"}}));
  }
  return http_response::json(200, R"({"status":"ok"})");
}

http_response api_routes::metrics_text() {
  auto stats = eng_.stats(k_stats_timeout);
  metrics_view v;
  if (stats.ok()) v.stats = &stats.value();
  v.plan = &eng_.plan();
  v.ranks = eng_.rank_memory();
  v.model_name = ctx_.model_name;
  return http_response::text(200, render_metrics(metrics_, v) + eng_.cluster_metrics() +
                                      (extra_metrics ? extra_metrics() : std::string()),
                             "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace troupe
