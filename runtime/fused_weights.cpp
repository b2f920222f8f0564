// Splits fused projection tensors (Phi-3's qkv_proj and gate_up_proj) into the Llama layout's
// parts by rows, on read; raw GGML rows split exactly like float rows (whole blocks per row).
#include "runtime/fused_weights.h"

#include <cstring>

namespace troupe {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

const char* const kQkv = "self_attn.qkv_proj.weight";
const char* const kGateUp = "mlp.gate_up_proj.weight";

class split_source final : public weight_source {
 public:
  split_source(const weight_source& inner, std::unique_ptr<weight_source> owned)
      : inner_(inner), owned_(std::move(owned)) {}

  status build(const model_config& c) {
    const int64_t q = c.q_size(), kv = c.kv_size(), inter = c.intermediate_size;
    for (const tensor_info& t : inner_.tensors()) {
      const bool qkv = ends_with(t.name, kQkv), gate_up = ends_with(t.name, kGateUp);
      if (!qkv && !gate_up) {
        infos_.push_back(t);
        continue;
      }
      const std::string prefix = t.name.substr(0, t.name.size() - std::strlen(qkv ? kQkv : kGateUp));
      const int64_t want = qkv ? q + 2 * kv : 2 * inter;
      if (t.shape.size() != 2 || t.shape[0] != want)
        return make_error(errc::corrupt_file,
                          inner_.origin() + ": tensor '" + t.name + "' has " +
                              (t.shape.empty() ? std::string("no") : std::to_string(t.shape[0])) + " rows, the config's " +
                              (qkv ? "num_attention_heads x head_dim + 2 x num_key_value_heads x head_dim = "
                                   : "2 x intermediate_size = ") +
                              std::to_string(want));
      auto add = [&](const std::string& part, int64_t row_begin, int64_t rows) {
        tensor_info info = t;
        info.name = prefix + part;
        info.shape[0] = rows;
        infos_.push_back(info);
        parts_.push_back({info.name, t.name, row_begin, rows, t.shape[0]});
      };
      if (qkv) {
        add("self_attn.q_proj.weight", 0, q);
        add("self_attn.k_proj.weight", q, kv);
        add("self_attn.v_proj.weight", q + kv, kv);
      } else {
        add("mlp.gate_proj.weight", 0, inter);  // gate rows first, then up (Phi3MLP's chunk order)
        add("mlp.up_proj.weight", inter, inter);
      }
    }
    return ok_status();
  }

  const std::vector<tensor_info>& tensors() const override { return infos_; }
  std::string origin() const override { return inner_.origin(); }
  bool has_raw_blocks() const override { return inner_.has_raw_blocks(); }

  status read_f32(const std::string& name, std::vector<float>& out) const override {
    const part* p = find_part(name);
    if (!p) return inner_.read_f32(name, out);
    std::vector<float> whole;
    TROUPE_TRY(inner_.read_f32(p->fused, whole));
    const size_t cols = whole.size() / static_cast<size_t>(p->fused_rows);
    out.assign(whole.begin() + static_cast<std::ptrdiff_t>(p->row_begin * cols),
               whole.begin() + static_cast<std::ptrdiff_t>((p->row_begin + p->rows) * cols));
    return ok_status();
  }

  // A part is a row range of its fused tensor's bytes, so adjacent parts stay adjacent in place.
  std::optional<tensor_bytes> view(const std::string& name) const override {
    const part* p = find_part(name);
    if (!p) return inner_.view(name);
    auto whole = inner_.view(p->fused);
    if (!whole || p->fused_rows <= 0 || whole->bytes % static_cast<uint64_t>(p->fused_rows) != 0) return std::nullopt;
    const uint64_t row_bytes = whole->bytes / static_cast<uint64_t>(p->fused_rows);
    whole->data += static_cast<uint64_t>(p->row_begin) * row_bytes;
    whole->bytes = static_cast<uint64_t>(p->rows) * row_bytes;
    return whole;
  }

  status read_raw(const std::string& name, uint32_t& type, std::vector<uint8_t>& out) const override {
    const part* p = find_part(name);
    if (!p) return inner_.read_raw(name, type, out);
    std::vector<uint8_t> whole;
    TROUPE_TRY(inner_.read_raw(p->fused, type, whole));
    const size_t row_bytes = whole.size() / static_cast<size_t>(p->fused_rows);
    out.assign(whole.begin() + static_cast<std::ptrdiff_t>(p->row_begin * row_bytes),
               whole.begin() + static_cast<std::ptrdiff_t>((p->row_begin + p->rows) * row_bytes));
    return ok_status();
  }

 private:
  struct part {
    std::string name, fused;
    int64_t row_begin, rows, fused_rows;
  };
  const part* find_part(const std::string& name) const {
    for (const auto& p : parts_)
      if (p.name == name) return &p;
    return nullptr;
  }

  const weight_source& inner_;
  std::unique_ptr<weight_source> owned_;  // set when the view owns its source
  std::vector<tensor_info> infos_;
  std::vector<part> parts_;
};

}  // namespace

bool has_fused_projections(const weight_source& src) {
  for (const auto& t : src.tensors())
    if (ends_with(t.name, kQkv) || ends_with(t.name, kGateUp)) return true;
  return false;
}

result<std::unique_ptr<weight_source>> split_fused_projections(const weight_source& inner, const model_config& cfg) {
  std::unique_ptr<split_source> s(new split_source(inner, nullptr));
  TROUPE_TRY(s->build(cfg));
  return std::unique_ptr<weight_source>(std::move(s));
}

result<std::unique_ptr<weight_source>> split_fused_projections(std::unique_ptr<weight_source> inner,
                                                               const model_config& cfg) {
  if (!inner || !has_fused_projections(*inner)) return inner;
  const weight_source& ref = *inner;
  std::unique_ptr<split_source> s(new split_source(ref, std::move(inner)));
  TROUPE_TRY(s->build(cfg));
  return std::unique_ptr<weight_source>(std::move(s));
}

}  // namespace troupe
