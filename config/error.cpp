// Names of error codes, used in logs and in the OpenAI error body's "code" field.
#include "config/error.h"

namespace troupe {

const char* errc_name(errc code) {
  switch (code) {
    case errc::ok: return "ok";
    case errc::invalid_argument: return "invalid_argument";
    case errc::not_found: return "not_found";
    case errc::io_error: return "io_error";
    case errc::corrupt_file: return "corrupt_file";
    case errc::unsupported: return "unsupported";
    case errc::out_of_memory: return "out_of_memory";
    case errc::overloaded: return "overloaded";
    case errc::cancelled: return "cancelled";
    case errc::timeout: return "timeout";
    case errc::device_error: return "device_error";
    case errc::internal: return "internal";
    case errc::draining: return "draining";
    case errc::context_too_long: return "context_too_long";
    case errc::unauthorized: return "unauthorized";
    case errc::unavailable: return "unavailable";
  }
  return "unknown";
}

}  // namespace troupe
