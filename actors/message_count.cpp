// The counter behind message_count.h.
#include "actors/message_count.h"

namespace troupe {

std::atomic<uint64_t> g_messages_handled{0};

}  // namespace troupe
