// The table of every troupe option with its value type and parser. Values are parsed strictly:
// "12abc" is not a number, and every range error names the option and the allowed range.
#include "config/option_table.h"

#include <charconv>
#include <cmath>
#include <sstream>

#include "config/memory_plan.h"

namespace troupe {
namespace {

status bad(const std::string& name, const std::string& v, const std::string& why) {
  return make_error(errc::invalid_argument, "--" + name + " " + v + ": " + why);
}

template <class T>
status parse_int(const std::string& name, const std::string& v, T& out, long long lo, long long hi) {
  long long x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || p != v.data() + v.size()) return bad(name, v, "not an integer");
  if (x < lo || x > hi) return bad(name, v, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  out = static_cast<T>(x);
  return ok_status();
}

status parse_double(const std::string& name, const std::string& v, double& out, double lo, double hi) {
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || !std::isfinite(x)) return bad(name, v, "not a number");
  if (x < lo || x > hi) {
    std::ostringstream os;
    os << "must be in [" << lo << ", " << hi << "]";
    return bad(name, v, os.str());
  }
  out = x;
  return ok_status();
}

status parse_float(const std::string& name, const std::string& v, float& out, double lo, double hi) {
  double d = 0;
  TROUPE_TRY(parse_double(name, v, d, lo, hi));
  out = static_cast<float>(d);
  return ok_status();
}

status parse_bool(const std::string& name, const std::string& v, bool& out) {
  const auto b = parse_bool_word(v);
  if (!b) return bad(name, v, "expected true or false");
  out = *b;
  return ok_status();
}

status one_of(const std::string& name, const std::string& v, std::string& out, std::vector<std::string> allowed) {
  for (const auto& a : allowed)
    if (v == a) {
      out = v;
      return ok_status();
    }
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : "|") + a;
  return bad(name, v, "expected " + list);
}

// "key=value,key=value" for --fault-inject (test-only).
status parse_fault_inject(const std::string& v, fault_inject_options& out) {
  fault_inject_options f;
  size_t pos = 0;
  while (pos < v.size()) {
    size_t end = v.find(',', pos);
    if (end == std::string::npos) end = v.size();
    const std::string item = v.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) return bad("fault-inject", v, "expected key=value, got '" + item + "'");
    const std::string key = item.substr(0, eq), val = item.substr(eq + 1);
    const std::string name = "fault-inject " + key;
    if (key == "fail_step") TROUPE_TRY(parse_int(name, val, f.fail_step, 0, 1 << 30));
    else if (key == "fail_steps") TROUPE_TRY(parse_int(name, val, f.fail_steps, 1, 1 << 30));
    else if (key == "slow_ms") TROUPE_TRY(parse_int(name, val, f.slow_ms, 0, 600000));
    else if (key == "rank") TROUPE_TRY(parse_int(name, val, f.rank, -1, 63));
    else if (key == "refuse_blocks_after") TROUPE_TRY(parse_int(name, val, f.refuse_blocks_after, 0, 1 << 30));
    else if (key == "refuse_blocks_count") {
      TROUPE_TRY(parse_int(name, val, f.refuse_blocks_count, -1, 1 << 30));
      if (f.refuse_blocks_count == 0) return bad(name, val, "must be -1 (for good) or >= 1");
    } else {
      return bad("fault-inject", v, "unknown key '" + key +
                                        "' (fail_step, fail_steps, slow_ms, rank, refuse_blocks_after, refuse_blocks_count)");
    }
  }
  out = f;
  return ok_status();
}

// The value types of the table; an enumeration's words are given where it is added (add_choice).
const value_type an_int{value_kind::integer, {}, ""};
const value_type a_float{value_kind::number, {}, ""};
const value_type a_bool{value_kind::boolean, {}, ""};
const value_type a_size{value_kind::size, {}, ""};
const value_type a_path{value_kind::path, {}, ""};
const value_type a_text{value_kind::text, {}, ""};
value_type named(std::string metavar) { return {value_kind::text, {}, std::move(metavar)}; }

