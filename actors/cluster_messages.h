// The messages of cluster mode (router <-> worker over CAF's middleman, and inside the router):
// atoms, inspectors, the worker's published interface and a type-ID block of its own that starts
// where the internal `troupe` block ends (ranges: include/troupe/messages.h). Every node registers
// troupe_api, troupe and troupe_cluster before its actor_system exists.
#pragma once

#include <cstdint>
#include <string>

#include "actors/cluster_routing.h"
#include "actors/messages.h"

namespace troupe {

using hello_atom = caf::atom_constant<caf::atom("hello")>;
using pick_atom = caf::atom_constant<caf::atom("pick")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using connect_atom = caf::atom_constant<caf::atom("connect")>;
using poll_atom = caf::atom_constant<caf::atom("poll")>;
using announce_atom = caf::atom_constant<caf::atom("announce")>;

constexpr hello_atom hello_atom_v{};
constexpr pick_atom pick_atom_v{};
constexpr done_atom done_atom_v{};
constexpr connect_atom connect_atom_v{};
constexpr poll_atom poll_atom_v{};
constexpr announce_atom announce_atom_v{};

// The worker's answer to the router's hello: who it is, its scheduler (tokens then flow from this
// scheduler straight to the router's sink actors) and its admission limits.
struct worker_hello {
  cluster_identity identity;
  scheduler_actor scheduler;
  int32_t max_concurrent = 0;
  int32_t max_queued = 0;
  int64_t num_blocks = 0;
  int64_t block_seq_len = 0;
  int64_t session_len = 0;
};

// The router's answer to a sink's pick: the chosen worker (index into --workers), the incarnation
// of its connection (a `done` for an older one is ignored) and its scheduler.
struct route_ticket {
  uint32_t worker = 0;
  uint64_t generation = 0;
  std::string address;
  scheduler_actor scheduler;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_identity& x) {
  return f(caf::meta::type_name("cluster_identity"), x.version, x.model_name, x.model_shape,
           x.tokenizer_fingerprint);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, worker_hello& x) {
  return f(caf::meta::type_name("worker_hello"), x.identity, x.scheduler, x.max_concurrent, x.max_queued,
           x.num_blocks, x.block_seq_len, x.session_len);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, route_ticket& x) {
  return f(caf::meta::type_name("route_ticket"), x.worker, x.generation, x.address, x.scheduler);
}

// What a worker publishes: the handshake. Load reports come from its scheduler's stats.
using worker_actor = caf::typed_actor<caf::replies_to<hello_atom, cluster_identity>::with<worker_hello>>;

// What a router publishes on --join-port: a worker started with --join announces its address and
// worker actor there (again every reconnect interval, so a restarted router learns of it too).
using join_actor = caf::typed_actor<caf::reacts_to<announce_atom, std::string, worker_actor>>;

}  // namespace troupe

CAF_BEGIN_TYPE_ID_BLOCK(troupe_cluster, caf::id_block::troupe::end)
CAF_ADD_TYPE_ID(troupe_cluster, (troupe::cluster_identity))
CAF_ADD_TYPE_ID(troupe_cluster, (troupe::worker_hello))
CAF_ADD_TYPE_ID(troupe_cluster, (troupe::route_ticket))
CAF_ADD_TYPE_ID(troupe_cluster, (troupe::scheduler_actor))
CAF_ADD_TYPE_ID(troupe_cluster, (troupe::worker_actor))
CAF_ADD_TYPE_ID(troupe_cluster, (troupe::join_actor))
CAF_END_TYPE_ID_BLOCK(troupe_cluster)

static_assert(caf::id_block::troupe_cluster::begin >= caf::id_block::troupe::end &&
                  caf::id_block::troupe_cluster::end <= ::troupe::first_user_type_id,
              "troupe_cluster must stay inside troupe's internal type-ID range");
