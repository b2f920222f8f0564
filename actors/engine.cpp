// The engine facade: loads the model, starts the actor system (block manager, executor, scheduler)
// and turns submit/cancel/stats/drain into messages. Every request's events come back through the
// engine's one event hub.
#include "actors/engine.h"

#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/actor_system_setup.h"
#include "actors/block_manager_actor.h"
#include "actors/event_hub.h"
#include "actors/conversation_cache.h"
#include "actors/executor_actor.h"
#include "actors/fault_injection.h"
#include "actors/model_loader.h"
#include "actors/request_registry.h"
#include "actors/scheduler_actor.h"
#include "actors/worker_actor.h"
#include "config/log.h"

namespace troupe {
namespace {

class engine_impl final : public engine, public conversation_cache {
 public:
  engine_impl(troupe_options opts, loaded_model model) : opts_(std::move(opts)), m_(std::move(model)) {
    cfg_.add_message_types<caf::id_block::troupe_api>();
    cfg_.add_message_types<caf::id_block::troupe>();
    prepare_worker_system(cfg_, opts_);  // cluster mode: middleman + cluster messages (role worker only)
    configure_actor_scheduler(cfg_, opts_.engine);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    block_pool_options bp;
    bp.num_blocks = static_cast<int32_t>(m_.plan.num_blocks);
    bp.block_seq_len = static_cast<int32_t>(m_.plan.block_seq_len);
    bp.enable_prefix_caching = opts_.engine.enable_prefix_caching;
    // Conversation pins expire with the stored responses they serve (--response-store-ttl).
    const conversation_pin_options pins{m_.plan.num_session_cache_blocks, opts_.server.response_store_ttl_s};
    bm_ = spawn_block_manager(*sys_, bp, opts_.engine.fault_inject, pins);  // fault_inject: test-only, off by default
    scheduler_config sc;
    sc.limits.max_batch_size = opts_.engine.max_batch_size;
    sc.limits.max_prefill_tokens = opts_.engine.max_prefill_token_num;
    sc.limits.block_seq_len = static_cast<int32_t>(m_.plan.block_seq_len);
    sc.limits.session_len = m_.plan.session_len;
    sc.limits.num_blocks = m_.plan.num_blocks;
    sc.limits.prefix_caching = opts_.engine.enable_prefix_caching;
    sc.max_concurrent_requests = opts_.engine.max_concurrent_requests;
    sc.max_queued_requests = opts_.engine.max_queued_requests;
    sc.queue_timeout_s = opts_.engine.queue_timeout_s;
    sc.step_timeout_ms = opts_.engine.step_timeout_ms;
    sc.async_scheduling = opts_.engine.async_scheduling;
    sc.max_n = opts_.server.max_n;
    sc.vocab_size = m_.config.vocab_size;
    sc.eos_ids = m_.eos_ids;
    // Injected refusals (test-only) target the allocations of the step path: with a reservoir,
    // decode steps would not ask the block manager at all.
    if (opts_.engine.fault_inject.refuse_blocks_after > 0) sc.reservoir_blocks = 0;
    std::vector<std::shared_ptr<model_backend>> ranks;
    for (size_t r = 0; r < m_.ranks.size(); ++r) {
      const auto& f = opts_.engine.fault_inject;  // test-only: unchanged when unset
      const bool faulty = f.rank < 0 || static_cast<size_t>(f.rank) == r;
      ranks.push_back(faulty ? with_step_faults(m_.ranks[r], f) : m_.ranks[r]);
    }
    sched_ = spawn_scheduler(*sys_, sc, m_.tok, bm_, make_executor_group(*sys_, std::move(ranks), m_.abort_step));
    hub_ = std::make_unique<event_hub>(*sys_, sched_);
  }

  ~engine_impl() override {
    requests_.clear();  // no handle may keep a finished sink alive past the system
    anon_send(sched_, drain_atom_v, true);
    anon_send_exit(sched_, caf::exit_reason::user_shutdown);
    anon_send_exit(bm_, caf::exit_reason::user_shutdown);
    hub_.reset();  // the hub ends what is still in flight (draining) and quits
    sys_.reset();  // waits for every actor
  }

  const model_config& model() const override { return m_.config; }
  const tokenizer* tok() const override { return m_.tok.get(); }
  const chat_template* chat() const override { return m_.chat.get(); }
  const memory_plan& plan() const override { return m_.plan; }
  const troupe_options& options() const override { return opts_; }
  std::vector<backend_memory> rank_memory() const override {
    std::vector<backend_memory> out;
    for (const auto& r : m_.ranks) out.push_back(r->memory());
    return out;
  }

  void submit(generation_request req, event_callback on_event, error_callback on_error) override {
    requests_.submit(std::move(req), std::move(on_event), std::move(on_error),
                     [this](generation_request r, event_callback ev, error_callback err) {
                       return hub_->submit(std::move(r), std::move(ev), std::move(err));
                     });
  }

  void cancel(const std::string& request_id) override { requests_.cancel(request_id); }

  result<engine_stats> stats(std::chrono::milliseconds timeout) override {
    caf::scoped_actor self{*sys_};
    result<engine_stats> out = make_error(errc::timeout, "no answer from the scheduler");
    self->request(sched_, timeout, stats_atom_v)
        .receive([&](engine_stats& s) { out = s; }, [&](caf::error& e) { out = from_caf_error(e); });
    return out;
  }

  void drain(std::chrono::milliseconds timeout) override {
    anon_send(sched_, drain_atom_v, false);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto s = stats(std::chrono::milliseconds(1000));
      if (s && s->num_requests_running == 0 && s->num_requests_waiting == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    logger("engine")->warn("drain timeout: cancelling the requests still in flight");
    anon_send(sched_, drain_atom_v, true);
  }

  result<uint16_t> publish_worker() override { return troupe::publish_worker(*sys_, sched_, m_, opts_); }

  void pin(uint64_t key, std::vector<int32_t> tokens) override {
    anon_send(bm_, pin_atom_v, conversation_pin_request{key, std::move(tokens)});
  }
  void unpin(uint64_t key) override { anon_send(bm_, unpin_atom_v, key); }
  std::optional<conversation_pin_stats> pin_stats(std::chrono::milliseconds timeout) override {
    caf::scoped_actor self{*sys_};
    std::optional<conversation_pin_stats> out;
    self->request(bm_, timeout, pin_stats_atom_v)
        .receive([&](conversation_pin_stats& s) { out = s; }, [&](caf::error&) {});
    return out;
  }

 private:
  troupe_options opts_;
  loaded_model m_;
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  block_manager_actor bm_;
  scheduler_actor sched_;
  std::unique_ptr<event_hub> hub_;  // the one sink of every request of this engine
  request_registry requests_;        // live requests by id (for cancel)
};

}  // namespace

conversation_cache* conversation_cache_of(engine& e) { return dynamic_cast<engine_impl*>(&e); }

result<std::unique_ptr<engine>> engine::start(const troupe_options& opts) {
  auto m = load_model(opts);
  if (!m) return m.err();
  logger("engine")->info("model {} ({}, {} layers), {} KV blocks of {} tokens", m->path, m->config.architecture,
                         m->config.num_layers, m->plan.num_blocks, m->plan.block_seq_len);
  return std::unique_ptr<engine>(new engine_impl(opts, std::move(*m)));
}

}  // namespace troupe
