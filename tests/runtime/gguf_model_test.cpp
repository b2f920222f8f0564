// GGUF as a model on synthetic files: model_config from llama.* / qwen2.* keys, tokenizer data from
// tokenizer.ggml.*, and the HF-named weight view, including the round trip of llama.cpp's q/k row
// permutation (permuted here as convert_hf_to_gguf.py does, written, read back equal to HF).
#include <gtest/gtest.h>

#include <random>

#include "runtime/gguf_model.h"
#include "runtime/gguf_test_writer.h"

namespace troupe {
namespace {

using test::gguf_writer;

constexpr int64_t hidden = 32, n_head = 4, n_kv = 2, head_dim = 8, ffn = 64, vocab = 6;

// convert_hf_to_gguf.py LlamaModel.permute: rows [n_head, 2, hd/2] -> [n_head, hd/2, 2].
std::vector<float> permute_like_llama_cpp(const std::vector<float>& w, int64_t rows, int64_t heads) {
  const int64_t row_len = static_cast<int64_t>(w.size()) / rows, hd = rows / heads, half = hd / 2;
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < half; ++j)
        for (int64_t c = 0; c < row_len; ++c)
          out[((h * half + j) * 2 + i) * row_len + c] = w[((h * 2 + i) * half + j) * row_len + c];
  return out;
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

struct tiny_model {
  std::vector<float> q, k, v, qb, kb;  // HF order
};

// A tiny llama (or qwen2) file: metadata, tokenizer and one layer of F32 weights.
gguf_writer tiny_writer(const std::string& arch, tiny_model& m, bool with_output) {
  gguf_writer w;
  const std::string p = arch + ".";
  w.kv_string("general.architecture", arch);
  w.kv_string("general.name", "tiny " + arch);
  w.kv_u32(p + "block_count", 1);
  w.kv_u32(p + "context_length", 128);
  w.kv_u32(p + "embedding_length", hidden);
  w.kv_u32(p + "feed_forward_length", ffn);
  w.kv_u32(p + "attention.head_count", n_head);
  w.kv_u32(p + "attention.head_count_kv", n_kv);
  w.kv_f32(p + "rope.freq_base", 500000.0f);
  w.kv_f32(p + "attention.layer_norm_rms_epsilon", 1e-6f);
  w.kv_u32(p + "rope.dimension_count", head_dim);
  w.kv_string("tokenizer.ggml.model", "gpt2");
  w.kv_string("tokenizer.ggml.pre", "qwen2");
  w.kv_strings("tokenizer.ggml.tokens", {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "ab"});
  w.kv_array<int32_t>("tokenizer.ggml.token_type", 5, {3, 3, 3, 1, 1, 1});
  w.kv_strings("tokenizer.ggml.merges", {"a b"});
  w.kv_u32("tokenizer.ggml.bos_token_id", 1);
  w.kv_u32("tokenizer.ggml.eos_token_id", 2);
  w.kv_u32("tokenizer.ggml.padding_token_id", 0);
  w.kv_bool("tokenizer.ggml.add_bos_token", false);
  w.kv_string("tokenizer.chat_template", "{{ messages }}");

  const bool permute = arch == "llama";
  m.q = random_floats(n_head * head_dim * hidden, 1);
  m.k = random_floats(n_kv * head_dim * hidden, 2);
  m.v = random_floats(n_kv * head_dim * hidden, 3);
  m.qb = random_floats(n_head * head_dim, 4);
  m.kb = random_floats(n_kv * head_dim, 5);
  auto q = permute ? permute_like_llama_cpp(m.q, n_head * head_dim, n_head) : m.q;
  auto k = permute ? permute_like_llama_cpp(m.k, n_kv * head_dim, n_kv) : m.k;
  auto qb = permute ? permute_like_llama_cpp(m.qb, n_head * head_dim, n_head) : m.qb;
  auto kb = permute ? permute_like_llama_cpp(m.kb, n_kv * head_dim, n_kv) : m.kb;
  w.tensor_f32("token_embd.weight", {hidden, vocab}, random_floats(hidden * vocab, 6));
  w.tensor_f32("blk.0.attn_norm.weight", {hidden}, std::vector<float>(hidden, 1.0f));
  w.tensor_f32("blk.0.attn_q.weight", {hidden, n_head * head_dim}, q);
  w.tensor_f32("blk.0.attn_k.weight", {hidden, n_kv * head_dim}, k);
  w.tensor_f32("blk.0.attn_v.weight", {hidden, n_kv * head_dim}, m.v);
  w.tensor_f32("blk.0.attn_q.bias", {n_head * head_dim}, qb);
  w.tensor_f32("blk.0.attn_k.bias", {n_kv * head_dim}, kb);
  w.tensor_f32("blk.0.attn_output.weight", {n_head * head_dim, hidden}, random_floats(hidden * hidden, 7));
  w.tensor_f32("blk.0.ffn_norm.weight", {hidden}, std::vector<float>(hidden, 2.0f));
  w.tensor_f32("blk.0.ffn_gate.weight", {hidden, ffn}, random_floats(hidden * ffn, 8));
  w.tensor_f32("blk.0.ffn_up.weight", {hidden, ffn}, random_floats(hidden * ffn, 9));
  w.tensor_f32("blk.0.ffn_down.weight", {ffn, hidden}, random_floats(hidden * ffn, 10));
  w.tensor_f32("output_norm.weight", {hidden}, std::vector<float>(hidden, 3.0f));
  if (with_output) w.tensor_f32("output.weight", {hidden, vocab}, random_floats(hidden * vocab, 11));
  return w;
}

class gguf_model_files : public ::testing::Test {
 protected:
  test::temp_dir dir{"gguf_model"};
  tiny_model m;
  std::filesystem::path write(const gguf_writer& w, const std::string& name = "m.gguf") { return w.write(dir.path / name); }
};

TEST_F(gguf_model_files, reads_a_llama_config) {
  auto path = write(tiny_writer("llama", m, false));
  auto c = read_gguf_model_config(path);
  ASSERT_TRUE(c.ok()) << c.err().to_string();
  EXPECT_EQ(c->architecture, "llama");
  EXPECT_EQ(c->name, "tiny llama");
  EXPECT_EQ(c->num_layers, 1);
  EXPECT_EQ(c->hidden_size, hidden);
  EXPECT_EQ(c->intermediate_size, ffn);
  EXPECT_EQ(c->num_heads, n_head);
  EXPECT_EQ(c->num_kv_heads, n_kv);
  EXPECT_EQ(c->head_dim, head_dim);
  EXPECT_EQ(c->vocab_size, vocab);  // from the tokens array: no llama.vocab_size key
  EXPECT_EQ(c->max_position_embeddings, 128);
  EXPECT_DOUBLE_EQ(c->rope.theta, 500000.0);
  EXPECT_EQ(c->rope.type, "default");
  EXPECT_NEAR(c->rms_norm_eps, 1e-6, 1e-12);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_TRUE(c->attention_bias);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{2}));
  EXPECT_EQ(c->source_dtype, "gguf");
  // read_model_config dispatches on the extension.
  auto c2 = read_model_config(path);
  ASSERT_TRUE(c2.ok()) << c2.err().to_string();
  EXPECT_EQ(c2->num_kv_heads, n_kv);
}

