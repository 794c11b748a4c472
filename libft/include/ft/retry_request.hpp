#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>
#include <caf/message.hpp>
#include <caf/timespan.hpp>

#include "ft/deadline.hpp"
#include "ft/deadline_request.hpp"
#include "ft/retry.hpp"

/// Retrying requests for event-based actors: send, wait for a reply or the
/// call timeout, pause on the actor clock, try again, give up with the last
/// error. Every wait is a timer message, so no worker thread ever blocks.
namespace ft {

/// Caps how many retrying requests are in flight at once. Give each actor
/// its own budget (e.g. a member of its state) for a per-actor cap; share
/// one between actors to cap a group. Thread-safe: the retry helper gives
/// its slot back from its own thread.
class retry_budget {
public:
  /// `max_in_flight` = 0 means unlimited.
  explicit retry_budget(size_t max_in_flight) noexcept
    : max_(max_in_flight) {
    // nop
  }

  retry_budget(const retry_budget&) = delete;
  retry_budget& operator=(const retry_budget&) = delete;

  /// Takes a slot, or returns false when all are taken.
  bool try_acquire() noexcept;

  /// Gives back a slot taken by `try_acquire`.
  void release() noexcept;

  /// Retrying requests holding a slot right now.
  size_t in_flight() const noexcept {
    return in_flight_.load();
  }

  size_t max_in_flight() const noexcept {
    return max_;
  }

private:
  const size_t max_;
  std::atomic<size_t> in_flight_{0};
};

using retry_budget_ptr = std::shared_ptr<retry_budget>;

/// How `retry_request` retries one request.
struct retry_options {
  /// Pauses, attempts, elapsed-time cap, retryable errors and
  /// `wait_for_half_open`. Validated by `retry_request`.
  retry_policy policy;

  /// How long one attempt may take (0 = no limit). An attempt that runs out
  /// fails with `call_timeout` (retryable by default) and is reported to the
  /// breaker as a timeout.
  caf::timespan call_timeout{0};

  /// The whole request, retries included, must finish by then. Expiry
  /// answers `deadline_exceeded` at once and cancels every pending retry;
  /// a pause that would end after it is not slept into. Called while
  /// handling a request with a deadline, the request gets the earlier of
  /// this and `current_deadline()` (read at the call): a retrying hop must
  /// not outlive its caller's patience either.
  deadline until = deadline::never();

  /// Whether attempts carry the deadline to the target. When the ambient
  /// deadline (`current_deadline()`, read at the call) is set, each attempt
  /// goes out in a deadline envelope (`with_deadline`) with the request's
  /// deadline (the earlier of it and `until`), so a `deadline_aware` target
  /// stops working when nobody waits any more. Not the attempt's
  /// `call_timeout`: a target's `deadline_exceeded` must mean that the
  /// whole request is out of time, since it is not retried.
  ///
  /// A caller with a deadline speaks the envelope, so its callees are taken
  /// to, too; set this to false for a target that does not (it would
  /// answer envelopes `unexpected_message`). Without an ambient deadline
  /// nothing changes on the wire: `until` alone is a local bound (wrap the
  /// call in a `deadline_scope` to send it as well).
  bool propagate_deadline = true;

  /// The breaker registry to consult before each attempt (none if unset).
  /// While the circuit `(scope, key)` rejects calls, no attempt reaches the
  /// target: the request fails with the registry's error (`circuit_open` or
  /// `half_open_limit`), or, with `policy.wait_for_half_open`, probes the
  /// registry every `policy.initial_delay` (at least 1ms) until it admits
  /// the call, the deadline expires or `policy.max_elapsed` runs out.
  /// Waiting for the breaker does not count as an attempt.
  caf::actor registry;
  std::string scope;
  std::string key;

  /// Caps the requests in flight (none if unset). A request over the cap
  /// fails at once with `too_many_retries` without touching the target.
  retry_budget_ptr budget;

  /// Draws the jitter in [0, 1) (a seeded RNG of the helper if empty).
  std::function<double()> random01;
};

/// What a retrying request ends with: the target's reply (any types, as a
/// message) or the error it gave up with.
using retry_handler = reply_handler;

/// Sends `msg` to `dest` and retries per `opts`, then calls `done` once,
/// in `self`'s context (like a response handler), with the first successful
/// reply or the final error:
/// - the last error itself if it is not retryable (see `is_retryable`);
/// - `retries_exhausted` (context names the last error) when attempts or
///   `max_elapsed` ran out;
/// - `deadline_exceeded` when `opts.until` (or the ambient deadline, see
///   `retry_options::until`) expired or a pause would outlast it;
/// - `circuit_open` / `half_open_limit` from the breaker (see `registry`);
/// - `too_many_retries` when `opts.budget` is exhausted;
/// - `invalid_breaker_config` for an invalid `opts.policy`.
/// `done` never runs synchronously inside this call, so the caller may
/// update its own bookkeeping after calling. While it runs,
/// `current_deadline()` is the one that was current at the call, so a
/// handler that continues a request with a deadline still has it.
///
/// The attempts run in a short-lived helper actor that dies with `self`:
/// when `self` terminates, pending retries are cancelled (an attempt already
/// sent still reaches `dest`; its reply is dropped).
void retry_request(caf::event_based_actor* self, const caf::actor& dest,
                   caf::message msg, retry_options opts, retry_handler done);

} // namespace ft
