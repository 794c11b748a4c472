#pragma once

#include <string>

#include <caf/actor_clock.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

namespace ft {

/// The point in time by which a request must be answered. A deadline travels
/// with a request; a request made while handling it gets a `child` deadline,
/// `min(parent's remaining time, its own timeout)`, so a slow hop eats into
/// the budget of every hop after it instead of each hop restarting its own
/// clock. Plain data over `caf::actor_clock::time_point` (steady time) with
/// `now` passed in, so tests replay it without an actor system.
///
/// A default-constructed deadline is `never()`: a message field left unset
/// means "no deadline", not "already expired".
///
/// Steady time is process-local: its epoch is arbitrary (usually boot time),
/// so a deadline's `time_point` means nothing on another host. Within one
/// process a `deadline` can travel in messages as is (see `inspect`); across
/// nodes send `budget(now)` instead and rebuild with `from_budget(now, b)` on
/// arrival (the wire time then counts against no one, which errs on the side
/// of giving the remote hop slightly more time).
class deadline {
public:
  using time_point = caf::actor_clock::time_point;

  /// Same as `never()`.
  constexpr deadline() noexcept = default;

  /// A deadline `budget` after `now`. A budget <= 0 yields a deadline that
  /// has already expired at `now`; a budget that would overflow the clock
  /// (e.g. `caf::timespan::max()`) yields `never()`.
  static deadline after(time_point now, caf::timespan budget) noexcept;

  /// No deadline: never expires, `remaining` is `caf::timespan::max()`.
  static constexpr deadline never() noexcept {
    return deadline{};
  }

  /// A deadline at the absolute time `at` (`time_point::max()` is `never`).
  static constexpr deadline at(time_point at) noexcept {
    return deadline{at};
  }

  /// Rebuilds a deadline from a budget received from another node, see
  /// `budget`. Same as `after`, named for the round trip.
  static deadline from_budget(time_point now, caf::timespan budget) noexcept {
    return after(now, budget);
  }

  /// Whether this is `never()`.
  constexpr bool is_never() const noexcept {
    return at_ == time_point::max();
  }

  /// The absolute expiry time (`time_point::max()` for `never`).
  constexpr time_point when() const noexcept {
    return at_;
  }

  /// Whether the deadline has passed at `now`. A deadline at exactly `now`
  /// has expired: there is no time left to do anything.
  bool expired(time_point now) const noexcept {
    return !is_never() && now >= at_;
  }

  /// Time left at `now`: 0 once expired, `caf::timespan::max()` for `never`.
  caf::timespan remaining(time_point now) const noexcept;

  /// The deadline of a request made at `now` while handling this one, with
  /// its own timeout `own_timeout`: `min(remaining(now), own_timeout)` from
  /// `now`. Never later than this deadline (a child of an expired deadline
  /// stays expired, as late as its parent). Pass `caf::timespan::max()` for
  /// "no own timeout" to inherit the parent's deadline unchanged.
  deadline child(time_point now, caf::timespan own_timeout) const noexcept;

  /// The budget to send to another node in place of this deadline: same as
  /// `remaining(now)` (`caf::timespan::max()` for `never`).
  caf::timespan budget(time_point now) const noexcept {
    return remaining(now);
  }

  /// `deadline_exceeded` saying how late `now` is, or none while time is
  /// left (and always for `never`).
  caf::error check(time_point now) const;

  // -- comparison: earlier deadlines compare less, `never` is the greatest --

  friend constexpr bool operator==(deadline x, deadline y) noexcept {
    return x.at_ == y.at_;
  }

  friend constexpr bool operator!=(deadline x, deadline y) noexcept {
    return x.at_ != y.at_;
  }

  friend constexpr bool operator<(deadline x, deadline y) noexcept {
    return x.at_ < y.at_;
  }

  friend constexpr bool operator<=(deadline x, deadline y) noexcept {
    return x.at_ <= y.at_;
  }

  friend constexpr bool operator>(deadline x, deadline y) noexcept {
    return x.at_ > y.at_;
  }

  friend constexpr bool operator>=(deadline x, deadline y) noexcept {
    return x.at_ >= y.at_;
  }

  /// Lets a deadline travel in CAF messages within one process. The time
  /// point is serialized as is: only meaningful to the same process (see the
  /// class comment for crossing nodes).
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, deadline& x) {
    return f(caf::meta::type_name("ft.deadline"), x.at_);
  }

private:
  constexpr explicit deadline(time_point at) noexcept : at_(at) {
    // nop
  }

  time_point at_ = time_point::max();
};

/// The earlier of two deadlines.
constexpr deadline min(deadline x, deadline y) noexcept {
  return y < x ? y : x;
}

/// Whether a retry that waits `pause` from `now` still starts before
/// `dl` expires, i.e. `!dl.expired(now + pause)` (without overflowing). The
/// retry loop answers `deadline_exceeded` at once instead of sleeping into
/// an expired deadline.
bool retry_fits(const deadline& dl, deadline::time_point now,
                caf::timespan pause) noexcept;

/// Renders the deadline relative to `now` for logs, e.g. `deadline in 0.25s`,
/// `deadline passed 1s ago`, `no deadline`.
std::string to_string(const deadline& x, deadline::time_point now);

} // namespace ft
