// output_queue (see output_queue.h).
#include "net/output_queue.h"

namespace troupe {

void output_queue::consumed(std::size_t n) {
  written_ += n;
  if (written_ < writing_.size()) return;
  writing_.clear();
  written_ = 0;
  if (writing_.capacity() > k_keep_capacity) std::string().swap(writing_);
}

void output_queue::clear() {
  writing_.clear();
  written_ = 0;
  pending_.clear();
  if (writing_.capacity() > k_keep_capacity) std::string().swap(writing_);
  if (pending_.capacity() > k_keep_capacity) std::string().swap(pending_);
}

}  // namespace troupe
