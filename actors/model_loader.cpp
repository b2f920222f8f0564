// load_model: config -> plan -> tokenizer/template -> weights -> backend, each failure a clear error.
#include "actors/model_loader.h"

#include <filesystem>
#include <thread>

#include "actors/devices.h"
#include "config/log.h"
#include "config/paths.h"
#include "runtime/fused_weights.h"
#include "runtime/gguf_model.h"
#include "runtime/hf_tokenizer.h"
#include "runtime/host_memory.h"
#include "runtime/model_plan.h"
#include "runtime/model_weights.h"
#include "runtime/builtin_chat_templates.h"
#include "runtime/cpu_model.h"
#include "runtime/tensor_parallel.h"
#ifdef TROUPE_HAVE_CUDA
#include "kernels/cuda_model.h"
#include "kernels/nccl_comm.h"
#endif

namespace troupe {

namespace fs = std::filesystem;

status load_tokenizer(const std::string& path, loaded_model& out, const std::string& chat_template_override) {
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
  // The architecture picks a built-in template when the file has none (load_model has read the
  // config already; tools calling this directly get it read here).
  std::string arch = out.config.architecture;
  if (arch.empty() && data->chat_template.empty())
    if (auto cfg = read_model_config(path)) arch = cfg->architecture;
  auto choice = choose_chat_template(data->chat_template, arch, chat_template_override);
  if (!choice) return choice.err();
  auto tok = tokenizer::from_data(std::move(*data));
  if (!tok) return tok.err();
  out.tok = std::make_shared<const tokenizer>(std::move(*tok));
  for (int32_t id : out.tok->eos_ids()) out.eos_ids.push_back(id);
  if (choice->origin == chat_template_origin::none) return ok_status();
  chat_template_options copts;
  if (out.tok->bos_id() >= 0) copts.bos_token = out.tok->token_text(out.tok->bos_id());
  if (out.tok->eos_id() >= 0) copts.eos_token = out.tok->token_text(out.tok->eos_id());
  auto ct = chat_template::parse(choice->source, copts);
  if (!ct) {
    // A template the user gave must work; a file's broken one only disables chat.
    if (choice->origin == chat_template_origin::option)
      return make_error(errc::invalid_argument, "--chat-template: " + ct.err().message);
    logger("runtime")->warn("{}: the chat template does not parse ({}); chat requests are refused",
                            path, ct.err().message);
    return ok_status();
  }
  if (choice->origin == chat_template_origin::builtin)
    logger("runtime")->info("{}: the model file has no chat template; using troupe's built-in {} template "
                            "(replace it with --chat-template)", path, arch);
  else if (choice->origin == chat_template_origin::option)
    logger("runtime")->info("chat template from --chat-template replaces the model's");
  out.chat = std::make_shared<const chat_template>(std::move(*ct));
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

  TROUPE_TRY(load_tokenizer(m.path, m, e.model.chat_template));
  if (m.eos_ids.empty())
    for (int64_t id : m.config.eos_token_ids) m.eos_ids.push_back(static_cast<int32_t>(id));

  const bool dummy = e.model.load_format == "dummy";
  const int32_t tp = e.tp;
  const bool collectives = tp > 1 || e.tp_collectives;
  std::unique_ptr<weight_source> src;
  if (!dummy) {
    auto s = open_weights(m.path);
    if (!s) return s.err();
    auto split = split_fused_projections(std::move(*s), m.config);  // Phi-3's fused qkv / gate_up
    if (!split) return split.err();
    src = std::move(*split);
  }
  // Rank r's shard of the weights (the whole model for --tp 1).
  std::vector<std::unique_ptr<weight_source>> shards;
  if (src)
    for (int32_t r = 0; r < tp; ++r) {
      if (tp == 1) break;
      auto sh = make_sharded_source(*src, m.config, {r, tp});
      if (!sh) return sh.err();
      shards.push_back(std::move(*sh));
    }
  auto rank_source = [&](int32_t r) -> const weight_source* {
    if (!src) return nullptr;
    return tp == 1 ? src.get() : shards[static_cast<size_t>(r)].get();
  };
  m.ranks.assign(static_cast<size_t>(tp), nullptr);
  if (e.device == "cuda") {
#ifdef TROUPE_HAVE_CUDA
    std::shared_ptr<nccl_group> group;
    if (collectives) {
      auto g = nccl_group::create(tp);
      if (!g) return g.err();
      group = *g;
      m.abort_step = [group](int64_t) { group->abort(); };
    }
    // The ranks start together: their warm-up steps run collectives.
    std::vector<error> errors(static_cast<size_t>(tp));
    std::vector<std::thread> threads;
    for (int32_t r = 0; r < tp; ++r)
      threads.emplace_back([&, r] {
        cuda_model_options co = cuda_model::options_from_plan(m.plan, e);
        co.dummy_weights = dummy;
        co.dummy_seed = static_cast<uint64_t>(r);
        co.device = r;
        co.tp_rank = r;
        if (group) co.nccl_comm = group->comm(r);
        auto model = cuda_model::create(shard_config(m.config, {r, tp}), rank_source(r), co);
        if (!model) {
          errors[static_cast<size_t>(r)] = model.err();
          if (group) group->abort();  // the other ranks may wait in a warm-up collective
          return;
        }
        m.ranks[static_cast<size_t>(r)] = std::shared_ptr<model_backend>(std::move(*model));
      });
    for (auto& t : threads) t.join();
    for (int32_t r = 0; r < tp; ++r)
      if (!m.ranks[static_cast<size_t>(r)]) {
        error err = errors[static_cast<size_t>(r)];
        if (tp > 1) err.message = "rank " + std::to_string(r) + ": " + err.message;
        return err;
      }
    return m;
#else
    return make_error(errc::unsupported, "this troupe was built without CUDA (nvcc was not found); use --device cpu");
#endif
  }
  std::shared_ptr<cpu_comm_group> comm;
  if (collectives) {
    comm = std::make_shared<cpu_comm_group>(tp);
    m.abort_step = [comm](int64_t step) { comm->abort(step); };
  }
  // Each rank gets its share of the compute threads (they run at the same time).
  const int32_t threads = e.num_threads > 0 ? e.num_threads : static_cast<int32_t>(std::thread::hardware_concurrency());
  for (int32_t r = 0; r < tp; ++r) {
    const model_config rank_cfg = tp == 1 ? m.config : shard_config(m.config, {r, tp});
    auto w = dummy ? make_dummy_weights(rank_cfg, static_cast<uint64_t>(r)) : load_model_weights(rank_cfg, *rank_source(r), weight_load_options{.mmap = e.model.mmap});
    if (!w) return w.err();
    cpu_model_options co;
    co.num_kv_blocks = m.plan.num_blocks;
    co.block_seq_len = m.plan.block_seq_len;
    co.num_threads = std::max(1, threads / tp);
    co.comm = comm;
    co.tp_rank = r;
    if (m.plan.kv_dtype == "float16") co.kv_dtype = weight_dtype::f16;
    else if (m.plan.kv_dtype == "float32") co.kv_dtype = weight_dtype::f32;
    else return make_error(errc::invalid_argument, "--kv-cache-dtype " + m.plan.kv_dtype +
                                                       " is not supported on the CPU (float16 or float32)");
    auto model = cpu_model::create(rank_cfg, std::move(*w), co);
    if (!model) return model.err();
    m.ranks[static_cast<size_t>(r)] = std::shared_ptr<model_backend>(std::move(*model));
  }
  return m;
}

}  // namespace troupe
