// GGUF parsing: a bounds-checked cursor over the mapped bytes reads the header, the metadata and
// the tensor infos, then every tensor's extent is checked against the data section. Layout:
// magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv | kv... | tensor infos... | pad | data.
#include "runtime/gguf_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "config/log.h"
#include "runtime/dequant.h"

namespace troupe {
namespace {

constexpr uint32_t gguf_magic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t max_dims = 4;             // GGML_MAX_DIMS
constexpr uint64_t max_alignment = 1u << 20;

// Bytes of one scalar of a metadata type; 0 for string/array and unknown ids.
uint64_t scalar_size(uint32_t t) {
  switch (static_cast<gguf_type>(t)) {
    case gguf_type::u8: case gguf_type::i8: case gguf_type::boolean: return 1;
    case gguf_type::u16: case gguf_type::i16: return 2;
    case gguf_type::u32: case gguf_type::i32: case gguf_type::f32: return 4;
    case gguf_type::u64: case gguf_type::i64: case gguf_type::f64: return 8;
    default: return 0;
  }
}

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Decodes one scalar at p into the value's u/i/f fields.
void decode_scalar(gguf_type t, const uint8_t* p, gguf_value& v) {
  switch (t) {
    case gguf_type::u8: v.u = load<uint8_t>(p); break;
    case gguf_type::i8: v.i = load<int8_t>(p); break;
    case gguf_type::u16: v.u = load<uint16_t>(p); break;
    case gguf_type::i16: v.i = load<int16_t>(p); break;
    case gguf_type::u32: v.u = load<uint32_t>(p); break;
    case gguf_type::i32: v.i = load<int32_t>(p); break;
    case gguf_type::u64: v.u = load<uint64_t>(p); break;
    case gguf_type::i64: v.i = load<int64_t>(p); break;
    case gguf_type::f32: v.f = load<float>(p); break;
    case gguf_type::f64: v.f = load<double>(p); break;
    case gguf_type::boolean: v.u = load<uint8_t>(p) != 0; break;
    default: break;
  }
}

bool is_unsigned(gguf_type t) {
  return t == gguf_type::u8 || t == gguf_type::u16 || t == gguf_type::u32 || t == gguf_type::u64 ||
         t == gguf_type::boolean;
}
bool is_signed(gguf_type t) {
  return t == gguf_type::i8 || t == gguf_type::i16 || t == gguf_type::i32 || t == gguf_type::i64;
}

// Reads little-endian fields with a bound check on every step; errors say what and where.
class cursor {
 public:
  cursor(const uint8_t* base, uint64_t size, const std::string& origin) : base_(base), size_(size), origin_(origin) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  status need(uint64_t n, const std::string& what) const {
    if (n > remaining())
      return make_error(errc::corrupt_file, origin_ + ": truncated: " + what + " needs " + std::to_string(n) +
                                                " bytes at offset " + std::to_string(pos_) + " but the file has " +
                                                std::to_string(remaining()) + " left");
    return ok_status();
  }
  template <class T>
  result<T> read(const std::string& what) {
    TROUPE_TRY(need(sizeof(T), what));
    T v = load<T>(base_ + pos_);
    pos_ += sizeof(T);
    return v;
  }
  const uint8_t* take(uint64_t n) {  // caller checked need(n)
    const uint8_t* p = base_ + pos_;
    pos_ += n;
    return p;
  }
  result<std::string_view> read_string(const std::string& what) {
    auto len = read<uint64_t>(what + " length");
    if (!len) return len.err();
    if (*len > remaining())
      return make_error(errc::corrupt_file, origin_ + ": " + what + " has length " + std::to_string(*len) +
                                                " at offset " + std::to_string(pos_ - 8) + ", beyond the end of the file (" +
                                                std::to_string(remaining()) + " bytes left)");
    const char* p = reinterpret_cast<const char*>(take(*len));
    return std::string_view(p, static_cast<size_t>(*len));
  }

