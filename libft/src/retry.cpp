#include "ft/retry.hpp"

#include "yaml_reader.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include <yaml-cpp/yaml.h>

#include "ft/error.hpp"

namespace ft {

namespace {

/// `x * factor`, saturating at `caf::timespan::max()` instead of overflowing
/// the 64-bit nanosecond count (and treating a NaN product as the cap).
caf::timespan scale(caf::timespan x, double factor) {
  if (x.count() == 0 || factor == 0.0)
    return caf::timespan{0};
  auto ns = static_cast<double>(x.count()) * factor;
  constexpr auto hi = static_cast<double>(caf::timespan::max().count());
  constexpr auto lo = static_cast<double>(caf::timespan::min().count());
  if (std::isnan(ns) || ns >= hi)
    return caf::timespan::max();
  if (ns <= lo)
    return caf::timespan::min();
  return caf::timespan{static_cast<caf::timespan::rep>(ns)};
}

std::string render_number(double x) {
  std::ostringstream out;
  out << x;
  return out.str();
}

std::string plural(int n, const char* what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

} // namespace

// -- enums --------------------------------------------------------------------

const char* to_string(backoff_kind x) noexcept {
  switch (x) {
    case backoff_kind::fixed: return "fixed";
    case backoff_kind::linear: return "linear";
    case backoff_kind::exponential: return "exponential";
    case backoff_kind::exponential_with_jitter:
      return "exponential_with_jitter";
  }
  return "invalid";
}

const char* to_string(jitter_kind x) noexcept {
  switch (x) {
    case jitter_kind::full: return "full";
    case jitter_kind::decorrelated: return "decorrelated";
  }
  return "invalid";
}

std::optional<backoff_kind> parse_backoff_kind(const std::string& x) {
  for (auto k : {backoff_kind::fixed, backoff_kind::linear,
                 backoff_kind::exponential,
                 backoff_kind::exponential_with_jitter})
    if (x == to_string(k))
      return k;
  return std::nullopt;
}

std::optional<jitter_kind> parse_jitter_kind(const std::string& x) {
  for (auto k : {jitter_kind::full, jitter_kind::decorrelated})
    if (x == to_string(k))
      return k;
  return std::nullopt;
}

// -- policy -------------------------------------------------------------------

bool default_retryable(const caf::error& err) {
  return !(is(err, errc::deadline_exceeded) || is(err, errc::circuit_open)
           || is(err, errc::half_open_limit)
           || is(err, errc::retries_exhausted));
}

bool is_retryable(const retry_policy& policy, const caf::error& err) {
  return policy.retryable ? policy.retryable(err) : default_retryable(err);
}

caf::error validate(const retry_policy& x) {
  auto fail = [](const char* field, const std::string& value,
                 const std::string& why) {
    return make_error(errc::invalid_breaker_config,
                      std::string{field} + " = " + value + " " + why);
  };
  if (x.backoff > backoff_kind::exponential_with_jitter)
    return fail("backoff", std::to_string(static_cast<int>(x.backoff)),
                "is not fixed, linear, exponential or "
                "exponential_with_jitter");
  if (x.jitter > jitter_kind::decorrelated)
    return fail("jitter", std::to_string(static_cast<int>(x.jitter)),
                "is not full or decorrelated");
  if (x.initial_delay.count() < 0)
    return fail("initial_delay", render_seconds(x.initial_delay), "is < 0");
  if (x.initial_delay.count() == 0
      && (x.backoff == backoff_kind::exponential
          || x.backoff == backoff_kind::exponential_with_jitter))
    return fail("initial_delay", render_seconds(x.initial_delay),
                std::string{"must be > 0 for "} + to_string(x.backoff));
  if (x.max_delay < x.initial_delay)
    return fail("max_delay", render_seconds(x.max_delay),
                "is < initial_delay = " + render_seconds(x.initial_delay));
  if (!(x.multiplier >= 1.0) || !std::isfinite(x.multiplier))
    return fail("multiplier", render_number(x.multiplier),
                "must be finite and >= 1");
  if (x.max_attempts < 1)
    return fail("max_attempts", std::to_string(x.max_attempts),
                "must be >= 1 (it counts the first call)");
  if (x.max_elapsed.count() < 0)
    return fail("max_elapsed", render_seconds(x.max_elapsed),
                "is < 0 (0 = unlimited)");
  return caf::none;
}

caf::timespan backoff_delay(const retry_policy& p, int retry,
                            caf::timespan previous, double random01) {
  retry = std::max(retry, 1);
  auto u = std::isnan(random01) ? 0.0 : std::clamp(random01, 0.0, 1.0);
  auto cap = p.max_delay;
  auto exponential = [&] {
    return std::min(scale(p.initial_delay,
                          std::pow(p.multiplier, retry - 1)),
                    cap);
  };
  switch (p.backoff) {
    case backoff_kind::fixed:
      return std::min(p.initial_delay, cap);
    case backoff_kind::linear:
      return std::min(scale(p.initial_delay, retry), cap);
    case backoff_kind::exponential:
      return exponential();
    case backoff_kind::exponential_with_jitter:
      if (p.jitter == jitter_kind::decorrelated) {
        auto lo = p.initial_delay;
        auto prev = previous.count() > 0 ? previous : lo;
        auto hi = std::max(scale(prev, 3.0), lo);
        return std::min(lo + scale(hi - lo, u), cap);
      }
      return scale(exponential(), u);
  }
  return std::min(p.initial_delay, cap);
}

// -- state --------------------------------------------------------------------

caf::expected<caf::timespan>
retry_state::next(const retry_policy& policy, time_point now,
                  const caf::error& last_error, double random01) {
  return next(policy, now, last_error, random01, deadline::never());
}

caf::expected<caf::timespan>
retry_state::next(const retry_policy& policy, time_point now,
                  const caf::error& last_error, double random01,
                  const deadline& dl) {
  if (!started_)
    start(now);
  ++attempts_;
  auto summary = [&] {
    return plural(attempts_, "attempt") + " in "
           + render_seconds(elapsed(now)) + "; last error: "
           + render(last_error);
  };
  if (dl.expired(now))
    return make_error(errc::deadline_exceeded,
                      "deadline passed " + render_seconds(now - dl.when())
                        + " ago after " + summary());
  if (last_error && !is_retryable(policy, last_error))
    return last_error;
  if (attempts_ >= policy.max_attempts)
    return make_error(errc::retries_exhausted,
                      "max_attempts = " + std::to_string(policy.max_attempts)
                        + " reached after " + summary());
  auto pause = backoff_delay(policy, attempts_, previous_, random01);
  if (!within_elapsed(policy, now, pause))
    return make_error(errc::retries_exhausted,
                      "max_elapsed = " + render_seconds(policy.max_elapsed)
                        + " leaves no time for a pause of "
                        + render_seconds(pause) + " after " + summary());
  if (!retry_fits(dl, now, pause))
    return make_error(errc::deadline_exceeded,
                      "deadline in " + render_seconds(dl.remaining(now))
                        + " leaves no time for a pause of "
                        + render_seconds(pause) + " after " + summary());
  previous_ = pause;
  return pause;
}

bool retry_state::within_elapsed(const retry_policy& policy, time_point now,
                                 caf::timespan pause) const noexcept {
  if (policy.max_elapsed.count() <= 0 || !started_)
    return true;
  auto used = now - start_;
  if (used > policy.max_elapsed)
    return false;
  // used + pause <= max_elapsed, without overflowing on a huge pause.
  return pause <= policy.max_elapsed - used;
}

// -- YAML ---------------------------------------------------------------------


caf::expected<retry_policy>
retry_policy_from_yaml(const std::string& text, const std::string& source) {
  auto loaded = detail::load_mapping(text, source,
                                     errc::invalid_breaker_config,
                                     "retry policy fields");
  if (!loaded)
    return loaded.error();
  auto& root = *loaded;
  if (root.IsNull())
    return retry_policy{};
  detail::yaml_reader in{root, source, errc::invalid_breaker_config};
  retry_policy result;
  try {
    if (auto err = in.check_known({"backoff", "jitter", "initial_delay",
                                   "max_delay", "multiplier", "max_attempts",
                                   "max_elapsed", "wait_for_half_open"}))
      return err;
    if (in.has("backoff")) {
      auto x = in.text("backoff");
      if (!x)
        return x.error();
      auto k = parse_backoff_kind(*x);
      if (!k)
        return in.fail(root["backoff"], "backoff",
                       "= '" + *x
                         + "' is not fixed, linear, exponential or "
                           "exponential_with_jitter");
      result.backoff = *k;
    }
    if (in.has("jitter")) {
      auto x = in.text("jitter");
      if (!x)
        return x.error();
      auto k = parse_jitter_kind(*x);
      if (!k)
        return in.fail(root["jitter"], "jitter",
                       "= '" + *x + "' is not full or decorrelated");
      result.jitter = *k;
    }
    for (auto field : {"initial_delay", "max_delay", "max_elapsed"}) {
      if (!in.has(field))
        continue;
      auto x = in.seconds(field);
      if (!x)
        return x.error();
      std::string f = field;
      (f == "initial_delay" ? result.initial_delay
                            : f == "max_delay" ? result.max_delay
                                               : result.max_elapsed)
        = *x;
    }
    if (auto err = in.read_optional("multiplier", result.multiplier))
      return err;
    if (auto err = in.read_optional("max_attempts", result.max_attempts))
      return err;
    if (auto err = in.read_optional("wait_for_half_open", result.wait_for_half_open))
      return err;
    // A max_delay left at its default loses against a large initial_delay:
    // then point at the field the document did set.
    if (auto err = validate(result))
      return in.locate(err, "initial_delay");
  } catch (const YAML::Exception& ex) {
    return detail::yaml_error(ex, source, errc::invalid_breaker_config);
  }
  return result;
}

} // namespace ft
