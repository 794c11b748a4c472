#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

namespace ft {

// -- states -------------------------------------------------------------------

/// The states of a circuit breaker. `closed`, `open` and `half_open` are the
/// automatic cycle; `forced_open` and `disabled` are manual overrides that
/// only `reset` leaves, so an operator's decision is never undone by traffic.
enum class breaker_state : uint8_t {
  /// Calls pass; outcomes are counted and may trip the circuit.
  closed,
  /// Calls fail fast with `circuit_open` until the open period ends.
  open,
  /// A limited number of trial calls probe whether the callee recovered.
  half_open,
  /// Manually opened: rejects every call until `reset`.
  forced_open,
  /// Manually switched off: admits every call and never trips.
  disabled,
};

/// Returns the name of `x`, e.g. `"half_open"`.
const char* to_string(breaker_state x) noexcept;

/// Parses the names `to_string` returns.
std::optional<breaker_state> parse_breaker_state(const std::string& x);

// -- configuration ------------------------------------------------------------

/// Parameters of a circuit breaker. The defaults trip after 5 consecutive
/// failures, wait 30 s before probing, and double the wait (up to 5 min) for
/// each failed probe. `validate` checks the ranges.
struct breaker_config {
  /// How the optional sliding window counts recent calls.
  enum class window_kind : uint8_t {
    /// No window: only consecutive failures trip the circuit.
    none,
    /// The last `window_size` calls.
    count_based,
    /// The calls of the last `window_duration`.
    time_based,
  };

  /// Consecutive failures (in `closed`) that trip the circuit. 0 turns the
  /// consecutive trigger off, which needs a window to trip at all.
  int failure_threshold = 5;

  /// Successful trial calls in `half_open` that close the circuit again.
  int success_threshold = 2;

  /// The first open period: how long the circuit rejects calls before it
  /// admits trial calls.
  caf::timespan recovery_timeout = std::chrono::seconds(30);

  /// Each failed trial in `half_open` multiplies the open period by this
  /// factor (>= 1), so a callee that stays down is probed less and less.
  double reset_timeout_factor = 2.0;

  /// The cap of the growing open period (>= `recovery_timeout`).
  caf::timespan max_reset_timeout = std::chrono::minutes(5);

  /// How long a call may take (0 = no limit). The breaker only stores it:
  /// the actor layer enforces it and reports expiry via `record_timeout`.
  caf::timespan call_timeout{0};

  /// Trial calls admitted at once in `half_open`; the rest fail fast with
  /// `half_open_limit`.
  int half_open_max_calls = 1;

  /// The sliding window for rate-based tripping (none by default).
  window_kind window = window_kind::none;

  /// `count_based`: the number of most recent calls in the window.
  int window_size = 100;

  /// `time_based`: how far back the window reaches. Calls are kept in 100
  /// buckets of `window_duration / 100` each, so a call is forgotten between
  /// `window_duration` and `window_duration * 1.01` after it finished.
  caf::timespan window_duration = std::chrono::seconds(60);

  /// Calls the window must hold before its rates may trip the circuit, so
  /// a handful of early failures do not count as a 100% failure rate.
  int minimum_calls = 10;

  /// Failure rate in percent, in (0, 100], at or above which the window
  /// trips the circuit.
  double failure_rate_threshold = 50.0;

  /// Calls taking at least this long count as slow (0 = off; needs a
  /// window).
  caf::timespan slow_call_duration{0};

  /// Slow-call rate in percent, in (0, 100], at or above which the window
  /// trips the circuit.
  double slow_call_rate_threshold = 100.0;

  /// Decides which errors count as failures; an empty function counts every
  /// error. An error it rejects (e.g. a "not found" answer from a healthy
  /// callee) counts as a success: the callee did respond.
  std::function<bool(const caf::error&)> is_failure;

  /// Adaptive mode: tunes `failure_threshold` and `recovery_timeout` within
  /// bounds from what the breaker observes, so one config fits callees that
  /// are noisy and callees that are clean. The configured values are the
  /// starting point and must lie within the bounds (`validate` rejects them
  /// otherwise instead of clamping silently: the operator's number is either
  /// used or reported). The bounds are validated even when adaptive mode is
  /// off, so enabling it is one line.
  struct adaptive_config {
    /// Off by default: without it the breaker behaves exactly as configured.
    bool enabled = false;

