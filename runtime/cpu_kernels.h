// Float32 kernels of the CPU forward pass besides the matmul (cpu_matmul.h): RMSNorm, rotary
// embedding (HF rotate_half), SiLU-and-mul and paged attention for one query row. Every kernel
// reduces each output element in one fixed order that does not depend on the batch size or the
// thread count, so results are bit-identical however a step is composed. Each has a scalar and an
// AVX2+FMA path (cpu_simd.h), picked per process as the matmul's is (cpu_matmul_uses_avx2()).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/cpu_matmul.h"
#include "runtime/model_config.h"

namespace troupe {

// y += a · x over n floats (lane-wise, so the order per element is simply the call order).
void axpy_f32(float a, const float* x, float* y, int64_t n);
// The same with x in float16 bits: y[i] += a * float(x[i]), one rounding for the product and one
// for the sum (never fused), on every instruction set.
void axpy_f16(float a, const uint16_t* x, float* y, int64_t n);

// y[i] = float16 bits of x[i] (round to nearest even, as f32_to_f16_bits), n floats.
void f32_to_f16_row(const float* x, uint16_t* y, int64_t n);

// y[r, :] = x[r, :] / sqrt(mean(x[r, :]²) + eps) · weight, for r in [0, rows). x, y: [rows, dim].
void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, double eps, float* y);

// Rotary inverse frequencies [head_dim / 2] for the config's rope type (default, linear, llama3),
// computed as Hugging Face does, in float32 for every checkpoint dtype (a bf16 checkpoint loaded
// with from_pretrained keeps its inv_freq buffer float32).
std::vector<float> rope_inv_freq(const rope_config& rope, int64_t head_dim);

// cos/sin [head_dim / 2] of position `pos`.
void rope_cos_sin(const std::vector<float>& inv_freq, int64_t pos, float* cos_out, float* sin_out);

// Rotates num_heads vectors of head_dim in place (HF rotate_half: pairs i and i + head_dim / 2).
// v: [num_heads, head_dim]; cos, sin: [head_dim / 2].
void rope_apply(float* v, int64_t num_heads, int64_t head_dim, const float* cos, const float* sin);

// out[r, i] = silu(gate_up[r, i]) · gate_up[r, inter + i]. gate_up: [rows, 2 * inter]; out: [rows, inter].
void silu_mul(const float* gate_up, int64_t rows, int64_t inter, float* out);

// The same with GeGLU (Gemma): out[r, i] = gelu_tanh(gate_up[r, i]) · gate_up[r, inter + i].
void gelu_tanh_mul(const float* gate_up, int64_t rows, int64_t inter, float* out);

// x[i] = cap · tanh(x[i] / cap) (Gemma's final logit soft-capping).
void softcap(float* x, int64_t n, float cap);

// Softmax numerators of attention scores: s[j] = exp(s[j] − max(s)) for j in [0, n), n ≥ 1, and
// returns their sum. The summation order depends on n only (never on the caller's chunking).
float softmax_numerators(float* s, int64_t n);

// One kv head's cache seen through a block table. Block b holds its keys at
// pool + block_table[b] * block_stride + k_offset, as [block_seq_len, head_dim], values at v_offset.
struct paged_kv_view {
  const float* pool = nullptr;
  const uint16_t* pool_f16 = nullptr;  // set instead of pool for a float16 cache (offsets in elements)
  const int32_t* block_table = nullptr;
  int64_t block_stride = 0;  // elements per block
  int64_t k_offset = 0;      // elements from a block's start to this layer/head's keys
  int64_t v_offset = 0;      // ... and values
  int64_t block_seq_len = 0;
  int64_t head_dim = 0;
};

// out[head_dim] = Σ_j softmax(q·k_j · scale) v_j over cached positions j in [lo, hi] (inclusive).
// scores: scratch of at least hi - lo + 1 floats. The reduction runs over positions in increasing
// order whatever the caller's chunking, so prefill and decode give identical rows.
void paged_attention_row(const float* q, const paged_kv_view& kv, int64_t lo, int64_t hi, float scale,
                         float* scores, float* out);

}  // namespace troupe
