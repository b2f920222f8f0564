// Safetensors reader, open_weights dispatch and load_model_weights: good files (F32/F16/BF16,
// sharded folders) read back exactly; every malformed file is a clear error naming file and tensor.
#include "runtime/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "runtime/model_weights.h"
#include "runtime/weight_source.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct entry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

entry f32(const std::string& name, std::vector<int64_t> shape, float start = 0.0f) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = start + 0.25f * static_cast<float>(i);
  return {name, "F32", std::move(shape), std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4)};
}

std::string header_of(const std::vector<entry>& entries) {
  json h = json::object();
  h["__metadata__"] = {{"format", "pt"}};
  size_t off = 0;
  for (const auto& e : entries) {
    h[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {off, off + e.bytes.size()}}};
    off += e.bytes.size();
  }
  return h.dump();
}

void write_raw(const fs::path& path, uint64_t header_len, const std::string& header, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((header_len >> (8 * i)) & 0xff);
  out.write(len, 8);
  out << header << data;
}

void write_file(const fs::path& path, const std::vector<entry>& entries) {
  std::string data;
  for (const auto& e : entries) data += e.bytes;
  const std::string h = header_of(entries);
  write_raw(path, h.size(), h, data);
}

class safetensors_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("troupe_st_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  error open_error(const fs::path& p) {
    auto r = open_weights(p);
    EXPECT_FALSE(r.ok()) << p;
    return r.ok() ? error{} : r.err();
  }
  fs::path dir_;
};

TEST_F(safetensors_test, reads_f32_f16_bf16_exactly) {
  // F16: 1.0, -2.0, 65504 (max), 2^-24 (smallest subnormal); BF16: 1.0, -0.5, 3.0
  const uint16_t h[] = {0x3c00, 0xc000, 0x7bff, 0x0001};
  const uint16_t b[] = {0x3f80, 0xbf00, 0x4040};
  write_file(dir_ / "m.safetensors",
             {f32("a", {2, 3}), {"h", "F16", {4}, std::string(reinterpret_cast<const char*>(h), 8)},
              {"b", "BF16", {3}, std::string(reinterpret_cast<const char*>(b), 6)}});
  auto src = open_weights(dir_ / "m.safetensors");
  ASSERT_TRUE(src.ok()) << src.err().to_string();
  ASSERT_EQ((*src)->tensors().size(), 3u);
  ASSERT_NE((*src)->find("a"), nullptr);
  EXPECT_EQ((*src)->find("a")->shape, (std::vector<int64_t>{2, 3}));
  std::vector<float> v;
  ASSERT_TRUE((*src)->read_f32("a", v).ok());
  EXPECT_EQ(v, (std::vector<float>{0, 0.25f, 0.5f, 0.75f, 1.0f, 1.25f}));
  ASSERT_TRUE((*src)->read_f32("h", v).ok());
  EXPECT_EQ(v, (std::vector<float>{1.0f, -2.0f, 65504.0f, 5.9604644775390625e-8f}));
  ASSERT_TRUE((*src)->read_f32("b", v).ok());
  EXPECT_EQ(v, (std::vector<float>{1.0f, -0.5f, 3.0f}));
  EXPECT_EQ((*src)->read_f32("nope", v).err().code, errc::not_found);
}

TEST_F(safetensors_test, opens_folders_single_and_sharded) {
  fs::create_directories(dir_ / "single");
  write_file(dir_ / "single" / "model.safetensors", {f32("x", {2})});
  auto single = open_weights(dir_ / "single");
  ASSERT_TRUE(single.ok()) << single.err().to_string();
  EXPECT_NE((*single)->find("x"), nullptr);

  fs::create_directories(dir_ / "sharded");
  write_file(dir_ / "sharded" / "model-00001-of-00002.safetensors", {f32("x", {2}), f32("y", {3}, 1.0f)});
  write_file(dir_ / "sharded" / "model-00002-of-00002.safetensors", {f32("z", {4}, 2.0f)});
  json index = {{"metadata", {{"total_size", 36}}},
                {"weight_map",
                 {{"x", "model-00001-of-00002.safetensors"},
                  {"y", "model-00001-of-00002.safetensors"},
                  {"z", "model-00002-of-00002.safetensors"}}}};
  std::ofstream(dir_ / "sharded" / "model.safetensors.index.json") << index.dump();
  auto sharded = open_weights(dir_ / "sharded");
  ASSERT_TRUE(sharded.ok()) << sharded.err().to_string();
  EXPECT_EQ((*sharded)->tensors().size(), 3u);
  std::vector<float> v;
  ASSERT_TRUE((*sharded)->read_f32("z", v).ok());
  EXPECT_EQ(v, (std::vector<float>{2.0f, 2.25f, 2.5f, 2.75f}));

  // An index naming a tensor its shard does not hold.
  index["weight_map"]["w"] = "model-00002-of-00002.safetensors";
  std::ofstream(dir_ / "sharded" / "model.safetensors.index.json", std::ios::trunc) << index.dump();
  error e = open_error(dir_ / "sharded");
  EXPECT_EQ(e.code, errc::corrupt_file);
  EXPECT_NE(e.message.find("'w'"), std::string::npos) << e.message;
}

