#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <caf/actor_clock.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include "ft/deadline.hpp"

namespace ft {

/// How the pause between attempts grows.
enum class backoff_kind : uint8_t {
  /// Always `initial_delay`.
  fixed,
  /// `initial_delay * n` for the n-th retry (1-based), capped at `max_delay`.
  linear,
  /// `initial_delay * multiplier^(n-1)` for the n-th retry, capped.
  exponential,
  /// Exponential with jitter (see `jitter_kind`), so that many clients that
  /// failed together do not retry together (the "thundering herd").
  exponential_with_jitter,
};

/// The jitter of `exponential_with_jitter`, named as in the AWS Architecture
/// Blog article "Exponential Backoff And Jitter".
enum class jitter_kind : uint8_t {
  /// `uniform[0, min(max_delay, initial_delay * multiplier^(n-1))]`.
  full,
  /// `min(max_delay, uniform[initial_delay, previous_pause * 3])`, starting
  /// from `previous_pause = initial_delay`. Ignores `multiplier` (the article
  /// fixes the factor at 3).
  decorrelated,
};

const char* to_string(backoff_kind x) noexcept;
const char* to_string(jitter_kind x) noexcept;
std::optional<backoff_kind> parse_backoff_kind(const std::string& x);
std::optional<jitter_kind> parse_jitter_kind(const std::string& x);

/// Whether an error is worth another attempt.
using retry_predicate = std::function<bool(const caf::error&)>;

/// When and how often to retry a failed call. Plain data: validate with
/// `validate`, drive with one `retry_state` per call.
struct retry_policy {
  backoff_kind backoff = backoff_kind::exponential;

  /// Only used by `exponential_with_jitter`.
  jitter_kind jitter = jitter_kind::full;

  /// Pause before the first retry (the base of every schedule).
  caf::timespan initial_delay = std::chrono::milliseconds(100);

  /// Cap on any single pause.
  caf::timespan max_delay = std::chrono::seconds(10);

  /// Growth factor of `exponential` and full jitter (>= 1).
  double multiplier = 2.0;

  /// Total attempts *including the first call*: 3 means one call and up to
  /// two retries; 1 means no retries. Counting calls, not retries, makes the
  /// worst-case load on the callee `max_attempts` times the traffic.
  int max_attempts = 3;

  /// Give up when the next attempt would start later than `max_elapsed`
  /// after the first one (0 = unlimited). See `retry_state::next`.
  caf::timespan max_elapsed{0};

  /// Which errors to retry. Empty means `default_retryable`.
  retry_predicate retryable;

  /// Stored for the actor layer: when the breaker is open, wait for it to
  /// turn half-open and try then, instead of failing with `circuit_open`.
  /// The pure policy does not read it.
  bool wait_for_half_open = false;
};

/// The default retry predicate: every error except
/// - `deadline_exceeded`: the request's time is up, another try cannot help;
/// - `circuit_open` and `half_open_limit`: the breaker sheds load on purpose,
///   retrying into it would defeat that (`wait_for_half_open` is the opt-in
///   way to wait for the breaker instead);
/// - `retries_exhausted`: an inner retry loop already gave up; retrying it
///   again would multiply attempts at every layer (attempts^depth).
/// `call_timeout` and all other errors, libft's or not, are retried.
bool default_retryable(const caf::error& err);

/// Applies `policy.retryable`, or `default_retryable` if it is empty.
bool is_retryable(const retry_policy& policy, const caf::error& err);

/// Returns an `invalid_breaker_config` error naming the first out-of-range
/// field and its value (`field = value ...`), or none. Rejects: an unknown
/// `backoff` or `jitter`, a negative `initial_delay` (0 is allowed for
/// `fixed` and `linear`, immediate retries, but not for the exponential
/// kinds, which would never grow), `max_delay < initial_delay`, a
/// `multiplier` below 1 or not finite, `max_attempts < 1` and a negative
/// `max_elapsed`.
caf::error validate(const retry_policy& policy);

/// The pause before retry number `retry` (1 = first retry), without the
/// bookkeeping of `retry_state`. `previous` is the previous pause (only read
/// by decorrelated jitter; 0 for the first retry) and `random01` in [0, 1)
/// draws the jitter (clamped to [0, 1]). Saturates instead of overflowing.
caf::timespan backoff_delay(const retry_policy& policy, int retry,
                            caf::timespan previous, double random01);

/// The memory of one call's retries: attempts so far, when the first attempt
/// started and the previous pause. Plain data, so tests replay schedules
/// without an actor system.
class retry_state {
public:
  using time_point = caf::actor_clock::time_point;

