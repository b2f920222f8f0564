// reasoning_parser: splits a chat answer's text into reasoning (inside <think>...</think>, as Qwen3
// and DeepSeek-R1 write it) and content, incrementally over streamed text pieces, so the server can
// return message.reasoning_content / delta.reasoning_content as vLLM and SGLang do.
#pragma once

#include <string>
#include <string_view>

namespace troupe {

struct reasoning_split {
  std::string reasoning;  // text inside the think span (tags removed)
  std::string content;    // everything else
};

class reasoning_parser {
 public:
  // start_in_reasoning: the prompt already opened the span (templates that end the prompt with
  // "<think>\n"), so text is reasoning until the closing tag.
  explicit reasoning_parser(bool start_in_reasoning = false)
      : state_(start_in_reasoning ? state::reasoning : state::before) {}

  // Feeds the next piece of generated text; returns what can be attributed now. A piece that ends
  // in what may be the start of a tag ("<thi") is held back until the next piece decides it.
  reasoning_split feed(std::string_view text);
  // The end of the text: releases anything held back (an unfinished tag is plain text).
  reasoning_split finish();

  // The whole text at once (feed + finish).
  static reasoning_split split(std::string_view text, bool start_in_reasoning = false);

  bool in_reasoning() const { return state_ == state::reasoning; }

 private:
  // before: no tag seen yet (an opening tag may come, after optional whitespace or text);
  // reasoning: inside the span; after: the span closed, all the rest is content.
  enum class state { before, reasoning, after };
  void emit(reasoning_split& out, std::string_view text) const;

  state state_;
  std::string pending_;  // text held back: a possible prefix of the tag looked for
};

}  // namespace troupe
