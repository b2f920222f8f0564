// Weights as views into the memory-mapped file (--mmap) against copies (--no-mmap): the same logits
// bit for bit for every fixture and the default model, the mapping alive after the source and its
// file handle are gone, what may be mapped (same dtype, adjacent fused parts, aligned) and what may not.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "config/paths.h"
#include "runtime/cpu_model.h"
#include "runtime/model_config.h"
#include "runtime/model_weights.h"

namespace troupe {
namespace {

// A 19-token prompt's logits at every position, then 2 decode steps.
std::vector<float> logits_of(const model_config& cfg, model_weights w) {
  cpu_model_options o{8, 16, 2};
  auto m = cpu_model::create(cfg, std::move(w), o);
  EXPECT_TRUE(m.ok()) << m.err().message;
  if (!m.ok()) return {};
  std::vector<float> all;
  step_batch b;
  seq_step s;
  s.seq_id = 1;
  for (int i = 0; i < 19; ++i) s.tokens.push_back(static_cast<int32_t>((i * 7919 + 11) % cfg.vocab_size));
  s.want_all_logits = true;
  for (int i = 0; i < 4; ++i) s.block_table.push_back(i);
  b.seqs.push_back(s);
  step_logits out;
  for (int step = 0; step < 3; ++step) {
    EXPECT_TRUE((*m)->forward(b, out).ok());
    all.insert(all.end(), out.data.begin(), out.data.end());
    b.seqs[0].start_pos += static_cast<int32_t>(b.seqs[0].tokens.size());
    b.seqs[0].tokens = {static_cast<int32_t>((31 * step + 3) % cfg.vocab_size)};
    b.seqs[0].want_all_logits = false;
  }
  return all;
}

std::vector<std::string> models() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(TROUPE_FIXTURES_DIR))
    if (std::filesystem::exists(e.path() / "config.json")) out.push_back(e.path().string());
  for (const char* name : {"tiny-gemma3", "tiny-gemma3-bf16"})
    out.push_back(std::string(TROUPE_TEST_DATA_DIR) + "/fixtures/" + name);
  std::sort(out.begin(), out.end());
  if (std::filesystem::exists(default_model_path())) out.push_back(default_model_path());
  return out;
}

TEST(mmap_weights, views_give_bit_identical_logits_to_copies) {
  for (const auto& path : models()) {
    SCOPED_TRACE(path);
    auto cfg = read_model_config(path);
    ASSERT_TRUE(cfg.ok()) << cfg.err().message;
    weight_load_options mapped, copied;
    mapped.mmap = true;
    auto wm = load_model_weights(*cfg, path, load_format::weights, mapped);
    auto wc = load_model_weights(*cfg, path, load_format::weights, copied);
    ASSERT_TRUE(wm.ok()) << wm.err().message;
    ASSERT_TRUE(wc.ok()) << wc.err().message;
    // Something is mapped (every fixture and the default model store most matrices as held), nothing
    // with --no-mmap, and both hold the same bytes.
    EXPECT_GT(wm->mapped_bytes(), 0);
    EXPECT_EQ(wc->mapped_bytes(), 0);
    EXPECT_EQ(wm->num_bytes(), wc->num_bytes());
    const auto a = logits_of(*cfg, std::move(*wm)), b = logits_of(*cfg, std::move(*wc));
    ASSERT_EQ(a.size(), b.size());
    ASSERT_FALSE(a.empty());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  }
}