  /// Marks the start of the first attempt. Call it when sending the first
  /// request so `max_elapsed` counts from there; otherwise the first `next`
  /// starts the clock (missing the first attempt's duration).
  void start(time_point now) noexcept {
    start_ = now;
    started_ = true;
  }

  /// Records that the latest attempt failed at `now` with `last_error` and
  /// decides what to do next. `random01` in [0, 1) draws the jitter. Returns
  /// the pause before the next attempt, or:
  /// - `last_error` itself when it is not retryable (see `is_retryable`), so
  ///   the caller sees the real reason; an empty `last_error` counts as
  ///   retryable;
  /// - `retries_exhausted` when this was attempt `max_attempts`, or when
  ///   the pause would start the next attempt more than `max_elapsed` after
  ///   the start, i.e. when `(now - start) + pause > max_elapsed` (an attempt
  ///   exactly at `start + max_elapsed` still runs). The context names the
  ///   reason, the attempts and the elapsed time, and ends with
  ///   `last error: <render(last_error)>`.
  /// Checks run in this order: retryable, attempts, elapsed.
  caf::expected<caf::timespan> next(const retry_policy& policy,
                                    time_point now,
                                    const caf::error& last_error,
                                    double random01);

  /// As above, and also answers `deadline_exceeded` (context names the
  /// attempts and the last error) when `dl` has expired at `now` (checked
  /// first: expiry wins over every other answer) or when the pause would not
  /// leave time before `dl` (`!retry_fits(dl, now, pause)`, checked last):
  /// a retry that cannot finish is cancelled now rather than slept into.
  caf::expected<caf::timespan> next(const retry_policy& policy,
                                    time_point now,
                                    const caf::error& last_error,
                                    double random01, const deadline& dl);

  /// Whether waiting `pause` from `now` keeps the next attempt within
  /// `policy.max_elapsed` (always true when unlimited or not started). For
  /// waits that are not backoff pauses, e.g. for a breaker to turn
  /// half-open when `wait_for_half_open` is set.
  bool within_elapsed(const retry_policy& policy, time_point now,
                      caf::timespan pause) const noexcept;

  /// Failed attempts recorded by `next` so far.
  int attempts() const noexcept {
    return attempts_;
  }

  bool started() const noexcept {
    return started_;
  }

  /// When the first attempt started (see `start`); meaningless until
  /// `started()`.
  time_point started_at() const noexcept {
    return start_;
  }

  /// Time since the start, 0 if not started.
  caf::timespan elapsed(time_point now) const noexcept {
    return started_ ? now - start_ : caf::timespan{0};
  }

  /// The last pause `next` returned, 0 before the first.
  caf::timespan last_pause() const noexcept {
    return previous_;
  }

  void reset() noexcept {
    *this = retry_state{};
  }

private:
  int attempts_ = 0;
  bool started_ = false;
  time_point start_;
  caf::timespan previous_{0};
};

/// Reads a retry policy from a YAML mapping with the fields `backoff`
/// (fixed | linear | exponential | exponential_with_jitter), `jitter`
/// (full | decorrelated), `initial_delay`, `max_delay`, `max_elapsed`
/// (seconds, fractions allowed), `multiplier`, `max_attempts` and
/// `wait_for_half_open` (boolean). Missing fields keep the defaults of
/// `retry_policy`; an empty document is the default policy. Every failure
/// (malformed YAML, unknown field, bad or out-of-range value) is
/// `invalid_breaker_config` with context `source:line: field ...` naming the
/// value.
caf::expected<retry_policy>
retry_policy_from_yaml(const std::string& text,
                       const std::string& source = "<config>");

} // namespace ft
