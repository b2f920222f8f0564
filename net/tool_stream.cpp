// The tool-call stream (see tool_stream.h). Each stage scans from pos_ and either completes
// (pos_ moves on), needs more text (retried from the same pos_ on the next piece), or fails: then
// the text is plain content if nothing marked it as a call yet, else the rest is held for finish().
// Only the canonical shape is streamed ({"name": ..., "arguments": {...}}, name first, as the
// grammar writes it); anything else the final parse still reads.
#include "net/tool_stream.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "net/json_raw.h"
#include "net/pythonic_calls.h"

namespace troupe {
namespace {

bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

void skip_ws(std::string_view s, size_t& p) {
  while (p < s.size() && is_ws(s[p])) ++p;
}

// The literal `lit` at p: ok (p moves past it), more (the text ends inside it) or fail.
enum class lit_step : uint8_t { ok, more, fail };
lit_step expect(std::string_view s, size_t& p, std::string_view lit) {
  const size_t n = std::min(lit.size(), s.size() - p);
  if (s.substr(p, n) != lit.substr(0, n)) return lit_step::fail;
  if (n < lit.size()) return lit_step::more;
  p += lit.size();
  return lit_step::ok;
}

// The length of `s` without a UTF-8 sequence cut off at its end (never sent half).
size_t whole_utf8(std::string_view s) {
  size_t back = 0;
  while (back < s.size() && back < 4 && (static_cast<unsigned char>(s[s.size() - 1 - back]) & 0xC0) == 0x80) ++back;
  if (back == s.size()) return s.size();
  const auto lead = static_cast<unsigned char>(s[s.size() - 1 - back]);
  const size_t len = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  return len > back + 1 ? s.size() - 1 - back : s.size();
}

// The longest suffix of `s` that is a proper prefix of `tag`.
size_t partial_tag(std::string_view s, std::string_view tag) {
  for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n) {
    if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

std::string_view call_tag(tool_format f) { return f == tool_format::hermes ? "<tool_call>" : "[TOOL_CALLS]"; }

}  // namespace

tool_stream::tool_stream(tool_format format, std::vector<std::string> known)
    : format_(format), known_(std::move(known)) {}

tool_delta tool_stream::feed(std::string_view text) {
  text_.append(text);
  tool_delta out;
  run(out);
  return out;
}

void tool_stream::emit_content(std::string_view s, tool_delta& out) {
  out.content.append(s);
  sent_content_.append(s);
}

void tool_stream::run(tool_delta& out) {
  while (!held_) {
    if (passthrough_) {
      const size_t end = whole_utf8(text_);
      if (end > pos_) emit_content(std::string_view(text_).substr(pos_, end - pos_), out);
      pos_ = std::max(pos_, end);
      return;
    }
    const step r = advance(out);
    if (r == step::more) return;
    if (r == step::fail) {
      // Nothing marks the text as a call: it is the answer's content, from its first byte.
      if (sent_calls_.empty() && sent_content_.empty() && !tagged_) {
        passthrough_ = true;
        pos_ = 0;
      } else {
        held_ = true;
      }
    }
  }
}

tool_stream::step tool_stream::advance(tool_delta& out) {
  const std::string_view s = text_;
  size_t p = pos_;
  const auto lit = [&](std::string_view l) {
    const lit_step r = expect(s, p, l);
    return r == lit_step::ok ? step::ok : r == lit_step::more ? step::more : step::fail;
  };
  const auto go = [&](stage next) {
    pos_ = p;
    stage_ = next;
    return step::ok;
  };
  switch (stage_) {
    case stage::lead:
      if (format_ == tool_format::hermes || format_ == tool_format::mistral) return go(stage::prose);
      skip_ws(s, p);
      if ((format_ == tool_format::llama3 || format_ == tool_format::pythonic) && p < s.size() && s[p] == '<') {
        if (const step r = lit("<|python_tag|>"); r != step::ok) return r;
        tagged_ = true;
        skip_ws(s, p);
      }
      if (p >= s.size()) return step::more;
      if (format_ == tool_format::generic && s[p] == '{') return ++p, go(stage::envelope_key);
      if (format_ == tool_format::llama3 && s[p] == '{') return go(stage::call_head);
      if (format_ == tool_format::pythonic && s[p] == '[') return ++p, go(stage::py_name);
      return step::fail;
    case stage::prose:
      return prose(out);
    case stage::envelope_key: {
      skip_ws(s, p);
      const size_t at = p;
      if (const step r = lit("\"tool_calls\""); r != step::fail) return r == step::ok ? go(stage::calls_open) : r;
      p = at;
      if (const step r = lit("\"content\""); r != step::fail) return r == step::ok ? go(stage::content_colon) : r;
      return step::fail;
    }
    case stage::content_colon: {
      skip_ws(s, p);
      if (const step r = lit(":"); r != step::ok) return r;
      skip_ws(s, p);
      if (p >= s.size()) return step::more;
      if (s[p] == '"') return ++p, go(stage::content_string);
      if (s[p] != '{' && s[p] != '[') return step::fail;
      depth_ = 0;
      in_string_ = escape_ = false;
      return go(stage::content_value);
    }
    case stage::content_string:
      return stream_string(out);
    case stage::content_value: {
      std::string frag;
      const step r = stream_value(frag, stage::envelope_end);
      emit_content(frag, out);
      return r;
    }
    case stage::envelope_end:
      skip_ws(s, p);
      if (const step r = lit("}"); r != step::ok) return r;
      return go(stage::end);
    case stage::calls_open:
      skip_ws(s, p);
      if (format_ == tool_format::generic) {
        if (const step r = lit(":"); r != step::ok) return r;
        skip_ws(s, p);
      }
      if (const step r = lit("["); r != step::ok) return r;
      return go(stage::call_head);
    case stage::call_head:
      return call_head(out);
    case stage::call_key: {
      skip_ws(s, p);
      if (const step r = lit(","); r != step::ok) return r;
      skip_ws(s, p);
      const size_t at = p;
      step r = lit("\"arguments\"");
      if (r == step::fail && format_ != tool_format::generic) {
        p = at;
        r = lit("\"parameters\"");
      }
      if (r != step::ok) return r;
      skip_ws(s, p);
      if (const step c = lit(":"); c != step::ok) return c;
      skip_ws(s, p);
      if (p >= s.size()) return step::more;
      if (s[p] != '{') return step::fail;  // arguments as JSON text: the final parse reads them
      depth_ = 0;
      in_string_ = escape_ = false;
      return go(stage::call_args);
    }
    case stage::call_args: {
      std::string frag;
      const step r = stream_value(frag, stage::call_close);
      emit_arguments(std::move(frag), out);
      return r;
    }
    case stage::call_close:
      skip_ws(s, p);
      if (const step r = lit("}"); r != step::ok) return r;
      return go(stage::after_call);
    case stage::after_call:
      return after_call();
    case stage::next_tag:
      skip_ws(s, p);
      if (p >= s.size()) return pos_ = p, step::more;
      if (const step r = lit("<tool_call>"); r != step::ok) return r;
      return go(stage::call_head);
    case stage::py_name:
      return pythonic_name(out);
    case stage::py_args:
      return pythonic_argument(out);
    case stage::py_after:
      skip_ws(s, p);
      if (p >= s.size()) return step::more;
      if (s[p] == ',') return ++p, go(stage::py_name);
      if (s[p] == ']') return ++p, go(stage::end);
      return step::fail;
    case stage::end:
      skip_ws(s, p);
      pos_ = p;
      return p < s.size() ? step::fail : step::more;
  }
  return step::fail;
}

// Hermes / Mistral prose before the first call tag: sent as content, except a tail that could be
// the tag's start and the whitespace before it (the final parse trims it when calls follow).
tool_stream::step tool_stream::prose(tool_delta& out) {
  const std::string_view tag = call_tag(format_);
  const std::string_view rest = std::string_view(text_).substr(pos_);
  const size_t at = rest.find(tag);
  size_t keep = at != std::string_view::npos ? at : whole_utf8(rest) - partial_tag(rest.substr(0, whole_utf8(rest)), tag);
  size_t send = keep;
  while (send > 0 && is_ws(rest[send - 1])) --send;
  if (send > 0) emit_content(rest.substr(0, send), out);
  pos_ += send;
  if (at == std::string_view::npos) return step::more;
  tagged_ = true;
  pos_ += (at - send) + tag.size();
  stage_ = format_ == tool_format::hermes ? stage::call_head : stage::calls_open;
  return step::ok;
}

// {"name": "<known tool>", ...: the call's head is sent.
tool_stream::step tool_stream::call_head(tool_delta& out) {
  const std::string_view s = text_;
  size_t p = pos_;
  skip_ws(s, p);
  for (std::string_view l : {"{", "\"name\""}) {
    if (const lit_step r = expect(s, p, l); r != lit_step::ok) return r == lit_step::more ? step::more : step::fail;
    skip_ws(s, p);
  }
  if (const lit_step r = expect(s, p, ":"); r != lit_step::ok) return r == lit_step::more ? step::more : step::fail;
  skip_ws(s, p);
  if (p >= s.size()) return step::more;
  if (s[p] != '"') return step::fail;
  const size_t end = json_value_end(s, p);
  if (end == std::string_view::npos) return step::more;
  const nlohmann::json name = nlohmann::json::parse(s.substr(p, end - p), nullptr, false);
  if (!name.is_string() || std::find(known_.begin(), known_.end(), name.get<std::string>()) == known_.end()) {
    return step::fail;
  }
  tagged_ = true;
  sent_calls_.push_back({name.get<std::string>(), {}});
  out.calls.push_back({static_cast<int32_t>(sent_calls_.size()) - 1, true, name.get<std::string>(), {}});
  pos_ = end;
  stage_ = stage::call_key;
  return step::ok;
}

void tool_stream::emit_arguments(std::string frag, tool_delta& out) {
  if (frag.empty()) return;
  sent_calls_.back().arguments += frag;
  out.calls.push_back({static_cast<int32_t>(sent_calls_.size()) - 1, false, {}, std::move(frag)});
}

// Pythonic `name(`: the call's head once the name is whole and known, and its arguments' "{".
// Design note: a pythonic call is Python, not JSON, so its arguments are sent one keyword at a
// time, each converted once its value is whole, exactly as the final parse writes them
// ({"k":v,...}: the keyword as a JSON string, the value as compact JSON).
tool_stream::step tool_stream::pythonic_name(tool_delta& out) {
  const std::string_view s = text_;
  size_t p = pos_;
  skip_ws(s, p);
  const size_t start = p;
  while (p < s.size() && pythonic_name_char(s[p])) ++p;
  const std::string name(s.substr(start, p - start));
  skip_ws(s, p);
  if (p >= s.size()) return step::more;  // the name may go on
  if (s[p] != '(' || std::find(known_.begin(), known_.end(), name) == known_.end()) return step::fail;
  tagged_ = true;
  sent_calls_.push_back({name, {}});
  out.calls.push_back({static_cast<int32_t>(sent_calls_.size()) - 1, true, name, {}});
  emit_arguments("{", out);
  py_keys_.clear();
  pos_ = p + 1;
  stage_ = stage::py_args;
  return step::ok;
}

// One `key=value` (sent once the value is whole and followed by ',' or ')'), or the call's ')'.
tool_stream::step tool_stream::pythonic_argument(tool_delta& out) {
  const std::string_view s = text_;
  size_t p = pos_;
  skip_ws(s, p);
  if (p >= s.size()) return step::more;
  if (s[p] == ')') {
    emit_arguments("}", out);
    pos_ = p + 1;
    stage_ = stage::py_after;
    return step::ok;
  }
  const size_t start = p;
  while (p < s.size() && pythonic_name_char(s[p])) ++p;
  const std::string key(s.substr(start, p - start));
  skip_ws(s, p);
  if (p >= s.size()) return step::more;
  if (key.empty() || std::isdigit(static_cast<unsigned char>(key[0])) || s[p] != '=') return step::fail;
  const auto value = pythonic_literal_json(s.substr(p + 1));
  if (!value) return step::more;  // not whole yet; if it never is, the final parse decides
  size_t q = p + 1 + value->second;
  skip_ws(s, q);
  if (q >= s.size()) return step::more;  // a number may go on
  if (s[q] != ',' && s[q] != ')') return step::fail;
  if (std::find(py_keys_.begin(), py_keys_.end(), key) != py_keys_.end()) return step::fail;
  py_keys_.push_back(key);
  emit_arguments((py_keys_.size() > 1 ? "," : "") + nlohmann::json(key).dump() + ":" + value->first, out);
  pos_ = s[q] == ',' ? q + 1 : q;
  return step::ok;
}

// Between calls: the format's separator and the next call, or the end of the list.
tool_stream::step tool_stream::after_call() {
  const std::string_view s = text_;
  size_t p = pos_;
  skip_ws(s, p);
  if (p >= s.size()) return step::more;
  const auto go = [&](stage next) {
    pos_ = p + 1;
    stage_ = next;
    return step::ok;
  };
  switch (format_) {
    case tool_format::generic:
      if (s[p] == ',') return go(stage::call_head);
      if (s[p] == ']') return go(stage::envelope_end);
      return step::fail;
    case tool_format::mistral:
      if (s[p] == ',') return go(stage::call_head);
      if (s[p] == ']') return go(stage::end);
      return step::fail;
    case tool_format::llama3:
      return s[p] == ';' ? go(stage::call_head) : step::fail;
    case tool_format::hermes: {
      const lit_step r = expect(s, p, "</tool_call>");
      if (r != lit_step::ok) return r == lit_step::more ? step::more : step::fail;
      pos_ = p;
      stage_ = stage::next_tag;
      return step::ok;
    }
    case tool_format::pythonic:
      break;
  }
  return step::fail;
}

// A JSON object or array, sent as it is written (whitespace outside strings dropped) until it
// closes; then `next`.
tool_stream::step tool_stream::stream_value(std::string& out, stage next) {
  const std::string_view s = std::string_view(text_).substr(0, whole_utf8(text_));
  for (size_t i = pos_; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      out += c;
      continue;
    }
    if (is_ws(c)) continue;
    out += c;
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if ((c == '}' || c == ']') && --depth_ == 0) {
      pos_ = i + 1;
      stage_ = next;
      return step::ok;
    }
  }
  pos_ = std::max(pos_, s.size());
  return step::more;
}

// The envelope's content string, decoded as far as it is whole (not inside an escape).
tool_stream::step tool_stream::stream_string(tool_delta& out) {
  const std::string_view s = std::string_view(text_).substr(0, whole_utf8(text_));
  size_t i = pos_, safe = pos_;
  bool closed = false;
  while (i < s.size()) {
    if (s[i] == '"') {
      closed = true;
      break;
    }
    if (s[i] != '\\') {
      safe = ++i;
      continue;
    }
    if (i + 1 >= s.size()) break;
    size_t len = s[i + 1] == 'u' ? 6 : 2;
    if (len == 6 && i + 6 <= s.size() && (s[i + 2] == 'd' || s[i + 2] == 'D') &&
        std::string_view("89abAB").find(s[i + 3]) != std::string_view::npos) {
      len = 12;  // a high surrogate: decoded with the low one after it
    }
    if (i + len > s.size()) break;
    safe = i += len;
  }
  if (safe > pos_) {
    const nlohmann::json piece = nlohmann::json::parse("\"" + std::string(s.substr(pos_, safe - pos_)) + "\"", nullptr, false);
    if (!piece.is_string()) return step::fail;
    emit_content(piece.get<std::string>(), out);
    pos_ = safe;
  }
  if (!closed) return step::more;
  pos_ = i + 1;
  stage_ = stage::envelope_end;
  return step::ok;
}

tool_delta tool_stream::finish(finish_reason fin, bool& calls) {
  const tool_output final_out = parse_native_tool_output(format_, text_, known_);
  calls = final_out.is_calls && fin == finish_reason::stop;
  tool_delta out;
  const std::string& content = calls || !final_out.is_calls ? final_out.content : text_;
  if (starts_with(content, sent_content_) && (calls || sent_calls_.empty())) {
    out.content = content.substr(sent_content_.size());
  }
  if (!calls) return out;
  for (size_t i = 0; i < final_out.calls.size(); ++i) {
    const parsed_tool_call& c = final_out.calls[i];
    const auto index = static_cast<int32_t>(i);
    if (i >= sent_calls_.size()) {
      out.calls.push_back({index, true, c.name, {}});
      out.calls.push_back({index, false, {}, c.arguments});
    } else if (sent_calls_[i].name == c.name && starts_with(c.arguments, sent_calls_[i].arguments) &&
               c.arguments.size() > sent_calls_[i].arguments.size()) {
      out.calls.push_back({index, false, {}, c.arguments.substr(sent_calls_[i].arguments.size())});
    }
  }
  return out;
}

}  // namespace troupe
