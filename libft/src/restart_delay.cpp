#include "ft/restart_delay.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "ft/error.hpp"

namespace ft {

namespace {

caf::timespan scale(caf::timespan x, double factor) {
  auto ns = static_cast<double>(x.count()) * factor;
  // Guard against overflow of the 64-bit nanosecond count.
  if (ns >= static_cast<double>(caf::timespan::max().count()))
    return caf::timespan::max();
  return caf::timespan{static_cast<caf::timespan::rep>(ns)};
}

} // namespace

restart_delay restart_delay::fixed(caf::timespan delay, int max_attempts) {
  restart_delay result;
  result.type = kind::fixed;
  result.delay = delay;
  result.max_attempts = max_attempts;
  return result;
}

restart_delay restart_delay::exponential(caf::timespan initial_delay,
                                         caf::timespan max_delay,
                                         double multiplier, int max_attempts,
                                         double jitter) {
  restart_delay result;
  result.type = kind::exponential;
  result.initial_delay = initial_delay;
  result.max_delay = max_delay;
  result.multiplier = multiplier;
  result.max_attempts = max_attempts;
  result.jitter = jitter;
  return result;
}

restart_delay restart_delay::failure_rate(int max_failures_per_interval,
                                          caf::timespan interval,
                                          caf::timespan delay) {
  restart_delay result;
  result.type = kind::failure_rate;
  result.max_failures_per_interval = max_failures_per_interval;
  result.interval = interval;
  result.delay = delay;
  return result;
}

const char* to_string(restart_delay::kind x) noexcept {
  switch (x) {
    case restart_delay::kind::none: return "none";
    case restart_delay::kind::fixed: return "fixed";
    case restart_delay::kind::exponential: return "exponential";
    case restart_delay::kind::failure_rate: return "failure_rate";
  }
  return "invalid";
}

caf::error validate(const restart_delay& x) {
  auto fail = [](const char* field, const std::string& value) {
    return make_error(errc::invalid_delay,
                      std::string{field} + " = " + value);
  };
  switch (x.type) {
    case restart_delay::kind::none:
      return caf::none;
    case restart_delay::kind::fixed:
      if (x.delay.count() < 0)
        return fail("delay", render_seconds(x.delay));
      if (x.max_attempts < 0)
        return fail("max_attempts", std::to_string(x.max_attempts));
      return caf::none;
    case restart_delay::kind::exponential:
      if (x.initial_delay.count() <= 0)
        return fail("initial_delay", render_seconds(x.initial_delay));
      if (x.max_delay < x.initial_delay)
        return fail("max_delay", render_seconds(x.max_delay));
      if (!(x.multiplier >= 1.0) || !std::isfinite(x.multiplier))
        return fail("multiplier", std::to_string(x.multiplier));
      if (!(x.jitter >= 0.0 && x.jitter <= 1.0))
        return fail("jitter", std::to_string(x.jitter));
      if (x.max_attempts < 0)
        return fail("max_attempts", std::to_string(x.max_attempts));
      return caf::none;
    case restart_delay::kind::failure_rate:
      if (x.max_failures_per_interval < 1)
        return fail("max_failures_per_interval",
                    std::to_string(x.max_failures_per_interval));
      if (x.interval.count() <= 0)
        return fail("interval_seconds", render_seconds(x.interval));
      if (x.delay.count() < 0)
        return fail("delay", render_seconds(x.delay));
      return caf::none;
  }
  return fail("restart_strategy",
              std::to_string(static_cast<int>(x.type)));
}

caf::expected<caf::timespan>
restart_delay_state::next(const restart_delay& policy, time_point now,
                          time_point up_since, caf::timespan stable_after,
                          double random01) {
  // A child that ran long enough starts a fresh series of attempts.
  if (now - up_since >= stable_after)
    attempts_ = 0;
  switch (policy.type) {
    case restart_delay::kind::none:
      ++attempts_;
      return caf::timespan{0};
    case restart_delay::kind::fixed:
      if (policy.max_attempts > 0 && attempts_ >= policy.max_attempts)
        return make_error(errc::max_attempts_exceeded,
                          "max_attempts = "
                            + std::to_string(policy.max_attempts));
      ++attempts_;
      return policy.delay;
    case restart_delay::kind::exponential: {
      if (policy.max_attempts > 0 && attempts_ >= policy.max_attempts)
        return make_error(errc::max_attempts_exceeded,
                          "max_attempts = "
                            + std::to_string(policy.max_attempts));
      auto base = scale(policy.initial_delay,
                        std::pow(policy.multiplier, attempts_));
      base = std::min(base, policy.max_delay);
      ++attempts_;
      if (policy.jitter <= 0.0)
        return base;
      auto u = std::clamp(random01, 0.0, 1.0);
      auto factor = 1.0 - policy.jitter + 2.0 * policy.jitter * u;
      return std::min(scale(base, factor), policy.max_delay);
    }
    case restart_delay::kind::failure_rate: {
      failures_.push_back(now);
      auto threshold = now - policy.interval;
      failures_.erase(std::remove_if(failures_.begin(), failures_.end(),
                                     [&](time_point t) { return t < threshold; }),
                      failures_.end());
      if (failures_.size()
          > static_cast<size_t>(policy.max_failures_per_interval))
        return make_error(
          errc::max_attempts_exceeded,
          "max_failures_per_interval = "
            + std::to_string(policy.max_failures_per_interval)
            + " within interval_seconds = " + render_seconds(policy.interval));
      ++attempts_;
      return policy.delay;
    }
  }
  return make_error(errc::invalid_delay, "restart_strategy");
}

} // namespace ft
