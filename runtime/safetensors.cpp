// Safetensors reader: maps each file once, validates its JSON header against the file size, and
// converts F32/F16/BF16 tensors to float32 on request. Sharded folders are stitched together from
// model.safetensors.index.json; a tensor listed there but absent from its shard is an error.
#include "runtime/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "runtime/weight_matrix.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// A read-only memory mapping of a whole file, unmapped on destruction.
class mapped_file {
 public:
  static result<std::shared_ptr<mapped_file>> open(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return make_error(errno == ENOENT ? errc::not_found : errc::io_error,
                        "cannot open " + path.string() + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      return make_error(errc::io_error, "cannot stat " + path.string() + ": " + std::strerror(e));
    }
    auto f = std::shared_ptr<mapped_file>(new mapped_file());
    f->path_ = path.string();
    f->size_ = static_cast<size_t>(st.st_size);
    if (f->size_ > 0) {
      void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        int e = errno;
        ::close(fd);
        return make_error(errc::io_error, "cannot mmap " + path.string() + ": " + std::strerror(e));
      }
      f->data_ = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
    return f;
  }
  ~mapped_file() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  mapped_file() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

struct tensor_loc {
  size_t file = 0;              // index into files_
  const uint8_t* data = nullptr;  // first byte of the tensor inside the mapping
  int64_t bytes = 0;
};

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

class safetensors_source : public weight_source {
 public:
  explicit safetensors_source(std::string origin) : origin_(std::move(origin)) {}

  const std::vector<tensor_info>& tensors() const override { return tensors_; }
  std::string origin() const override { return origin_; }

  status read_f32(const std::string& name, std::vector<float>& out) const override {
    auto it = index_.find(name);
    if (it == index_.end())
      return make_error(errc::not_found, "tensor '" + name + "' not found in " + origin_);
    const tensor_info& info = tensors_[it->second];
    const tensor_loc& loc = locs_[it->second];
    const int64_t n = info.num_elements();
    out.resize(static_cast<size_t>(n));
    if (info.dtype == "F32") {
      std::memcpy(out.data(), loc.data, static_cast<size_t>(n) * 4);
    } else if (info.dtype == "BF16") {
      for (int64_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, loc.data + 2 * i, 2);
        out[i] = bf16_bits_to_f32(b);
      }
    } else if (info.dtype == "F16") {
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, loc.data + 2 * i, 2);
        out[i] = f16_bits_to_f32(h);
      }
    } else {
      return make_error(errc::unsupported, files_[loc.file]->path() + ": tensor '" + name +
                                               "' has dtype " + info.dtype +
                                               ", only F32/F16/BF16 convert to float32");
    }
    return ok_status();
  }

  // The file's bytes are HF's layout already; the mapping lives as long as its mapped_file.
  std::optional<tensor_bytes> view(const std::string& name) const override {
    auto it = index_.find(name);
    if (it == index_.end()) return std::nullopt;
    const tensor_loc& loc = locs_[it->second];
    return tensor_bytes{loc.data, static_cast<uint64_t>(loc.bytes), tensors_[it->second].dtype, files_[loc.file]};
  }

  // Parses one file's header, checks every entry against the file, and adds its tensors.
  status add_file(std::shared_ptr<mapped_file> file) {
    const std::string& path = file->path();
    auto corrupt = [&](const std::string& what) { return make_error(errc::corrupt_file, path + ": " + what); };
    if (file->size() < 8) return corrupt("truncated file: " + std::to_string(file->size()) + " bytes, no header length");
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file->data()[i];
    if (header_len > file->size() - 8)
      return corrupt("header length " + std::to_string(header_len) + " runs beyond the file (" +
                     std::to_string(file->size()) + " bytes): truncated or not a safetensors file");
    const char* hdr = reinterpret_cast<const char*>(file->data() + 8);
    json j = json::parse(hdr, hdr + header_len, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return corrupt("header is not a JSON object");
    const uint8_t* base = file->data() + 8 + header_len;
    const uint64_t data_size = file->size() - 8 - header_len;
    const size_t file_idx = files_.size();
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& name = it.key();
      if (name == "__metadata__") continue;
      const json& t = it.value();
      auto bad = [&](const std::string& what) { return corrupt("tensor '" + name + "': " + what); };
      if (!t.is_object() || !t.contains("dtype") || !t["dtype"].is_string() || !t.contains("shape") ||
          !t["shape"].is_array() || !t.contains("data_offsets") || !t["data_offsets"].is_array() ||
          t["data_offsets"].size() != 2)
        return bad("entry needs dtype, shape and data_offsets [begin, end]");
      tensor_info info;
      info.name = name;
      info.dtype = t["dtype"].get<std::string>();
      const int64_t elem = safetensors_dtype_size(info.dtype);
      if (elem == 0) return bad("unknown dtype " + info.dtype);
      for (const auto& d : t["shape"]) {
        if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t{1} << 40)) return bad("bad shape entry");
        info.shape.push_back(d.get<int64_t>());
      }
      const auto& off = t["data_offsets"];
      if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) return bad("data_offsets must be unsigned");
      const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
      if (begin > end || end > data_size)
        return bad("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                   ") out of range: the data section has " + std::to_string(data_size) + " bytes");
      const uint64_t want = static_cast<uint64_t>(info.num_elements()) * static_cast<uint64_t>(elem);
      if (end - begin != want)
        return bad("holds " + std::to_string(end - begin) + " bytes but " + info.dtype + " " +
                   shape_string(info.shape) + " needs " + std::to_string(want));
      if (index_.count(name)) return bad("appears twice (also in " + origin_ + ")");
      index_[name] = tensors_.size();
      tensors_.push_back(std::move(info));
      locs_.push_back(tensor_loc{file_idx, base + begin, static_cast<int64_t>(end - begin)});
    }
    files_.push_back(std::move(file));
    return ok_status();
  }

  const std::string& file_of(const std::string& name) const {
    static const std::string none;
    auto it = index_.find(name);
    return it == index_.end() ? none : files_[locs_[it->second].file]->path();
  }

 private:
  std::string origin_;
  std::vector<std::shared_ptr<mapped_file>> files_;
  std::vector<tensor_info> tensors_;  // in header order, file by file
  std::vector<tensor_loc> locs_;      // parallel to tensors_
  std::unordered_map<std::string, size_t> index_;
};