 private:
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& origin_;
};

status read_value(cursor& c, gguf_value& v, const std::string& origin, const std::string& key) {
  auto type = c.read<uint32_t>("type of key '" + key + "'");
  if (!type) return type.err();
  if (*type > static_cast<uint32_t>(gguf_type::f64))
    return make_error(errc::corrupt_file, origin + ": key '" + key + "' has unknown value type " + std::to_string(*type));
  v.type = static_cast<gguf_type>(*type);
  if (v.type == gguf_type::string) {
    auto s = c.read_string("string value of key '" + key + "'");
    if (!s) return s.err();
    v.str = *s;
    return ok_status();
  }
  if (v.type != gguf_type::array) {
    const uint64_t n = scalar_size(*type);
    TROUPE_TRY(c.need(n, "value of key '" + key + "'"));
    decode_scalar(v.type, c.take(n), v);
    return ok_status();
  }
  auto et = c.read<uint32_t>("element type of array '" + key + "'");
  if (!et) return et.err();
  auto count = c.read<uint64_t>("length of array '" + key + "'");
  if (!count) return count.err();
  if (*et == static_cast<uint32_t>(gguf_type::array))
    return make_error(errc::unsupported, origin + ": key '" + key + "' is an array of arrays");
  if (*et > static_cast<uint32_t>(gguf_type::f64))
    return make_error(errc::corrupt_file, origin + ": array '" + key + "' has unknown element type " + std::to_string(*et));
  v.elem_type = static_cast<gguf_type>(*et);
  v.count = *count;
  if (v.elem_type == gguf_type::string) {
    // Every string takes at least its 8-byte length: bounds the count before reserving.
    if (*count > c.remaining() / 8)
      return make_error(errc::corrupt_file, origin + ": array '" + key + "' claims " + std::to_string(*count) +
                                                " strings, more than the file can hold");
    v.strings.reserve(static_cast<size_t>(*count));
    for (uint64_t k = 0; k < *count; ++k) {
      auto s = c.read_string("element " + std::to_string(k) + " of array '" + key + "'");
      if (!s) return s.err();
      v.strings.push_back(*s);
    }
    return ok_status();
  }
  const uint64_t es = scalar_size(*et);
  if (*count > c.remaining() / es)
    return make_error(errc::corrupt_file, origin + ": array '" + key + "' claims " + std::to_string(*count) + " " +
                                              gguf_type_name(v.elem_type) + " elements, more than the file can hold");
  v.elems = c.take(*count * es);
  return ok_status();
}

}  // namespace

const char* gguf_type_name(gguf_type t) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
  const auto k = static_cast<uint32_t>(t);
  return k < 13 ? names[k] : "unknown";
}