TEST_F(gguf_model_files, reads_a_qwen2_config_with_output_and_linear_rope) {
  auto w = tiny_writer("qwen2", m, true);
  w.kv_u32("qwen2.attention.key_length", 16);
  w.kv_u32("qwen2.vocab_size", 8);
  w.kv_string("qwen2.rope.scaling.type", "linear");
  w.kv_f32("qwen2.rope.scaling.factor", 4.0f);
  auto c = read_gguf_model_config(write(w));
  ASSERT_TRUE(c.ok()) << c.err().to_string();
  EXPECT_EQ(c->architecture, "qwen2");
  EXPECT_EQ(c->head_dim, 16);  // key_length wins over rope.dimension_count
  EXPECT_EQ(c->vocab_size, 8);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->rope.type, "linear");
  EXPECT_DOUBLE_EQ(c->rope.factor, 4.0);
}

TEST_F(gguf_model_files, config_errors_name_the_file_and_key) {
  gguf_writer w;
  w.kv_string("general.architecture", "gpt-neox");
  auto c = read_gguf_model_config(write(w, "neox.gguf"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.err().code, errc::unsupported);
  EXPECT_NE(c.err().message.find("neox.gguf"), std::string::npos);
  gguf_writer w2;
  w2.kv_string("general.architecture", "llama");
  w2.kv_u32("llama.block_count", 2);
  auto c2 = read_gguf_model_config(write(w2, "partial.gguf"));
  ASSERT_FALSE(c2.ok());
  EXPECT_EQ(c2.err().code, errc::corrupt_file);
  EXPECT_NE(c2.err().message.find("llama.context_length"), std::string::npos) << c2.err().message;
  gguf_writer w3;
  w3.kv_u32("general.architecture", 1);
  auto c3 = read_gguf_model_config(write(w3, "typed.gguf"));
  ASSERT_FALSE(c3.ok());
  EXPECT_NE(c3.err().message.find("general.architecture"), std::string::npos);
  auto missing = read_gguf_model_config(dir.path / "absent.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.err().code, errc::not_found);
}

TEST_F(gguf_model_files, reads_tokenizer_data) {
  auto t = read_gguf_tokenizer_data(write(tiny_writer("llama", m, false)));
  ASSERT_TRUE(t.ok()) << t.err().to_string();
  EXPECT_EQ(t->model, "gpt2");
  EXPECT_EQ(t->pre, "qwen2");
  EXPECT_EQ(t->tokens.size(), 6u);
  EXPECT_EQ(t->tokens[5], "ab");
  ASSERT_EQ(t->types.size(), 6u);
  EXPECT_EQ(t->types[1], token_type::control);
  EXPECT_EQ(t->types[4], token_type::normal);
  EXPECT_TRUE(t->scores.empty());
  EXPECT_EQ(t->merges, (std::vector<std::string>{"a b"}));
  EXPECT_EQ(t->bos_id, 1);
  EXPECT_EQ(t->eos_id, 2);
  EXPECT_EQ(t->unk_id, -1);
  EXPECT_EQ(t->pad_id, 0);
  EXPECT_FALSE(t->add_bos);
  EXPECT_FALSE(t->add_eos);
  EXPECT_FALSE(t->add_space_prefix);
  EXPECT_EQ(t->chat_template, "{{ messages }}");
  // <|im_end|> is the eos itself; <|endoftext|> is another control end-of-generation token.
  EXPECT_EQ(t->extra_eos_ids, (std::vector<int32_t>{0}));
}

TEST_F(gguf_model_files, sentencepiece_defaults_and_bad_arrays) {
  gguf_writer w;
  w.kv_string("tokenizer.ggml.model", "llama");
  w.kv_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "▁a"});
  w.kv_array<float>("tokenizer.ggml.scores", 6, {0.0f, 0.0f, 0.0f, -1.5f});
  w.kv_u32("tokenizer.ggml.eos_token_id", 77);  // outside the vocabulary: dropped
  auto t = read_gguf_tokenizer_data(write(w));
  ASSERT_TRUE(t.ok()) << t.err().to_string();
  EXPECT_TRUE(t->add_bos);
  EXPECT_TRUE(t->add_space_prefix);
  EXPECT_EQ(t->pre, "default");
  EXPECT_EQ(t->scores[3], -1.5f);
  EXPECT_EQ(t->eos_id, -1);
  EXPECT_EQ(t->types[0], token_type::normal);

  gguf_writer bad;
  bad.kv_string("tokenizer.ggml.model", "gpt2");
  bad.kv_strings("tokenizer.ggml.tokens", {"a", "b"});
  bad.kv_array<int32_t>("tokenizer.ggml.token_type", 5, {1});
  auto e = read_gguf_tokenizer_data(write(bad, "bad.gguf"));
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.err().code, errc::corrupt_file);
  EXPECT_NE(e.err().message.find("tokenizer.ggml.token_type"), std::string::npos);
  gguf_writer none;
  none.kv_string("tokenizer.ggml.model", "gpt2");
  auto e2 = read_gguf_tokenizer_data(write(none, "none.gguf"));
  ASSERT_FALSE(e2.ok());
  EXPECT_NE(e2.err().message.find("tokenizer.ggml.tokens"), std::string::npos);
}

