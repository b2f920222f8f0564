// Shared pieces of the fuzz targets: the real SmolLM2 tokenizer and chat template (loaded once from
// tests/data), an engine that serves only those (no actors, no model), and a memfd helper for the
// readers that take a path. Everything is built on first use and then reused by every input.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "actors/engine.h"
#include "runtime/chat_template.h"
#include "runtime/hf_tokenizer.h"
#include "runtime/tokenizer.h"

namespace troupe::fuzz {

// Aborts (a finding for libFuzzer) when a fixture the target depends on cannot be loaded.
[[noreturn]] inline void fail_setup(const std::string& what) {
  std::fprintf(stderr, "fuzz setup failed: %s\n", what.c_str());
  std::abort();
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_setup("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The SmolLM2 byte-level BPE tokenizer from tests/data/smollm2_tokenizer.
inline const tokenizer& smollm2_tokenizer() {
  static const tokenizer t = [] {
    auto data = read_hf_tokenizer_data(std::string(TROUPE_TEST_DATA_DIR) + "/smollm2_tokenizer");
    if (!data.ok()) fail_setup(data.err().to_string());
    auto tok = tokenizer::from_data(std::move(data).value());
    if (!tok.ok()) fail_setup(tok.err().to_string());
    return std::move(tok).value();
  }();
  return t;
}

// The SmolLM2 chat template from tests/data/chat_templates, with a fixed clock.
inline const chat_template& smollm2_chat_template() {
  static const chat_template c = [] {
    chat_template_options opt;
    opt.bos_token = "<|im_start|>";
    opt.eos_token = "<|im_end|>";
    opt.fixed_time = 1700000000;
    auto t = chat_template::parse(read_text(std::string(TROUPE_TEST_DATA_DIR) + "/chat_templates/smollm2.jinja"), opt);
    if (!t.ok()) fail_setup(t.err().to_string());
    return std::move(t).value();
  }();
  return c;
}

// An engine with the real tokenizer and chat template and nothing behind them: enough for the
// request-mapping code (api_routes, make_engine_codec), which never submits while parsing.
class tokenizer_only_engine final : public engine {
 public:
  tokenizer_only_engine() {
    model_.name = "fuzz-model";
    model_.vocab_size = smollm2_tokenizer().vocab_size();
    model_.max_position_embeddings = 2048;
    plan_.session_len = 2048;
  }
  const model_config& model() const override { return model_; }
  const tokenizer* tok() const override { return &smollm2_tokenizer(); }
  const chat_template* chat() const override { return &smollm2_chat_template(); }
  const memory_plan& plan() const override { return plan_; }
  const troupe_options& options() const override { return options_; }
  void submit(generation_request, event_callback, error_callback on_error) override {
    on_error(make_error(errc::unsupported, "the fuzz engine does not generate"));
  }
  void cancel(const std::string&) override {}
  result<engine_stats> stats(std::chrono::milliseconds) override { return engine_stats{}; }
  void drain(std::chrono::milliseconds) override {}

 private:
  model_config model_;
  memory_plan plan_;
  troupe_options options_;
};

// An anonymous in-memory file holding `size` bytes, for readers that open a path
// (path() is /proc/self/fd/N). Closed on destruction.
class memfd_file {
 public:
  memfd_file(const uint8_t* data, size_t size) {
    fd_ = memfd_create("troupe-fuzz", 0);
    if (fd_ < 0) fail_setup("memfd_create");
    size_t done = 0;
    while (done < size) {
      ssize_t n = ::write(fd_, data + done, size - done);
      if (n <= 0) fail_setup("memfd write");
      done += static_cast<size_t>(n);
    }
  }
  ~memfd_file() { ::close(fd_); }
  memfd_file(const memfd_file&) = delete;
  memfd_file& operator=(const memfd_file&) = delete;
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_ = -1;
};

}  // namespace troupe::fuzz
