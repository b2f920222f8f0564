// The GGUF file reader on synthetic files: v2 and v3 headers, every metadata type, alignment and
// the data offset, and every error path (truncation at each offset, bad magic, absurd lengths and
// counts, unknown types, overflowing dims, data beyond the end) plus random corruption: never a crash.
#include <gtest/gtest.h>

#include <random>

#include "runtime/gguf_file.h"
#include "runtime/gguf_test_writer.h"

namespace troupe {
namespace {

using test::gguf_writer;

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// A valid file exercising every metadata type and two tensors.
gguf_writer full_writer(uint32_t version) {
  gguf_writer w;
  w.version = version;
  w.kv_string("general.architecture", "llama");
  w.kv_scalar<uint8_t>("t.u8", 0, 200);
  w.kv_scalar<int8_t>("t.i8", 1, -100);
  w.kv_scalar<uint16_t>("t.u16", 2, 60000);
  w.kv_scalar<int16_t>("t.i16", 3, -30000);
  w.kv_u32("t.u32", 4000000000u);
  w.kv_i32("t.i32", -2000000000);
  w.kv_f32("t.f32", 1.5f);
  w.kv_bool("t.bool", true);
  w.kv_scalar<uint64_t>("t.u64", 10, 1ull << 40);
  w.kv_scalar<int64_t>("t.i64", 11, -(1ll << 40));
  w.kv_scalar<double>("t.f64", 12, 0.25);
  w.kv_strings("t.strings", {"a", "", "héllo"});
  w.kv_array<int32_t>("t.i32s", 5, {1, -2, 3});
  w.kv_array<float>("t.f32s", 6, {0.5f, -1.0f});
  w.kv_array<uint8_t>("t.bools", 7, {1, 0});
  w.tensor("a", {3}, 0, f32_bytes({1, 2, 3}));
  w.tensor("b.weight", {2, 2}, 0, f32_bytes({4, 5, 6, 7}));
  return w;
}

result<std::shared_ptr<const gguf_file>> parse(const std::vector<uint8_t>& b, size_t n = SIZE_MAX) {
  return gguf_file::parse(b.data(), std::min(n, b.size()), "test.gguf");
}

void expect_error(const std::vector<uint8_t>& b, errc code, const std::string& needle) {
  auto f = parse(b);
  ASSERT_FALSE(f.ok()) << "expected an error containing '" << needle << "'";
  EXPECT_EQ(f.err().code, code) << f.err().to_string();
  EXPECT_NE(f.err().message.find(needle), std::string::npos) << f.err().message;
  EXPECT_NE(f.err().message.find("test.gguf"), std::string::npos) << f.err().message;
}

class gguf_file_versions : public ::testing::TestWithParam<uint32_t> {};

TEST_P(gguf_file_versions, reads_every_metadata_type_and_tensor) {
  const auto bytes = full_writer(GetParam()).bytes();
  auto f = parse(bytes);
  ASSERT_TRUE(f.ok()) << f.err().to_string();
  const gguf_file& g = **f;
  EXPECT_EQ(g.version(), GetParam());
  EXPECT_EQ(g.alignment(), 32u);
  EXPECT_EQ(g.data_offset() % 32, 0u);
  EXPECT_EQ(g.metadata().size(), 16u);
  EXPECT_EQ(*g.find("t.u8")->as_int(), 200);
  EXPECT_EQ(*g.find("t.i8")->as_int(), -100);
  EXPECT_EQ(*g.find("t.u16")->as_int(), 60000);
  EXPECT_EQ(*g.find("t.i16")->as_int(), -30000);
  EXPECT_EQ(*g.find("t.u32")->as_int(), 4000000000ll);
  EXPECT_EQ(*g.find("t.i32")->as_int(), -2000000000);
  EXPECT_EQ(*g.find("t.f32")->as_float(), 1.5);
  EXPECT_EQ(*g.find("t.bool")->as_bool(), true);
  EXPECT_EQ(*g.find("t.u64")->as_int(), 1ll << 40);
  EXPECT_EQ(*g.find("t.i64")->as_int(), -(1ll << 40));
  EXPECT_EQ(*g.find("t.f64")->as_float(), 0.25);
  EXPECT_EQ(*g.find("general.architecture")->as_string(), "llama");
  const gguf_value* s = g.find("t.strings");
  ASSERT_TRUE(s && s->is_array());
  EXPECT_EQ(s->elem_type, gguf_type::string);
  ASSERT_EQ(s->strings.size(), 3u);
  EXPECT_EQ(s->strings[2], "héllo");
  const gguf_value* i = g.find("t.i32s");
  ASSERT_EQ(i->count, 3u);
  EXPECT_EQ(*i->int_at(1), -2);
  EXPECT_FALSE(i->int_at(3).has_value());
  EXPECT_EQ(*g.find("t.f32s")->float_at(1), -1.0);
  EXPECT_EQ(*g.find("t.bools")->int_at(0), 1);

  ASSERT_EQ(g.tensors().size(), 2u);
  const gguf_tensor* b = g.find_tensor("b.weight");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dims, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(b->num_elements, 4);
  EXPECT_EQ(b->num_bytes, 16u);
  EXPECT_EQ(b->offset, g.data_offset() + 32);  // "a" (12 bytes) padded to 32
  float v[4];
  std::memcpy(v, b->data, 16);
  EXPECT_EQ(v[3], 7.0f);
  EXPECT_EQ(g.find_tensor("missing"), nullptr);
}

INSTANTIATE_TEST_SUITE_P(gguf_v2_v3, gguf_file_versions, ::testing::Values(2u, 3u));

TEST(gguf_file, typed_getters_report_wrong_types) {
  const auto bytes = full_writer(3).bytes();
  auto f = parse(bytes);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(**(*f)->get_int("t.u32"), 4000000000ll);
  EXPECT_FALSE((*f)->get_int("absent")->has_value());
  EXPECT_EQ(**(*f)->get_float("t.i32"), -2000000000.0);
  auto bad = (*f)->get_int("general.architecture");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.err().code, errc::corrupt_file);
  EXPECT_NE(bad.err().message.find("general.architecture"), std::string::npos);
  EXPECT_FALSE((*f)->get_string("t.f32").ok());
  EXPECT_FALSE((*f)->get_float("t.strings").ok());
}

TEST(gguf_file, honours_general_alignment) {
  gguf_writer w;
  w.alignment = 64;
  w.kv_u32("general.alignment", 64);
  w.tensor("x", {1}, 0, f32_bytes({1}));
  w.tensor("y", {1}, 0, f32_bytes({2}));
  auto f = parse(w.bytes());
  ASSERT_TRUE(f.ok()) << f.err().to_string();
  EXPECT_EQ((*f)->alignment(), 64u);
  EXPECT_EQ((*f)->data_offset() % 64, 0u);
  EXPECT_EQ((*f)->find_tensor("y")->offset, (*f)->data_offset() + 64);
}

TEST(gguf_file, rejects_bad_alignment) {
  gguf_writer w;
  w.kv_u32("general.alignment", 48);
  expect_error(w.bytes(), errc::corrupt_file, "power of two");
  gguf_writer w2;
  w2.kv_f32("general.alignment", 32.0f);
  expect_error(w2.bytes(), errc::corrupt_file, "general.alignment");
}

TEST(gguf_file, rejects_bad_magic_and_versions) {
  auto b = full_writer(3).bytes();
  b[0] = 'X';
  expect_error(b, errc::corrupt_file, "bad magic");
  for (uint32_t v : {1u, 4u, 0x03000000u}) {
    gguf_writer w;
    w.version = v;
    expect_error(w.bytes(), errc::unsupported, "version");
  }
}

TEST(gguf_file, every_truncation_is_an_error) {
  const auto bytes = full_writer(3).bytes();
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto f = parse(bytes, n);
    ASSERT_FALSE(f.ok()) << "prefix of " << n << " bytes parsed";
    EXPECT_EQ(f.err().code, errc::corrupt_file) << n << ": " << f.err().to_string();
    EXPECT_NE(f.err().message.find("test.gguf"), std::string::npos);
  }
  EXPECT_TRUE(parse(bytes).ok());
}