std::optional<int64_t> gguf_value::as_int() const {
  if (is_unsigned(type)) {
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (is_signed(type)) return i;
  return std::nullopt;
}

std::optional<double> gguf_value::as_float() const {
  if (type == gguf_type::f32 || type == gguf_type::f64) return f;
  if (is_unsigned(type) && type != gguf_type::boolean) return static_cast<double>(u);
  if (is_signed(type)) return static_cast<double>(i);
  return std::nullopt;
}

std::optional<bool> gguf_value::as_bool() const {
  if (type == gguf_type::boolean) return u != 0;
  return std::nullopt;
}

std::optional<std::string_view> gguf_value::as_string() const {
  if (type == gguf_type::string) return str;
  return std::nullopt;
}

std::optional<int64_t> gguf_value::int_at(uint64_t k) const {
  if (!is_array() || k >= count || !elems) return std::nullopt;
  gguf_value s;
  s.type = elem_type;
  decode_scalar(elem_type, elems + k * scalar_size(static_cast<uint32_t>(elem_type)), s);
  return s.as_int();
}

std::optional<double> gguf_value::float_at(uint64_t k) const {
  if (!is_array() || k >= count || !elems) return std::nullopt;
  gguf_value s;
  s.type = elem_type;
  decode_scalar(elem_type, elems + k * scalar_size(static_cast<uint32_t>(elem_type)), s);
  return s.as_float();
}

gguf_file::~gguf_file() {
  if (mapping_) munmap(mapping_, static_cast<size_t>(size_));
}

result<std::shared_ptr<const gguf_file>> gguf_file::open(const std::filesystem::path& path) {
  const std::string origin = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return make_error(errno == ENOENT ? errc::not_found : errc::io_error, origin + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(errc::io_error, origin + ": not a regular file");
  }
  std::shared_ptr<gguf_file> f(new gguf_file());
  f->origin_ = origin;
  f->size_ = static_cast<uint64_t>(st.st_size);
  if (f->size_ > 0) {
    void* m = mmap(nullptr, static_cast<size_t>(f->size_), PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      return make_error(errc::io_error, origin + ": mmap failed: " + std::strerror(e));
    }
    f->mapping_ = m;
    f->base_ = static_cast<const uint8_t*>(m);
  }
  ::close(fd);  // the mapping stays valid without the descriptor
  TROUPE_TRY(f->parse_all());
  logger("runtime")->debug("{}: GGUF v{}, {} keys, {} tensors, data at {}", origin, f->version_, f->kv_.size(),
                           f->tensors_.size(), f->data_offset_);
  return std::shared_ptr<const gguf_file>(std::move(f));
}

result<std::shared_ptr<const gguf_file>> gguf_file::parse(const uint8_t* data, size_t size, std::string origin) {
  std::shared_ptr<gguf_file> f(new gguf_file());
  f->origin_ = std::move(origin);
  f->base_ = data;
  f->size_ = data ? size : 0;
  TROUPE_TRY(f->parse_all());
  return std::shared_ptr<const gguf_file>(std::move(f));
}

status gguf_file::parse_all() {
  cursor c(base_, size_, origin_);
  auto magic = c.read<uint32_t>("magic");
  if (!magic) return magic.err();
  if (*magic != gguf_magic) return make_error(errc::corrupt_file, origin_ + ": not a GGUF file (bad magic)");
  auto version = c.read<uint32_t>("version");
  if (!version) return version.err();
  if (*version != 2 && *version != 3) {
    // A byte-swapped version means a big-endian file.
    const bool swapped = *version == 0x02000000u || *version == 0x03000000u;
    return make_error(errc::unsupported, origin_ + ": GGUF version " + std::to_string(*version) +
                                             (swapped ? " (a big-endian file)" : "") + " is not supported (v2 and v3 are)");
  }
  version_ = *version;
  auto n_tensors = c.read<uint64_t>("tensor count");
  if (!n_tensors) return n_tensors.err();
  auto n_kv = c.read<uint64_t>("metadata count");
  if (!n_kv) return n_kv.err();
  // A key takes >= 12 bytes (length + type) plus its value; a tensor info >= 24 bytes.
  if (*n_kv > c.remaining() / 13)
    return make_error(errc::corrupt_file, origin_ + ": metadata count " + std::to_string(*n_kv) + " is more than the file can hold");
  if (*n_tensors > c.remaining() / 24)
    return make_error(errc::corrupt_file, origin_ + ": tensor count " + std::to_string(*n_tensors) + " is more than the file can hold");

  std::unordered_set<std::string_view> seen;
  kv_.reserve(static_cast<size_t>(*n_kv));
  for (uint64_t k = 0; k < *n_kv; ++k) {
    auto key = c.read_string("key " + std::to_string(k));
    if (!key) return key.err();
    if (!seen.insert(*key).second)
      return make_error(errc::corrupt_file, origin_ + ": duplicate key '" + std::string(*key) + "'");
    gguf_value v;
    TROUPE_TRY(read_value(c, v, origin_, std::string(*key)));
    kv_.emplace_back(std::string(*key), std::move(v));
  }

  if (const gguf_value* a = find("general.alignment")) {
    if (a->type != gguf_type::u32)
      return make_error(errc::corrupt_file, origin_ + ": general.alignment must be u32, not " + gguf_type_name(a->type));
    if (a->u == 0 || (a->u & (a->u - 1)) != 0 || a->u > max_alignment)
      return make_error(errc::corrupt_file, origin_ + ": general.alignment " + std::to_string(a->u) + " is not a power of two");
    alignment_ = a->u;
  }

  seen.clear();
  tensors_.reserve(static_cast<size_t>(*n_tensors));
  std::vector<uint64_t> rel_offsets;
  rel_offsets.reserve(static_cast<size_t>(*n_tensors));
  for (uint64_t k = 0; k < *n_tensors; ++k) {
    auto name = c.read_string("name of tensor " + std::to_string(k));
    if (!name) return name.err();
    if (!seen.insert(*name).second)
      return make_error(errc::corrupt_file, origin_ + ": duplicate tensor '" + std::string(*name) + "'");
    gguf_tensor t;
    t.name = std::string(*name);
    const std::string what = "tensor '" + t.name + "'";
    auto nd = c.read<uint32_t>("dimension count of " + what);
    if (!nd) return nd.err();
    if (*nd == 0 || *nd > max_dims)
      return make_error(errc::corrupt_file, origin_ + ": " + what + " has " + std::to_string(*nd) + " dimensions (1 to 4 allowed)");
    int64_t n = 1;
    for (uint32_t d = 0; d < *nd; ++d) {
      auto dim = c.read<int64_t>("dimensions of " + what);
      if (!dim) return dim.err();
      if (*dim < 0) return make_error(errc::corrupt_file, origin_ + ": " + what + " has a negative dimension");
      if (*dim > 0 && n > std::numeric_limits<int64_t>::max() / *dim)
        return make_error(errc::corrupt_file, origin_ + ": " + what + " has dimensions whose product overflows");
      n *= *dim;
      t.dims.push_back(*dim);
    }
    t.num_elements = n;
    auto type = c.read<uint32_t>("type of " + what);
    if (!type) return type.err();
    const ggml_type_traits* traits = ggml_type_info(*type);
    if (!traits)
      return make_error(errc::unsupported, origin_ + ": " + what + " has unknown tensor type " + std::to_string(*type));
    t.type = *type;
    if (t.dims[0] % traits->block_size != 0)
      return make_error(errc::corrupt_file, origin_ + ": " + what + " of type " + traits->name + " has a row of " +
                                                std::to_string(t.dims[0]) + " elements, not a multiple of its block size " +
                                                std::to_string(traits->block_size));
    const int64_t bytes = ggml_row_bytes(*type, n);
    if (bytes < 0) return make_error(errc::corrupt_file, origin_ + ": " + what + " is too large");
    t.num_bytes = static_cast<uint64_t>(bytes);
    auto off = c.read<uint64_t>("data offset of " + what);
    if (!off) return off.err();
    if (*off % alignment_ != 0)
      return make_error(errc::corrupt_file, origin_ + ": " + what + " data offset " + std::to_string(*off) +
                                                " is not a multiple of the alignment " + std::to_string(alignment_));
    rel_offsets.push_back(*off);
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment after the tensor infos.
  const uint64_t end_of_infos = c.pos();
  data_offset_ = end_of_infos + (alignment_ - end_of_infos % alignment_) % alignment_;
  for (size_t k = 0; k < tensors_.size(); ++k) {
    gguf_tensor& t = tensors_[k];
    const uint64_t avail = data_offset_ <= size_ ? size_ - data_offset_ : 0;
    if (rel_offsets[k] > avail || t.num_bytes > avail - rel_offsets[k])
      return make_error(errc::corrupt_file, origin_ + ": tensor '" + t.name + "' data (" + std::to_string(t.num_bytes) +
                                                " bytes at offset " + std::to_string(rel_offsets[k]) +
                                                " of the data section) lies beyond the end of the file");
    t.offset = data_offset_ + rel_offsets[k];
    t.data = base_ + t.offset;
  }
  return ok_status();
}

const gguf_value* gguf_file::find(std::string_view key) const {
  for (const auto& [k, v] : kv_)
    if (k == key) return &v;
  return nullptr;
}

const gguf_tensor* gguf_file::find_tensor(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

result<std::optional<int64_t>> gguf_file::get_int(std::string_view key) const {
  const gguf_value* v = find(key);
  if (!v) return std::optional<int64_t>{};
  auto x = v->as_int();
  if (!x) return make_error(errc::corrupt_file, origin_ + ": key '" + std::string(key) + "' should be an integer, not " +
                                                    gguf_type_name(v->type));
  return std::optional<int64_t>{*x};
}

result<std::optional<double>> gguf_file::get_float(std::string_view key) const {
  const gguf_value* v = find(key);
  if (!v) return std::optional<double>{};
  auto x = v->as_float();
  if (!x) return make_error(errc::corrupt_file, origin_ + ": key '" + std::string(key) + "' should be a number, not " +
                                                    gguf_type_name(v->type));
  return std::optional<double>{*x};
}

result<std::optional<bool>> gguf_file::get_bool(std::string_view key) const {
  const gguf_value* v = find(key);
  if (!v) return std::optional<bool>{};
  auto x = v->as_bool();
  if (!x) {
    auto i = v->as_int();  // some writers store flags as integers
    if (!i) return make_error(errc::corrupt_file, origin_ + ": key '" + std::string(key) + "' should be a bool, not " +
                                                      gguf_type_name(v->type));
    return std::optional<bool>{*i != 0};
  }
  return std::optional<bool>{*x};
}

result<std::optional<std::string>> gguf_file::get_string(std::string_view key) const {
  const gguf_value* v = find(key);
  if (!v) return std::optional<std::string>{};
  auto x = v->as_string();
  if (!x) return make_error(errc::corrupt_file, origin_ + ": key '" + std::string(key) + "' should be a string, not " +
                                                    gguf_type_name(v->type));
  return std::optional<std::string>{std::string(*x)};
}

}  // namespace troupe
