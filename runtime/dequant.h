// GGML tensor types and their conversion to float32: the type table (block size, bytes per block)
// that the GGUF reader checks tensor sizes against, and dequantizers that follow GGML's block
// layouts exactly (ggml-common.h / ggml-quants.c), so a GGUF tensor reads as llama.cpp reads it.
#pragma once

#include <cstdint>
#include <string>

#include "config/error.h"

namespace troupe {

// GGML's type ids as stored in GGUF tensor infos (ggml.h enum ggml_type); stable numbers.
enum class ggml_type : uint32_t {
  f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9,
  q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, q8_k = 15,
  iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22,
  iq4_xs = 23, i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30,
  tq1_0 = 34, tq2_0 = 35,
};

struct ggml_type_traits {
  const char* name;         // "Q4_1", as llama.cpp and the gguf Python package print it
  int64_t block_size;       // elements per block (1 for plain types)
  int64_t type_size;        // bytes per block
  bool can_dequantize;      // dequantize_to_f32 supports it
};

// The traits of a raw type id from a file, or nullptr for an id GGML does not define.
const ggml_type_traits* ggml_type_info(uint32_t type);

// Name for messages ("Q4_1", or "type 99" for an unknown id).
std::string ggml_type_name(uint32_t type);

// Bytes that `num_elements` elements of `type` occupy; -1 if the type is unknown, the count is not
// a whole number of blocks, or the size overflows int64.
int64_t ggml_row_bytes(uint32_t type, int64_t num_elements);

// Converts `num_elements` elements of `type` at `src` (at least ggml_row_bytes(type, n) bytes,
// any alignment) to float32 at `dst` [num_elements]. Errors: unknown or not-dequantizable type
// (errc::unsupported), a count that is not a whole number of blocks (errc::invalid_argument).
status dequantize_to_f32(uint32_t type, const uint8_t* src, int64_t num_elements, float* dst);

// IEEE half and bfloat16 bit patterns to float (exact).
float fp16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t h);

}  // namespace troupe
