#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/behavior.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>
#include <caf/response_promise.hpp>
#include <caf/typed_behavior.hpp>
#include <caf/unit.hpp>

#include "ft/breaker.hpp"
#include "ft/breaker_config.hpp"
#include "ft/breaker_guard.hpp"

/// The circuit-breaker behaviour decorator: a breaker that lives inside the
/// actor it protects instead of in a guard actor in front of it.
///
/// A guard costs a hop (and a relay through a response promise) per call,
/// and it can only protect an actor from the outside. The decorator wraps
/// the actor's own `caf::behavior`: each message the behaviour handles is a
/// call the breaker must admit first. While the circuit is open the actor
/// fails fast (`circuit_open`, or `half_open_limit` beyond the trial calls)
/// without running its handler; otherwise the handler's result (a value, an
/// error) is recorded as the call's outcome. So an actor that keeps failing
/// (its database is down, its device is unplugged) stops doing the failing
/// work and answers at once, and recovers by trial calls, as behind a guard.
///
/// Usage, inside the actor:
///
/// ```
/// caf::behavior db_worker(caf::event_based_actor* self, ft::breaker_config c,
///                         caf::actor db) {
///   auto dec = ft::breaker_decorator::make(self, c, {"db"});
///   if (!dec) { self->quit(dec.error()); return {}; }
///   return dec->wrap({
///     [=](query q) -> caf::result<row> { return run(q); },   // sync outcome
///     [=, d = *dec](slow_query q) -> caf::result<row> {       // deferred
///       auto rp = d.make_response_promise();
///       self->request(db, caf::infinite, q)
///         .then([rp](row r) mutable { rp.deliver(std::move(r)); },
///               [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
///       return rp;
///     },
///   });
/// }
/// ```
///
/// The decorated behaviour also answers the guard's control messages
/// (`breaker_reset_atom`, `breaker_force_open_atom`, `breaker_disable_atom`,
/// `breaker_stats_atom`, `breaker_subscribe_atom`, `breaker_unsubscribe_atom`)
/// and publishes the same `breaker_event`s, so operators, the event logger
/// and monitoring treat a decorated actor like a guard. Control messages are
/// never calls.
///
/// Limitations (CAF 0.17 offers no hook beyond the behaviour):
/// - Delegation and plain response promises: a handler that delegates
///   (`self->delegate`, `rp.delegate`) or answers later through a plain
///   `caf::response_promise` leaves the breaker blind to that call: its
///   permit is released (a half-open trial slot is freed), nothing is
///   counted. Use `make_response_promise()` on the decorator instead.
/// - While the circuit rejects calls, the handler does not run, so the
///   decorator cannot tell whether the inner behaviour would have handled a
///   message: every message except the control messages counts as a
///   rejected call then (an unmatched one gets `circuit_open` instead of
///   CAF's `unexpected_message`). While calls are admitted, messages the
///   inner behaviour does not match (handled by the default handler) or
///   skips are not counted.
/// - `or_else` cannot combine a decorated behaviour (CAF's combinator reads
///   the match-case table a decorated behaviour does not have); combine the
///   inner behaviours first, then wrap.
/// - Asynchronous messages are calls, too: an error a handler returns for
///   one counts as a failure. A rejected asynchronous message is dropped
///   without an answer (its sender asked for none); a `rejected` event
///   reports each drop.
/// - Timers (call timeouts, the on-time `open -> half_open` event) are
///   private messages to the actor itself: the actor's current behaviour
///   must be one wrapped by the same decorator when they arrive, or they
///   reach the inner handlers as unexpected messages. Wrap every behaviour
///   the actor becomes.
/// - Nested decorators (`a.wrap(b.wrap(x))`) are two circuits; control
///   messages reach the outer one only.
/// - Not thread-safe: the decorator belongs to its actor. Use its functions
///   and deliver its promises only from inside that actor.
namespace ft {

namespace detail {

class decorator_impl;
struct deferred_call;

} // namespace detail

// -- options ------------------------------------------------------------------

struct decorator_options {
  /// Names the decorator in events and logs (`breaker_event::name`).
  std::string name;
  /// Receive every `breaker_event` from the start.
  std::vector<caf::actor> subscribers;
};

// -- deferred answers ---------------------------------------------------------

/// A response promise whose outcome the breaker records: `deliver` records
/// the value (success) or error (failure, per the config's `is_failure`),
/// then answers the caller. With `call_timeout > 0`, a call not delivered
/// in time has already been answered with `call_timeout` (and recorded as
/// a timeout); a later `deliver` is dropped. Only the first `deliver` of
/// any copy counts.
///
/// It is a `caf::response_promise`, so a handler declared to return
/// `caf::result<T...>` (or `caf::response_promise`) can `return rp;`.
/// Deliver only through this class (a sliced `caf::response_promise`
/// answers without recording, and the call stays in flight until its
/// timeout), and only inside the decorated actor.
class breaker_promise : public caf::response_promise {
public:
  breaker_promise() = default;

  /// An untracked promise: delivers without recording (what
  /// `breaker_decorator::make_response_promise` returns outside a call).
  explicit breaker_promise(caf::response_promise rp)
    : caf::response_promise(std::move(rp)) {
    // nop
  }

