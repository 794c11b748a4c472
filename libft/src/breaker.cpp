#include "ft/breaker.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "ft/error.hpp"

namespace ft {

namespace {

/// Buckets of a time-based window; a call is forgotten between
/// `window_duration` and `window_duration * (1 + 1 / num_buckets)` later.
constexpr int64_t num_buckets = 100;

constexpr uint8_t failed_flag = 0x01;
constexpr uint8_t slow_flag = 0x02;

caf::timespan scale(caf::timespan x, double factor) {
  auto ns = static_cast<double>(x.count()) * factor;
  // Guard against overflow of the 64-bit nanosecond count.
  if (ns >= static_cast<double>(caf::timespan::max().count()))
    return caf::timespan::max();
  return caf::timespan{static_cast<caf::timespan::rep>(ns)};
}

/// `t + d`, saturating instead of overflowing for huge open periods.
caf::actor_clock::time_point add_saturated(caf::actor_clock::time_point t,
                                           caf::timespan d) {
  using tp = caf::actor_clock::time_point;
  if (tp::max() - t < d)
    return tp::max();
  return t + d;
}

double percent(uint64_t part, uint64_t whole, double if_empty) {
  if (whole == 0)
    return if_empty;
  return 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

std::string render_percent(double x) {
  std::ostringstream out;
  out << x << '%';
  return out.str();
}

} // namespace

// -- construction -------------------------------------------------------------

breaker::breaker(breaker_config cfg, time_point now)
  : cfg_(std::move(cfg)),
    last_transition_(now),
    open_period_(cfg_.recovery_timeout),
    open_until_(now),
    failure_threshold_(cfg_.failure_threshold),
    recovery_timeout_(cfg_.recovery_timeout) {
  if (cfg_.window == breaker_config::window_kind::count_based)
    ring_.assign(static_cast<size_t>(std::max(cfg_.window_size, 1)), 0);
  if (cfg_.window == breaker_config::window_kind::time_based)
    bucket_width_ = std::max(caf::timespan{1},
                             cfg_.window_duration / num_buckets);
  if (cfg_.adaptive.enabled) {
    // Start where the configured values are right: p^threshold = q.
    failure_rate_ = std::pow(cfg_.adaptive.false_trip_probability,
                             1.0 / cfg_.failure_threshold);
    recovery_time_ = static_cast<double>(cfg_.recovery_timeout.count());
  }
}

caf::expected<breaker> breaker::make(breaker_config cfg, time_point now) {
  if (auto err = validate(cfg))
    return err;
  return breaker{std::move(cfg), now};
}

// -- admission ----------------------------------------------------------------

caf::expected<breaker_permit> breaker::try_acquire(time_point now) {
  advance(now);
  switch (state_) {
    case breaker_state::closed:
    case breaker_state::disabled:
      return breaker_permit{epoch_, state_};
    case breaker_state::half_open:
      if (trials_in_flight_ >= cfg_.half_open_max_calls) {
        ++rejected_;
        return make_error(errc::half_open_limit,
                          "half_open_max_calls = "
                            + std::to_string(cfg_.half_open_max_calls)
                            + " trial calls in flight");
      }
      ++trials_in_flight_;
      return breaker_permit{epoch_, state_};
    case breaker_state::open:
      ++rejected_;
      return open_rejection_;
    case breaker_state::forced_open: {
      ++rejected_;
      static const auto forced = make_error(errc::circuit_open,
                                            "forced_open until reset");
      return forced;
    }
  }
  ++rejected_;
  return make_error(errc::circuit_open, "invalid state");
}

// -- outcomes -----------------------------------------------------------------

void breaker::record_success(const breaker_permit& permit, time_point now,
                             caf::timespan duration) {
  record(permit, now, duration, false, false);
}

void breaker::record_error(const breaker_permit& permit, time_point now,
                           caf::timespan duration, const caf::error& err) {
  // An empty error is no error; the predicate may excuse the rest.
  bool failed = err && (!cfg_.is_failure || cfg_.is_failure(err));
  record(permit, now, duration, failed, false);
}

void breaker::record_timeout(const breaker_permit& permit, time_point now) {
  // The call took at least call_timeout; that is its duration for the
  // slow-call rate.
  record(permit, now, cfg_.call_timeout, true, true);
}

void breaker::release(const breaker_permit& permit) {
  if (permit.epoch == epoch_ && state_ == breaker_state::half_open
      && trials_in_flight_ > 0)
    --trials_in_flight_;
}

void breaker::record(const breaker_permit& permit, time_point now,
                     caf::timespan duration, bool failed, bool timed_out) {
  auto slow = is_slow(duration);
  // Every outcome counts for monitoring ...
  if (failed)
    ++failures_;
  else
    ++successes_;
  if (timed_out)
    ++timeouts_;
  if (slow)
    ++slow_calls_;
  // ... but only calls admitted since the last transition drive the state
  // machine: a late result from before a trip must not trip it again, and
  // one from before half_open is no trial.
  if (permit.epoch != epoch_)
    return;
  switch (state_) {
    case breaker_state::disabled:
      ++(failed ? epoch_failures_ : epoch_successes_);
      return;
    case breaker_state::closed: {
      if (cfg_.adaptive.enabled && !failed)
        learn_failure_rate();
      ++(failed ? epoch_failures_ : epoch_successes_);
      consecutive_failures_ = failed ? consecutive_failures_ + 1 : 0;
      if (failure_threshold_ > 0
          && consecutive_failures_ >= failure_threshold_) {
        open(now, std::to_string(consecutive_failures_)
                    + " consecutive failures (failure_threshold = "
                    + std::to_string(failure_threshold_)
                    + (cfg_.adaptive.enabled
                         ? ", adaptive to a failure rate of "
                             + render_percent(100.0 * failure_rate_)
                         : std::string{})
                    + ")");
        return;
      }
      if (cfg_.window == breaker_config::window_kind::none)
        return;
      window_add(now, failed, slow);
      auto counts = window_at(now);
      if (counts.calls < static_cast<size_t>(cfg_.minimum_calls))
        return;
      auto calls = std::to_string(counts.calls);
      auto failure_rate = percent(counts.failures, counts.calls, 0.0);
      if (failure_rate >= cfg_.failure_rate_threshold) {
        open(now, "failure rate " + render_percent(failure_rate) + " of "
                    + calls + " calls >= failure_rate_threshold "
                    + render_percent(cfg_.failure_rate_threshold));
        return;
      }
      auto slow_rate = percent(counts.slow, counts.calls, 0.0);
      if (cfg_.slow_call_duration.count() > 0
          && slow_rate >= cfg_.slow_call_rate_threshold) {
        open(now, "slow call rate " + render_percent(slow_rate) + " of "
                    + calls + " calls >= slow_call_rate_threshold "
                    + render_percent(cfg_.slow_call_rate_threshold));
        return;
      }
      return;
    }
    case breaker_state::half_open:
      if (trials_in_flight_ > 0)
        --trials_in_flight_;
      // A slow trial is no proof of recovery either.
      if (failed || slow) {
        open_period_ = std::min(scale(open_period_, cfg_.reset_timeout_factor),
                                cfg_.max_reset_timeout);
        open(now, std::string{failed ? "trial call failed" : "trial call slow"}
                    + ", open for " + render_seconds(open_period_));
        return;
      }
      if (++trial_successes_ == 1)
        recovered_at_ = now;
      if (trial_successes_ >= cfg_.success_threshold)
        transition(breaker_state::closed, now,
                   std::to_string(trial_successes_)
                     + " trial successes (success_threshold = "
                     + std::to_string(cfg_.success_threshold) + ")"
                     + (cfg_.adaptive.enabled ? learn_recovery_time()
                                              : std::string{}));
      return;
    case breaker_state::open:
    case breaker_state::forced_open:
      // No permits of the current epoch exist in these states.
      return;
  }
}

// -- manual control -----------------------------------------------------------

void breaker::reset(time_point now) {
  advance(now);
  if (state_ != breaker_state::closed) {
    transition(breaker_state::closed, now, "manual reset");
    return;
  }
  // Already closed: start afresh without reporting a transition. A new
  // epoch keeps calls admitted before the reset from counting.
  ++epoch_;
  consecutive_failures_ = 0;
  epoch_successes_ = 0;
  epoch_failures_ = 0;
  open_period_ = recovery_timeout_;
  window_clear();
}

void breaker::force_open(time_point now) {
  advance(now);
  if (state_ != breaker_state::forced_open)
    transition(breaker_state::forced_open, now, "manual force_open");
}

void breaker::disable(time_point now) {
  advance(now);
  if (state_ != breaker_state::disabled)
    transition(breaker_state::disabled, now, "manual disable");
}

// -- observers ----------------------------------------------------------------

breaker_state breaker::state(time_point now) {
  advance(now);
  return state_;
}

breaker_stats breaker::stats(time_point now) const {
  breaker_stats result;
  auto st = state_;
  result.last_transition = last_transition_;
  auto due = state_ == breaker_state::open && now >= open_until_;
  if (due) {
    st = breaker_state::half_open;
    result.last_transition = open_until_;
  }
  result.state = st;
  result.success_count = successes_;
  result.failure_count = failures_;
  result.timeout_count = timeouts_;
  result.slow_call_count = slow_calls_;
  result.rejected_count = rejected_;
  result.success_rate = percent(successes_, successes_ + failures_, 100.0);
  result.consecutive_failures
    = st == breaker_state::closed ? consecutive_failures_ : 0;
  if (cfg_.window != breaker_config::window_kind::none) {
    auto counts = window_at(now);
    result.window_calls = counts.calls;
    result.window_failure_rate = percent(counts.failures, counts.calls, 0.0);
    result.window_slow_call_rate = percent(counts.slow, counts.calls, 0.0);
  }
  if (st == breaker_state::half_open && !due) {
    result.half_open_in_flight = trials_in_flight_;
    result.half_open_successes = trial_successes_;
  }
  result.open_period
    = st == breaker_state::half_open
        ? std::min(scale(open_period_, cfg_.reset_timeout_factor),
                   cfg_.max_reset_timeout)
        : open_period_;
  if (st == breaker_state::open)
    result.open_until = open_until_;
  result.effective_failure_threshold = failure_threshold_;
  result.effective_recovery_timeout = recovery_timeout_;
  if (cfg_.adaptive.enabled) {
    result.observed_failure_rate = 100.0 * failure_rate_;
    result.observed_recovery_time
      = caf::timespan{std::llround(recovery_time_)};
  }
  result.health_percentage = health(st, now);
  return result;
}

// -- implementation -----------------------------------------------------------

void breaker::transition(breaker_state to, time_point at, std::string reason) {
  auto from = state_;
  state_ = to;
  ++epoch_;
  last_transition_ = at;
  consecutive_failures_ = 0;
  epoch_successes_ = 0;
  epoch_failures_ = 0;
  trials_in_flight_ = 0;
  trial_successes_ = 0;
  window_clear();
  // Closing (automatically or by hand) forgets how often probes failed.
  if (to == breaker_state::closed)
    open_period_ = recovery_timeout_;
  if (listener_)
    listener_(breaker_transition{from, to, at, std::move(reason)});
}

void breaker::open(time_point now, std::string reason) {
  // An outage starts with a trip in closed; each failed trial shows it still
  // lasted at `now` (see learn_recovery_time).
  if (state_ == breaker_state::closed)
    outage_start_ = now;
  last_failed_probe_ = now;
  open_until_ = add_saturated(now, open_period_);
  // Built once per open period: rejecting must be cheap (the fail-fast path
  // runs millions of times per second), and formatting costs ~0.5 us.
  open_rejection_ = make_error(errc::circuit_open,
                               "open for " + render_seconds(open_period_)
                                 + " from the last trip");
  transition(breaker_state::open, now, std::move(reason));
}

void breaker::advance(time_point now) {
  if (state_ == breaker_state::open && now >= open_until_)
    transition(breaker_state::half_open, open_until_,
               "open period of " + render_seconds(open_period_) + " elapsed");
}

bool breaker::is_slow(caf::timespan duration) const noexcept {
  return cfg_.slow_call_duration.count() > 0
         && duration >= cfg_.slow_call_duration;
}

int64_t breaker::bucket_index(time_point t) const noexcept {
  auto ticks = std::chrono::duration_cast<caf::timespan>(t.time_since_epoch())
                 .count();
  auto width = bucket_width_.count();
  auto q = ticks / width;
  // Floor division, for clocks with negative epochs.
  if (ticks % width != 0 && ticks < 0)
    --q;
  return q;
}

void breaker::window_add(time_point now, bool failed, bool slow) {
  uint8_t flags = (failed ? failed_flag : 0) | (slow ? slow_flag : 0);
  switch (cfg_.window) {
    case breaker_config::window_kind::none:
      return;
    case breaker_config::window_kind::count_based: {
      auto& slot = ring_[ring_next_];
      if (ring_counts_.calls == ring_.size()) {
        // Full: the oldest call leaves the window.
        ring_counts_.failures -= (slot & failed_flag) ? 1 : 0;
        ring_counts_.slow -= (slot & slow_flag) ? 1 : 0;
      } else {
        ++ring_counts_.calls;
      }
      slot = flags;
      ring_counts_.failures += failed ? 1 : 0;
      ring_counts_.slow += slow ? 1 : 0;
      ring_next_ = (ring_next_ + 1) % ring_.size();
      return;
    }
    case breaker_config::window_kind::time_based: {
      auto idx = bucket_index(now);
      while (!buckets_.empty() && buckets_.front().index < idx - num_buckets)
        buckets_.pop_front();
      // Outcomes may arrive slightly out of order: never go back in time.
      if (buckets_.empty() || buckets_.back().index < idx)
        buckets_.push_back(bucket{idx, 0, 0, 0});
      auto& b = buckets_.back();
      ++b.calls;
      b.failures += failed ? 1 : 0;
      b.slow += slow ? 1 : 0;
      return;
    }
  }
}

breaker::window_counts breaker::window_at(time_point now) const {
  switch (cfg_.window) {
    case breaker_config::window_kind::none:
      return {};
    case breaker_config::window_kind::count_based:
      return ring_counts_;
    case breaker_config::window_kind::time_based: {
      window_counts result;
      auto oldest = bucket_index(now) - num_buckets;
      for (auto& b : buckets_) {
        if (b.index < oldest)
          continue;
        result.calls += b.calls;
        result.failures += b.failures;
        result.slow += b.slow;
      }
      return result;
    }
  }
  return {};
}

void breaker::window_clear() {
  std::fill(ring_.begin(), ring_.end(), 0);
  ring_next_ = 0;
  ring_counts_ = window_counts{};
  buckets_.clear();
}

double breaker::health(breaker_state st, time_point now) const {
  switch (st) {
    case breaker_state::open:
    case breaker_state::forced_open:
      return 0.0;
    case breaker_state::half_open: {
      // A due-but-unobserved half_open has no trial successes yet.
      auto successes = state_ == breaker_state::half_open ? trial_successes_ : 0;
      auto progress = std::min(1.0, static_cast<double>(successes)
                                      / cfg_.success_threshold);
      return 25.0 + 25.0 * progress;
    }
    case breaker_state::disabled:
      return percent(epoch_successes_, epoch_successes_ + epoch_failures_,
                     100.0);
    case breaker_state::closed: {
      double rate;
      if (cfg_.window != breaker_config::window_kind::none) {
        auto counts = window_at(now);
        rate = percent(counts.calls - counts.failures, counts.calls, 100.0);
      } else {
        rate = percent(epoch_successes_, epoch_successes_ + epoch_failures_,
                       100.0);
      }
      auto headroom = 100.0;
      if (failure_threshold_ > 0)
        headroom = 100.0
                   * (1.0
                      - static_cast<double>(consecutive_failures_)
                          / failure_threshold_);
      return std::clamp(std::min(rate, headroom), 0.0, 100.0);
    }
  }
  return 0.0;
}

void breaker::learn_failure_rate() {
  auto& a = cfg_.adaptive;
  // The run of failures this success ends, then the success, in closed form.
  auto keep = 1.0 - a.smoothing;
  failure_rate_ = keep
                  * (1.0
                     - std::pow(keep, consecutive_failures_)
                         * (1.0 - failure_rate_));
  // The smallest k with p^k <= q. After a success p < 1; p == 0 gives
  // k = 0, p near 1 a huge k: the clamp covers both. The epsilon keeps
  // p^k == q exactly (e.g. the starting rate) from rounding up to k + 1.
  auto k = std::ceil(std::log(a.false_trip_probability)
                       / std::log(failure_rate_)
                     - 1e-9);
  failure_threshold_ = static_cast<int>(
    std::clamp(k, static_cast<double>(a.min_failure_threshold),
               static_cast<double>(a.max_failure_threshold)));
}

std::string breaker::learn_recovery_time() {
  auto& a = cfg_.adaptive;
  // The callee came back between the last failed probe (or the trip) and the
  // first successful trial: take the middle.
  auto since_start = [this](time_point t) {
    return std::max(0.0, static_cast<double>((t - outage_start_).count()));
  };
  auto observed = (since_start(last_failed_probe_) + since_start(recovered_at_))
                  / 2.0;
  recovery_time_ += a.smoothing * (observed - recovery_time_);
  recovery_timeout_ = std::clamp(caf::timespan{std::llround(recovery_time_)},
                                 a.min_recovery_timeout,
                                 a.max_recovery_timeout);
  return "; recovered after about "
         + render_seconds(caf::timespan{std::llround(observed)})
         + ", recovery_timeout " + render_seconds(recovery_timeout_)
         + " (adaptive)";
}

} // namespace ft
