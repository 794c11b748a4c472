#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

#include "ft/fwd.hpp"

namespace ft {

/// What happened in a supervisor. Subscribers (the log, later metrics and the
/// dashboard) receive one `supervisor_event` per occurrence.
enum class event_kind : uint8_t {
  child_started,
  child_exited,
  restart_scheduled,
  child_restarted,
  restart_failed,
  intensity_exceeded,
  escalated,
  shutdown,
};

const char* to_string(event_kind x) noexcept;

/// A set of event kinds, for subscribing to some of them only.
using event_mask = uint32_t;

/// Every event kind.
constexpr event_mask all_events = ~event_mask{0};

/// The mask holding `kinds`, e.g. `mask_of({event_kind::child_restarted})`.
constexpr event_mask mask_of(std::initializer_list<event_kind> kinds) {
  event_mask result = 0;
  for (auto k : kinds)
    result |= event_mask{1} << static_cast<unsigned>(k);
  return result;
}

constexpr bool contains(event_mask mask, event_kind x) {
  return (mask & (event_mask{1} << static_cast<unsigned>(x))) != 0;
}

/// Severity levels shared by all libft events: 1 info, 2 warning, 3 error,
/// 4 critical (operator attention).
uint8_t default_severity(event_kind x) noexcept;

/// Severity of an event of kind `x` with `reason`: a shutdown for an
/// abnormal reason (intensity exceeded, escalation) is an error, not info.
uint8_t severity_of(event_kind x, const caf::error& reason) noexcept;

/// One structured supervisor event.
struct supervisor_event {
  event_kind kind = event_kind::child_started;
  /// The supervisor's name (its flags' `name`).
  std::string supervisor;
  /// The child's id; dynamic children of simple_one_for_one use their actor id.
  std::string child;
  /// The child's new incarnation, for child_started and child_restarted: a
  /// subscriber can talk to the replacement without asking the supervisor.
  caf::actor actor;
  /// Exit reason for child_exited, escalated, shutdown, restart_failed.
  caf::error reason;
  /// Pause before the restart, for restart_scheduled.
  caf::timespan delay{0};
  uint8_t severity = 1;
  /// Wall-clock time in milliseconds since the epoch.
  int64_t timestamp_ms = 0;
};

/// A one-line human rendering, e.g.
/// `[pool] child_exited child=w1 reason=...`.
std::string to_string(const supervisor_event& x);

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, supervisor_event& x) {
  return f(caf::meta::type_name("ft.supervisor_event"), x.kind, x.supervisor,
           x.child, x.actor, x.reason, x.delay, x.severity, x.timestamp_ms);
}

} // namespace ft