std::vector<option_def> build_table() {
  using o = troupe_options;
  std::vector<option_def> t;
  auto add = [&](std::string name, std::string group, value_type value, std::string help, std::string def,
                 std::function<status(o&, const std::string&)> set) {
    t.push_back({std::move(name), std::move(group), std::move(help), std::move(def), std::move(set), std::move(value)});
  };
  // An enumeration: the words are the value type (shown in --help) and the setter checks them.
  auto add_choice = [&](std::string name, std::string group, std::string help, std::string def,
                        std::vector<std::string> words, std::function<std::string&(o&)> field) {
    auto set = [name, words, field](o& x, const std::string& v) -> status { return one_of(name, v, field(x), words); };
    add(name, std::move(group), {value_kind::choice, std::move(words), ""}, std::move(help), std::move(def), std::move(set));
  };
  add("model", "model", a_path, "GGUF file, Hugging Face folder or config.json (default: SmolLM2-135M-Instruct)", "",
      [](o& x, const std::string& v) -> status { x.engine.model.model = v; return ok_status(); });
  add_choice("dtype", "model", "runtime dtype of weights and activations", "auto", {"auto", "float32", "bfloat16", "float16"},
             [](o& x) -> std::string& { return x.engine.model.dtype; });
  add_choice("kv-cache-dtype", "model", "KV cache element type (auto: float16 on cpu, the runtime dtype on cuda)", "auto",
             {"auto", "float32", "bfloat16", "float16"}, [](o& x) -> std::string& { return x.engine.model.kv_cache_dtype; });
  add_choice("load-format", "model", "auto (read the weights) or dummy (random weights from config.json, for benchmarks)",
             "auto", {"auto", "dummy"}, [](o& x) -> std::string& { return x.engine.model.load_format; });
  add("mmap", "model", a_bool,
      "CPU: keep each weight matrix that the file stores exactly as it is held (same format, row order, fused parts "
      "adjacent) as a view into the read-only memory-mapped file instead of a copy: loads 3-8x faster and shares the "
      "page cache between processes, but decodes 3-8% slower than the default copies, which sit on 2 MiB huge pages "
      "(see docs/memory.md)",
      "false", [](o& x, const std::string& v) -> status { return parse_bool("mmap", v, x.engine.model.mmap); });
  add("chat-template", "model", a_path,
      "Jinja chat template (a file, or the template itself) replacing the model's; without it the model file's "
      "template is used, or for Gemma 3 and Phi-3 files that carry none a built-in one (logged at start-up)",
      "", [](o& x, const std::string& v) -> status { x.engine.model.chat_template = v; return ok_status(); });
  add_choice("device", "engine", "where the model runs", "cpu", {"cpu", "cuda"},
             [](o& x) -> std::string& { return x.engine.device; });
  add("tp", "engine", an_int,
      "tensor-parallel ranks: one executor per rank (GPU i for rank i with --device cuda), attention heads and "
      "MLP columns split, all-reduce after attention and MLP; must divide the heads and intermediate size",
      "1", [](o& x, const std::string& v) -> status { return parse_int("tp", v, x.engine.tp, 1, 64); });
  add("tp-collectives", "engine", a_bool,
      "run the tensor-parallel all-reduce even with --tp 1 (checks the NCCL/CPU collective path on one device)",
      "false", [](o& x, const std::string& v) -> status { return parse_bool("tp-collectives", v, x.engine.tp_collectives); });
  add("enforce-eager", "engine", a_bool,
      "CUDA: launch every kernel of every step instead of replaying the decode-step CUDA graphs captured at "
      "start-up (slower decode at small batches; for debugging and comparison)",
      "false", [](o& x, const std::string& v) -> status { return parse_bool("enforce-eager", v, x.engine.enforce_eager); });
  add("async-scheduling", "engine", a_bool,
      "plan and queue step N+1 at the executor while step N runs, so the scheduler's work (events, block "
      "assignment, admission) hides behind the forward pass; the executor feeds each sequence the token it just "
      "sampled. A sequence that step N ends (EOS, stop string) computes one token for nothing, and a request that "
      "arrives during step N joins step N+2. Applies with one rank (tp 1); false plans each step after the last",
      "true", [](o& x, const std::string& v) -> status { return parse_bool("async-scheduling", v, x.engine.async_scheduling); });
  add("num-threads", "engine", an_int, "CPU compute threads (0 = all cores)", "0",
      [](o& x, const std::string& v) -> status { return parse_int("num-threads", v, x.engine.num_threads, 0, 1024); });
  add("actor-moderate-polls", "engine", an_int,
      "polls an idle actor worker thread makes 50 us apart before it sleeps until a message wakes it (0 = sleep at "
      "once: a message then wakes it in a few us; CAF's default of 500 polls puts up to ~100 us of sleep on every "
      "message hop between steps, e.g. ~85 us per decode step at batch 1, and wakes each idle worker every "
      "~100 us for 50 ms after any message)",
      "0", [](o& x, const std::string& v) -> status {
        return parse_int("actor-moderate-polls", v, x.engine.actor_moderate_polls, 0, 1000000);
      });
  add("session-len", "engine", an_int, "longest sequence, prompt + output, in tokens (0 = the model's max positions)", "0",
      [](o& x, const std::string& v) -> status { return parse_int("session-len", v, x.engine.session_len, 0, 1 << 24); });
  add("max-batch-size", "limits", an_int, "sequences in one forward step (not requests in flight)", "128",
      [](o& x, const std::string& v) -> status { return parse_int("max-batch-size", v, x.engine.max_batch_size, 1, 65536); });
  add("max-prefill-token-num", "limits", an_int, "prompt tokens computed in one step (chunked prefill); sizes the reserve",
      "2048", [](o& x, const std::string& v) -> status { return parse_int("max-prefill-token-num", v, x.engine.max_prefill_token_num, 1, 1 << 20); });
  add("cache-max-entry-count", "memory", a_float,
      "KV cache: 0<x<=1 a fraction of the memory left after weights and reserve; x>1 a number of blocks "
      "(unset on the CPU: min(4GiB, what max-concurrent-requests full session-len sequences need))",
      "0.8 (cuda)", [](o& x, const std::string& v) -> status {
        double count = 0;
        TROUPE_TRY(parse_double("cache-max-entry-count", v, count, 0, 1e12));
        if (count <= 0) return bad("cache-max-entry-count", v, "must be > 0");
        if (count > 1 && std::floor(count) != count)
          return bad("cache-max-entry-count", v, "above 1 it is a block count and must be an integer");
        x.engine.cache_max_entry_count = count;
        return ok_status();
      });
  add("cache-block-seq-len", "memory", an_int, "tokens per KV block", "64",
      [](o& x, const std::string& v) -> status { return parse_int("cache-block-seq-len", v, x.engine.cache_block_seq_len, 1, 4096); });
  add("kv-cache-memory", "memory", a_size, "KV cache as an absolute size (e.g. 20GiB); overrides cache-max-entry-count", "",
      [](o& x, const std::string& v) -> status {
        auto r = parse_byte_size(v);
        if (!r) return bad("kv-cache-memory", v, r.err().message);
        x.engine.kv_cache_memory = *r;
        return ok_status();
      });
  add("device-memory", "memory", a_size, "plan for a device of this size instead of asking the device (e.g. 80GiB)", "",
      [](o& x, const std::string& v) -> status {
        auto r = parse_byte_size(v);
        if (!r) return bad("device-memory", v, r.err().message);
        x.engine.device_memory = *r;
        return ok_status();
      });
  add("enable-prefix-caching", "memory", a_bool, "reuse KV blocks of identical prompt prefixes", "true",
      [](o& x, const std::string& v) -> status { return parse_bool("enable-prefix-caching", v, x.engine.enable_prefix_caching); });
  add("session-cache-fraction", "memory", a_float,
      "share of the KV blocks Responses API conversations may keep pinned between turns, so the next turn "
      "prefills only its new tokens; pins are released first when a request needs blocks (0 = off)", "0.25",
      [](o& x, const std::string& v) -> status {
        return parse_double("session-cache-fraction", v, x.engine.session_cache_fraction, 0, 1);
      });
  add("max-concurrent-requests", "limits", an_int, "requests in flight at once (admitted into the scheduler)", "256",
      [](o& x, const std::string& v) -> status { return parse_int("max-concurrent-requests", v, x.engine.max_concurrent_requests, 1, 1 << 20); });
  add("max-queued-requests", "limits", an_int, "requests waiting for admission; beyond this: HTTP 429", "1024",
      [](o& x, const std::string& v) -> status { return parse_int("max-queued-requests", v, x.engine.max_queued_requests, 0, 1 << 24); });
  add("queue-timeout", "limits", a_float, "seconds a request may wait for admission before HTTP 429", "30",
      [](o& x, const std::string& v) -> status { return parse_double("queue-timeout", v, x.engine.queue_timeout_s, 0, 86400); });
  add("host", "server", named("HOST"), "address to bind", "127.0.0.1",
      [](o& x, const std::string& v) -> status {
        if (v.empty()) return bad("host", v, "must not be empty");
        x.server.host = v;
        return ok_status();
      });
  add("port", "server", an_int, "TCP port (0 = any free port)", "8000",
      [](o& x, const std::string& v) -> status { return parse_int("port", v, x.server.port, 0, 65535); });
  add("api-key", "server", named("KEY"), "require 'Authorization: Bearer KEY' on every /v1 route", "",
      [](o& x, const std::string& v) -> status { x.server.api_key = v; return ok_status(); });
  add("extensions", "server", named("NAME,..."), "custom actors linked into the binary to enable, comma-separated, in order", "",
      [](o& x, const std::string& v) -> status {
        x.server.extensions.clear();
        std::stringstream ss(v);
        std::string name;
        while (std::getline(ss, name, ','))
          if (!name.empty()) x.server.extensions.push_back(name);
        return ok_status();
      });
  add("served-model-name", "server", a_text, "model name in the API (default: from the model file)", "",
      [](o& x, const std::string& v) -> status { x.server.served_model_name = v; return ok_status(); });
  add("max-body-bytes", "server", a_size, "largest request body; larger gets HTTP 413", "1MiB",
      [](o& x, const std::string& v) -> status {
        auto r = parse_byte_size(v);
        if (!r) return bad("max-body-bytes", v, r.err().message);
        x.server.max_body_bytes = *r;
        return ok_status();
      });
  add("max-connections", "server", an_int, "open connections at most", "1024",
      [](o& x, const std::string& v) -> status { return parse_int("max-connections", v, x.server.max_connections, 1, 1 << 20); });
  add("header-timeout", "server", a_float, "seconds for a request's headers to arrive (slow clients are cut)", "10",
      [](o& x, const std::string& v) -> status { return parse_double("header-timeout", v, x.server.header_timeout_s, 0.1, 3600); });
  add("idle-timeout", "server", a_float, "seconds an idle keep-alive connection stays open", "60",
      [](o& x, const std::string& v) -> status { return parse_double("idle-timeout", v, x.server.idle_timeout_s, 0.1, 86400); });
  add("drain-timeout", "server", a_float, "on SIGTERM, seconds to finish in-flight requests before cancelling them", "30",
      [](o& x, const std::string& v) -> status { return parse_double("drain-timeout", v, x.server.drain_timeout_s, 0, 86400); });
  add("max-n", "server", an_int, "largest n (choices per request) accepted", "16",
      [](o& x, const std::string& v) -> status { return parse_int("max-n", v, x.server.max_n, 1, 1024); });
  add_choice("logprobs-mode", "server",
             "what logprobs describe by default: raw (the model's distribution, before logit_bias and penalties; as "
             "vLLM) or processed (after them: the distribution tokens are drawn from); a request's logprobs_mode wins",
             "raw", {"raw", "processed"}, [](o& x) -> std::string& { return x.server.logprobs_mode; });
  add_choice("reasoning-parser", "server",
             "return <think>...</think> of chat answers as reasoning_content (auto: when the chat template writes <think>; "
             "a request turns it off with chat_template_kwargs.enable_thinking=false or separate_reasoning=false)",
             "auto", {"auto", "qwen3", "deepseek_r1", "none"}, [](o& x) -> std::string& { return x.server.reasoning_parser; });
  add("max-json-depth", "server", an_int, "deepest nesting of [ and { accepted in request JSON; deeper gets HTTP 400", "64",
      [](o& x, const std::string& v) -> status { return parse_int("max-json-depth", v, x.server.max_json_depth, 1, 1024); });
  add("max-queued-output-bytes", "server", a_size,
      "per connection (HTTP responses, SSE, WebSocket frames), output bytes queued for a client that does not "
      "read; beyond, it is disconnected and its generations cancelled", "8MiB",
      [](o& x, const std::string& v) -> status {
        auto r = parse_byte_size(v);
        if (!r) return bad("max-queued-output-bytes", v, r.err().message);
        if (*r < 4096) return bad("max-queued-output-bytes", v, "must be at least 4KiB");
        x.server.max_queued_output_bytes = *r;
        return ok_status();
      });
  add("write-timeout", "server", a_float, "seconds a write to a client may make no progress before it is disconnected", "30",
      [](o& x, const std::string& v) -> status { return parse_double("write-timeout", v, x.server.write_timeout_s, 0.1, 86400); });
  add("response-store-size", "server", an_int,
      "Responses API: stored responses kept in memory at most (the oldest is evicted first; 0 keeps none)", "1024",
      [](o& x, const std::string& v) -> status {
        return parse_int("response-store-size", v, x.server.response_store_size, 0, 1 << 24);
      });
  add("response-store-ttl", "server", a_float, "Responses API: seconds a stored response is kept", "3600",
      [](o& x, const std::string& v) -> status {
        return parse_double("response-store-ttl", v, x.server.response_store_ttl_s, 1, 30 * 86400);
      });
  add("allowed-hosts", "server", named("HOST,..."),
      "Host header names served besides localhost, 127.0.0.1, [::1] and --host, comma-separated (DNS rebinding "
      "defence; * serves any). Bound to 0.0.0.0 or :: with none given, any Host is served",
      "",
      [](o& x, const std::string& v) -> status {
        x.server.allowed_hosts.clear();
        std::stringstream ss(v);
        std::string name;
        while (std::getline(ss, name, ','))
          if (!name.empty()) x.server.allowed_hosts.push_back(name);
        return ok_status();
      });
  add("allowed-origins", "server", named("ORIGIN,..."),
      "browser origins (scheme://host[:port]) that may call the API and open /v1/ws besides the server's own "
      "and loopback origins, comma-separated (* allows any)",
      "",
      [](o& x, const std::string& v) -> status {
        x.server.allowed_origins.clear();
        std::stringstream ss(v);
        std::string name;
        while (std::getline(ss, name, ','))
          if (!name.empty()) x.server.allowed_origins.push_back(name);
        return ok_status();
      });
  add_choice("role", "cluster",
      "standalone (one node), worker (publishes its scheduler on --cluster-port) or router (serves the API in "
      "front of --workers); see docs/cluster.md",
      "standalone", {"standalone", "worker", "router"}, [](o& x) -> std::string& { return x.cluster.role; });
  add("workers", "cluster", named("HOST:PORT,..."), "router: the workers' host:port (their --cluster-port), comma-separated", "",
      [](o& x, const std::string& v) -> status {
        x.cluster.workers.clear();
        std::stringstream ss(v);
        std::string item;
        while (std::getline(ss, item, ',')) {
          if (item.empty()) continue;
          const size_t colon = item.rfind(':');
          long long port = 0;
          if (colon == std::string::npos || colon == 0 || !parse_int("workers", item.substr(colon + 1), port, 1, 65535))
            return bad("workers", v, "'" + item + "' is not host:port with a port in [1, 65535]");
          x.cluster.workers.push_back(item);
        }
        return ok_status();
      });
  add("cluster-host", "cluster", named("HOST"), "worker: address the worker actor is published on (default: --host)", "",
      [](o& x, const std::string& v) -> status { x.cluster.cluster_host = v; return ok_status(); });
  add("cluster-port", "cluster", an_int, "worker: TCP port the router connects to (0 = any free port)", "8001",
      [](o& x, const std::string& v) -> status { return parse_int("cluster-port", v, x.cluster.cluster_port, 0, 65535); });
  add("cluster-poll-interval", "cluster", a_float, "router: seconds between load reports asked of each worker", "0.25",
      [](o& x, const std::string& v) -> status { return parse_double("cluster-poll-interval", v, x.cluster.poll_interval_s, 0.01, 60); });
  add("cluster-reconnect-interval", "cluster", a_float, "router: seconds between attempts to reach an absent worker", "1",
      [](o& x, const std::string& v) -> status { return parse_double("cluster-reconnect-interval", v, x.cluster.reconnect_interval_s, 0.05, 600); });
  add("join-port", "cluster", an_int,
      "router: also accept workers that join by themselves (their --join) on this port (0 = any free port)", "",
      [](o& x, const std::string& v) -> status {
        uint16_t port = 0;
        TROUPE_TRY(parse_int("join-port", v, port, 0, 65535));
        x.cluster.join_port = port;
        return ok_status();
      });
  add("join", "cluster", named("HOST:PORT"), "worker: announce this worker to the router's --join-port at host:port (repeated every "
      "reconnect interval, so a restarted router finds it)", "",
      [](o& x, const std::string& v) -> status {
        const size_t colon = v.rfind(':');
        long long port = 0;
        if (colon == std::string::npos || colon == 0 || !parse_int("join", v.substr(colon + 1), port, 1, 65535))
          return bad("join", v, "expected host:port with a port in [1, 65535]");
        x.cluster.join = v;
        return ok_status();
      });
  add("cluster-prefix-routing", "cluster", a_bool,
      "router: send a prompt to the worker that recently got its prefix (blocks of --cache-block-seq-len "
      "tokens) while that worker is not much busier than the others",
      "true", [](o& x, const std::string& v) -> status { return parse_bool("cluster-prefix-routing", v, x.cluster.prefix_routing); });
  add("cluster-cert", "cluster", a_path,
      "router/worker: this node's PEM certificate (chain) signed by --cluster-ca; cluster links are mutual TLS "
      "(docs/cluster.md, tools/make_cluster_certs.sh)", "",
      [](o& x, const std::string& v) -> status { x.cluster.tls_cert = v; return ok_status(); });
  add("cluster-key", "cluster", a_path, "router/worker: the PEM private key of --cluster-cert (unencrypted; keep it mode 0600)",
      "", [](o& x, const std::string& v) -> status { x.cluster.tls_key = v; return ok_status(); });
  add("cluster-ca", "cluster", a_path, "router/worker: PEM CA certificate(s); a peer is accepted only with a certificate "
      "signed by one of them", "",
      [](o& x, const std::string& v) -> status { x.cluster.tls_ca = v; return ok_status(); });
  add("cluster-insecure", "cluster", a_bool,
      "router/worker: plaintext cluster links with no authentication instead of TLS; allowed only when every "
      "cluster address is loopback", "false",
      [](o& x, const std::string& v) -> status { return parse_bool("cluster-insecure", v, x.cluster.insecure); });
  add("fault-inject", "testing", named("KEY=VALUE,..."),
      "TEST-ONLY fault injection: fail_step=N[,fail_steps=K],slow_ms=MS,refuse_blocks_after=N[,refuse_blocks_count=K|-1]",
      "", [](o& x, const std::string& v) -> status { return parse_fault_inject(v, x.engine.fault_inject); });
  add_choice("log-level", "logging", "how much the log says", "info", {"trace", "debug", "info", "warn", "error", "critical", "off"},
             [](o& x) -> std::string& { return x.log_level; });
  return t;
}

