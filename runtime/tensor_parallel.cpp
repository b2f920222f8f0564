// Tensor-parallel sharding: the per-rank config and the sharded weight_source (see tensor_parallel.h).
#include "runtime/tensor_parallel.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace troupe {
namespace {

// How one tensor is cut: rows [row_begin, row_begin + rows) and columns [col_begin, col_begin + cols)
// of the full [full_rows, full_cols] tensor (1-D tensors have full_cols == 1).
struct slice {
  int64_t full_rows = 0, full_cols = 1;
  int64_t row_begin = 0, rows = 0;
  int64_t col_begin = 0, cols = 1;
};

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

class sharded_source final : public weight_source {
 public:
  sharded_source(const weight_source& full, const model_config& cfg, tp_rank r) : full_(full) {
    const int64_t W = r.world, R = r.rank, D = cfg.head_dim, Hq = cfg.num_heads, Hkv = cfg.num_kv_heads,
                  I = cfg.intermediate_size;
    const int64_t q_heads = Hq / W;
    // KV heads of this rank: a contiguous range, or the single head its q heads belong to.
    const int64_t kv_heads = Hkv >= W ? Hkv / W : 1;
    const int64_t kv_first = Hkv >= W ? R * kv_heads : (R * q_heads) / (Hq / Hkv);
    const int64_t inter = I / W;
    for (const tensor_info& t : full.tensors()) {
      tensor_info local = t;
      slice s;
      s.full_rows = t.shape.empty() ? 1 : t.shape[0];
      s.full_cols = t.shape.size() >= 2 ? t.shape[1] : 1;
      s.rows = s.full_rows;
      s.cols = s.full_cols;
      bool split = true;
      const auto& n = t.name;
      if (ends_with(n, "self_attn.q_proj.weight") || ends_with(n, "self_attn.q_proj.bias")) {
        s.row_begin = R * q_heads * D, s.rows = q_heads * D;
      } else if (ends_with(n, "self_attn.k_proj.weight") || ends_with(n, "self_attn.k_proj.bias") ||
                 ends_with(n, "self_attn.v_proj.weight") || ends_with(n, "self_attn.v_proj.bias")) {
        s.row_begin = kv_first * D, s.rows = kv_heads * D;
      } else if (ends_with(n, "self_attn.o_proj.weight")) {
        s.col_begin = R * q_heads * D, s.cols = q_heads * D;
      } else if (ends_with(n, "mlp.gate_proj.weight") || ends_with(n, "mlp.up_proj.weight")) {
        s.row_begin = R * inter, s.rows = inter;
      } else if (ends_with(n, "mlp.down_proj.weight")) {
        s.col_begin = R * inter, s.cols = inter;
      } else {
        split = false;
      }
      if (split) {
        if (!local.shape.empty()) local.shape[0] = s.rows;
        if (local.shape.size() >= 2) local.shape[1] = s.cols;
        slices_.push_back({t.name, s});
      }
      tensors_.push_back(std::move(local));
    }
    origin_ = full.origin() + " (tensor-parallel rank " + std::to_string(r.rank) + " of " + std::to_string(r.world) + ")";
  }

  const std::vector<tensor_info>& tensors() const override { return tensors_; }
  std::string origin() const override { return origin_; }

  status read_f32(const std::string& name, std::vector<float>& out) const override {
    const slice* s = nullptr;
    for (const auto& [n, sl] : slices_)
      if (n == name) s = &sl;
    if (!s) return full_.read_f32(name, out);
    std::vector<float> whole;
    TROUPE_TRY(full_.read_f32(name, whole));
    if (static_cast<int64_t>(whole.size()) != s->full_rows * s->full_cols)
      return make_error(errc::corrupt_file, origin_ + ": tensor " + name + " has an unexpected element count");
    out.resize(static_cast<size_t>(s->rows * s->cols));
    for (int64_t i = 0; i < s->rows; ++i)
      std::memcpy(out.data() + i * s->cols, whole.data() + (s->row_begin + i) * s->full_cols + s->col_begin,
                  static_cast<size_t>(s->cols) * sizeof(float));
    return ok_status();
  }

 private:
  const weight_source& full_;
  std::vector<tensor_info> tensors_;
  std::vector<std::pair<std::string, slice>> slices_;
  std::string origin_;
};

}  // namespace

status check_tensor_parallel(const model_config& cfg, int32_t world) {
  auto bad = [&](const std::string& what) {
    return make_error(errc::invalid_argument, "--tp " + std::to_string(world) + " " + what);
  };
  if (world < 1) return bad("must be at least 1");
  if (cfg.num_heads % world != 0)
    return bad("does not divide the model's " + std::to_string(cfg.num_heads) + " attention heads");
  if (cfg.num_kv_heads % world != 0 && world % cfg.num_kv_heads != 0)
    return bad("and the model's " + std::to_string(cfg.num_kv_heads) +
               " KV heads must divide one another (KV heads are split, or replicated when fewer than ranks)");
  if (cfg.intermediate_size % world != 0)
    return bad("does not divide the model's intermediate_size " + std::to_string(cfg.intermediate_size));
  return ok_status();
}

model_config shard_config(const model_config& cfg, tp_rank r) {
  model_config c = cfg;
  c.num_heads = cfg.num_heads / r.world;
  c.num_kv_heads = cfg.num_kv_heads >= r.world ? cfg.num_kv_heads / r.world : 1;
  c.intermediate_size = cfg.intermediate_size / r.world;
  return c;
}

result<std::unique_ptr<weight_source>> make_sharded_source(const weight_source& full, const model_config& cfg,
                                                           tp_rank r) {
  TROUPE_TRY(check_tensor_parallel(cfg, r.world));
  if (r.rank < 0 || r.rank >= r.world)
    return make_error(errc::invalid_argument, "tensor-parallel rank " + std::to_string(r.rank) + " outside [0, " +
                                                  std::to_string(r.world) + ")");
  return std::unique_ptr<weight_source>(new sharded_source(full, cfg, r));
}

}  // namespace troupe