TEST(gguf_file, rejects_lengths_beyond_the_file) {
  using w_t = gguf_writer;
  {
    std::vector<uint8_t> v;  // a string value claiming 2^62 bytes
    w_t::put<uint32_t>(v, 8);
    w_t::put<uint64_t>(v, 1ull << 62);
    gguf_writer w;
    w.kv_raw("huge.string", v);
    expect_error(w.bytes(), errc::corrupt_file, "beyond the end");
  }
  {
    std::vector<uint8_t> b;  // a key whose own length is absurd
    w_t::put<uint32_t>(b, 0x46554747);
    w_t::put<uint32_t>(b, 3);
    w_t::put<uint64_t>(b, 0);
    w_t::put<uint64_t>(b, 1);
    w_t::put<uint64_t>(b, ~0ull);
    b.resize(b.size() + 32, 'k');
    expect_error(b, errc::corrupt_file, "beyond the end");
  }
  for (uint32_t elem : {8u, 4u, 12u}) {  // arrays of strings / u32 / f64 with absurd counts
    std::vector<uint8_t> v;
    w_t::put<uint32_t>(v, 9);
    w_t::put<uint32_t>(v, elem);
    w_t::put<uint64_t>(v, 1ull << 61);
    gguf_writer w;
    w.kv_raw("huge.array", v);
    expect_error(w.bytes(), errc::corrupt_file, "huge.array");
  }
  std::vector<uint8_t> b;  // absurd tensor and metadata counts
  w_t::put<uint32_t>(b, 0x46554747);
  w_t::put<uint32_t>(b, 3);
  w_t::put<uint64_t>(b, 1ull << 60);
  w_t::put<uint64_t>(b, 0);
  expect_error(b, errc::corrupt_file, "tensor count");
  b.resize(8);
  w_t::put<uint64_t>(b, 0);
  w_t::put<uint64_t>(b, ~0ull);
  expect_error(b, errc::corrupt_file, "metadata count");
}

