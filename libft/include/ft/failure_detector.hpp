#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include <caf/actor_clock.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

/// Failure detection for cluster membership: given the heartbeats received
/// from one peer, how suspicious is its silence now? Plain data with time
/// passed in, so tests replay heartbeat schedules exactly and the cluster
/// agent stays the only owner of time.
namespace ft {

/// Which detector judges a peer.
enum class detector_kind : uint8_t {
  /// The phi accrual detector (Hayashibara et al.), as in Akka and
  /// Cassandra: suspicion grows continuously with the silence, scaled by
  /// the peer's observed heartbeat intervals, so a jittery link is judged
  /// by its own history rather than a fixed timeout.
  phi_accrual,
  /// A fixed timeout since the last heartbeat: predictable, and the right
  /// choice when heartbeats are too few for statistics.
  timeout,
};

const char* to_string(detector_kind x) noexcept;

std::optional<detector_kind> parse_detector_kind(const std::string& x);

/// Parameters of a failure detector. The defaults, with heartbeats every
/// 100 ms, declare a silent peer down after about 0.8 s on loopback, while
/// a peer that pauses for less than `acceptable_heartbeat_pause` (400 ms;
/// e.g. a GC or a scheduler hiccup) stays up.
struct failure_detector_config {
  detector_kind kind = detector_kind::phi_accrual;

  /// How often peers send heartbeats; also the first estimate of the
  /// interval before any has been measured.
  caf::timespan heartbeat_interval = std::chrono::milliseconds(100);

  /// `phi_accrual`: the suspicion level at which a peer counts as down.
  /// phi = 8 means the chance that a live peer stays silent this long is
  /// 1e-8 (given the observed intervals).
  double threshold = 8.0;

  /// `phi_accrual`: how many recent intervals the statistics keep.
  size_t max_sample_size = 200;

  /// `phi_accrual`: the floor of the interval's standard deviation, so a
  /// perfectly regular link (loopback) does not make every late heartbeat
  /// look fatal.
  caf::timespan min_std_deviation = std::chrono::milliseconds(50);

  /// The silence beyond the usual interval that is still normal (the grace
  /// period): `phi_accrual` adds it to the mean interval; `timeout` uses
  /// `heartbeat_interval + acceptable_heartbeat_pause` as its timeout.
  caf::timespan acceptable_heartbeat_pause = std::chrono::milliseconds(400);
};

/// `invalid_config` naming the first bad field, e.g. `threshold = 0 (must
/// be > 0)`.
caf::error validate(const failure_detector_config& x);

/// Judges one peer from the arrival times of its heartbeats. Not
/// thread-safe: one actor owns it.
class failure_detector {
public:
  using time_point = caf::actor_clock::time_point;

  /// Requires `validate(cfg)` to pass; `make` checks it for you.
  explicit failure_detector(failure_detector_config cfg);

  static caf::expected<failure_detector> make(failure_detector_config cfg);

  /// Records a heartbeat that arrived at `now`. Heartbeats arriving out of
  /// order (earlier than the last) are ignored.
  void heartbeat(time_point now);

  /// Whether any heartbeat arrived yet. Before the first one a peer is
  /// neither up nor down: the caller decides how long to wait for it.
  bool monitoring() const noexcept {
    return last_.has_value();
  }

  /// The suspicion level at `now`: `phi_accrual`'s phi, or for `timeout`
  /// 0 before the timeout and infinity after it. 0 before the first
  /// heartbeat.
  double phi(time_point now) const;

  /// Whether the peer counts as up at `now` (`phi(now) < threshold`;
  /// always true before the first heartbeat).
  bool available(time_point now) const;

  /// The mean of the recorded intervals (the configured interval before
  /// the second heartbeat).
  caf::timespan mean_interval() const;

  /// Their standard deviation, at least `min_std_deviation`.
  caf::timespan std_deviation() const;

  /// When the peer will count as down if nothing arrives (for the caller's
  /// timer); none before the first heartbeat.
  std::optional<time_point> deadline() const;

  const failure_detector_config& config() const noexcept {
    return cfg_;
  }

private:
  failure_detector_config cfg_;
  std::optional<time_point> last_;
  /// Recent intervals in milliseconds, with their running sums.
  std::deque<double> intervals_;
  double sum_ = 0;
  double sum_sq_ = 0;
};

} // namespace ft
