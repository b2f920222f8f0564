// id_list: a vector of int32 ids (token ids, block ids) that keeps up to kInline of them in place.
// A decode step's seq_step carries one token and at most one new block id, and a block extension
// grants one block: with the ids inline, a step of B sequences costs no heap allocation per
// sequence. Longer lists (prefill chunks, whole block tables) spill to the heap like a vector.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <new>
#include <span>
#include <utility>
#include <vector>

namespace troupe {

class id_list {
 public:
  using value_type = int32_t;
  using size_type = size_t;
  using iterator = int32_t*;
  using const_iterator = const int32_t*;
  static constexpr uint32_t kInline = 4;

  id_list() = default;
  id_list(std::initializer_list<int32_t> ids) { assign(ids.begin(), ids.end()); }
  id_list(const std::vector<int32_t>& ids) { assign(ids.begin(), ids.end()); }  // NOLINT: a vector converts
  id_list(const id_list& o) { assign(o.begin(), o.end()); }
  id_list(id_list&& o) noexcept { take(o); }
  ~id_list() { release(); }
  id_list& operator=(const id_list& o) {
    if (this != &o) assign(o.begin(), o.end());
    return *this;
  }
  id_list& operator=(id_list&& o) noexcept {
    if (this != &o) {
      release();
      take(o);
    }
    return *this;
  }
  id_list& operator=(std::initializer_list<int32_t> ids) {
    assign(ids.begin(), ids.end());
    return *this;
  }
  id_list& operator=(const std::vector<int32_t>& ids) {
    assign(ids.begin(), ids.end());
    return *this;
  }

  template <class It>
  void assign(It first, It last) {
    const auto n = static_cast<size_t>(std::distance(first, last));
    size_ = 0;
    reserve(n);
    std::copy(first, last, data());
    size_ = static_cast<uint32_t>(n);
  }
  void assign(size_t n, int32_t v) {
    size_ = 0;
    reserve(n);
    std::fill_n(data(), n, v);
    size_ = static_cast<uint32_t>(n);
  }
  void push_back(int32_t v) {
    if (size_ == cap_) reserve(static_cast<size_t>(cap_) * 2);
    data()[size_++] = v;
  }
  void resize(size_t n, int32_t v = 0) {
    reserve(n);
    if (n > size_) std::fill(data() + size_, data() + n, v);
    size_ = static_cast<uint32_t>(n);
  }
  void clear() { size_ = 0; }
  void reserve(size_t n) {
    if (n <= cap_) return;
    auto* p = static_cast<int32_t*>(::operator new(n * sizeof(int32_t)));
    if (size_) std::memcpy(p, data(), size_ * sizeof(int32_t));
    release();
    heap_ = p;
    cap_ = static_cast<uint32_t>(n);
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  int32_t* data() { return cap_ > kInline ? heap_ : inline_; }
  const int32_t* data() const { return cap_ > kInline ? heap_ : inline_; }
  iterator begin() { return data(); }
  iterator end() { return data() + size_; }
  const_iterator begin() const { return data(); }
  const_iterator end() const { return data() + size_; }
  int32_t& operator[](size_t i) { return data()[i]; }
  int32_t operator[](size_t i) const { return data()[i]; }
  int32_t front() const { return data()[0]; }
  int32_t back() const { return data()[size_ - 1]; }
  operator std::span<const int32_t>() const { return {data(), size_}; }  // NOLINT: reads like a vector
  std::vector<int32_t> to_vector() const { return {begin(), end()}; }

  friend bool operator==(const id_list& a, const id_list& b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }
  friend bool operator==(const id_list& a, const std::vector<int32_t>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  // Spills go through operator new, so allocation counters (tests, benches) see them.
  void release() {
    if (cap_ > kInline) ::operator delete(heap_);
    cap_ = kInline;
  }
  void take(id_list& o) {  // *this holds nothing
    size_ = o.size_;
    cap_ = o.cap_;
    if (o.cap_ > kInline) heap_ = o.heap_;
    else std::memcpy(inline_, o.inline_, sizeof(inline_));
    o.size_ = 0;
    o.cap_ = kInline;
  }

  uint32_t size_ = 0;
  uint32_t cap_ = kInline;  // > kInline: the ids live at heap_
  union {
    int32_t* heap_;
    int32_t inline_[kInline] = {};
  };
};

}  // namespace troupe