// load_model_weights(path) opens the file, loads and drops the source (and the descriptor was
// closed at open): the views must keep the mapping alive on their own, through copies of the
// weights too. A dangling view would fault (or be reported by ASan) in the forward pass.
TEST(mmap_weights, mapping_outlives_the_source_and_the_file_handle) {
  const std::string path = default_model_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model not installed at " << path;
  auto cfg = read_model_config(path);
  ASSERT_TRUE(cfg.ok()) << cfg.err().message;
  model_weights copy;
  {
    auto w = load_model_weights(*cfg, path, load_format::weights, weight_load_options{.mmap = true});
    ASSERT_TRUE(w.ok()) << w.err().message;
    ASSERT_TRUE(w->embed.is_mapped());  // Q8_0 embedding, gathered row by row from the file
    ASSERT_TRUE(w->layers[0].w_down.is_mapped());
    copy = *w;
  }
  EXPECT_TRUE(copy.embed.mapping != nullptr);
  std::vector<float> row(static_cast<size_t>(cfg->hidden_size));
  copy.embed.row_f32(cfg->vocab_size - 1, row.data());  // the last row: the far end of the view
  EXPECT_TRUE(std::all_of(row.begin(), row.end(), [](float x) { return std::isfinite(x); }));
  auto copied = load_model_weights(*cfg, path, load_format::weights, weight_load_options{.mmap = false});
  ASSERT_TRUE(copied.ok());
  EXPECT_EQ(logits_of(*cfg, std::move(copy)), logits_of(*cfg, std::move(*copied)));
}

// The default model (llama arch): q/k rows are unpermuted on load, so the fused q/k/v is copied;
// ffn_gate precedes ffn_up in the file, so the fused gate/up is one view; o and down are views.
TEST(mmap_weights, default_model_maps_what_the_file_stores_as_held) {
  const std::string path = default_model_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model not installed at " << path;
  auto cfg = read_model_config(path);
  ASSERT_TRUE(cfg.ok()) << cfg.err().message;
  auto w = load_model_weights(*cfg, path, load_format::weights, weight_load_options{.mmap = true});
  ASSERT_TRUE(w.ok()) << w.err().message;
  for (const auto& l : w->layers) {
    EXPECT_FALSE(l.w_qkv.is_mapped());
    EXPECT_TRUE(l.w_gate_up.is_mapped());
    EXPECT_TRUE(l.w_o.is_mapped());
    EXPECT_TRUE(l.w_down.is_mapped());
  }
  // A forced dtype converts: nothing may be mapped then.
  weight_load_options f32;
  f32.mmap = true;
  f32.dtype = weight_dtype::f32;
  auto wf = load_model_weights(*cfg, path, load_format::weights, f32);
  ASSERT_TRUE(wf.ok());
  EXPECT_EQ(wf->mapped_bytes(), 0);
}

TEST(weight_matrix, from_mapped_refuses_a_wrong_size_or_a_misaligned_view) {
  alignas(32) static const uint8_t bytes[64] = {};
  auto keep = std::make_shared<int>(0);
  auto ok = weight_matrix::from_mapped(bytes, 32, keep, 2, 4, weight_dtype::f32);
  ASSERT_TRUE(ok.ok()) << ok.err().message;
  EXPECT_TRUE(ok->is_mapped());
  EXPECT_TRUE(ok->storage_ok());
  EXPECT_EQ(ok->num_bytes(), 32);
  EXPECT_EQ(ok->mapped_bytes(), 32);
  EXPECT_EQ(ok->f32_data(), reinterpret_cast<const float*>(bytes));
  EXPECT_FALSE(weight_matrix::from_mapped(bytes, 28, keep, 2, 4, weight_dtype::f32).ok());      // size
  EXPECT_FALSE(weight_matrix::from_mapped(bytes + 2, 32, keep, 2, 4, weight_dtype::f32).ok());  // float alignment
  EXPECT_FALSE(weight_matrix::from_mapped(bytes + 1, 16, keep, 2, 4, weight_dtype::f16).ok());  // half alignment
  EXPECT_TRUE(weight_matrix::from_mapped(bytes + 2, 16, keep, 2, 4, weight_dtype::f16).ok());
  // Q4_1: 32 elements per 20-byte block.
  EXPECT_TRUE(weight_matrix::from_mapped(bytes, 40, keep, 2, 32, weight_dtype::q4_1).ok());
  EXPECT_FALSE(weight_matrix::from_mapped(bytes, 41, keep, 2, 32, weight_dtype::q4_1).ok());
}

}  // namespace
}  // namespace troupe
