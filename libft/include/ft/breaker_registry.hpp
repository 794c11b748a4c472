#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_clock.hpp>
#include <caf/atom.hpp>
#include <caf/duration.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/timespan.hpp>

#include "ft/breaker.hpp"
#include "ft/breaker_config.hpp"

/// The breaker registry: one actor per node that owns every circuit breaker
/// of that node, keyed by scope and key (e.g. scope `worker`, key
/// `worker-17`). Callers never hold breaker internals: `acquire` hands out a
/// ticket, and the registry keeps the permit and start time behind it, so
/// any actor (or a remote node) can report an outcome by number.
namespace ft {

// -- well-known scopes --------------------------------------------------------

/// The scopes the distributed-testing dashboards know. They always appear in
/// the health JSON (possibly empty); any other string is a scope too.
constexpr const char* worker_scope = "worker";
constexpr const char* hardware_scope = "hardware";
constexpr const char* task_type_scope = "task_type";

// -- message atoms ------------------------------------------------------------

/// `(registry_acquire_atom, std::string scope, std::string key) -> uint64_t`:
/// asks to make one call through the circuit `(scope, key)`, created on
/// first use. Answers a ticket, or `circuit_open` / `half_open_limit`.
using registry_acquire_atom = caf::atom_constant<caf::atom("ftrgacq")>;

/// `(registry_complete_atom, uint64_t ticket, caf::error outcome) -> void`:
/// the call ended; an empty `outcome` is a success. `not_found` if the
/// ticket was already settled or expired.
using registry_complete_atom = caf::atom_constant<caf::atom("ftrgdone")>;

/// `(registry_timeout_atom, uint64_t ticket) -> void`: the call exceeded its
/// call timeout (a failure). `not_found` as for complete.
using registry_timeout_atom = caf::atom_constant<caf::atom("ftrgtmo")>;

/// `(registry_release_atom, uint64_t ticket) -> void`: the call ended
/// without an outcome (e.g. it was never made); counts nothing but frees a
/// half-open trial slot. `not_found` as for complete.
using registry_release_atom = caf::atom_constant<caf::atom("ftrgrel")>;

/// `(registry_stats_atom, std::string scope, std::string key) ->
/// breaker_stats`, or `not_found` for a circuit never used.
using registry_stats_atom = caf::atom_constant<caf::atom("ftrgstats")>;

/// `(registry_health_atom) -> std::string`: the health JSON, see
/// `breaker_health_json`.
using registry_health_atom = caf::atom_constant<caf::atom("ftrghealth")>;

/// `(registry_reset_atom, std::string scope, std::string key) -> uint64_t`
/// (1, or `not_found` for a circuit never used);
/// `(registry_reset_atom, std::string scope) -> uint64_t`;
/// `(registry_reset_atom) -> uint64_t`. Closes the circuits (see
/// `breaker::reset`) and answers how many it reset, already closed ones
/// included.
using registry_reset_atom = caf::atom_constant<caf::atom("ftrgreset")>;

/// `(registry_force_open_atom, std::string scope, std::string key) -> void`:
/// rejects every call until reset. Creates the circuit if needed, so an
/// operator can fence off a worker before anyone used it.
using registry_force_open_atom = caf::atom_constant<caf::atom("ftrgforce")>;

/// `(registry_disable_atom, std::string scope, std::string key) -> void`:
/// admits every call and never trips until reset. Creates the circuit if
/// needed.
using registry_disable_atom = caf::atom_constant<caf::atom("ftrgdisabl")>;

// -- configuration ------------------------------------------------------------

struct registry_options {
  /// The config of each named scope's circuits.
  std::map<std::string, breaker_config> scopes;

  /// The config of circuits in scopes `scopes` does not name.
  breaker_config default_config;

  /// A ticket never settled (its caller crashed or forgot) expires after
  /// `max(call_timeout, ticket_ttl)`: it counts as a timeout if its circuit
  /// has a call timeout (the call exceeded it), else it is released. The
  /// registry sweeps every `ticket_ttl` while tickets are outstanding, so a
  /// stale ticket lives at most `max(call_timeout, ticket_ttl) + ticket_ttl`
  /// and a lost caller can block a half-open circuit only that long.
  caf::timespan ticket_ttl = std::chrono::seconds(60);

