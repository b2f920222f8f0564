// The `troupe` command line: CLI11 subcommands built from the option table, a JSON config file
// applied first (pre-scanned from argv) so that flags given on the command line override it.
#include "config/cli.h"

#include <fstream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "config/option_table.h"

namespace troupe {
namespace {

const char* kFlagsFooter =
    "Boolean options are flags: --ignore-eos alone turns one on, --ignore-eos=false (or\n"
    "--ignore-eos false) and --no-ignore-eos turn it off; in a config file the key takes true or false.\n"
    "SIZE is bytes with an optional unit (20GiB, 512MB, 1048576); {a,b} lists the allowed words.\n\n";

const char* kLimitsFooter =
    "Three limits, three meanings:\n"
    "  --max-concurrent-requests  requests in flight (admitted into the scheduler); more wait in a\n"
    "                             bounded queue (--max-queued-requests, --queue-timeout), then HTTP 429\n"
    "  --max-batch-size           sequences computed in one forward step\n"
    "  KV blocks                  tokens resident in the cache, from the memory plan\n"
    "                             (--cache-max-entry-count, --kv-cache-memory; see `troupe plan`)\n";

std::string flag_key(std::string key) {
  for (auto& c : key)
    if (c == '_') c = '-';
  return key;
}

std::string json_scalar_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return std::to_string(v.get<long long>());
  if (v.is_number_float()) {
    std::ostringstream os;
    os.precision(17);
    os << v.get<double>();
    return os.str();
  }
  return {};
}

std::string with_default(const std::string& help, const std::string& default_text) {
  return help + (default_text.empty() ? "" : " [default: " + default_text + "]");
}

// One option of the table on the command line, shown with its value type (INT, SIZE, {a,b}, ...).
// A boolean is a flag: `--x` alone is true, `--x=false` and `--x false` take the word, `--no-x` is
// false. The subcommands take no positional arguments, so a word after a flag is unambiguously its
// value, and an option after it is never swallowed (CLI11 stops at anything that looks like one).
// CLI11 gives a value-less `--x` the value "true" only when the option is flag-like, which
// expected(0) sets and expected(0, 1) then keeps while allowing the optional value.
void add_typed_option(CLI::App* app, const std::string& name, const value_type& value, const std::string& help,
                      const std::string& group, std::function<status(const std::string&)> set) {
  auto apply = [set](const std::string& v) {
    auto st = set(v);
    if (!st) throw CLI::ValidationError(st.err().message);
  };
  if (value.kind != value_kind::boolean) {
    app->add_option_function<std::string>("--" + name, apply, help)->type_name(value.label())->group(group);
    return;
  }
  app->add_option_function<std::string>("--" + name, apply, help)
      ->expected(0)
      ->expected(0, 1)
      ->type_name("")
      ->group(group);
  app->add_option_function<std::string>(
         "--no-" + name,
         [apply, name](const std::string& v) {
           const auto b = parse_bool_word(v);
           if (!b) throw CLI::ValidationError("--no-" + name + " " + v + ": expected true or false");
           apply(*b ? "false" : "true");
         },
         "")
      ->expected(0)
      ->group("");  // hidden: the footer explains --no-
}

void add_engine_options(CLI::App* app, troupe_options& opts) {
  for (const auto& def : option_table())
    add_typed_option(app, def.name, def.value, with_default(def.help, def.default_text), def.group,
                     [&opts, &def](const std::string& v) { return def.set(opts, v); });
  app->add_option("--config", opts.config_file, "JSON config file; keys are the long flag names")
      ->type_name("PATH")
      ->group("config");
}

void add_sampling_options(CLI::App* app, sampling_params& params) {
  for (const auto& def : sampling_option_table()) {
    if (def.name == "stop") {  // repeatable: --stop a --stop b
      app->add_option_function<std::vector<std::string>>(
             "--stop",
             [&params, &def](const std::vector<std::string>& vs) {
               for (const auto& v : vs) (void)def.set(params, v);
             },
             def.help)
          ->group("sampling");
      continue;
    }
    add_typed_option(app, def.name, def.value, with_default(def.help, def.default_text), "sampling",
                     [&params, &def](const std::string& v) { return def.set(params, v); });
  }
}

std::vector<int32_t> parse_id_list(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    size_t pos = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &pos);
    } catch (...) {
      throw CLI::ValidationError("--prompt-ids: '" + item + "' is not a token id");
    }
    if (pos != item.size() || v < 0 || v > INT32_MAX)
      throw CLI::ValidationError("--prompt-ids: '" + item + "' is not a token id");
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.empty()) throw CLI::ValidationError("--prompt-ids: no token ids given");
  return ids;
}

}  // namespace

