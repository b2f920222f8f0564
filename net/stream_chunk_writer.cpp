// The plain streaming chunk (see stream_chunk_writer.h). Keys in stream_chunk's order: id, object,
// created, model, system_fingerprint (when set), choices [{index, delta {role?, content} | text,
// logprobs: null, finish_reason}], usage: null (with include_usage).
#include "net/stream_chunk_writer.h"

#include "net/json_writer.h"

namespace troupe {

bool is_plain_stream_chunk(const response_meta& meta, const generation_event& ev, bool first_of_choice) {
  const bool echo_now = first_of_choice && meta.echo && meta.kind == api_kind::completion;
  const bool logprobs = meta.logprobs >= 0 && !ev.logprobs.empty();
  const bool prompt_logprobs = meta.prompt_logprobs >= 0 && first_of_choice;
  return !echo_now && !logprobs && !prompt_logprobs;
}

bool append_plain_stream_chunk(std::string& out, const response_meta& meta, const generation_event& ev,
                               bool first_of_choice, bool include_usage, int64_t& text_offset) {
  if (!is_plain_stream_chunk(meta, ev, first_of_choice)) return false;
  const bool chat = meta.kind == api_kind::chat;
  json_writer w(out);
  w.begin_object();
  w.key("id").string(meta.id);
  w.key("object").string(chat ? "chat.completion.chunk" : "text_completion");
  w.key("created").integer(meta.created);
  w.key("model").string(meta.model);
  if (!meta.system_fingerprint.empty()) w.key("system_fingerprint").string(meta.system_fingerprint);
  w.key("choices").begin_array().begin_object();
  w.key("index").integer(ev.index);
  if (chat) {
    w.key("delta").begin_object();
    if (first_of_choice) w.key("role").string("assistant");
    w.key("content").string(ev.text);
    w.end_object();
  } else {
    w.key("text").string(ev.text);
  }
  w.key("logprobs").null();
  w.key("finish_reason");
  if (const char* reason = openai_finish_reason(ev.finish)) {
    w.string(reason);
  } else {
    w.null();
  }
  w.end_object().end_array();
  if (include_usage) w.key("usage").null();
  w.end_object();
  text_offset += static_cast<int64_t>(ev.text.size());
  return true;
}

}  // namespace troupe
