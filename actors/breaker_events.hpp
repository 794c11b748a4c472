#pragma once

// Private to ft_actors: the `breaker_event`s the guard and the decorator
// publish, built in one place so both report alike.

#include <string>
#include <utility>

#include <caf/error.hpp>
#include <caf/timespan.hpp>

#include "ft/breaker.hpp"
#include "ft/breaker_guard.hpp"

#include "wall_clock.hpp"

namespace ft::detail {

/// The event for one state change of the circuit `name`.
inline breaker_event transition_event(const std::string& name,
                                      const breaker_transition& t) {
  breaker_event ev;
  ev.name = name;
  ev.kind = breaker_event_kind::transition;
  ev.from = t.from;
  ev.to = t.to;
  ev.detail = t.reason;
  ev.timestamp_ms = wall_clock_ms();
  return ev;
}

/// The event for one call outcome (or rejection) while the circuit is in
/// state `st`.
inline breaker_event outcome_event(const std::string& name,
                                   breaker_event_kind kind, breaker_state st,
                                   caf::error reason, caf::timespan duration) {
  breaker_event ev;
  ev.name = name;
  ev.kind = kind;
  ev.from = ev.to = st;
  ev.reason = std::move(reason);
  ev.duration = duration;
  ev.timestamp_ms = wall_clock_ms();
  return ev;
}

} // namespace ft::detail
