#pragma once

#include <deque>

#include <caf/actor_clock.hpp>
#include <caf/timespan.hpp>

namespace ft {

/// The restart intensity check of OTP's supervisor as a pure function:
/// records a restart at `now` in `restarts` (newest last), drops entries older
/// than `period` and returns whether the supervisor may go on, i.e. whether at
/// most `intensity` restarts fall into [now - period, now].
bool add_restart(std::deque<caf::actor_clock::time_point>& restarts,
                 caf::actor_clock::time_point now, int intensity,
                 caf::timespan period);

/// A sliding window of restarts with fixed limits.
class restart_window {
public:
  using time_point = caf::actor_clock::time_point;

  restart_window(int intensity, caf::timespan period)
    : intensity_(intensity), period_(period) {
    // nop
  }

  /// Records a restart at `now`; returns false once the limit is exceeded.
  bool add(time_point now) {
    return add_restart(restarts_, now, intensity_, period_);
  }

  /// Number of restarts currently inside the window.
  size_t size() const noexcept {
    return restarts_.size();
  }

private:
  int intensity_;
  caf::timespan period_;
  std::deque<time_point> restarts_;
};

} // namespace ft
