#include "ft/failure_detector.hpp"

#include <cmath>
#include <limits>
#include <utility>

#include "ft/error.hpp"

namespace ft {

namespace {

double to_ms(caf::timespan x) {
  return std::chrono::duration<double, std::milli>(x).count();
}

caf::timespan from_ms(double x) {
  return std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double, std::milli>(x));
}

/// -log10 of the chance that a normally distributed interval (mean `mean`,
/// deviation `dev`) exceeds `elapsed`. The tail probability uses the
/// logistic approximation of the normal CDF,
/// F(y) ~ 1 / (1 + exp(-y (1.5976 + 0.070566 y^2))), whose tail stays
/// representable far beyond where 1 - erf() rounds to 0.
double phi_of(double elapsed, double mean, double dev) {
  auto y = (elapsed - mean) / dev;
  auto e = std::exp(-y * (1.5976 + 0.070566 * y * y));
  // Tail = 1 - F(y) = e / (1 + e); written per side to avoid cancellation.
  if (elapsed > mean)
    return -std::log10(e / (1.0 + e));
  return -std::log10(1.0 - 1.0 / (1.0 + e));
}

} // namespace

const char* to_string(detector_kind x) noexcept {
  switch (x) {
    case detector_kind::phi_accrual: return "phi_accrual";
    case detector_kind::timeout: return "timeout";
  }
  return "?";
}

std::optional<detector_kind> parse_detector_kind(const std::string& x) {
  if (x == "phi_accrual")
    return detector_kind::phi_accrual;
  if (x == "timeout")
    return detector_kind::timeout;
  return std::nullopt;
}

caf::error validate(const failure_detector_config& x) {
  auto bad = [](const std::string& what) {
    return make_error(errc::invalid_config, what);
  };
  if (x.heartbeat_interval <= caf::timespan{0})
    return bad("heartbeat_interval = " + render_seconds(x.heartbeat_interval)
               + " (must be > 0)");
  if (!(x.threshold > 0) || !std::isfinite(x.threshold))
    return bad("threshold = " + std::to_string(x.threshold)
               + " (must be > 0)");
  if (x.max_sample_size < 2)
    return bad("max_sample_size = " + std::to_string(x.max_sample_size)
               + " (must be >= 2)");
  if (x.min_std_deviation <= caf::timespan{0})
    return bad("min_std_deviation = " + render_seconds(x.min_std_deviation)
               + " (must be > 0)");
  if (x.acceptable_heartbeat_pause < caf::timespan{0})
    return bad("acceptable_heartbeat_pause = "
               + render_seconds(x.acceptable_heartbeat_pause)
               + " (must be >= 0)");
  return caf::none;
}

failure_detector::failure_detector(failure_detector_config cfg)
  : cfg_(std::move(cfg)) {
  // nop
}

caf::expected<failure_detector>
failure_detector::make(failure_detector_config cfg) {
  if (auto err = validate(cfg))
    return err;
  return failure_detector{std::move(cfg)};
}

void failure_detector::heartbeat(time_point now) {
  if (last_) {
    if (now < *last_)
      return;
    auto x = to_ms(now - *last_);
    intervals_.push_back(x);
    sum_ += x;
    sum_sq_ += x * x;
    if (intervals_.size() > cfg_.max_sample_size) {
      auto old = intervals_.front();
      intervals_.pop_front();
      sum_ -= old;
      sum_sq_ -= old * old;
    }
  }
  last_ = now;
}

caf::timespan failure_detector::mean_interval() const {
  if (intervals_.empty())
    return cfg_.heartbeat_interval;
  return from_ms(sum_ / static_cast<double>(intervals_.size()));
}

caf::timespan failure_detector::std_deviation() const {
  auto floor = to_ms(cfg_.min_std_deviation);
  if (intervals_.size() < 2)
    return cfg_.min_std_deviation;
  auto n = static_cast<double>(intervals_.size());
  auto mean = sum_ / n;
  // Running sums can dip below 0 by rounding.
  auto var = std::max(0.0, sum_sq_ / n - mean * mean);
  return from_ms(std::max(floor, std::sqrt(var)));
}

double failure_detector::phi(time_point now) const {
  if (!last_ || now <= *last_)
    return 0.0;
  auto elapsed = to_ms(now - *last_);
  auto pause = to_ms(cfg_.acceptable_heartbeat_pause);
  if (cfg_.kind == detector_kind::timeout)
    return elapsed < to_ms(cfg_.heartbeat_interval) + pause
             ? 0.0
             : std::numeric_limits<double>::infinity();
  return phi_of(elapsed, to_ms(mean_interval()) + pause,
                to_ms(std_deviation()));
}

bool failure_detector::available(time_point now) const {
  return phi(now) < cfg_.threshold;
}

std::optional<failure_detector::time_point>
failure_detector::deadline() const {
  if (!last_)
    return std::nullopt;
  if (cfg_.kind == detector_kind::timeout)
    return *last_ + cfg_.heartbeat_interval + cfg_.acceptable_heartbeat_pause;
  // phi is monotonic in the elapsed time: find where it reaches the
  // threshold by bisection (to 1 ms), between 0 and a bound far past it.
  auto mean = to_ms(mean_interval()) + to_ms(cfg_.acceptable_heartbeat_pause);
  auto dev = to_ms(std_deviation());
  double lo = 0;
  double hi = mean + 64 * dev;
  while (phi_of(hi, mean, dev) < cfg_.threshold)
    hi *= 2;
  while (hi - lo > 1.0) {
    auto mid = (lo + hi) / 2;
    if (phi_of(mid, mean, dev) < cfg_.threshold)
      lo = mid;
    else
      hi = mid;
  }
  return *last_ + from_ms(hi);
}

} // namespace ft
