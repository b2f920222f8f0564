// The one error convention of troupe: expected failures are values. `error` is a code plus a
// human-readable message; `result<T>` holds a T or an error; `status` is result<void>.
// Exceptions are caught at boundaries (JSON, config files, third-party calls) and turned into these.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace troupe {

// Stable numeric values: they cross actor and node boundaries inside messages.
enum class errc : uint8_t {
  ok = 0,
  invalid_argument = 1,  // bad user input (HTTP 400)
  not_found = 2,         // missing file, tensor, route (HTTP 404)
  io_error = 3,          // read/write/mmap failure
  corrupt_file = 4,      // a model or config file that does not parse
  unsupported = 5,       // a valid feature troupe does not implement
  out_of_memory = 6,     // a plan or allocation that does not fit
  overloaded = 7,        // admission queue full or wait expired (HTTP 429)
  cancelled = 8,         // the client went away or asked to stop
  timeout = 9,           // an internal request timed out
  device_error = 10,     // a CUDA/cuBLAS/NCCL failure
  internal = 11,         // a broken invariant: a bug
  draining = 12,         // shutting down (HTTP 503)
  context_too_long = 13, // prompt + max_tokens beyond session_len or the KV cache (HTTP 400)
  unauthorized = 14,     // bad or missing API key (HTTP 401)
  unavailable = 15,      // cluster: no worker is up, or the request's worker went away (HTTP 503)
};

const char* errc_name(errc code);

struct error {
  errc code = errc::internal;
  std::string message;

  std::string to_string() const { return std::string(errc_name(code)) + ": " + message; }
};

inline error make_error(errc code, std::string message) { return error{code, std::move(message)}; }

template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  result(error e) : v_(std::in_place_index<1>, std::move(e)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const error& err() const { return std::get<1>(v_); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, error> v_;
};

template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(error e) : e_(std::move(e)) {}

  bool ok() const { return !e_.has_value(); }
  explicit operator bool() const { return ok(); }
  const error& err() const { return *e_; }

 private:
  std::optional<error> e_;
};

using status = result<void>;

inline status ok_status() { return status{}; }

}  // namespace troupe

// Propagate an error from an expression returning result<...>/status.
#define TROUPE_TRY(expr)                        \
  do {                                          \
    auto _troupe_st = (expr);                   \
    if (!_troupe_st.ok()) return _troupe_st.err(); \
  } while (0)
