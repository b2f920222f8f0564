// load_model: config -> plan -> tokenizer/template -> weights -> backend, each failure a clear error.
#include "actors/model_loader.h"

#include <filesystem>
#include <thread>

#include "actors/devices.h"
#include "config/log.h"
#include "config/paths.h"
#include "runtime/gguf_model.h"
#include "runtime/hf_tokenizer.h"
#include "runtime/host_memory.h"
#include "runtime/model_plan.h"
#include "runtime/model_weights.h"
#include "runtime/cpu_model.h"
#ifdef TROUPE_HAVE_CUDA
#include "kernels/cuda_model.h"
#endif

namespace troupe {

namespace fs = std::filesystem;

status load_tokenizer(const std::string& path, loaded_model& out) {
  result<tokenizer_data> data = make_error(errc::not_found, "no tokenizer");
  std::error_code ec;
  if (fs::path(path).extension() == ".gguf") {
    data = read_gguf_tokenizer_data(path);
  } else {
    fs::path dir = fs::is_directory(path, ec) ? fs::path(path) : fs::path(path).parent_path();
    if (fs::exists(dir / "tokenizer.json", ec)) data = read_hf_tokenizer_data(dir);
  }
  if (!data) {
    if (data.err().code == errc::not_found) return ok_status();  // a model without a tokenizer: ids only
    return data.err();
  }
  const std::string tmpl = data->chat_template;
  auto tok = tokenizer::from_data(std::move(*data));
  if (!tok) return tok.err();
  out.tok = std::make_shared<const tokenizer>(std::move(*tok));
  for (int32_t id : out.tok->eos_ids()) out.eos_ids.push_back(id);
  if (!tmpl.empty()) {
    chat_template_options copts;
    if (out.tok->bos_id() >= 0) copts.bos_token = out.tok->token_text(out.tok->bos_id());
    if (out.tok->eos_id() >= 0) copts.eos_token = out.tok->token_text(out.tok->eos_id());
    auto ct = chat_template::parse(tmpl, copts);
    if (!ct) {
      logger("runtime")->warn("{}: the chat template does not parse ({}); chat requests are refused",
                              path, ct.err().message);
    } else {
      out.chat = std::make_shared<const chat_template>(std::move(*ct));
    }
  }
  return ok_status();
}

result<loaded_model> load_model(const troupe_options& opts) {
  loaded_model m;
  const auto& e = opts.engine;
  m.path = e.model.model.empty() ? default_model_path() : e.model.model;
  auto cfg = read_model_config(m.path);
  if (!cfg) {
    error err = cfg.err();
    if (e.model.model.empty()) err.message += " (the default model is installed by `bash tools/setup.sh`)";
    return err;
  }
  m.config = *cfg;
  // The API's model id: the file stem of a GGUF, the folder name of a Hugging Face model (as the
  // user named it, not the display name inside the file).
  {
    fs::path p(m.path);
    std::error_code ec;
    m.config.name = fs::is_directory(p, ec) ? p.filename().string() : p.stem().string();
    if (m.config.name.empty() || m.config.name == "config") m.config.name = p.parent_path().filename().string();
  }
  auto devices = devices_for_plan(e);
  if (!devices) return devices.err();
  auto plan = plan_for_model(m.config, e, *devices);
  if (!plan) return plan.err();
  m.plan = *plan;

  TROUPE_TRY(load_tokenizer(m.path, m));
  if (m.eos_ids.empty())
    for (int64_t id : m.config.eos_token_ids) m.eos_ids.push_back(static_cast<int32_t>(id));

  const bool dummy = e.model.load_format == "dummy";
  if (e.device == "cuda") {
#ifdef TROUPE_HAVE_CUDA
    std::unique_ptr<weight_source> src;
    if (!dummy) {
      auto s = open_weights(m.path);
      if (!s) return s.err();
      src = std::move(*s);
    }
    cuda_model_options co = cuda_model::options_from_plan(m.plan, e);
    co.dummy_weights = dummy;
    auto model = cuda_model::create(m.config, src.get(), co);
    if (!model) return model.err();
    m.backend = std::shared_ptr<model_backend>(std::move(*model));
    return m;
#else
    return make_error(errc::unsupported, "this troupe was built without CUDA (nvcc was not found); use --device cpu");
#endif
  }
  result<model_weights> w = make_error(errc::internal, "unset");
  if (dummy) {
    w = make_dummy_weights(m.config);
  } else {
    auto src = open_weights(m.path);
    if (!src) return src.err();
    w = load_model_weights(m.config, **src);
  }
  if (!w) return w.err();
  cpu_model_options co;
  co.num_kv_blocks = m.plan.num_blocks;
  co.block_seq_len = m.plan.block_seq_len;
  co.num_threads = e.num_threads;
  auto model = cpu_model::create(m.config, std::move(*w), co);
  if (!model) return model.err();
  m.backend = std::shared_ptr<model_backend>(std::move(*model));
  return m;
}

}  // namespace troupe