status apply_config_json(const std::string& json_text, const std::string& origin, troupe_options& opts) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    return make_error(errc::invalid_argument, origin + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) return make_error(errc::invalid_argument, origin + ": the config file must hold a JSON object");
  for (const auto& [key, value] : j.items()) {
    const std::string name = flag_key(key);
    const option_def* def = nullptr;
    for (const auto& d : option_table())
      if (d.name == name) def = &d;
    if (!def) return make_error(errc::invalid_argument, origin + ": unknown key '" + key + "'");
    if (value.is_null()) continue;
    std::string text = json_scalar_text(value);
    if (value.is_array() && (name == "extensions" || name == "workers")) {  // joined as on the command line
      for (const auto& item : value) {
        if (!item.is_string()) return make_error(errc::invalid_argument, origin + ": '" + key + "' must list strings");
        text += (text.empty() ? "" : ",") + item.get<std::string>();
      }
      auto st = def->set(opts, text);
      if (!st) return make_error(errc::invalid_argument, origin + ": " + st.err().message);
      continue;
    }
    if (text.empty() && !value.is_string())
      return make_error(errc::invalid_argument, origin + ": key '" + key + "' must be a string, number or boolean");
    auto st = def->set(opts, text);
    if (!st) return make_error(errc::invalid_argument, origin + ": " + st.err().message);
  }
  return ok_status();
}

status validate_options(const troupe_options& o) {
  const auto& e = o.engine;
  if (e.max_prefill_token_num < e.cache_block_seq_len)
    return make_error(errc::invalid_argument, "--max-prefill-token-num (" + std::to_string(e.max_prefill_token_num) +
                                                  ") must be at least --cache-block-seq-len (" +
                                                  std::to_string(e.cache_block_seq_len) + ")");
  if (e.session_len > 0 && e.session_len < 2)
    return make_error(errc::invalid_argument, "--session-len must be at least 2 tokens");
  if (o.cluster.role == "router" && o.cluster.workers.empty() && !o.cluster.join_port)
    return make_error(errc::invalid_argument, "--role router needs --workers host:port,... (the workers' "
                                              "--cluster-port) or --join-port for workers started with --join");
  if (o.cluster.role != "router" && (!o.cluster.workers.empty() || o.cluster.join_port))
    return make_error(errc::invalid_argument, "--workers and --join-port are only for --role router");
  if (o.cluster.role != "worker" && !o.cluster.join.empty())
    return make_error(errc::invalid_argument, "--join is only for --role worker");
  if (e.fault_inject.rank >= e.tp)
    return make_error(errc::invalid_argument, "--fault-inject rank=" + std::to_string(e.fault_inject.rank) +
                                                  " names no rank of --tp " + std::to_string(e.tp) +
                                                  " (ranks 0.." + std::to_string(e.tp - 1) + ")");
  if (e.device == "cuda" && e.model.dtype == "float32")
    return make_error(errc::invalid_argument, "--device cuda runs bfloat16 or float16 weights; use --dtype bfloat16");
  return ok_status();
}