TEST_F(safetensors_test, missing_paths_and_unknown_files_are_errors) {
  EXPECT_EQ(open_error(dir_ / "absent").code, errc::not_found);
  EXPECT_EQ(open_error(dir_).code, errc::not_found);  // a folder with no model.safetensors
  std::ofstream(dir_ / "weights.bin") << "x";
  EXPECT_EQ(open_error(dir_ / "weights.bin").code, errc::unsupported);
}

TEST_F(safetensors_test, truncated_file_is_corrupt) {
  std::ofstream(dir_ / "t.safetensors") << "abc";
  error e = open_error(dir_ / "t.safetensors");
  EXPECT_EQ(e.code, errc::corrupt_file);
  EXPECT_NE(e.message.find("t.safetensors"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("truncated"), std::string::npos) << e.message;

  // A valid header whose data section was cut short: the last tensor's offsets run past the end.
  const std::vector<entry> entries = {f32("a", {4}), f32("b", {4})};
  std::string data = entries[0].bytes + entries[1].bytes;
  const std::string h = header_of(entries);
  write_raw(dir_ / "cut.safetensors", h.size(), h, data.substr(0, data.size() - 5));
  e = open_error(dir_ / "cut.safetensors");
  EXPECT_EQ(e.code, errc::corrupt_file);
  EXPECT_NE(e.message.find("'b'"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("out of range"), std::string::npos) << e.message;
}

TEST_F(safetensors_test, header_length_beyond_file_is_corrupt) {
  const std::string h = header_of({f32("a", {2})});
  write_raw(dir_ / "h.safetensors", 1ull << 40, h, std::string(8, '\0'));
  error e = open_error(dir_ / "h.safetensors");
  EXPECT_EQ(e.code, errc::corrupt_file);
  EXPECT_NE(e.message.find("header length"), std::string::npos) << e.message;

  write_raw(dir_ / "j.safetensors", 5, "{\"a\":", "");
  EXPECT_EQ(open_error(dir_ / "j.safetensors").code, errc::corrupt_file);  // not JSON
}

TEST_F(safetensors_test, offsets_out_of_range_are_corrupt) {
  json h = {{"a", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 800}}}}};
  write_raw(dir_ / "o.safetensors", h.dump().size(), h.dump(), std::string(8, '\0'));
  error e = open_error(dir_ / "o.safetensors");
  EXPECT_EQ(e.code, errc::corrupt_file);
  EXPECT_NE(e.message.find("o.safetensors"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("'a'"), std::string::npos) << e.message;

  h = {{"a", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {8, 4}}}}};  // begin > end
  write_raw(dir_ / "r.safetensors", h.dump().size(), h.dump(), std::string(8, '\0'));
  EXPECT_EQ(open_error(dir_ / "r.safetensors").code, errc::corrupt_file);
}

TEST_F(safetensors_test, dtype_shape_and_byte_size_must_agree) {
  // Header says F32 [4] (16 bytes) but the tensor spans 8 bytes: a wrong dtype or shape.
  json h = {{"a", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 8}}}}};
  write_raw(dir_ / "s.safetensors", h.dump().size(), h.dump(), std::string(8, '\0'));
  error e = open_error(dir_ / "s.safetensors");
  EXPECT_EQ(e.code, errc::corrupt_file);
  EXPECT_NE(e.message.find("'a'"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("needs 16"), std::string::npos) << e.message;

  h = {{"a", {{"dtype", "Q9_X"}, {"shape", {2}}, {"data_offsets", {0, 8}}}}};  // unknown dtype
  write_raw(dir_ / "u.safetensors", h.dump().size(), h.dump(), std::string(8, '\0'));
  e = open_error(dir_ / "u.safetensors");
  EXPECT_EQ(e.code, errc::corrupt_file);
  EXPECT_NE(e.message.find("Q9_X"), std::string::npos) << e.message;

  // A valid integer tensor opens, but it does not convert to float32.
  write_file(dir_ / "i.safetensors", {{"ids", "I32", {2}, std::string(8, '\0')}});
  auto src = open_weights(dir_ / "i.safetensors");
  ASSERT_TRUE(src.ok());
  std::vector<float> v;
  auto st = (*src)->read_f32("ids", v);
  EXPECT_EQ(st.err().code, errc::unsupported);
  EXPECT_NE(st.err().message.find("ids"), std::string::npos);
}

// A one-layer model small enough to write by hand.
model_config tiny_config() {
  model_config c;
  c.name = "hand";
  c.vocab_size = 8;
  c.hidden_size = 4;
  c.intermediate_size = 6;
  c.num_layers = 1;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 2;
  c.tie_word_embeddings = true;
  return c;
}