std::vector<sampling_option_def> build_sampling_table() {
  using s = sampling_params;
  std::vector<sampling_option_def> t;
  auto add = [&](std::string name, value_type value, std::string help, std::string def,
                 std::function<status(s&, const std::string&)> set) {
    t.push_back({std::move(name), std::move(help), std::move(def), std::move(set), std::move(value)});
  };
  add("max-tokens", an_int, "tokens to generate at most", "16", [](s& x, const std::string& v) -> status { return parse_int("max-tokens", v, x.max_tokens, 1, 1 << 24); });
  add("temperature", a_float, "0 = greedy", "1.0", [](s& x, const std::string& v) -> status { return parse_float("temperature", v, x.temperature, 0, 100); });
  add("top-p", a_float, "nucleus sampling mass in (0, 1]", "1.0", [](s& x, const std::string& v) -> status {
    TROUPE_TRY(parse_float("top-p", v, x.top_p, 0, 1));
    return x.top_p > 0 ? ok_status() : bad("top-p", v, "must be > 0");
  });
  add("top-k", an_int, "keep the k most likely tokens (-1 = off)", "-1", [](s& x, const std::string& v) -> status { return parse_int("top-k", v, x.top_k, -1, 1 << 24); });
  add("min-p", a_float, "drop tokens below min_p x the top probability", "0", [](s& x, const std::string& v) -> status { return parse_float("min-p", v, x.min_p, 0, 1); });
  add("repetition-penalty", a_float, "> 1 discourages tokens already present", "1.0", [](s& x, const std::string& v) -> status {
    TROUPE_TRY(parse_float("repetition-penalty", v, x.repetition_penalty, 0, 100));
    return x.repetition_penalty > 0 ? ok_status() : bad("repetition-penalty", v, "must be > 0");
  });
  add("presence-penalty", a_float, "[-2, 2], OpenAI semantics", "0", [](s& x, const std::string& v) -> status { return parse_float("presence-penalty", v, x.presence_penalty, -2, 2); });
  add("frequency-penalty", a_float, "[-2, 2], OpenAI semantics", "0", [](s& x, const std::string& v) -> status { return parse_float("frequency-penalty", v, x.frequency_penalty, -2, 2); });
  add("seed", an_int, "random seed (same seed, same output)", "", [](s& x, const std::string& v) -> status {
    uint64_t seed = 0;
    TROUPE_TRY(parse_int("seed", v, seed, 0, std::numeric_limits<long long>::max()));
    x.seed = seed;
    return ok_status();
  });
  add("ignore-eos", a_bool, "keep generating past the end-of-sequence token", "false", [](s& x, const std::string& v) -> status { return parse_bool("ignore-eos", v, x.ignore_eos); });
  add("stop", a_text, "stop string (repeatable)", "", [](s& x, const std::string& v) -> status { x.stop.push_back(v); return ok_status(); });
  add("logprobs", an_int, "return the chosen token's logprob and the top k (0..20)", "-1", [](s& x, const std::string& v) -> status { return parse_int("logprobs", v, x.logprobs, -1, 20); });
  return t;
}

}  // namespace

