// A tokenizer's vocabulary as the grammar matcher sees it: each token's raw bytes and a byte trie
// of every token that may appear in constrained output (control tokens and empty pieces are left
// out), so tokens sharing a prefix are matched once. Built once per tokenizer and shared.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace troupe {

class tokenizer;

struct grammar_vocab {
  struct node {
    int32_t first_child = 0;  // children are nodes [first_child, first_child + num_children)
    int32_t num_children = 0;
    int32_t tok_begin = 0;    // tokens ending here: tokens[tok_begin, tok_end)
    int32_t tok_end = 0;
    int32_t depth = 0;        // bytes from the root
    int32_t any_token = -1;   // a token whose piece starts with this node's prefix
    uint8_t byte = 0;         // the byte on the edge into this node
  };
  std::vector<node> nodes;              // [0] is the root; children in byte order
  std::vector<int32_t> tokens;          // token ids grouped by node
  std::vector<std::string> pieces;      // [vocab] raw bytes; "" for tokens never allowed
  std::vector<int32_t> eos_ids;
  std::vector<int32_t> space_tokens;    // tokens whose piece starts with ' ' (SentencePiece first token)
  int32_t vocab_size = 0;
  int32_t max_piece = 0;                // bytes in the longest piece (the trie's depth)
  bool strips_leading_space = false;    // decoding drops the first space of the output

  // Builds from explicit pieces (tests and benchmarks use this for synthetic vocabularies).
  static std::shared_ptr<const grammar_vocab> from_pieces(std::vector<std::string> pieces,
                                                          std::vector<int32_t> eos_ids,
                                                          bool strips_leading_space = false);
};

// The vocabulary of `tok`, built on first use and cached (keyed by the tokenizer's address and
// contents fingerprint; tokenizers are immutable).
std::shared_ptr<const grammar_vocab> grammar_vocab_for(const tokenizer& tok);

}  // namespace troupe