result<std::unique_ptr<weight_source>> open_sharded(const fs::path& index_path) {
  std::ifstream in(index_path);
  if (!in) return make_error(errc::io_error, "cannot read " + index_path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    return make_error(errc::corrupt_file, index_path.string() + ": expected an object with a weight_map");
  std::map<std::string, std::vector<std::string>> by_file;  // shard file -> tensor names
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      return make_error(errc::corrupt_file, index_path.string() + ": weight_map['" + it.key() + "'] is not a file name");
    by_file[it.value().get<std::string>()].push_back(it.key());
  }
  if (by_file.empty()) return make_error(errc::corrupt_file, index_path.string() + ": empty weight_map");
  auto src = std::make_unique<safetensors_source>(index_path.parent_path().string());
  for (const auto& [file, names] : by_file) {
    const fs::path shard = index_path.parent_path() / file;
    auto mapped = mapped_file::open(shard);
    if (!mapped) return mapped.err();
    TROUPE_TRY(src->add_file(std::move(*mapped)));
    for (const auto& n : names)
      if (src->file_of(n) != shard.string())
        return make_error(errc::corrupt_file, index_path.string() + " lists tensor '" + n + "' in " + file +
                                                  " but that shard does not hold it");
  }
  return std::unique_ptr<weight_source>(std::move(src));
}

}  // namespace

int64_t safetensors_dtype_size(const std::string& dtype) {
  static const std::unordered_map<std::string, int64_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},     {"I32", 4},     {"I16", 2},
      {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"U16", 2}, {"U32", 4},    {"U64", 8},     {"F8_E4M3", 1},
      {"F8_E5M2", 1}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

result<std::unique_ptr<weight_source>> open_safetensors_file(const fs::path& file) {
  auto mapped = mapped_file::open(file);
  if (!mapped) return mapped.err();
  auto src = std::make_unique<safetensors_source>(file.string());
  TROUPE_TRY(src->add_file(std::move(*mapped)));
  return std::unique_ptr<weight_source>(std::move(src));
}

result<std::unique_ptr<weight_source>> open_safetensors_folder(const fs::path& dir) {
  std::error_code ec;
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index, ec)) return open_sharded(index);
  const fs::path single = dir / "model.safetensors";
  if (fs::exists(single, ec)) return open_safetensors_file(single);
  return make_error(errc::not_found, dir.string() + ": no model.safetensors or model.safetensors.index.json");
}

}  // namespace troupe