std::optional<bool> parse_bool_word(const std::string& v) {
  if (v == "true" || v == "1" || v == "on" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "off" || v == "no") return false;
  return std::nullopt;
}

std::string value_type::label() const {
  if (!metavar.empty()) return metavar;
  switch (kind) {
    case value_kind::integer: return "INT";
    case value_kind::number: return "FLOAT";
    case value_kind::boolean: return "";
    case value_kind::size: return "SIZE";
    case value_kind::path: return "PATH";
    case value_kind::choice: {
      std::string out;
      for (const auto& w : choices) out += (out.empty() ? "{" : ",") + w;
      return out + "}";
    }
    case value_kind::text: break;
  }
  return "TEXT";
}

const std::vector<option_def>& option_table() {
  static const std::vector<option_def> t = build_table();
  return t;
}

const std::vector<sampling_option_def>& sampling_option_table() {
  static const std::vector<sampling_option_def> t = build_sampling_table();
  return t;
}

std::string options_markdown() {
  std::string out = "| option | value | config key | default | meaning |\n|---|---|---|---|---|\n";
  for (const auto& d : option_table()) {
    std::string key = d.name;
    for (auto& c : key)
      if (c == '-') c = '_';
    std::string value = d.value.kind == value_kind::boolean ? "flag (`--no-" : "`";
    value += d.value.kind == value_kind::boolean ? d.name + "`)" : d.value.label() + "`";
    out += "| `--" + d.name + "` | " + value + " | `" + key + "` | " +
           (d.default_text.empty() ? "" : "`" + d.default_text + "`") + " | " + d.help + " |\n";
  }
  return out;
}

}  // namespace troupe
