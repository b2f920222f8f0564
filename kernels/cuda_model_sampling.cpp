// cuda_model::forward_sampled: a serving step samples where its logits are. Rows whose knobs the
// device serves (runtime/sampling_rows.h: all but constraints and the rare rows it refuses) are
// sampled by kernels/sampling.cu straight from the LM head's output, and only token ids and top-k
// logprobs come back; the other rows land in pinned host memory and the CPU sampler runs there.
// Design note: the CPU sampler stays the reference: the device runs the same math
// (runtime/sampling_math.h) with the uniform the sequence's own generator draws, so a seeded
// request gives the same tokens on either path (to float rounding at a draw's boundary).
#include "kernels/cuda_model.h"

#include "kernels/cuda_model_detail.h"
#include "kernels/sampling.h"
#include "runtime/sampling_rows.h"
#include "runtime/step_sampling.h"

namespace troupe {

using cuda_model_detail::align_up;

namespace {

// Offsets of the sections of one copy (pinned or device) of the staging buffers. params is first:
// stage_device_rows uploads [params, the last used edit) in one copy.
struct sampling_layout {
  uint64_t params = 0, row_seq = 0, edits = 0, results = 0, end = 0;
  explicit sampling_layout(int32_t rows) {
    const auto n = static_cast<uint64_t>(rows);
    row_seq = align_up(n * sizeof(smath::row_params));
    edits = row_seq + align_up(n * sizeof(int32_t));
    results = edits + align_up(n * device_sampling::kEditsPerRow * sizeof(smath::row_edit));
    end = results + align_up(n * sizeof(smath::row_result));
  }
};

}  // namespace

device_sampling::~device_sampling() {
  if (pinned) cudaFreeHost(pinned);
}

uint64_t device_sampling::bytes(int32_t max_rows) { return sampling_layout(max_rows).end + cuda_model_detail::kAlign; }

status cuda_model::init_sampling() {
  if (opts_.tp_rank != 0) return ok_status();  // other TP ranks compute no logits
  const int32_t rows = opts_.max_batch_size;
  TROUPE_CUDA_TRY(cudaMallocHost(reinterpret_cast<void**>(&host_logits_),
                                 static_cast<size_t>(rows) * cfg_.vocab_size * sizeof(float)),
                  "cudaMallocHost (logits rows to sample)");
  const sampling_layout lay(rows);
  auto dev = reserve_.allocate(lay.end, cuda_model_detail::kAlign);
  if (!dev) return ok_status();  // a reserve planned without room for them: every row samples on the host
  auto ds = std::make_unique<device_sampling>();
  TROUPE_CUDA_TRY(cudaMallocHost(&ds->pinned, lay.end), "cudaMallocHost (sampling rows)");
  auto* h = static_cast<char*>(ds->pinned);
  auto* d = static_cast<char*>(*dev);
  ds->max_rows = rows;
  ds->edit_capacity = rows * device_sampling::kEditsPerRow;
  ds->params_h = reinterpret_cast<smath::row_params*>(h + lay.params);
  ds->params_d = reinterpret_cast<smath::row_params*>(d + lay.params);
  ds->row_seq_h = reinterpret_cast<int32_t*>(h + lay.row_seq);
  ds->row_seq_d = reinterpret_cast<int32_t*>(d + lay.row_seq);
  ds->edits_h = reinterpret_cast<smath::row_edit*>(h + lay.edits);
  ds->edits_d = reinterpret_cast<smath::row_edit*>(d + lay.edits);
  ds->results_h = reinterpret_cast<smath::row_result*>(h + lay.results);
  ds->results_d = reinterpret_cast<smath::row_result*>(d + lay.results);
  ds->edit_of.assign(static_cast<size_t>(cfg_.vocab_size), -1);
  dsamp_ = std::move(ds);
  return ok_status();
}

// Builds output row r's knobs (rows are the want_logits seqs in order) and uploads them on the
// step's stream, ahead of the forward pass that consumes them.
status cuda_model::stage_device_rows(const step_batch& batch) {
  device_sampling& ds = *dsamp_;
  sampling_rows_out edits{ds.edits_h, ds.edit_capacity, 0, ds.edit_of};
  int32_t r = 0;
  ds.num_device_rows = 0;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const seq_step& s = batch.seqs[i];
    if (!s.want_logits) continue;
    smath::row_params& p = ds.params_h[r];
    ds.row_seq_h[r++] = static_cast<int32_t>(i);
    if (build_sampling_row(*s.sampling, cfg_.vocab_size, edits, p)) {
      ++ds.num_device_rows;
    } else {
      p = smath::row_params{};
      p.skip = 1;
    }
  }
  if (ds.num_device_rows == 0) return ok_status();
  // One copy: knobs, row seqs and the used edits are consecutive sections (sampling_layout).
  const auto bytes = static_cast<size_t>(reinterpret_cast<char*>(ds.edits_h + edits.used) -
                                         reinterpret_cast<char*>(ds.params_h));
  TROUPE_CUDA_TRY(cudaSetDevice(opts_.device), "cudaSetDevice");
  TROUPE_CUDA_TRY(cudaMemcpyAsync(ds.params_d, ds.params_h, bytes, cudaMemcpyHostToDevice, stream_),
                  "upload sampling rows");
  ds.active = true;
  return ok_status();
}