std::vector<entry> tiny_tensors(const model_config& c) {
  const int64_t h = c.hidden_size, q = c.q_size(), kv = c.kv_size(), i = c.intermediate_size;
  const std::string p = "model.layers.0.";
  return {f32("model.embed_tokens.weight", {c.vocab_size, h}), f32("model.norm.weight", {h}),
          f32(p + "input_layernorm.weight", {h}),              f32(p + "post_attention_layernorm.weight", {h}),
          f32(p + "self_attn.q_proj.weight", {q, h}, 1.0f),    f32(p + "self_attn.k_proj.weight", {kv, h}, 2.0f),
          f32(p + "self_attn.v_proj.weight", {kv, h}, 3.0f),   f32(p + "self_attn.o_proj.weight", {h, q}),
          f32(p + "mlp.gate_proj.weight", {i, h}),             f32(p + "mlp.up_proj.weight", {i, h}),
          f32(p + "mlp.down_proj.weight", {h, i})};
}

TEST_F(safetensors_test, model_weights_fuse_qkv_and_tie_embeddings) {
  const model_config c = tiny_config();
  write_file(dir_ / "m.safetensors", tiny_tensors(c));
  auto src = open_weights(dir_ / "m.safetensors");
  ASSERT_TRUE(src.ok());
  auto w = load_model_weights(c, **src);
  ASSERT_TRUE(w.ok()) << w.err().to_string();
  EXPECT_TRUE(w->lm_head.empty());
  EXPECT_EQ(&w->lm_head_matrix(), &w->embed);
  EXPECT_EQ(w->layers[0].w_qkv.dtype, weight_dtype::f32);  // auto: F32 tensors stay float32
  const auto& qkv = w->layers[0].w_qkv.f32;
  ASSERT_EQ(qkv.size(), static_cast<size_t>((4 + 2 + 2) * 4));
  EXPECT_EQ(qkv[0], 1.0f);        // q starts at 1.0
  EXPECT_EQ(qkv[4 * 4], 2.0f);    // k after q's 4 rows
  EXPECT_EQ(qkv[6 * 4], 3.0f);    // v after k's 2 rows
}

TEST_F(safetensors_test, missing_tensor_names_tensor_and_file) {
  const model_config c = tiny_config();
  auto tensors = tiny_tensors(c);
  tensors.erase(tensors.begin() + 8);  // mlp.gate_proj
  write_file(dir_ / "m.safetensors", tensors);
  auto src = open_weights(dir_ / "m.safetensors");
  ASSERT_TRUE(src.ok());
  auto w = load_model_weights(c, **src);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.err().code, errc::not_found);
  EXPECT_NE(w.err().message.find("model.layers.0.mlp.gate_proj.weight"), std::string::npos) << w.err().message;
  EXPECT_NE(w.err().message.find("m.safetensors"), std::string::npos) << w.err().message;

  model_config untied = c;
  untied.tie_word_embeddings = false;  // now lm_head.weight is required
  write_file(dir_ / "n.safetensors", tiny_tensors(c));
  src = open_weights(dir_ / "n.safetensors");
  w = load_model_weights(untied, **src);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.err().message.find("lm_head.weight"), std::string::npos) << w.err().message;
}

TEST_F(safetensors_test, shape_mismatch_names_tensor_file_and_shapes) {
  const model_config c = tiny_config();
  auto tensors = tiny_tensors(c);
  tensors[5] = f32("model.layers.0.self_attn.k_proj.weight", {4, 4});  // 2 kv heads' worth, config has 1
  write_file(dir_ / "m.safetensors", tensors);
  auto src = open_weights(dir_ / "m.safetensors");
  ASSERT_TRUE(src.ok());
  auto w = load_model_weights(c, **src);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.err().code, errc::corrupt_file);
  const std::string& m = w.err().message;
  EXPECT_NE(m.find("model.layers.0.self_attn.k_proj.weight"), std::string::npos) << m;
  EXPECT_NE(m.find("m.safetensors"), std::string::npos) << m;
  EXPECT_NE(m.find("[4, 4]"), std::string::npos) << m;
  EXPECT_NE(m.find("[2, 4]"), std::string::npos) << m;
}

TEST_F(safetensors_test, qwen2_biases_are_required_when_attention_bias) {
  model_config c = tiny_config();
  c.attention_bias = true;
  auto tensors = tiny_tensors(c);
  write_file(dir_ / "m.safetensors", tensors);
  auto src = open_weights(dir_ / "m.safetensors");
  ASSERT_TRUE(src.ok());
  auto w = load_model_weights(c, **src);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.err().message.find("q_proj.bias"), std::string::npos) << w.err().message;
  for (auto [n, size] : {std::pair{"q", 4}, {"k", 2}, {"v", 2}})
    tensors.push_back(f32(std::string("model.layers.0.self_attn.") + n + "_proj.bias", {size}, 7.0f));
  write_file(dir_ / "b.safetensors", tensors);
  src = open_weights(dir_ / "b.safetensors");
  w = load_model_weights(c, **src);
  ASSERT_TRUE(w.ok()) << w.err().to_string();
  EXPECT_EQ(w->layers[0].b_qkv, (std::vector<float>{7, 7.25f, 7.5f, 7.75f, 7, 7.25f, 7, 7.25f}));
}

}  // namespace
}  // namespace troupe
