// output_queue: the bytes one connection still has to write, coalesced. What is queued while a
// write is in flight gathers in one buffer and leaves in the next single write, however many SSE
// chunks it holds; the two buffers keep their capacity, so steady streaming allocates nothing.
// Not thread-safe: it lives on its session's strand.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace troupe {

class output_queue {
 public:
  // Capacity a buffer keeps after its bytes are written; a larger one (a big response) is freed.
  static constexpr std::size_t k_keep_capacity = 256 * 1024;

  void append(std::string_view bytes) { pending_.append(bytes.data(), bytes.size()); }
  // A whole response: taken as it is when it would not fit the queue's buffer anyway (no copy).
  void append_owned(std::string&& bytes) {
    if (pending_.empty() && bytes.size() > pending_.capacity()) {
      pending_.swap(bytes);
    } else {
      append(std::string_view(bytes));
    }
  }
  // Direct access for writers that frame in place (append only).
  std::string& tail() { return pending_; }

  std::size_t size() const { return (writing_.size() - written_) + pending_.size(); }  // bytes not yet written
  bool empty() const { return size() == 0; }

  // The bytes of the next write: the rest of the current one, else everything queued since.
  // Valid until consumed() or clear(); appends do not move them.
  std::string_view next() {
    if (written_ == writing_.size()) {
      writing_.clear();
      written_ = 0;
      writing_.swap(pending_);
    }
    return std::string_view(writing_).substr(written_);
  }
  // `n` bytes of next() reached the socket.
  void consumed(std::size_t n);
  void clear();

 private:
  std::string writing_;  // handed to the socket; its first written_ bytes are written
  std::size_t written_ = 0;
  std::string pending_;  // queued behind it
};

}  // namespace troupe