    /// The lowest tuned `failure_threshold` (>= 1): even a perfectly clean
    /// callee needs this many consecutive failures to trip, so one stray
    /// error never opens the circuit.
    int min_failure_threshold = 3;

    /// The highest tuned `failure_threshold`: caps how long a very noisy
    /// callee may fail in a row before it counts as down.
    int max_failure_threshold = 20;

    /// The shortest tuned `recovery_timeout` (> 0): keeps a callee that
    /// recovers fast from being probed in a tight loop.
    caf::timespan min_recovery_timeout = std::chrono::seconds(5);

    /// The longest tuned `recovery_timeout` (<= `max_reset_timeout`, so a
    /// failed trial never shortens the open period): bounds the wait after
    /// a few slow recoveries.
    caf::timespan max_recovery_timeout = std::chrono::minutes(2);

    /// The accepted probability, in (0, 1), that background failures alone
    /// (at the observed failure rate p) make a run long enough to trip: the
    /// tuned threshold is the smallest k in the bounds with p^k <= this.
    double false_trip_probability = 0.001;

    /// The weight, in (0, 1], of the newest observation in the moving
    /// averages (failure rate per call, recovery time per outage): higher
    /// follows changes faster, lower smooths out chance.
    double smoothing = 0.2;
  };

  /// Adaptive mode (off by default).
  adaptive_config adaptive;
};

/// Returns the name of `x`, e.g. `"count_based"`.
const char* to_string(breaker_config::window_kind x) noexcept;

/// Parses the names `to_string` returns.
std::optional<breaker_config::window_kind>
parse_window_kind(const std::string& x);

/// Returns an `invalid_breaker_config` error whose context starts with the
/// first out-of-range field, e.g. `failure_threshold = -1 (must be >= 0)` or
/// `adaptive.min_failure_threshold = 0 (must be >= 1)`. With
/// `adaptive.enabled`, `failure_threshold` and `recovery_timeout` must lie
/// within the adaptive bounds and `adaptive.max_recovery_timeout` must not
/// exceed `max_reset_timeout`.
caf::error validate(const breaker_config& x);

// -- presets and YAML ---------------------------------------------------------

/// Returns a named starting point (`invalid_breaker_config` for other names):
/// - `production`: conservative; trips after 5 consecutive failures or a 50%
///   failure rate over the last 100 calls (minimum 20), probes after 30 s
///   with 1 trial at a time, 3 successes to close; the open period doubles
///   up to 5 min; call_timeout 10 s.
/// - `development`: lenient, recovers fast; trips after 10 consecutive
///   failures only, probes after 5 s with 3 trials, 1 success closes; the
///   open period grows by 1.5 up to 30 s; call_timeout 30 s.
/// - `aggressive`: trips fast; after 2 consecutive failures or a 25% failure
///   rate (or 50% slow calls of >= 1 s) over the last 20 calls (minimum 5),
///   probes after 10 s with 1 trial, 2 successes close; the open period
///   doubles up to 10 min; call_timeout 2 s.
///
/// Each preset keeps adaptive mode off but sets bounds around its values, so
/// `adaptive.enabled: true` is all it takes: production tunes the threshold
/// in [3, 20] and the recovery timeout in [10 s, 2 min], development in
/// [5, 30] and [1 s, 30 s], aggressive in [2, 8] and [5 s, 1 min].
caf::expected<breaker_config> breaker_preset(const std::string& name);

/// Reads a breaker config from a YAML mapping with the fields
/// `failure_threshold`, `success_threshold`, `recovery_timeout`,
/// `reset_timeout_factor`, `max_reset_timeout`, `call_timeout`,
/// `half_open_max_calls`, `window` (none|count_based|time_based),
/// `window_size`, `window_duration`, `minimum_calls`,
/// `failure_rate_threshold`, `slow_call_duration`,
/// `slow_call_rate_threshold`, `adaptive` (a nested mapping with `enabled`,
/// `min_failure_threshold`, `max_failure_threshold`, `min_recovery_timeout`,
/// `max_recovery_timeout`, `false_trip_probability`, `smoothing`) and
/// `preset` (production|development|aggressive). Durations are in seconds.
/// The preset applies first so explicit fields override it (within
/// `adaptive`, field by field). Errors are `invalid_breaker_config` naming
/// `source:line`, the field (e.g. `adaptive.smoothing`) and the value. An
/// empty document gives the defaults.
caf::expected<breaker_config>
breaker_config_from_yaml(const std::string& text,
                         const std::string& source = "<config>");

} // namespace ft
