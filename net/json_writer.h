// json_writer: compact JSON appended to a caller's buffer, for the hot streaming path where a
// nlohmann tree per chunk would cost a dozen heap allocations. Strings are escaped byte for byte as
// dump_json (nlohmann's dump, error_handler replace, ensure_ascii off) escapes them, so a chunk
// written here equals the tree's; net/stream_chunk_writer.h uses it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace troupe {

// `s` as a quoted JSON string: `"` and `\` escaped, \b \f \n \r \t short, other control characters
// as \u00XX, invalid UTF-8 replaced by U+FFFD exactly where nlohmann's decoder replaces it.
void append_json_string(std::string& out, std::string_view s);
void append_json_int(std::string& out, int64_t v);

// Appends one value at a time; commas are placed by the writer. Appends only: it allocates nothing
// once `out` has the capacity (keep and clear a buffer between uses).
class json_writer {
 public:
  explicit json_writer(std::string& out) : out_(out) {}

  json_writer& begin_object() { return open('{'); }
  json_writer& end_object() { return close('}'); }
  json_writer& begin_array() { return open('['); }
  json_writer& end_array() { return close(']'); }
  json_writer& key(std::string_view k);  // the next call writes its value
  json_writer& string(std::string_view s);
  json_writer& integer(int64_t v);
  json_writer& boolean(bool v);
  json_writer& null();

 private:
  json_writer& open(char c);
  json_writer& close(char c);
  void separate();  // a comma before the second and later members or elements

  std::string& out_;
  bool need_comma_ = false;
};

}  // namespace troupe