cli_result parse_command_line(int argc, const char* const* argv) {
  cli_result res;
  // The config file first, so the command line overrides it.
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string path;
    if (a == "--config" && i + 1 < argc) path = argv[i + 1];
    else if (a.rfind("--config=", 0) == 0) path = a.substr(9);
    if (path.empty()) continue;
    std::ifstream in(path);
    if (!in) {
      res.exit_code = 2;
      res.output = "error: cannot open config file " + path + "\n";
      return res;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    auto st = apply_config_json(ss.str(), path, res.options);
    if (!st) {
      res.exit_code = 2;
      res.output = "error: " + st.err().message + "\n";
      return res;
    }
  }

  CLI::App app{"troupe - an LLM serving runtime built from actors"};
  app.footer(std::string(kFlagsFooter) + kLimitsFooter);
  // Wide enough for the longest flag and its value type (--cluster-reconnect-interval FLOAT), so every
  // description starts in one column; the subcommands copy the formatter when they are added.
  app.get_formatter()->column_width(40);
  app.require_subcommand(0, 1);
  bool version = false;
  app.add_flag("--version", version, "print the version and exit");

  auto* serve = app.add_subcommand("serve", "serve the OpenAI-compatible HTTP/WebSocket API");
  add_engine_options(serve, res.options);
  serve->footer(std::string(kFlagsFooter) + kLimitsFooter);

  auto* gen = app.add_subcommand("generate", "generate text from a prompt and print it as it comes");
  add_engine_options(gen, res.options);
  add_sampling_options(gen, res.generate.sampling);
  gen->footer(std::string(kFlagsFooter) + kLimitsFooter);
  gen->add_option("--prompt", res.generate.prompt, "the prompt text")->group("input");
  gen->add_option_function<std::string>(
         "--prompt-ids", [&res](const std::string& v) { res.generate.prompt_ids = parse_id_list(v); },
         "token ids instead of text, e.g. 1,2,3 (for models without a tokenizer)")
      ->type_name("INT,...")
      ->group("input");
  gen->add_flag("--chat", res.generate.chat, "apply the model's chat template to --prompt")->group("input");
  gen->add_flag("--json", res.generate.json, "print {\"token_ids\": [...], \"text\": ...} at the end")->group("output");

  auto* plan = app.add_subcommand("plan", "print the memory plan without starting anything");
  add_engine_options(plan, res.options);
  plan->add_flag("--json", res.plan.json, "print the plan as JSON");
  plan->footer(std::string(kFlagsFooter) + kLimitsFooter);

  // `troupe options --markdown`: the option reference (docs/configuration.md is generated from it).
  bool options_md = false;
  auto* opts_cmd = app.add_subcommand("options", "print the option reference (--markdown: as docs/configuration.md)");
  opts_cmd->add_flag("--markdown", options_md, "print it as a Markdown table")->required();

  std::ostringstream out, err;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    res.exit_code = app.exit(e, out, err) == 0 ? 0 : 2;  // one usage-error code, whatever CLI11 says
    res.output = out.str() + err.str();
    res.command.clear();
    return res;
  }
  if (version) {
    res.output = "troupe " TROUPE_VERSION_STRING "\n";
    return res;
  }
  if (serve->parsed()) res.command = "serve";
  else if (gen->parsed()) res.command = "generate";
  else if (plan->parsed()) res.command = "plan";
  else if (opts_cmd->parsed()) res.command = "options";
  else {
    res.output = app.help();
    return res;
  }
  if (res.command == "generate" && res.generate.prompt.empty() && res.generate.prompt_ids.empty()) {
    res.command.clear();
    res.exit_code = 2;
    res.output = "error: generate needs --prompt TEXT or --prompt-ids 1,2,3\n";
    return res;
  }
  auto st = validate_options(res.options);
  if (!st) {
    res.command.clear();
    res.exit_code = 2;
    res.output = "error: " + st.err().message + "\n";
  }
  return res;
}

}  // namespace troupe
