#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_clock.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include "ft/breaker_config.hpp"

namespace ft {

// -- events and statistics ----------------------------------------------------

/// One change of state, for the actor layer to publish as an event.
struct breaker_transition {
  breaker_state from;
  breaker_state to;
  /// When it happened. A lazy `open -> half_open` is stamped with the end of
  /// the open period, not with the time someone noticed it.
  caf::actor_clock::time_point at;
  /// Why, for humans, e.g. `5 consecutive failures (failure_threshold = 5)`.
  std::string reason;
};

/// A snapshot for monitoring and the registry's JSON.
struct breaker_stats {
  breaker_state state = breaker_state::closed;

  // Lifetime counters: monotonic, never cleared (not even by `reset`), so
  // monitoring can compute rates from differences.

  /// Calls that succeeded (incl. errors the predicate does not count).
  uint64_t success_count = 0;
  /// Calls that failed (incl. timeouts).
  uint64_t failure_count = 0;
  /// Of `failure_count`: calls that timed out.
  uint64_t timeout_count = 0;
  /// Calls that took at least `slow_call_duration` (0 if that is off).
  uint64_t slow_call_count = 0;
  /// Calls rejected by `try_acquire` (open, forced_open, half_open limit).
  uint64_t rejected_count = 0;

  /// Lifetime success rate in percent; 100 before the first call.
  double success_rate = 100.0;

  /// Current consecutive failures in `closed`.
  int consecutive_failures = 0;

  /// Calls in the sliding window and their failure and slow-call rates in
  /// percent (all 0 without a window or without calls).
  size_t window_calls = 0;
  double window_failure_rate = 0.0;
  double window_slow_call_rate = 0.0;

  /// `half_open`: trial calls in flight and trial successes so far.
  int half_open_in_flight = 0;
  int half_open_successes = 0;

  /// Time of the last transition (construction counts as one).
  caf::actor_clock::time_point last_transition;

  /// The length of the current open period in `open`, else of the next one.
  caf::timespan open_period{0};

  /// `open`: when the circuit starts to admit trial calls.
  std::optional<caf::actor_clock::time_point> open_until;

  // Adaptive mode (see `breaker_config::adaptive_config`); without it the
  // effective values are the configured ones and the observations 0.

  /// The consecutive failures that trip the circuit now.
  int effective_failure_threshold = 0;

  /// The first open period of the next outage (failed trials grow it).
  caf::timespan effective_recovery_timeout{0};

  /// The background failure rate in percent: a moving average over the
  /// calls in `closed`, without the runs that tripped the circuit (outages,
  /// not noise). Starts at the rate the configured `failure_threshold` suits.
  double observed_failure_rate = 0.0;

  /// The moving average of recovery times, before clamping to the bounds.
  /// Starts at the configured `recovery_timeout`.
  caf::timespan observed_recovery_time{0};

  /// Health in [0, 100] for dashboards:
  /// - `closed`: min(success rate, headroom), where the success rate is over
  ///   the window (or, without a window, over the calls since the circuit
  ///   last closed; 100 without calls) and the headroom is
  ///   `100 * (1 - consecutive_failures / failure_threshold)` (100 if the
  ///   consecutive trigger is off);
  /// - `half_open`: `25 + 25 * successes / success_threshold`, i.e. 25 on
  ///   entry rising towards 50: recovering, never fully healthy;
  /// - `open`, `forced_open`: 0;
  /// - `disabled`: the success rate since it was disabled (100 without
  ///   calls): the breaker does not judge, but the calls still count.
  double health_percentage = 100.0;
};

// -- the state machine --------------------------------------------------------

/// The admission ticket of one call: which epoch (the span between two
/// transitions) admitted it. The breaker uses it to tell trial calls from
/// calls admitted before the last transition, whose late outcomes must not
/// close or trip the circuit again.
struct breaker_permit {
  uint64_t epoch = 0;
  breaker_state admitted_in = breaker_state::closed;
};

/// The pure circuit-breaker state machine: no actors, no clocks, no threads.
/// The caller passes the current time into every operation, so tests replay
/// schedules exactly and the actor layer stays the only owner of time.
///
/// Protocol: `try_acquire` before each call; then exactly one of
/// `record_success`, `record_error`, `record_timeout` or `release` with the
/// permit it returned. Not thread-safe: one actor owns one breaker.
///
/// Adaptive mode (`config().adaptive.enabled`) tunes two values within their
/// bounds; `stats` reports them and the transition reasons say so:
/// - the failure threshold: the smallest k with p^k <= false_trip_probability
///   for the background failure rate p of calls in `closed`. A success folds
///   the run of failures it ends into p and recomputes k; a run in progress
///   never raises the bar it is measured against, and a run that trips is an
///   outage, not noise, so it never counts.
/// - the recovery timeout: the callee recovered between the trip (or the
///   last failed trial) and the first successful trial of the probing that
///   closed the circuit. The middle of that span is the observed recovery
///   time (the time to the success alone is never below the open period, so
///   it could only ever grow the timeout); its moving average, clamped,
///   becomes the first open period of the next outage. Failed trials still
///   grow the open period by `reset_timeout_factor` up to
///   `max_reset_timeout`.
/// `reset` keeps what was learned: it describes the callee, not the outage.
class breaker {
public:
  using time_point = caf::actor_clock::time_point;
  using listener = std::function<void(const breaker_transition&)>;

  // -- construction -----------------------------------------------------------

  /// Requires `validate(cfg)` to pass; `make` checks it for you. `now` is the
  /// time of the initial "transition" into `closed`.
  explicit breaker(breaker_config cfg, time_point now = time_point{});

  /// Validates `cfg`, then constructs.
  static caf::expected<breaker> make(breaker_config cfg,
                                     time_point now = time_point{});

