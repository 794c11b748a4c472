#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

#include "ft/breaker.hpp"
#include "ft/breaker_config.hpp"

/// A circuit breaker as a CAF actor: the guard stands in front of a target
/// actor, forwards the calls the breaker admits and fails the others fast.
/// Create one with `spawn_breaker_guard`; talk to the target through it as
/// you would talk to the target itself.
namespace ft {

// -- control messages ---------------------------------------------------------

// Every message that is none of these is a call to the target. The names
// carry the `ftbr` prefix so they cannot collide with the supervisor's atoms
// (or a target's own messages).

/// `(breaker_reset_atom) -> void`: closes the circuit from any state.
using breaker_reset_atom = caf::atom_constant<caf::atom("ftbrreset")>;

/// `(breaker_force_open_atom) -> void`: rejects every call until a reset.
using breaker_force_open_atom = caf::atom_constant<caf::atom("ftbrforce")>;

/// `(breaker_disable_atom) -> void`: admits every call, never trips, until
/// a reset.
using breaker_disable_atom = caf::atom_constant<caf::atom("ftbrdisabl")>;

/// `(breaker_stats_atom) -> breaker_stats`.
using breaker_stats_atom = caf::atom_constant<caf::atom("ftbrstats")>;

/// `(breaker_subscribe_atom, caf::actor) -> void`: the subscriber receives
/// every `breaker_event` from now on. `(breaker_unsubscribe_atom,
/// caf::actor) -> void` stops that.
using breaker_subscribe_atom = caf::atom_constant<caf::atom("ftbrsubscr")>;
using breaker_unsubscribe_atom = caf::atom_constant<caf::atom("ftbrunsub")>;

// -- events -------------------------------------------------------------------

/// What a `breaker_event` reports.
enum class breaker_event_kind : uint8_t {
  /// The circuit changed state (`from` -> `to`).
  transition,
  /// An admitted call answered normally (or with an error the config's
  /// `is_failure` does not count; `reason` holds it then).
  success,
  /// An admitted call answered with an error that counts (`reason`).
  failure,
  /// An admitted call exceeded `call_timeout`.
  timeout,
  /// A call was refused at once (`reason`: circuit_open or half_open_limit).
  rejected,
};

const char* to_string(breaker_event_kind x) noexcept;

/// One structured breaker event, sent to every subscriber of a guard.
struct breaker_event {
  /// The guard's name (`guard_options::name`).
  std::string name;
  breaker_event_kind kind = breaker_event_kind::transition;
  /// `transition`: the old and new state. Otherwise both are the state the
  /// circuit is in after the outcome was recorded.
  breaker_state from = breaker_state::closed;
  breaker_state to = breaker_state::closed;
  /// The error of a failure, timeout or rejection.
  caf::error reason;
  /// `transition`: why, for humans (the breaker's explanation).
  std::string detail;
  /// How long the call took (success, failure, timeout); 0 otherwise.
  caf::timespan duration{0};
  /// Wall-clock time in milliseconds since the epoch.
  int64_t timestamp_ms = 0;
};

/// A one-line human rendering, e.g.
/// `[db] transition closed -> open (5 consecutive failures ...)`.
std::string to_string(const breaker_event& x);

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, breaker_event& x) {
  return f(caf::meta::type_name("ft.breaker_event"), x.name, x.kind, x.from,
           x.to, x.reason, x.detail, x.duration, x.timestamp_ms);
}

// -- spawning -----------------------------------------------------------------

struct guard_options {
  /// Names the guard in events and logs.
  std::string name;
  /// Receive every `breaker_event` from the start (incl. the first calls).
  std::vector<caf::actor> subscribers;
};

/// Validates `cfg` (an `invalid_breaker_config` error if out of range) and
/// spawns a guard in front of `target`.
///
/// Requests to the guard go to the target when the breaker admits them; the
/// target's reply (any types, or an error) comes back to the requester.
/// A rejected request is answered at once with `circuit_open` or
/// `half_open_limit`. With `cfg.call_timeout > 0`, a request the target has
/// not answered in time is answered with `call_timeout` and counts as a
/// failure; its late reply is dropped. A target that dies fails its pending
/// requests with `caf::sec::request_receiver_down` (failures, too).
///
/// Requests with a deadline (the envelope of `request_with_deadline`, see
/// deadline_request.hpp) go to the target unchanged, so a `deadline_aware`
/// target sees the deadline too. The guard honours it on the way: a
/// deadline that has passed on arrival is answered `deadline_exceeded` at
/// once, before the breaker is asked (no permit, no call, no counters, no
/// event: the target's health has nothing to do with it). Otherwise the
/// call waits until the earlier of its deadline and `call_timeout`: if the
/// deadline comes first, the caller gets `deadline_exceeded` and the permit
/// is released without an outcome (the target was not slow by its own
/// standard, the call timeout; only the caller ran out of time), and
/// likewise when the target itself answers `deadline_exceeded` after the
/// deadline passed. If the call timeout comes first (or at the same time),
/// it is a timeout as without a deadline. Calls without an envelope pay one
/// size check for this.
///
/// Asynchronous messages (sent, not requested) have no outcome to count:
/// they go to the target, with their original sender, while the circuit is
/// `closed` or `disabled`, and are dropped otherwise (a `rejected` event
/// reports each drop). They never change the breaker's counters.
///
/// The guard monitors neither its caller nor its target's restarts; it
/// outlives the target and then keeps failing (fast, once open). Stop it
/// with `caf::anon_send_exit(guard, caf::exit_reason::user_shutdown)`.
caf::expected<caf::actor> spawn_breaker_guard(caf::actor_system& sys,
                                              caf::actor target,
                                              breaker_config cfg,
                                              guard_options opts = {});

// -- typed request helpers ----------------------------------------------------

// As the supervisor's helpers: each sends one request and returns CAF's
// response handle; `Self` is a pointer to (or `caf::scoped_actor` of) the
// requesting actor.

template <class Self, class Timeout = caf::infinite_t>
auto breaker_reset(Self& self, const caf::actor& guard,
                   Timeout timeout = caf::infinite) {
  return self->request(guard, timeout, breaker_reset_atom::value);
}

template <class Self, class Timeout = caf::infinite_t>
auto breaker_force_open(Self& self, const caf::actor& guard,
                        Timeout timeout = caf::infinite) {
  return self->request(guard, timeout, breaker_force_open_atom::value);
}

template <class Self, class Timeout = caf::infinite_t>
auto breaker_disable(Self& self, const caf::actor& guard,
                     Timeout timeout = caf::infinite) {
  return self->request(guard, timeout, breaker_disable_atom::value);
}

template <class Self, class Timeout = caf::infinite_t>
auto breaker_get_stats(Self& self, const caf::actor& guard,
                       Timeout timeout = caf::infinite) {
  return self->request(guard, timeout, breaker_stats_atom::value);
}

} // namespace ft
