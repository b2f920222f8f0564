// Converts between troupe::error and caf::error (category "troupe"); CAF's own errors map to
// timeout/internal with CAF's text.
#include "actors/messages.h"

#include <caf/message.hpp>
#include <caf/sec.hpp>
#include <caf/to_string.hpp>

namespace troupe {

caf::error to_caf_error(const error& e) {
  return caf::error(static_cast<uint8_t>(e.code), caf::atom("troupe"), caf::make_message(e.message));
}

error from_caf_error(const caf::error& e) {
  if (e.category() == caf::atom("troupe")) {
    std::string msg;
    if (e.context().match_elements<std::string>()) msg = e.context().get_as<std::string>(0);
    return error{static_cast<errc>(e.code()), msg};
  }
  if (e.category() == caf::atom("system") && e.code() == static_cast<uint8_t>(caf::sec::request_timeout))
    return error{errc::timeout, "an internal request timed out"};
  return error{errc::internal, "actor error: " + caf::to_string(e)};
}

}  // namespace troupe
