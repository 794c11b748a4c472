#pragma once

#include <cstdint>
#include <vector>

#include <caf/actor_clock.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

namespace ft {

/// How long a supervisor waits before restarting a failed child. The names
/// (`fixed`, `exponential`, `failure_rate` and their parameters) follow the
/// restart strategies users know from the fault-tolerance seed configs.
struct restart_delay {
  enum class kind : uint8_t { none, fixed, exponential, failure_rate };

  kind type = kind::none;

  /// `fixed` and `failure_rate`: the pause before each restart.
  caf::timespan delay{0};

  /// `exponential`: first pause, cap, growth factor and jitter in [0, 1]
  /// (the pause is drawn from [d * (1 - jitter), d * (1 + jitter)]).
  caf::timespan initial_delay{0};
  caf::timespan max_delay{0};
  double multiplier = 2.0;
  double jitter = 0.0;

  /// `fixed` and `exponential`: consecutive restarts before the policy gives
  /// up (0 = unlimited). A child that stays up for the supervisor's period
  /// resets the count.
  int max_attempts = 0;

  /// `failure_rate`: at most this many failures within `interval`.
  int max_failures_per_interval = 0;
  caf::timespan interval{0};

  static restart_delay none() {
    return {};
  }

  static restart_delay fixed(caf::timespan delay, int max_attempts = 0);

  static restart_delay exponential(caf::timespan initial_delay,
                                   caf::timespan max_delay,
                                   double multiplier = 2.0,
                                   int max_attempts = 0, double jitter = 0.0);

  static restart_delay failure_rate(int max_failures_per_interval,
                                    caf::timespan interval,
                                    caf::timespan delay);
};

/// Returns an `invalid_delay` error naming the first out-of-range field.
caf::error validate(const restart_delay& x);

const char* to_string(restart_delay::kind x) noexcept;

/// The per-child memory of a delay policy: consecutive attempts and recent
/// failure times. Plain data driven by the supervisor, so tests can replay a
/// schedule without an actor system.
class restart_delay_state {
public:
  using time_point = caf::actor_clock::time_point;

  /// Records a failure at `now` of a child that was started at `up_since`
  /// and returns the pause before the next start, or `max_attempts_exceeded`
  /// when the policy gives up. `random01` in [0, 1) draws the jitter. A child
  /// that stayed up for at least `stable_after` resets the attempt count.
  caf::expected<caf::timespan> next(const restart_delay& policy,
                                    time_point now, time_point up_since,
                                    caf::timespan stable_after,
                                    double random01);

  /// Consecutive restarts counted so far.
  int attempts() const noexcept {
    return attempts_;
  }

  void reset() noexcept {
    attempts_ = 0;
    failures_.clear();
  }

private:
  int attempts_ = 0;
  // A vector, not a deque: libstdc++'s deque allocates even when empty, and
  // a supervisor keeps one state per child (a million in simple_one_for_one).
  std::vector<time_point> failures_;
};

} // namespace ft
