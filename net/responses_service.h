// The Responses API between the sessions and the store: preparing a response (parse, resolve
// previous_response_id into the conversation, map onto a generation), the state of one running
// response (response_run), recording it in the store once done, and the stored-response routes
// (GET/DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items). No sockets here: HTTP and
// WebSocket sessions share it.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "actors/conversation_cache.h"
#include "net/http_message.h"
#include "net/response_store.h"
#include "net/responses_events.h"

namespace troupe {

// One response from its request to its end: what was asked, the generation, the conversation
// before its output, and the builder of its events and object.
struct response_run {
  response_run(responses_params p, openai_request g, nlohmann::json conv, std::string owner, std::string model);

  responses_params params;
  openai_request gen;
  nlohmann::json conversation;  // chat messages of the prompt, instructions excluded
  std::string owner;
  response_builder builder;

  // The entry to store once done (output appended to the conversation).
  stored_response entry() const;
};

// The API key of an Authorization header ("Bearer KEY" -> "KEY"; "" when none).
std::string bearer_token(std::string_view authorization);

// Parses `body` and builds the run. previous_response_id is looked up in `store` for `owner`, or
// matches `local` (a WebSocket connection's last response, stored or not); unknown -> 404.
api_result<std::unique_ptr<response_run>> prepare_response(const nlohmann::json& body, bool websocket,
                                                           response_store& store, const std::string& owner,
                                                           const api_context& ctx,
                                                           const stored_response* local = nullptr,
                                                           std::string_view raw = {});

// Routes on stored responses: GET / DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items
// (query: order=asc|desc, limit=1..100, after=<item id>). Another key's id is a 404 as an unknown one.
http_response stored_response_route(response_store& store, const http_request& req, const std::string& owner);

// The key of a response's conversation pin (actors/conversation_cache.h).
uint64_t conversation_key(const std::string& response_id);

// After a response ends: stores it (store: true), pins its prompt + output KV for the next turn
// when `cache` is set and the response is stored or `keep_pinned` (an open socket holds it), lets
// the previous turn's pin go (this one covers it), and counts a continued turn's cached tokens.
// Returns the entry (a socket keeps it as its last response).
std::shared_ptr<const stored_response> settle_response(const response_run& run, response_store& store,
                                                       conversation_cache* cache, bool keep_pinned);

// The 404 of an unknown response id, in OpenAI's shape.
api_error response_not_found(const std::string& id, const char* param);

}  // namespace troupe
