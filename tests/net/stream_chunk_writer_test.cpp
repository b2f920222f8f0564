// The tree-free plain chunk equals stream_chunk's (the nlohmann tree) byte for byte, for both APIs,
// every finish reason, the first chunk of a choice (chat role), include_usage, a system
// fingerprint and tricky text; chunks that carry logprobs, echo or prompt logprobs are refused.
#include "net/stream_chunk_writer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace troupe {
namespace {

generation_event event(int32_t index, std::string text, finish_reason fin) {
  generation_event ev;
  ev.request_id = "r";
  ev.index = index;
  ev.token_ids = {7, 8};
  ev.text = std::move(text);
  ev.finish = fin;
  return ev;
}

TEST(stream_chunk_writer, writes_the_same_bytes_as_the_json_tree) {
  const std::vector<std::string> texts = {"", "Hello", " \"quoted\"\n", "caf\xc3\xa9 \xf0\x9f\x98\x80", "\x01\x1f\\", "\xe6\x97"};
  const finish_reason fins[] = {finish_reason::none, finish_reason::stop, finish_reason::length,
                                finish_reason::cancelled, finish_reason::error};
  int checked = 0;
  for (api_kind kind : {api_kind::completion, api_kind::chat}) {
    for (const char* fingerprint : {"", "fp_troupe"}) {
      openai_request req;
      req.kind = kind;
      req.model = "m\"odel\xc3\xa9";
      req.system_fingerprint = fingerprint;
      req.gen.n = 2;
      const response_meta meta = make_response_meta(req, "abc123");
      for (const std::string& text : texts)
        for (finish_reason fin : fins)
          for (bool first : {false, true})
            for (bool usage : {false, true})
              for (int32_t index : {0, 1}) {
                const generation_event ev = event(index, text, fin);
                int64_t tree_offset = 5, fast_offset = 5;
                const std::string tree = stream_chunk(meta, ev, nullptr, first, usage, tree_offset);
                std::string fast = "kept:";  // appends to what the buffer holds
                ASSERT_TRUE(append_plain_stream_chunk(fast, meta, ev, first, usage, fast_offset));
                ASSERT_EQ(fast, "kept:" + tree);
                ASSERT_EQ(fast_offset, tree_offset);
                ++checked;
              }
    }
  }
  EXPECT_EQ(checked, 2 * 2 * 6 * 5 * 2 * 2 * 2);
}

TEST(stream_chunk_writer, refuses_chunks_with_logprobs_echo_or_prompt_logprobs) {
  openai_request req;
  req.kind = api_kind::completion;
  req.model = "m";
  req.gen.params.logprobs = 1;
  response_meta with_logprobs = make_response_meta(req, "q");
  generation_event ev = event(0, "a", finish_reason::none);
  ev.logprobs = {{7, -0.5f, {}}};
  std::string out;
  int64_t offset = 0;
  EXPECT_FALSE(append_plain_stream_chunk(out, with_logprobs, ev, false, false, offset));
  ev.logprobs.clear();  // logprobs asked, none in this event: the plain chunk (logprobs null) is right
  EXPECT_TRUE(is_plain_stream_chunk(with_logprobs, ev, false));

  req.gen.params.logprobs = -1;
  req.echo = true;
  const response_meta echo = make_response_meta(req, "q");
  EXPECT_FALSE(append_plain_stream_chunk(out, echo, ev, true, false, offset));
  EXPECT_TRUE(is_plain_stream_chunk(echo, ev, false));  // echo goes with the first chunk only

  req.echo = false;
  req.prompt_logprobs = 0;
  const response_meta prompt_lps = make_response_meta(req, "q");
  EXPECT_FALSE(append_plain_stream_chunk(out, prompt_lps, ev, true, false, offset));
  EXPECT_TRUE(out.empty());  // nothing written by a refusal
  EXPECT_EQ(offset, 0);
}

}  // namespace
}  // namespace troupe