TEST_F(gguf_model_files, weights_have_hf_names_and_shapes) {
  auto ws = open_gguf_weights(write(tiny_writer("llama", m, true)));
  ASSERT_TRUE(ws.ok()) << ws.err().to_string();
  const weight_source& w = **ws;
  EXPECT_EQ(w.tensors().size(), 14u);
  for (const char* n : {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
                        "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
                        "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_proj.bias",
                        "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.k_proj.bias",
                        "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
                        "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
                        "model.layers.0.mlp.down_proj.weight"})
    EXPECT_NE(w.find(n), nullptr) << n;
  EXPECT_EQ(w.find("model.embed_tokens.weight")->shape, (std::vector<int64_t>{vocab, hidden}));
  EXPECT_EQ(w.find("model.layers.0.self_attn.k_proj.weight")->shape, (std::vector<int64_t>{n_kv * head_dim, hidden}));
  EXPECT_EQ(w.find("model.layers.0.mlp.down_proj.weight")->shape, (std::vector<int64_t>{hidden, ffn}));
  EXPECT_EQ(w.find("model.norm.weight")->dtype, "F32");
  std::vector<float> out;
  ASSERT_TRUE(w.read_f32("model.norm.weight", out).ok());
  EXPECT_EQ(out, std::vector<float>(hidden, 3.0f));
  ASSERT_TRUE(w.read_f32("model.layers.0.self_attn.v_proj.weight", out).ok());
  EXPECT_EQ(out, m.v);
  auto missing = w.read_f32("model.layers.7.mlp.up_proj.weight", out);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.err().code, errc::not_found);
  EXPECT_NE(missing.err().message.find("m.gguf"), std::string::npos);
}