  // -- admission --------------------------------------------------------------

  /// Asks to make one call at `now`. Returns a permit, or `circuit_open` (in
  /// `open` before the open period ends, or in `forced_open`) or
  /// `half_open_limit` (when `half_open_max_calls` trials are in flight).
  /// Rejections count in `rejected_count`. An `open` circuit whose period
  /// has ended turns `half_open` here.
  caf::expected<breaker_permit> try_acquire(time_point now);

  // -- outcomes ---------------------------------------------------------------

  /// The call of `permit` succeeded after `duration`.
  void record_success(const breaker_permit& permit, time_point now,
                      caf::timespan duration);

  /// The call of `permit` failed with `err` after `duration`. Errors the
  /// config's `is_failure` rejects count as successes.
  void record_error(const breaker_permit& permit, time_point now,
                    caf::timespan duration, const caf::error& err);

  /// The call of `permit` exceeded `call_timeout`: a failure (the error
  /// would be `call_timeout`) with duration `call_timeout`.
  void record_timeout(const breaker_permit& permit, time_point now);

  /// The call of `permit` ended without an outcome (e.g. the caller went
  /// away): frees its trial slot, counts nothing.
  void release(const breaker_permit& permit);

  // -- manual control ---------------------------------------------------------

  /// Closes the circuit from any state: clears the window and consecutive
  /// counts and resets the open period. Lifetime counters stay. No
  /// transition is reported if the circuit was already `closed`.
  void reset(time_point now);

  /// Rejects every call until `reset`.
  void force_open(time_point now);

  /// Admits every call and never trips until `reset`.
  void disable(time_point now);

  // -- observers --------------------------------------------------------------

  /// The state at `now`, turning `open` into `half_open` when due.
  breaker_state state(time_point now);

  /// The state as last changed, without the lazy `open -> half_open`.
  breaker_state current_state() const noexcept {
    return state_;
  }

  /// A snapshot at `now`. Reports an `open` circuit whose period has ended
  /// as `half_open` (since `open_until`), as `state(now)` would make it.
  breaker_stats stats(time_point now) const;

  const breaker_config& config() const noexcept {
    return cfg_;
  }

  /// Sets the one function that sees every transition, once, after the
  /// breaker finished it. It must not call back into the breaker.
  void on_transition(listener f) {
    listener_ = std::move(f);
  }

private:
  // -- implementation ---------------------------------------------------------

  struct bucket {
    int64_t index;
    uint32_t calls;
    uint32_t failures;
    uint32_t slow;
  };

  struct window_counts {
    size_t calls = 0;
    size_t failures = 0;
    size_t slow = 0;
  };

  /// The one place that changes `state_`.
  void transition(breaker_state to, time_point at, std::string reason);

  /// Opens the circuit for the current open period.
  void open(time_point now, std::string reason);

  /// Turns `open` into `half_open` when the open period ended at `now`.
  void advance(time_point now);

  void record(const breaker_permit& permit, time_point now,
              caf::timespan duration, bool failed, bool timed_out);

  bool is_slow(caf::timespan duration) const noexcept;

  /// Adds one call to the window and returns the counts at `now`.
  void window_add(time_point now, bool failed, bool slow);

  window_counts window_at(time_point now) const;

  void window_clear();

  int64_t bucket_index(time_point t) const noexcept;

  double health(breaker_state st, time_point now) const;

  /// Adaptive: folds the run of failures a success in `closed` ends and the
  /// success into the failure rate, and retunes the failure threshold.
  void learn_failure_rate();

  /// Adaptive: learns the recovery time of the outage the trials just ended
  /// and retunes the recovery timeout. Returns the note for the reason.
  std::string learn_recovery_time();

  // -- member variables -------------------------------------------------------

  breaker_config cfg_;
  breaker_state state_ = breaker_state::closed;
  uint64_t epoch_ = 0;
  time_point last_transition_;
  caf::timespan open_period_;
  time_point open_until_;
  /// The error rejected calls get while open (see open()).
  caf::error open_rejection_;
  listener listener_;

  // Closed: consecutive failures and calls since the circuit closed (for
  // health without a window). Disabled: calls since it was disabled.
  int consecutive_failures_ = 0;
  uint64_t epoch_successes_ = 0;
  uint64_t epoch_failures_ = 0;

  // Half-open trials.
  int trials_in_flight_ = 0;
  int trial_successes_ = 0;

  // Count-based window: a ring of outcome flags (bit 0 failed, bit 1 slow).
  std::vector<uint8_t> ring_;
  size_t ring_next_ = 0;
  window_counts ring_counts_;

  // Time-based window: at most `num_buckets + 1` buckets, oldest first.
  std::deque<bucket> buckets_;
  caf::timespan bucket_width_{1};

  // Adaptive mode: the values in force (the configured ones without it),
  // the moving averages behind them (failure probability per call; recovery
  // time in nanoseconds) and the current outage: when it tripped, when the
  // last trial failed, when the first trial of the last probing succeeded.
  int failure_threshold_;
  caf::timespan recovery_timeout_;
  double failure_rate_ = 0.0;
  double recovery_time_ = 0.0;
  time_point outage_start_;
  time_point last_failed_probe_;
  time_point recovered_at_;

  // Lifetime counters.
  uint64_t successes_ = 0;
  uint64_t failures_ = 0;
  uint64_t timeouts_ = 0;
  uint64_t slow_calls_ = 0;
  uint64_t rejected_ = 0;
};

} // namespace ft

// Holds time points of the actor clock, which CAF 0.17 cannot serialize:
// stats stay in the local process (the registry renders them as JSON). One
// declaration for every header that sends them.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(ft::breaker_stats)