// Output rows [r0, r0 + m): row r is buf_.logits row src_rows[r] (null: r - r0). Copied to
// dst + r * vocab, or, while forward_sampled samples on the device, sampled there (only the rows
// the device does not serve are copied).
status cuda_model::deliver_logits(float* dst, int64_t r0, int64_t m, const int32_t* src_rows) {
  const int64_t V = cfg_.vocab_size;
  auto src = [&](int64_t r) { return buf_.logits + (src_rows ? src_rows[r] : r - r0) * V; };
  device_sampling* ds = dsamp_.get();
  if (!ds || !ds->active) {
    bool contiguous = true;
    for (int64_t r = r0; src_rows && r < r0 + m; ++r) contiguous = contiguous && src_rows[r] == src_rows[r0] + r - r0;
    if (contiguous)
      return cuda_status(cudaMemcpyAsync(dst + r0 * V, src(r0), m * V * 4, cudaMemcpyDeviceToHost, stream_),
                         "copy logits");
    for (int64_t r = r0; r < r0 + m; ++r)
      TROUPE_CUDA_TRY(cudaMemcpyAsync(dst + r * V, src(r), V * 4, cudaMemcpyDeviceToHost, stream_), "copy logits");
    return ok_status();
  }
  sample_rows_args a;
  a.logits = buf_.logits;
  a.row_of = src_rows ? ds->row_seq_d + r0 : nullptr;  // src_rows are the seqs (decode graphs)
  a.params = ds->params_d + r0;
  a.edits = ds->edits_d;
  a.out = ds->results_d + r0;
  a.num_rows = static_cast<int32_t>(m);
  a.vocab = V;
  TROUPE_CUDA_TRY(launch_sample_rows(a, stream_), "sample rows");
  for (int64_t r = r0; r < r0 + m; ++r)
    if (ds->params_h[r].skip)
      TROUPE_CUDA_TRY(cudaMemcpyAsync(dst + r * V, src(r), V * 4, cudaMemcpyDeviceToHost, stream_), "copy logits");
  return cuda_status(cudaMemcpyAsync(ds->results_h + r0, ds->results_d + r0, m * sizeof(smath::row_result),
                                     cudaMemcpyDeviceToHost, stream_),
                     "copy sampled tokens");
}

status cuda_model::forward_sampled(const step_batch& batch, step_logits& rows, step_logits& out) {
  bool pinned = host_logits_ != nullptr;
  int64_t num_rows = 0;
  for (const seq_step& s : batch.seqs) {
    if (s.want_all_logits || (s.want_logits && !samples_here(s))) pinned = false;  // rows go back
    if (s.want_logits) ++num_rows;
  }
  if (!pinned || num_rows > opts_.max_batch_size) return model_backend::forward_sampled(batch, rows, out);
  if (dsamp_) TROUPE_TRY(stage_device_rows(batch));  // null: no room in the reserve, all on the host
  logits_dst_ = host_logits_;
  const status st = forward(batch, rows);  // rows.row_seq says whose row is where in host_logits_
  logits_dst_ = nullptr;
  const bool device = dsamp_ && dsamp_->active;
  if (dsamp_) dsamp_->active = false;
  TROUPE_TRY(st);
  out.prompt = std::move(rows.prompt);
  rows.prompt.clear();
  if (!device) {
    sample_rows(batch, rows.row_seq, host_logits_, cfg_.vocab_size, out);
    return ok_status();
  }
  out.vocab_size = cfg_.vocab_size;
  out.sampled.reserve(out.sampled.size() + rows.row_seq.size());
  const auto V = static_cast<size_t>(cfg_.vocab_size);
  for (size_t r = 0; r < rows.row_seq.size(); ++r) {
    const int32_t i = rows.row_seq[r];
    sampler& smp = *batch.seqs[static_cast<size_t>(i)].sampling;
    if (dsamp_->params_h[r].skip) {
      out.sampled.push_back(sample_row(smp, std::span<float>(host_logits_ + r * V, V), i));
    } else {
      out.sampled.push_back(finish_sampling_row(smp, dsamp_->results_h[r], i));
    }
  }
  return ok_status();
}

}  // namespace troupe