TEST_F(gguf_model_files, llama_qk_permutation_round_trips) {
  auto ws = open_gguf_weights(write(tiny_writer("llama", m, false)));
  ASSERT_TRUE(ws.ok()) << ws.err().to_string();
  std::vector<float> out;
  ASSERT_TRUE((*ws)->read_f32("model.layers.0.self_attn.q_proj.weight", out).ok());
  EXPECT_EQ(out, m.q);
  ASSERT_TRUE((*ws)->read_f32("model.layers.0.self_attn.k_proj.weight", out).ok());
  EXPECT_EQ(out, m.k);
  ASSERT_TRUE((*ws)->read_f32("model.layers.0.self_attn.q_proj.bias", out).ok());
  EXPECT_EQ(out, m.qb);
  ASSERT_TRUE((*ws)->read_f32("model.layers.0.self_attn.k_proj.bias", out).ok());
  EXPECT_EQ(out, m.kb);
  // Sanity: the stored tensor really was permuted (so the test checks something).
  EXPECT_NE(permute_like_llama_cpp(m.q, n_head * head_dim, n_head), m.q);
}

TEST_F(gguf_model_files, qwen2_qk_rows_are_read_as_stored) {
  auto ws = open_gguf_weights(write(tiny_writer("qwen2", m, false)));
  ASSERT_TRUE(ws.ok()) << ws.err().to_string();
  std::vector<float> out;
  ASSERT_TRUE((*ws)->read_f32("model.layers.0.self_attn.q_proj.weight", out).ok());
  EXPECT_EQ(out, m.q);
}

TEST_F(gguf_model_files, quantized_tensor_reads_through_weight_source) {
  gguf_writer w;
  w.kv_string("general.architecture", "qwen2");
  std::vector<uint8_t> block(34);
  const uint16_t d = 0x3800;  // 0.5
  std::memcpy(block.data(), &d, 2);
  for (int j = 0; j < 32; ++j) block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
  w.tensor("blk.3.ffn_up.weight", {32, 1}, 8, block);
  w.tensor("blk.3.ffn_gate.weight", {32, 1}, 16, std::vector<uint8_t>(66));  // IQ2_XXS rows: multiples of 256
  auto ws = open_gguf_weights(write(w));
  ASSERT_FALSE(ws.ok());  // a 32-element row is not a whole IQ2_XXS block
  gguf_writer w2;
  w2.kv_string("general.architecture", "qwen2");
  w2.tensor("blk.3.ffn_up.weight", {32, 1}, 8, block);
  w2.tensor("blk.3.ffn_gate.weight", {256}, 16, std::vector<uint8_t>(66));
  auto ws2 = open_gguf_weights(write(w2, "q.gguf"));
  ASSERT_TRUE(ws2.ok()) << ws2.err().to_string();
  const tensor_info* up = (*ws2)->find("model.layers.3.mlp.up_proj.weight");
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->dtype, "Q8_0");
  EXPECT_EQ(up->shape, (std::vector<int64_t>{1, 32}));
  std::vector<float> out;
  ASSERT_TRUE((*ws2)->read_f32(up->name, out).ok());
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], (j - 16) * 0.5f);
  auto iq = (*ws2)->read_f32("model.layers.3.mlp.gate_proj.weight", out);
  ASSERT_FALSE(iq.ok());
  EXPECT_EQ(iq.err().code, errc::unsupported);
  EXPECT_NE(iq.err().message.find("blk.3.ffn_gate.weight"), std::string::npos) << iq.err().message;
}

}  // namespace
}  // namespace troupe
