// A tiny GGUF writer for tests: header, typed metadata, tensor infos and aligned data, written the
// way gguf-py's GGUFWriter lays a file out, so tests can build valid files and then break them.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <string>
#include <vector>

namespace troupe::test {

class gguf_writer {
 public:
  uint32_t version = 3;
  uint64_t alignment = 32;  // used for padding; write general.alignment yourself to change it

  template <class T>
  static void put(std::vector<uint8_t>& b, T v) {
    uint8_t raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    b.insert(b.end(), raw, raw + sizeof(T));
  }
  static void put_str(std::vector<uint8_t>& b, const std::string& s) {
    put<uint64_t>(b, s.size());
    b.insert(b.end(), s.begin(), s.end());
  }

  // A scalar of GGUF type `type` (0..12 except 8/9) holding the bytes of `v`.
  template <class T>
  void kv_scalar(const std::string& key, uint32_t type, T v) {
    begin_kv(key, type);
    put<T>(kv_, v);
  }
  void kv_u32(const std::string& key, uint32_t v) { kv_scalar(key, 4, v); }
  void kv_i32(const std::string& key, int32_t v) { kv_scalar(key, 5, v); }
  void kv_f32(const std::string& key, float v) { kv_scalar(key, 6, v); }
  void kv_bool(const std::string& key, bool v) { kv_scalar<uint8_t>(key, 7, v ? 1 : 0); }
  void kv_string(const std::string& key, const std::string& v) {
    begin_kv(key, 8);
    put_str(kv_, v);
  }
  void kv_strings(const std::string& key, const std::vector<std::string>& v) {
    begin_kv(key, 9);
    put<uint32_t>(kv_, 8);
    put<uint64_t>(kv_, v.size());
    for (const auto& s : v) put_str(kv_, s);
  }
  template <class T>
  void kv_array(const std::string& key, uint32_t elem_type, const std::vector<T>& v) {
    begin_kv(key, 9);
    put<uint32_t>(kv_, elem_type);
    put<uint64_t>(kv_, v.size());
    for (const T& x : v) put<T>(kv_, x);
  }
  // Raw bytes after the key (type and value written by the caller): for malformed values.
  void kv_raw(const std::string& key, const std::vector<uint8_t>& bytes) {
    put_str(kv_, key);
    kv_.insert(kv_.end(), bytes.begin(), bytes.end());
    ++num_kv_;
  }

  // dims in GGUF order (ne0 first). `data` are the tensor's bytes; the offset is assigned aligned.
  void tensor(const std::string& name, std::vector<int64_t> dims, uint32_t type, std::vector<uint8_t> data) {
    tensors_.push_back({name, std::move(dims), type, std::move(data)});
  }
  void tensor_f32(const std::string& name, std::vector<int64_t> dims, const std::vector<float>& v) {
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    tensor(name, std::move(dims), 0, std::move(b));
  }

  // The whole file; the last tensor's data ends exactly at the end of the file.
  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> b;
    put<uint32_t>(b, 0x46554747);
    put<uint32_t>(b, version);
    put<uint64_t>(b, tensors_.size());
    put<uint64_t>(b, num_kv_);
    b.insert(b.end(), kv_.begin(), kv_.end());
    uint64_t off = 0;
    for (const auto& t : tensors_) {
      put_str(b, t.name);
      put<uint32_t>(b, static_cast<uint32_t>(t.dims.size()));
      for (int64_t d : t.dims) put<int64_t>(b, d);
      put<uint32_t>(b, t.type);
      put<uint64_t>(b, off);
      off = align(off + t.data.size());
    }
    b.resize(align(b.size()), 0);
    for (size_t k = 0; k < tensors_.size(); ++k) {
      b.insert(b.end(), tensors_[k].data.begin(), tensors_[k].data.end());
      if (k + 1 < tensors_.size()) b.resize(align(b.size()), 0);
    }
    return b;
  }

  std::filesystem::path write(const std::filesystem::path& path) const {
    const auto b = bytes();
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    return path;
  }

 private:
  struct tensor_spec {
    std::string name;
    std::vector<int64_t> dims;
    uint32_t type;
    std::vector<uint8_t> data;
  };
  void begin_kv(const std::string& key, uint32_t type) {
    put_str(kv_, key);
    put<uint32_t>(kv_, type);
    ++num_kv_;
  }
  uint64_t align(uint64_t x) const { return (x + alignment - 1) / alignment * alignment; }

  std::vector<uint8_t> kv_;
  uint64_t num_kv_ = 0;
  std::vector<tensor_spec> tensors_;
};

// A fresh temporary folder per test, removed at the end.
struct temp_dir {
  std::filesystem::path path;
  explicit temp_dir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() /
           ("troupe_" + tag + "_" + std::to_string(reinterpret_cast<uintptr_t>(this)) + "_" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace troupe::test