  /// Answers with `x` and records a failure (or, if the config's
  /// `is_failure` excuses `x`, a success).
  void deliver(caf::error x);

  /// Answers with the values `x, xs...` and records a success. A message
  /// that holds just an error is an error answer (as for CAF's replies).
  template <class T, class... Ts>
  std::enable_if_t<(sizeof...(Ts) > 0)
                   || (!std::is_convertible<T, caf::error>::value
                       && !std::is_same<std::decay_t<T>, caf::unit_t>::value
                       && !caf::detail::is_expected<std::decay_t<T>>::value)>
  deliver(T&& x, Ts&&... xs) {
    deliver_message(
      caf::make_message(std::forward<T>(x), std::forward<Ts>(xs)...));
  }

  /// Answers with the value or the error of `x`.
  template <class T>
  void deliver(caf::expected<T> x) {
    if (x)
      deliver(std::move(*x));
    else
      deliver(std::move(x.error()));
  }

  /// Answers a `void` request (nothing) and records a success.
  void deliver(caf::unit_t) {
    deliver_message(caf::message{});
  }

  /// Delegating would hide the outcome from the breaker: not offered.
  template <class... Ts>
  void delegate(Ts&&...) = delete;

  /// Whether the breaker waits for this promise's outcome (false once
  /// delivered, after its call timed out, or for an untracked promise).
  bool tracked() const;

private:
  friend class detail::decorator_impl;

  breaker_promise(caf::response_promise rp,
                  std::shared_ptr<detail::decorator_impl> impl, uint64_t id);

  void deliver_message(caf::message msg);

  /// The deferred call, shared by all copies (null when untracked or after
  /// this copy delivered). When the last copy goes undelivered, the call is
  /// abandoned: without a call timeout its permit is released (counting
  /// nothing; the caller gets no answer, as with a dropped
  /// `caf::response_promise` in CAF 0.17), with one the timeout answers.
  std::shared_ptr<detail::deferred_call> call_;
};

// -- the decorator ------------------------------------------------------------

/// A handle to the circuit of one actor: cheap to copy (a shared pointer),
/// so handlers may capture it. Every behaviour it wraps shares the circuit,
/// so `self->become(dec.wrap(other))` keeps the breaker's state, counters,
/// subscribers and pending calls.
///
/// Hot path: with the circuit closed, a call that succeeds synchronously
/// costs a type check (is it a control message?), `try_acquire` and
/// `record_success`: no allocation, no clock read, no event. The clock is
/// read at the outcome when the config has a window, when the circuit is
/// not closed (or disabled), for failures (they may trip it) and for
/// deferred calls; at admission, too (so the call's duration is known) with
/// a `slow_call_duration`, when someone subscribed (events carry
/// durations) or when the circuit is not closed. Otherwise a synchronous
/// call's duration counts as 0.
class breaker_decorator {
public:
  // -- construction -----------------------------------------------------------

  /// An empty handle; only assignment and `operator bool` are meaningful.
  breaker_decorator() = default;

  /// Validates `cfg` (`invalid_breaker_config` when out of range) and
  /// creates the circuit of `self`, which must outlive every use of the
  /// handle (so keep it inside the actor: its behaviours and state).
  static caf::expected<breaker_decorator>
  make(caf::scheduled_actor* self, breaker_config cfg,
       decorator_options opts = {});

  // -- decorating -------------------------------------------------------------

  /// Returns `inner` behind the circuit. Keeps `inner`'s idle timeout.
  caf::behavior wrap(caf::behavior inner) const;

  /// As above, for typed actors. The control messages stay outside the
  /// typed interface (send them through `caf::actor_cast<caf::actor>`).
  template <class... Sigs>
  caf::typed_behavior<Sigs...> wrap(caf::typed_behavior<Sigs...> inner) const {
    using result_type = caf::typed_behavior<Sigs...>;
    return result_type{typename result_type::unsafe_init{},
                       wrap(std::move(inner.unbox()))};
  }

  /// Inside a decorated handler: a promise to answer the current call later
  /// with its outcome recorded (see `breaker_promise`). Anywhere else (or a
  /// second time in the same call) an untracked promise.
  breaker_promise make_response_promise() const;

  // -- manual control (as the control messages) -------------------------------

  /// Closes the circuit from any state.
  void reset() const;

  /// Rejects every call until `reset`.
  void force_open() const;

  /// Admits every call and never trips until `reset`.
  void disable() const;

  /// The subscriber receives every `breaker_event` from now on.
  void subscribe(caf::actor subscriber) const;

  void unsubscribe(const caf::actor& subscriber) const;

  // -- observers --------------------------------------------------------------

  /// The state now (publishing a due `open -> half_open`).
  breaker_state state() const;

  breaker_stats stats() const;

  /// Calls answered later through a `breaker_promise` and not yet settled.
  size_t pending_calls() const;

  const std::string& name() const;

  explicit operator bool() const noexcept {
    return static_cast<bool>(impl_);
  }

private:
  explicit breaker_decorator(std::shared_ptr<detail::decorator_impl> impl)
    : impl_(std::move(impl)) {
    // nop
  }

  std::shared_ptr<detail::decorator_impl> impl_;
};

} // namespace ft
