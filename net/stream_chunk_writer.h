// The common streaming chunk, written without a JSON tree: a plain-text delta of a completion or
// chat choice (no logprobs in it, no echo, no prompt logprobs, no reasoning split, no tool
// envelope). Its bytes equal stream_chunk's for the same event (tests/net/stream_chunk_writer_test);
// every other chunk keeps the tree (net/openai_response.h).
#pragma once

#include <cstdint>
#include <string>

#include "net/openai_response.h"

namespace troupe {

// Whether append_plain_stream_chunk writes `ev`'s chunk (else use stream_chunk).
bool is_plain_stream_chunk(const response_meta& meta, const generation_event& ev, bool first_of_choice);

// Appends the chunk's JSON to `out` and advances `text_offset` as stream_chunk does; false (and
// nothing written) when the chunk is not a plain one.
bool append_plain_stream_chunk(std::string& out, const response_meta& meta, const generation_event& ev,
                               bool first_of_choice, bool include_usage, int64_t& text_offset);

}  // namespace troupe