  /// Receive a `breaker_event` (kind `transition`, name `scope/key`) for
  /// every state change of any circuit, so the node's event journal,
  /// metrics and alerts see breakers as they see supervisors.
  std::vector<caf::actor> subscribers;
};

// -- spawning -----------------------------------------------------------------

/// Validates every config in `opts` and spawns the registry. A bad config
/// gives `invalid_breaker_config` naming the scope (`default` for
/// `default_config`), e.g. `scope worker: failure_threshold = -1 (...)`.
/// Stop it with `caf::anon_send_exit(reg, caf::exit_reason::user_shutdown)`.
caf::expected<caf::actor> spawn_breaker_registry(caf::actor_system& sys,
                                                 registry_options opts = {});

// -- health JSON --------------------------------------------------------------

/// One circuit as the health JSON sees it.
struct circuit_snapshot {
  std::string scope;
  std::string key;
  breaker_stats stats;
};

/// Renders the health JSON the distributed-testing operators expect:
///
/// ```
/// {"aggregate": {"total_circuits", "open_circuits", "half_open_circuits",
///                "closed_circuits", "average_health", "overall_health"},
///  "worker": {"<key>": {"state", "health_percentage", "successes",
///                       "failures", "rejected", "last_transition"}},
///  "hardware": {...}, "task_type": {...}, "<other scope>": {...}}
/// ```
///
/// - `worker`, `hardware` and `task_type` are always present (maybe `{}`);
///   other scopes appear when they have circuits. `aggregate` is therefore
///   reserved: circuits in a scope of that name are counted in the
///   aggregate but not listed.
/// - `state` is `to_string(breaker_state)`: closed, open, half_open,
///   forced_open or disabled. In the aggregate, `forced_open` counts as open
///   and `disabled` as closed (both by whether they admit calls).
/// - `successes`, `failures` (timeouts included) and `rejected` are the
///   lifetime counters of `breaker_stats`.
/// - `last_transition` is wall-clock milliseconds since the Unix epoch (an
///   integer, as JavaScript's `Date.now()`): the breaker's monotonic stamp
///   mapped via `wall_now_ms - (now - last_transition)`, where `now` is the
///   breaker clock and `wall_now_ms` the wall clock at the same instant.
/// - `average_health` is the mean `health_percentage` (100 with no circuits).
/// - `overall_health` is the share of capacity that admits traffic, in
///   percent: closed and disabled circuits count 1, half-open 0.5, open and
///   forced-open 0 (100 with no circuits). Unlike `average_health` it
///   ignores degradation inside closed circuits, so it answers "how much of
///   the node can take work right now".
std::string breaker_health_json(const std::vector<circuit_snapshot>& xs,
                                caf::actor_clock::time_point now,
                                int64_t wall_now_ms);

// -- typed request helpers ----------------------------------------------------

// As in supervisor.hpp: each helper sends one request and returns CAF's
// response handle; `timeout` is `caf::infinite` or a `std::chrono` duration.

template <class Self, class Timeout = caf::infinite_t>
auto registry_acquire(Self& self, const caf::actor& reg, std::string scope,
                      std::string key, Timeout timeout = caf::infinite) {
  return self->request(reg, timeout, registry_acquire_atom::value,
                       std::move(scope), std::move(key));
}

/// `outcome` empty (the default) means the call succeeded.
template <class Self, class Timeout = caf::infinite_t>
auto registry_complete(Self& self, const caf::actor& reg, uint64_t ticket,
                       caf::error outcome = {},
                       Timeout timeout = caf::infinite) {
  return self->request(reg, timeout, registry_complete_atom::value, ticket,
                       std::move(outcome));
}

template <class Self, class Timeout = caf::infinite_t>
auto registry_timeout(Self& self, const caf::actor& reg, uint64_t ticket,
                      Timeout timeout = caf::infinite) {
  return self->request(reg, timeout, registry_timeout_atom::value, ticket);
}

template <class Self, class Timeout = caf::infinite_t>
auto registry_release(Self& self, const caf::actor& reg, uint64_t ticket,
                      Timeout timeout = caf::infinite) {
  return self->request(reg, timeout, registry_release_atom::value, ticket);
}

template <class Self, class Timeout = caf::infinite_t>
auto registry_stats(Self& self, const caf::actor& reg, std::string scope,
                    std::string key, Timeout timeout = caf::infinite) {
  return self->request(reg, timeout, registry_stats_atom::value,
                       std::move(scope), std::move(key));
}

template <class Self, class Timeout = caf::infinite_t>
auto registry_health(Self& self, const caf::actor& reg,
                     Timeout timeout = caf::infinite) {
  return self->request(reg, timeout, registry_health_atom::value);
}

template <class Self, class Timeout = caf::infinite_t>
auto registry_reset(Self& self, const caf::actor& reg, std::string scope,
                    std::string key, Timeout timeout = caf::infinite) {
  return self->request(reg, timeout, registry_reset_atom::value,
                       std::move(scope), std::move(key));
}

template <class Self, class Timeout = caf::infinite_t>
auto registry_reset_scope(Self& self, const caf::actor& reg,
                          std::string scope, Timeout timeout = caf::infinite) {
  return self->request(reg, timeout, registry_reset_atom::value,
                       std::move(scope));
}

template <class Self, class Timeout = caf::infinite_t>
auto registry_reset_all(Self& self, const caf::actor& reg,
                        Timeout timeout = caf::infinite) {
  return self->request(reg, timeout, registry_reset_atom::value);
}

template <class Self, class Timeout = caf::infinite_t>
auto registry_force_open(Self& self, const caf::actor& reg, std::string scope,
                         std::string key, Timeout timeout = caf::infinite) {
  return self->request(reg, timeout, registry_force_open_atom::value,
                       std::move(scope), std::move(key));
}

template <class Self, class Timeout = caf::infinite_t>
auto registry_disable(Self& self, const caf::actor& reg, std::string scope,
                      std::string key, Timeout timeout = caf::infinite) {
  return self->request(reg, timeout, registry_disable_atom::value,
                       std::move(scope), std::move(key));
}

} // namespace ft
