// GGUF weights the loader must refuse with a clear error, never a crash: quantized tensor data cut
// short by the end of the file (every block format the CPU keeps), rows that are not whole blocks,
// and tensor types troupe cannot read (IQ2_XXS, IQ4_NL, ...) in an otherwise complete model, whose
// error names the tensor (its GGUF name) and its type.
#include <gtest/gtest.h>

#include <random>

#include "runtime/dequant.h"
#include "runtime/gguf_file.h"
#include "runtime/gguf_test_writer.h"
#include "runtime/model_config.h"
#include "runtime/model_weights.h"

namespace troupe {
namespace {

using test::gguf_writer;

constexpr uint32_t kept_block_types[] = {2, 3, 6, 7, 8, 12, 13, 14};  // Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> b(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

result<std::shared_ptr<const gguf_file>> parse(const std::vector<uint8_t>& b, size_t n) {
  return gguf_file::parse(b.data(), n, "bad.gguf");
}

TEST(gguf_bad_weights, truncated_quantized_data_is_refused_naming_the_tensor) {
  for (uint32_t type : kept_block_types) {
    const ggml_type_traits* tt = ggml_type_info(type);
    ASSERT_NE(tt, nullptr);
    SCOPED_TRACE(tt->name);
    const int64_t cols = tt->block_size * 2, rows = 3;
    gguf_writer w;
    w.kv_string("general.architecture", "llama");
    w.tensor("blk.0.ffn_up.weight", {cols, rows}, type,
             random_bytes(static_cast<size_t>(ggml_row_bytes(type, cols * rows)), type));
    const auto bytes = w.bytes();
    ASSERT_TRUE(parse(bytes, bytes.size()).ok());
    // One byte short, one block short, and cut inside the first row.
    for (size_t cut : {size_t{1}, static_cast<size_t>(tt->type_size), static_cast<size_t>(tt->type_size) * 5 + 3}) {
      auto f = parse(bytes, bytes.size() - cut);
      ASSERT_FALSE(f.ok()) << "cut " << cut;
      EXPECT_EQ(f.err().code, errc::corrupt_file);
      EXPECT_NE(f.err().message.find("tensor 'blk.0.ffn_up.weight' data"), std::string::npos) << f.err().message;
      EXPECT_NE(f.err().message.find("beyond the end of the file"), std::string::npos) << f.err().message;
    }
  }
}

TEST(gguf_bad_weights, rows_that_are_not_whole_blocks_are_refused_with_the_type) {
  gguf_writer w;
  w.tensor("blk.0.attn_q.weight", {96, 2}, 12, std::vector<uint8_t>(144));  // Q4_K blocks hold 256
  const auto bytes = w.bytes();
  auto f = parse(bytes, bytes.size());
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.err().message.find("tensor 'blk.0.attn_q.weight' of type Q4_K has a row of 96 elements"),
            std::string::npos)
      << f.err().message;
}

// A complete one-layer llama (hidden 256, so every block size divides a row) whose ffn_down is
// stored as `down_type`; the other matrices are Q8_0 and the norms F32.
constexpr int64_t hidden = 256, ffn = 256, vocab = 6, n_head = 2, n_kv = 1, head_dim = 128;

std::filesystem::path write_model(const std::filesystem::path& path, uint32_t down_type) {
  gguf_writer w;
  w.kv_string("general.architecture", "llama");
  w.kv_u32("llama.block_count", 1);
  w.kv_u32("llama.context_length", 64);
  w.kv_u32("llama.embedding_length", hidden);
  w.kv_u32("llama.feed_forward_length", ffn);
  w.kv_u32("llama.attention.head_count", n_head);
  w.kv_u32("llama.attention.head_count_kv", n_kv);
  w.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.kv_f32("llama.rope.freq_base", 10000.0f);
  w.kv_u32("llama.vocab_size", vocab);
  uint32_t seed = 1;
  auto q8 = [&](const std::string& name, int64_t in, int64_t out) {
    std::vector<uint8_t> b = random_bytes(static_cast<size_t>(ggml_row_bytes(8, in * out)), seed++);
    for (size_t blk = 0; blk < b.size(); blk += 34) b[blk] = 0, b[blk + 1] = 0x20;  // scale 2^-15: finite
    w.tensor(name, {in, out}, 8, std::move(b));
  };
  auto norm = [&](const std::string& name) { w.tensor_f32(name, {hidden}, std::vector<float>(hidden, 1.0f)); };
  q8("token_embd.weight", hidden, vocab);
  norm("blk.0.attn_norm.weight");
  q8("blk.0.attn_q.weight", hidden, n_head * head_dim);
  q8("blk.0.attn_k.weight", hidden, n_kv * head_dim);
  q8("blk.0.attn_v.weight", hidden, n_kv * head_dim);
  q8("blk.0.attn_output.weight", n_head * head_dim, hidden);
  norm("blk.0.ffn_norm.weight");
  q8("blk.0.ffn_gate.weight", hidden, ffn);
  q8("blk.0.ffn_up.weight", hidden, ffn);
  w.tensor("blk.0.ffn_down.weight", {ffn, hidden}, down_type,
           random_bytes(static_cast<size_t>(ggml_row_bytes(down_type, ffn * hidden)), 99));
  norm("output_norm.weight");
  return w.write(path);
}

TEST(gguf_bad_weights, the_complete_model_loads_when_every_type_is_readable) {
  test::temp_dir dir("gguf_bad_weights");
  for (uint32_t type : {8u, 3u, 14u}) {  // Q8_0, Q4_1, Q6_K
    const auto path = write_model(dir.path / "ok.gguf", type);
    auto cfg = read_model_config(path);
    ASSERT_TRUE(cfg.ok()) << cfg.err().message;
    auto w = load_model_weights(*cfg, path, load_format::weights);
    ASSERT_TRUE(w.ok()) << w.err().message;
  }
}

TEST(gguf_bad_weights, an_unsupported_tensor_type_is_refused_at_load_with_its_name_and_type) {
  test::temp_dir dir("gguf_bad_weights");
  for (uint32_t type : {16u, 20u, 9u, 34u, 39u}) {  // IQ2_XXS, IQ4_NL, Q8_1, TQ1_0, MXFP4
    const std::string type_name = ggml_type_name(type);
    SCOPED_TRACE(type_name);
    const auto path = write_model(dir.path / "bad.gguf", type);
    auto cfg = read_model_config(path);
    ASSERT_TRUE(cfg.ok()) << cfg.err().message;
    auto w = load_model_weights(*cfg, path, load_format::weights);
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.err().code, errc::unsupported);
    const std::string& msg = w.err().message;
    EXPECT_NE(msg.find("tensor 'blk.0.ffn_down.weight'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("has type " + type_name + ", which troupe cannot load"), std::string::npos) << msg;
    EXPECT_NE(msg.find("Q4_1"), std::string::npos) << "the message lists the supported types: " << msg;
  }
}

}  // namespace
}  // namespace troupe
