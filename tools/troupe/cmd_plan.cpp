// `troupe plan`: reads the model's architecture (no weights), asks for the devices' memory (or
// simulates --device-memory) and prints the memory plan as a table or JSON. Starts nothing.
#include <cstdio>
#include <filesystem>
#include <string>

#include "actors/devices.h"
#include "config/paths.h"
#include "runtime/model_plan.h"
#include "tools/troupe/commands.h"

namespace troupe {

std::string model_path_or_default(const troupe_options& opts) {
  return opts.engine.model.model.empty() ? default_model_path() : opts.engine.model.model;
}

int run_plan(const cli_result& cli) {
  const std::string path = model_path_or_default(cli.options);
  auto cfg = read_model_config(path);
  if (!cfg) {
    std::fprintf(stderr, "error: %s\n", cfg.err().message.c_str());
    if (cli.options.engine.model.model.empty())
      std::fprintf(stderr, "hint: the default model is installed by `bash tools/setup.sh`\n");
    return 1;
  }
  auto devices = devices_for_plan(cli.options.engine);
  if (!devices) {
    std::fprintf(stderr, "error: %s\n", devices.err().message.c_str());
    return 1;
  }
  auto plan = plan_for_model(*cfg, cli.options.engine, *devices);
  if (!plan) {
    std::fprintf(stderr, "error: %s\n", plan.err().message.c_str());
    return 1;
  }
  if (cli.plan.json) {
    std::printf("%s\n", memory_plan_json(*plan).c_str());
  } else {
    std::printf("model: %s (%s, %lld layers, hidden %lld, %lld heads / %lld KV heads, vocab %lld)\n", path.c_str(),
                cfg->architecture.c_str(), static_cast<long long>(cfg->num_layers),
                static_cast<long long>(cfg->hidden_size), static_cast<long long>(cfg->num_heads),
                static_cast<long long>(cfg->num_kv_heads), static_cast<long long>(cfg->vocab_size));
    // What sets this family apart (each changes the forward pass or the memory it needs).
    std::string traits = "head_dim " + std::to_string(cfg->head_dim);
    if (cfg->qk_norm) traits += ", q/k norm";
    if (cfg->attention_bias) traits += ", qkv bias";
    if (cfg->rope.type != "default") traits += ", rope " + cfg->rope.type;
    if (cfg->rope.type == "default" && !cfg->rope.freq_factors.empty()) traits += ", rope factors (rope_freqs)";
    if (cfg->sliding_window > 0) traits += ", sliding window " + std::to_string(cfg->sliding_window);
    std::printf("       %s\n", traits.c_str());
    std::printf("%s", format_memory_plan(*plan).c_str());
  }
  return 0;
}

}  // namespace troupe
