// The state cuda_model keeps to sample on the device (cuda_model_sampling.cpp): per-row knobs,
// token edits and answers, staged in pinned memory and mirrored in the runtime reserve, all sized
// at start-up for max_batch_size rows so a step allocates nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/sampling_math.h"

namespace troupe {

struct device_sampling {
  // Edits per step: this many per row of max_batch_size (a row needing more is sampled on the host).
  static constexpr int32_t kEditsPerRow = 2048;

  int32_t max_rows = 0;
  int32_t edit_capacity = 0;
  // Pinned staging [max_rows] / [edit_capacity], one cudaMallocHost.
  smath::row_params* params_h = nullptr;
  int32_t* row_seq_h = nullptr;  // the seq (= decode graph logits row) of each output row
  smath::row_edit* edits_h = nullptr;
  smath::row_result* results_h = nullptr;
  void* pinned = nullptr;
  // Device mirrors, carved from the reserve.
  smath::row_params* params_d = nullptr;
  int32_t* row_seq_d = nullptr;
  smath::row_edit* edits_d = nullptr;
  smath::row_result* results_d = nullptr;
  std::vector<int32_t> edit_of;  // [vocab] scratch of build_sampling_row, -1 between rows
  bool active = false;           // during forward_sampled: deliver_logits samples on the device
  int32_t num_device_rows = 0;   // rows of this step sampled on the device

  ~device_sampling();
  // Bytes each of the two copies (pinned, device) takes, 256-aligned sections.
  static uint64_t bytes(int32_t max_rows);
};

}  // namespace troupe
