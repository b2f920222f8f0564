// Loads what an engine serves: the architecture, the tokenizer and chat template (when the model
// has them), the memory plan, and the backend (CPU forward pass or CUDA model) with its KV pool of
// exactly the plan's block count.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/error.h"
#include "config/memory_plan.h"
#include "config/options.h"
#include "runtime/chat_template.h"
#include "runtime/model_backend.h"
#include "runtime/model_config.h"
#include "runtime/tokenizer.h"

namespace troupe {

struct loaded_model {
  std::string path;
  model_config config;
  memory_plan plan;
  std::shared_ptr<const tokenizer> tok;        // null: the model has no tokenizer (ids only)
  std::shared_ptr<const chat_template> chat;   // null: no chat template
  std::vector<int32_t> eos_ids;
  // One backend per tensor-parallel rank (one for --tp 1), each with its shard and KV pool.
  std::vector<std::shared_ptr<model_backend>> ranks;
  // Wakes the ranks waiting in a collective of the given step after another rank failed it (CPU);
  // aborts the NCCL communicators (GPU). Empty without collectives.
  std::function<void(int64_t step_id)> abort_step;
};

// `opts.engine.model.model` empty means the default model. Errors name the file and the knob. An
// invalid --tp is refused by the plan, before any weight is read.
result<loaded_model> load_model(const troupe_options& opts);

// Reads only the tokenizer and chat template of a model (for tools and tests). The template is
// chosen by choose_chat_template (runtime/builtin_chat_templates.h) from the file's, the
// architecture (out.config, else read from `path`) and --chat-template.
status load_tokenizer(const std::string& path, loaded_model& out, const std::string& chat_template_override = "");

}  // namespace troupe
