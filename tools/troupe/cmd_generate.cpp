// `troupe generate`: one request through the same engine the server uses, its text printed as it
// is generated (or, with --json, {"token_ids": [...], "text": ...} at the end).
#include <condition_variable>
#include <cstdio>
#include <mutex>

#include <nlohmann/json.hpp>

#include "actors/engine.h"
#include "runtime/chat_template.h"
#include "runtime/tokenizer.h"
#include "tools/troupe/commands.h"

namespace troupe {

int run_generate(const cli_result& cli) {
  auto eng = engine::start(cli.options);
  if (!eng) {
    std::fprintf(stderr, "error: %s\n", eng.err().message.c_str());
    return 1;
  }
  engine& e = **eng;
  generation_request req;
  req.params = cli.generate.sampling;
  if (!cli.generate.prompt_ids.empty()) {
    req.prompt_ids = cli.generate.prompt_ids;
  } else {
    if (!e.tok()) {
      std::fprintf(stderr, "error: this model has no tokenizer; use --prompt-ids\n");
      return 2;
    }
    std::string text = cli.generate.prompt;
    if (cli.generate.chat) {
      if (!e.chat()) {
        std::fprintf(stderr, "error: this model has no chat template; drop --chat\n");
        return 2;
      }
      auto rendered = e.chat()->render(nlohmann::json::array({{{"role", "user"}, {"content", text}}}), true);
      if (!rendered) {
        std::fprintf(stderr, "error: chat template: %s\n", rendered.err().message.c_str());
        return 1;
      }
      req.prompt_ids = e.tok()->encode(*rendered, false, true);
    } else {
      req.prompt_ids = e.tok()->encode(text, true, false);
    }
  }
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::optional<error> failure;
  std::vector<int32_t> ids;
  std::string text;
  const bool json = cli.generate.json;
  e.submit(
      req,
      [&](const generation_event& ev) {
        std::lock_guard<std::mutex> lock(mu);
        ids.insert(ids.end(), ev.token_ids.begin(), ev.token_ids.end());
        text += ev.text;
        if (!json) {
          std::fputs(ev.text.c_str(), stdout);
          std::fflush(stdout);
        }
        if (ev.finish != finish_reason::none) {
          done = true;
          cv.notify_all();
        }
      },
      [&](const error& err) {
        std::lock_guard<std::mutex> lock(mu);
        failure = err;
        done = true;
        cv.notify_all();
      });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  if (failure) {
    std::fprintf(stderr, "\nerror: %s\n", failure->message.c_str());
    return 1;
  }
  if (json) std::printf("%s\n", nlohmann::json{{"token_ids", ids}, {"text", text}}.dump().c_str());
  else std::printf("\n");
  return 0;
}

}  // namespace troupe
