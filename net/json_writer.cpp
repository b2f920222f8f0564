// json_writer (see json_writer.h). Design note: the escaping follows nlohmann's serializer (3.11,
// dump_escaped) step by step: the same UTF-8 decoder (Bjoern Hoehrmann's DFA), and on an invalid
// byte the same recovery (drop the bytes of the broken sequence, write U+FFFD, read the byte again
// unless it began the sequence). ASCII outside a sequence skips the decoder: the fast path.
#include "net/json_writer.h"

#include <array>
#include <charconv>

namespace troupe {
namespace {

constexpr uint8_t k_accept = 0;
constexpr uint8_t k_reject = 1;

uint8_t decode(uint8_t& state, uint32_t& codep, uint8_t byte) {
  static constexpr std::array<uint8_t, 400> utf8d = {{
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // 00..1F
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // 20..3F
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // 40..5F
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // 60..7F
      1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,  // 80..9F
      7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,  // A0..BF
      8, 8, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  // C0..DF
      0xA, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x4, 0x3, 0x3,                  // E0..EF
      0xB, 0x6, 0x6, 0x6, 0x5, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8,                  // F0..FF
      0x0, 0x1, 0x2, 0x3, 0x5, 0x8, 0x7, 0x1, 0x1, 0x1, 0x4, 0x6, 0x1, 0x1, 0x1, 0x1,                  // s0..s0
      1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1,  // s1..s2
      1, 2, 1, 1, 1, 1, 1, 2, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1,  // s3..s4
      1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1, 3, 1, 1, 1, 1, 1, 1,  // s5..s6
      1, 3, 1, 1, 1, 1, 1, 3, 1, 3, 1, 1, 1, 1, 1, 1, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  // s7..s8
  }};
  const uint8_t type = utf8d[byte];
  codep = state != k_accept ? (byte & 0x3fu) | (codep << 6u) : (0xFFu >> type) & byte;
  state = utf8d[256u + state * 16u + type];
  return state;
}

// One code point below 0x80, escaped as JSON needs it.
void append_ascii(std::string& out, uint8_t c) {
  static constexpr char hex[] = "0123456789abcdef";
  switch (c) {
    case '\b': out += "\\b"; return;
    case '\t': out += "\\t"; return;
    case '\n': out += "\\n"; return;
    case '\f': out += "\\f"; return;
    case '\r': out += "\\r"; return;
    case '"': out += "\\\""; return;
    case '\\': out += "\\\\"; return;
    default: break;
  }
  if (c <= 0x1f) {
    const char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
    out.append(esc, sizeof esc);
    return;
  }
  out += static_cast<char>(c);
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  uint8_t state = k_accept;
  uint32_t codepoint = 0;
  size_t after_last_accept = out.size();  // where the output stood after the last whole code point
  size_t undumped = 0;                    // bytes of the sequence being decoded
  for (size_t i = 0; i < s.size(); ++i) {
    const auto byte = static_cast<uint8_t>(s[i]);
    if (state == k_accept && byte < 0x80) {
      append_ascii(out, byte);
      after_last_accept = out.size();
      undumped = 0;
      continue;
    }
    switch (decode(state, codepoint, byte)) {
      case k_accept:
        if (codepoint < 0x80) append_ascii(out, static_cast<uint8_t>(codepoint));
        else out += s[i];  // the sequence's earlier bytes were copied as they came
        after_last_accept = out.size();
        undumped = 0;
        break;
      case k_reject:
        if (undumped > 0) --i;  // the byte may begin a sequence of its own: read it again
        out.resize(after_last_accept);
        out += "\xEF\xBF\xBD";
        after_last_accept = out.size();
        undumped = 0;
        state = k_accept;
        break;
      default:  // inside a multi-byte sequence
        out += s[i];
        ++undumped;
        break;
    }
  }
  if (state != k_accept) {  // the string ended inside a sequence
    out.resize(after_last_accept);
    out += "\xEF\xBF\xBD";
  }
  out += '"';
}

void append_json_int(std::string& out, int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

json_writer& json_writer::key(std::string_view k) {
  separate();
  append_json_string(out_, k);
  out_ += ':';
  need_comma_ = false;
  return *this;
}

json_writer& json_writer::string(std::string_view s) {
  separate();
  append_json_string(out_, s);
  need_comma_ = true;
  return *this;
}

json_writer& json_writer::integer(int64_t v) {
  separate();
  append_json_int(out_, v);
  need_comma_ = true;
  return *this;
}

json_writer& json_writer::boolean(bool v) {
  separate();
  out_ += v ? "true" : "false";
  need_comma_ = true;
  return *this;
}

json_writer& json_writer::null() {
  separate();
  out_ += "null";
  need_comma_ = true;
  return *this;
}

json_writer& json_writer::open(char c) {
  separate();
  out_ += c;
  need_comma_ = false;
  return *this;
}

json_writer& json_writer::close(char c) {
  out_ += c;
  need_comma_ = true;
  return *this;
}

void json_writer::separate() {
  if (need_comma_) out_ += ',';
}

}  // namespace troupe
