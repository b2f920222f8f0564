// One GGUF file (v2 or v3, little-endian): the header, typed metadata and the tensor table, parsed
// from a single read-only memory mapping that the object keeps; tensor data are views into it.
// Every count, length and offset is checked against the file before use, so arbitrary bytes give
// an error (errc::corrupt_file / errc::unsupported naming the file), never a crash.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/error.h"

namespace troupe {

// GGUF metadata value types (gguf.h enum gguf_type); stable numbers.
enum class gguf_type : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
  string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};

const char* gguf_type_name(gguf_type t);

// One metadata value. Views point into the file's mapping and live as long as the gguf_file.
struct gguf_value {
  gguf_type type = gguf_type::u8;
  gguf_type elem_type = gguf_type::u8;  // arrays only; never array (nested arrays are rejected)

  uint64_t u = 0;         // unsigned ints and bool
  int64_t i = 0;          // signed ints
  double f = 0.0;         // f32 / f64
  std::string_view str;   // string

  uint64_t count = 0;                    // arrays: number of elements
  const uint8_t* elems = nullptr;        // numeric arrays: raw little-endian elements, unaligned
  std::vector<std::string_view> strings; // string arrays: [count]

  bool is_array() const { return type == gguf_type::array; }
  // Scalars: any integer type or bool as int64 (nullopt for a u64 beyond int64 or a non-integer).
  std::optional<int64_t> as_int() const;
  // Scalars: any numeric type as double.
  std::optional<double> as_float() const;
  std::optional<bool> as_bool() const;
  std::optional<std::string_view> as_string() const;
  // Numeric arrays: element k (< count) converted like the scalar accessors.
  std::optional<int64_t> int_at(uint64_t k) const;
  std::optional<double> float_at(uint64_t k) const;
};

// One tensor info. dims are in GGUF order: dims[0] (ne0) is the innermost, contiguous one.
struct gguf_tensor {
  std::string name;
  uint32_t type = 0;             // ggml_type id
  std::vector<int64_t> dims;     // [n_dims], 1..4 entries, each >= 0
  int64_t num_elements = 0;
  uint64_t offset = 0;           // absolute offset of the data in the file
  uint64_t num_bytes = 0;
  const uint8_t* data = nullptr; // [num_bytes] inside the mapping
};

class gguf_file {
 public:
  // Maps `path` read-only and parses it. The mapping is kept until the last reference goes.
  static result<std::shared_ptr<const gguf_file>> open(const std::filesystem::path& path);
  // Parses bytes already in memory (tests, fuzzing); the caller keeps `data` alive.
  static result<std::shared_ptr<const gguf_file>> parse(const uint8_t* data, size_t size, std::string origin);

  ~gguf_file();
  gguf_file(const gguf_file&) = delete;
  gguf_file& operator=(const gguf_file&) = delete;

  const std::string& origin() const { return origin_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return size_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, gguf_value>>& metadata() const { return kv_; }
  const gguf_value* find(std::string_view key) const;
  const std::vector<gguf_tensor>& tensors() const { return tensors_; }
  const gguf_tensor* find_tensor(std::string_view name) const;

  // Typed look-ups: nullopt when the key is absent; an error naming the file and the key when it
  // is present with an incompatible type.
  result<std::optional<int64_t>> get_int(std::string_view key) const;
  result<std::optional<double>> get_float(std::string_view key) const;
  result<std::optional<bool>> get_bool(std::string_view key) const;
  result<std::optional<std::string>> get_string(std::string_view key) const;

 private:
  gguf_file() = default;
  status parse_all();

  std::string origin_;
  const uint8_t* base_ = nullptr;  // [size_] the whole file
  uint64_t size_ = 0;
  void* mapping_ = nullptr;        // owned mmap, or nullptr for parse()
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, gguf_value>> kv_;
  std::vector<gguf_tensor> tensors_;
};

}  // namespace troupe