TEST(gguf_file, rejects_unknown_value_types_and_nested_arrays) {
  gguf_writer w;
  w.kv_scalar<uint32_t>("odd.type", 13, 0);
  expect_error(w.bytes(), errc::corrupt_file, "odd.type");
  std::vector<uint8_t> v;
  gguf_writer::put<uint32_t>(v, 9);
  gguf_writer::put<uint32_t>(v, 9);
  gguf_writer::put<uint64_t>(v, 1);
  gguf_writer w2;
  w2.kv_raw("nested", v);
  expect_error(w2.bytes(), errc::unsupported, "array of arrays");
  gguf_writer w3;
  w3.kv_u32("dup", 1);
  w3.kv_u32("dup", 2);
  expect_error(w3.bytes(), errc::corrupt_file, "duplicate key 'dup'");
}

TEST(gguf_file, rejects_bad_tensor_infos) {
  {
    gguf_writer w;
    w.tensor("weird", {4}, 99, std::vector<uint8_t>(16));
    expect_error(w.bytes(), errc::unsupported, "tensor 'weird' has unknown tensor type 99");
  }
  {
    gguf_writer w;
    w.tensor("big", {1ll << 40, 1ll << 40}, 0, {});
    expect_error(w.bytes(), errc::corrupt_file, "'big'");
  }
  {
    gguf_writer w;  // product fits int64 but the byte size does not
    w.tensor("bytes", {1ll << 31, 1ll << 31}, 0, {});
    expect_error(w.bytes(), errc::corrupt_file, "'bytes'");
  }
  {
    gguf_writer w;
    w.tensor("neg", {-4}, 0, {});
    expect_error(w.bytes(), errc::corrupt_file, "'neg'");
  }
  {
    gguf_writer w;
    w.tensor("five", {1, 1, 1, 1, 1}, 0, f32_bytes({1}));
    expect_error(w.bytes(), errc::corrupt_file, "'five'");
  }
  {
    gguf_writer w;
    w.tensor("q", {16}, 8, std::vector<uint8_t>(34));  // Q8_0 rows must be multiples of 32
    expect_error(w.bytes(), errc::corrupt_file, "'q'");
  }
  {
    gguf_writer w;
    w.tensor("t", {1}, 0, f32_bytes({1}));
    w.tensor("t", {1}, 0, f32_bytes({1}));
    expect_error(w.bytes(), errc::corrupt_file, "duplicate tensor 't'");
  }
}

