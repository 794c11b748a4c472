#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>
#include <caf/message.hpp>

#include "ft/recovery.hpp"

/// Requests that recover progressively: when the call to a worker fails, a
/// short-lived helper actor walks a `recovery_chain_config` — retries,
/// restarts through the supervisor, other workers, other resources, a
/// fallback, escalation — and answers with the first success. Every wait is
/// a timer message, so no worker thread ever blocks.
namespace ft {

// -- options ------------------------------------------------------------------

/// A worker on another resource (hardware class, node label), for
/// switch_resource. Several entries may share a label.
struct recovery_resource {
  std::string label;
  caf::actor worker;
};

/// The degraded answer for degrade: the original request and the last
/// error in, an answer (any types) or an error out. Runs in the helper
/// actor's context: it must not block, and must be thread-safe if it shares
/// state.
using recovery_fallback = std::function<caf::expected<caf::message>(
  const caf::message& request, const caf::error& last)>;

/// Receives recovery events (the operator hook, logs, tests). Runs in the
/// helper actor's context, as `recovery_fallback`.
using recovery_hook = std::function<void(const recovery_event&)>;

/// What `recovery_request` works with.
struct recovery_options {
  /// Names the request in events and logs.
  std::string name = "recovery";

  /// The steps, in order, and the limit on each call.
  recovery_chain_config chain;

  /// The primary worker: it gets the first call and the retries.
  caf::actor worker;

  /// Workers of the same pool, for switch_worker, tried in this order. The
  /// primary and invalid handles are left out, so the whole pool may be
  /// passed.
  std::vector<caf::actor> pool;

  /// Workers on other resources, for switch_resource, tried in this order
  /// (the primary and invalid handles left out).
  std::vector<recovery_resource> resources;

  /// The primary's supervisor and child id, for restart: the helper asks
  /// the supervisor to `terminate_child` and `restart_child` the worker
  /// (OTP's way to restart a running child), then calls the new incarnation,
  /// which also takes the later retries. The supervisor's requests have no
  /// time limit (stopping a worker may take its shutdown timeout).
  caf::actor supervisor;
  std::string child_id;

  /// The degraded answer, for degrade (skipped when empty).
  recovery_fallback fallback;

  /// The operator hook: called with the `escalated` event (severity 4) when
  /// the chain reaches escalate.
  recovery_hook on_escalate;

  /// Also escalate to the supervisor: the escalate step fails the current
  /// primary worker with exit reason `escalated`, so its supervisor handles
  /// it as a crash (restarts it per its strategy and counts it against its
  /// restart intensity; a supervisor that gives up escalates further up the
  /// tree, as in OTP).
  bool escalate_to_supervisor = false;

  /// Receive every `recovery_event` as a message (anonymously).
  std::vector<caf::actor> subscribers;

  /// Called with every `recovery_event`, in order, before the subscribers
  /// are sent it.
  recovery_hook on_event;

  /// Draws delayed_retry's jitter in [0, 1) (a seeded RNG of the helper if
  /// empty).
  std::function<double()> random01;
};

// -- results ------------------------------------------------------------------

/// A successful recovery request: the answer and where it came from.
struct recovery_result {
  /// The worker's reply, or the fallback's answer (any types).
  caf::message reply;

  /// The step whose attempt answered; none if the first call did.
  std::optional<recovery_step_kind> step;

  /// The worker that answered (invalid for degrade).
  caf::actor worker;

  /// Calls made, the first one included (fallback calls count).
  int attempts = 0;

  /// Whether the answer is the fallback's, not a worker's.
  bool degraded() const noexcept {
    return step == recovery_step_kind::degrade;
  }

  /// Whether the first call already answered.
  bool recovered() const noexcept {
    return step.has_value();
  }
};

/// What a recovery request ends with.
using recovery_handler = std::function<void(caf::expected<recovery_result>)>;

// -- the request ----------------------------------------------------------------

/// Sends `msg` to `opts.worker`; if the call fails (an error reply or no
/// reply within `opts.chain.call_timeout`, which fails with `call_timeout`),
/// walks the chain (see `recovery_plan`) until an attempt answers. Calls
/// `done` once, in `self`'s context (like a response handler), never inside
/// this call, with:
/// - the first answer (`recovery_result`);
/// - `recovery_exhausted` when the chain ran out or reached escalate (the
///   context says which, the attempts and the last error);
/// - `invalid_config` for an invalid chain, `caf::sec::invalid_argument`
///   without a worker.
/// Every attempt, skipped step and the end produce a `recovery_event` (see
/// `on_event`, `subscribers`, `on_escalate`).
///
/// The steps run in a short-lived helper actor that dies with `self`: when
/// `self` terminates, pending steps are cancelled (an attempt already sent
/// still reaches its worker; its reply is dropped).
void recovery_request(caf::event_based_actor* self, caf::message msg,
                      recovery_options opts, recovery_handler done);

} // namespace ft

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(ft::recovery_result)