TEST(gguf_file, rejects_tensor_data_beyond_the_file) {
  gguf_writer w;
  w.tensor("a", {8}, 0, f32_bytes(std::vector<float>(8, 1)));
  w.tensor("tail", {4}, 0, f32_bytes({1, 2, 3, 4}));
  auto b = w.bytes();
  b.resize(b.size() - 4);
  expect_error(b, errc::corrupt_file, "tensor 'tail' data");
  // An offset pointing past the end (the second tensor's offset field is patched).
  auto good = w.bytes();
  auto f = parse(good);
  ASSERT_TRUE(f.ok());
  const uint64_t data_off = (*f)->data_offset();
  // The last 8 bytes before the padding that precedes the data hold "tail"'s offset (= 32).
  size_t pos = 0;
  for (size_t k = data_off - 8; k > 0; --k) {
    uint64_t v;
    std::memcpy(&v, good.data() + k, 8);
    if (v == 32) {
      pos = k;
      break;
    }
  }
  ASSERT_GT(pos, 0u);
  uint64_t far = 1ull << 40;
  std::memcpy(good.data() + pos, &far, 8);
  expect_error(good, errc::corrupt_file, "tensor 'tail' data");
  uint64_t misaligned = 36;
  std::memcpy(good.data() + pos, &misaligned, 8);
  expect_error(good, errc::corrupt_file, "not a multiple of the alignment");
}

TEST(gguf_file, open_reports_missing_and_empty_files) {
  test::temp_dir dir("gguf_open");
  auto missing = gguf_file::open(dir.path / "nope.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.err().code, errc::not_found);
  std::ofstream(dir.path / "empty.gguf").close();
  auto empty = gguf_file::open(dir.path / "empty.gguf");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.err().code, errc::corrupt_file);
  EXPECT_NE(empty.err().message.find("empty.gguf"), std::string::npos);
  auto path = full_writer(2).write(dir.path / "ok.gguf");
  auto ok = gguf_file::open(path);
  ASSERT_TRUE(ok.ok()) << ok.err().to_string();
  EXPECT_EQ((*ok)->version(), 2u);
  EXPECT_EQ((*ok)->file_size(), std::filesystem::file_size(path));
}

// Random corruption of a valid file must only ever produce values or errors.
TEST(gguf_file, survives_random_corruption) {
  const auto good = full_writer(3).bytes();
  std::mt19937 rng(42);
  int parsed = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto b = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      const size_t pos = rng() % b.size();
      b[pos] = (rng() % 3 == 0) ? 0xFF : static_cast<uint8_t>(rng());
    }
    auto f = parse(b, rng() % 5 == 0 ? rng() % b.size() : b.size());
    if (f.ok()) {
      ++parsed;
      for (const auto& t : (*f)->tensors()) {
        ASSERT_LE(t.offset + t.num_bytes, (*f)->file_size());
      }
    }
  }
  for (int iter = 0; iter < 500; ++iter) {  // pure noise behind a valid magic
    std::vector<uint8_t> b(8 + rng() % 256);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    std::memcpy(b.data(), "GGUF\x03\0\0\0", 8);
    (void)parse(b);
  }
  SUCCEED() << parsed << " corrupted files still parsed";
}

}  // namespace
}  // namespace troupe
