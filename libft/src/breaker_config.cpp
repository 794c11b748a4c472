#include "ft/breaker_config.hpp"

#include "yaml_reader.hpp"

#include <cmath>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "ft/error.hpp"

namespace ft {

// -- names --------------------------------------------------------------------

const char* to_string(breaker_state x) noexcept {
  switch (x) {
    case breaker_state::closed: return "closed";
    case breaker_state::open: return "open";
    case breaker_state::half_open: return "half_open";
    case breaker_state::forced_open: return "forced_open";
    case breaker_state::disabled: return "disabled";
  }
  return "invalid";
}

std::optional<breaker_state> parse_breaker_state(const std::string& x) {
  for (auto st : {breaker_state::closed, breaker_state::open,
                  breaker_state::half_open, breaker_state::forced_open,
                  breaker_state::disabled})
    if (x == to_string(st))
      return st;
  return std::nullopt;
}

const char* to_string(breaker_config::window_kind x) noexcept {
  switch (x) {
    case breaker_config::window_kind::none: return "none";
    case breaker_config::window_kind::count_based: return "count_based";
    case breaker_config::window_kind::time_based: return "time_based";
  }
  return "invalid";
}

std::optional<breaker_config::window_kind>
parse_window_kind(const std::string& x) {
  using wk = breaker_config::window_kind;
  for (auto k : {wk::none, wk::count_based, wk::time_based})
    if (x == to_string(k))
      return k;
  return std::nullopt;
}

// -- validation ---------------------------------------------------------------

namespace {

std::string render_number(double x) {
  std::ostringstream out;
  out << x;
  return out.str();
}

bool is_percentage(double x) {
  return x > 0.0 && x <= 100.0; // false for NaN
}

/// A count-based window allocates one byte per call: keep it sane.
constexpr int max_window_size = 1'000'000;

} // namespace

caf::error validate(const breaker_config& x) {
  using wk = breaker_config::window_kind;
  auto fail = [](const char* field, const std::string& value,
                 const std::string& why) {
    return make_error(errc::invalid_breaker_config,
                      std::string{field} + " = " + value + " (" + why + ")");
  };
  if (x.window != wk::none && x.window != wk::count_based
      && x.window != wk::time_based)
    return fail("window", std::to_string(static_cast<int>(x.window)),
                "must be none, count_based or time_based");
  if (x.failure_threshold < 0)
    return fail("failure_threshold", std::to_string(x.failure_threshold),
                "must be >= 0");
  if (x.failure_threshold == 0 && x.window == wk::none)
    return fail("failure_threshold", "0",
                "0 turns consecutive tripping off and needs a window");
  if (x.success_threshold < 1)
    return fail("success_threshold", std::to_string(x.success_threshold),
                "must be >= 1");
  if (x.recovery_timeout.count() <= 0)
    return fail("recovery_timeout", render_seconds(x.recovery_timeout),
                "must be > 0");
  if (!(x.reset_timeout_factor >= 1.0) || !std::isfinite(x.reset_timeout_factor))
    return fail("reset_timeout_factor", render_number(x.reset_timeout_factor),
                "must be >= 1");
  if (x.max_reset_timeout < x.recovery_timeout)
    return fail("max_reset_timeout", render_seconds(x.max_reset_timeout),
                "must be >= recovery_timeout "
                  + render_seconds(x.recovery_timeout));
  if (x.call_timeout.count() < 0)
    return fail("call_timeout", render_seconds(x.call_timeout),
                "must be >= 0; 0 = no limit");
  if (x.half_open_max_calls < 1)
    return fail("half_open_max_calls", std::to_string(x.half_open_max_calls),
                "must be >= 1");
  if (x.window == wk::count_based
      && (x.window_size < 1 || x.window_size > max_window_size))
    return fail("window_size", std::to_string(x.window_size),
                "must be in [1, " + std::to_string(max_window_size) + "]");
  if (x.window == wk::time_based && x.window_duration.count() <= 0)
    return fail("window_duration", render_seconds(x.window_duration),
                "must be > 0");
  if (x.minimum_calls < 1)
    return fail("minimum_calls", std::to_string(x.minimum_calls),
                "must be >= 1");
  if (x.window == wk::count_based && x.minimum_calls > x.window_size)
    return fail("minimum_calls", std::to_string(x.minimum_calls),
                "must be <= window_size " + std::to_string(x.window_size)
                  + ", else the window never trips");
  if (!is_percentage(x.failure_rate_threshold))
    return fail("failure_rate_threshold",
                render_number(x.failure_rate_threshold),
                "must be in (0, 100]");
  if (x.slow_call_duration.count() < 0)
    return fail("slow_call_duration", render_seconds(x.slow_call_duration),
                "must be >= 0; 0 = off");
  if (x.slow_call_duration.count() > 0 && x.window == wk::none)
    return fail("slow_call_duration", render_seconds(x.slow_call_duration),
                "needs window count_based or time_based");
  if (!is_percentage(x.slow_call_rate_threshold))
    return fail("slow_call_rate_threshold",
                render_number(x.slow_call_rate_threshold),
                "must be in (0, 100]");
  return caf::none;
}

// -- presets ------------------------------------------------------------------

caf::expected<breaker_config> breaker_preset(const std::string& name) {
  using namespace std::chrono_literals;
  breaker_config x;
  if (name == "production") {
    x.failure_threshold = 5;
    x.success_threshold = 3;
    x.recovery_timeout = 30s;
    x.reset_timeout_factor = 2.0;
    x.max_reset_timeout = 5min;
    x.call_timeout = 10s;
    x.half_open_max_calls = 1;
    x.window = breaker_config::window_kind::count_based;
    x.window_size = 100;
    x.minimum_calls = 20;
    x.failure_rate_threshold = 50.0;
    return x;
  }
  if (name == "development") {
    x.failure_threshold = 10;
    x.success_threshold = 1;
    x.recovery_timeout = 5s;
    x.reset_timeout_factor = 1.5;
    x.max_reset_timeout = 30s;
    x.call_timeout = 30s;
    x.half_open_max_calls = 3;
    x.window = breaker_config::window_kind::none;
    return x;
  }
  if (name == "aggressive") {
    x.failure_threshold = 2;
    x.success_threshold = 2;
    x.recovery_timeout = 10s;
    x.reset_timeout_factor = 2.0;
    x.max_reset_timeout = 10min;
    x.call_timeout = 2s;
    x.half_open_max_calls = 1;
    x.window = breaker_config::window_kind::count_based;
    x.window_size = 20;
    x.minimum_calls = 5;
    x.failure_rate_threshold = 25.0;
    x.slow_call_duration = 1s;
    x.slow_call_rate_threshold = 50.0;
    return x;
  }
  return make_error(errc::invalid_breaker_config,
                    "preset = '" + name
                      + "' is not production, development or aggressive");
}

// -- YAML ---------------------------------------------------------------------

namespace {

caf::error read_fields(const detail::yaml_reader& in, const YAML::Node& root,
                       breaker_config& x) {
  for (auto [field, dst] : {std::pair{"failure_threshold", &x.failure_threshold},
                            std::pair{"success_threshold", &x.success_threshold},
                            std::pair{"half_open_max_calls",
                                      &x.half_open_max_calls},
                            std::pair{"window_size", &x.window_size},
                            std::pair{"minimum_calls", &x.minimum_calls}}) {
    if (!in.has(field))
      continue;
    auto v = in.integer(field);
    if (!v)
      return v.error();
    *dst = *v;
  }
  for (auto [field, dst] :
       {std::pair{"recovery_timeout", &x.recovery_timeout},
        std::pair{"max_reset_timeout", &x.max_reset_timeout},
        std::pair{"call_timeout", &x.call_timeout},
        std::pair{"window_duration", &x.window_duration},
        std::pair{"slow_call_duration", &x.slow_call_duration}}) {
    if (!in.has(field))
      continue;
    auto v = in.seconds(field);
    if (!v)
      return v.error();
    *dst = *v;
  }
  for (auto [field, dst] :
       {std::pair{"reset_timeout_factor", &x.reset_timeout_factor},
        std::pair{"failure_rate_threshold", &x.failure_rate_threshold},
        std::pair{"slow_call_rate_threshold", &x.slow_call_rate_threshold}}) {
    if (!in.has(field))
      continue;
    auto v = in.number(field);
    if (!v)
      return v.error();
    *dst = *v;
  }
  if (in.has("window")) {
    auto v = in.text("window");
    if (!v)
      return v.error();
    auto kind = parse_window_kind(*v);
    if (!kind)
      return in.fail(root["window"], "window",
                     "= '" + *v
                       + "' is not none, count_based or time_based");
    x.window = *kind;
  }
  return caf::none;
}

} // namespace

caf::expected<breaker_config>
breaker_config_from_yaml(const std::string& text, const std::string& source) {
  auto loaded = detail::load_mapping(text, source,
                                     errc::invalid_breaker_config,
                                     "breaker settings");
  if (!loaded)
    return loaded.error();
  auto& root = *loaded;
  if (root.IsNull())
    return breaker_config{};
  detail::yaml_reader in{root, source, errc::invalid_breaker_config};
  breaker_config result;
  try {
    if (auto err = in.check_known(
          {"preset", "failure_threshold", "success_threshold",
           "recovery_timeout", "reset_timeout_factor", "max_reset_timeout",
           "call_timeout", "half_open_max_calls", "window", "window_size",
           "window_duration", "minimum_calls", "failure_rate_threshold",
           "slow_call_duration", "slow_call_rate_threshold"}))
      return err;
    if (in.has("preset")) {
      auto name = in.text("preset");
      if (!name)
        return name.error();
      auto preset = breaker_preset(*name);
      if (!preset)
        return in.fail(root["preset"], "preset",
                       "= '" + *name
                         + "' is not production, development or aggressive");
      result = std::move(*preset);
    }
    if (auto err = read_fields(in, root, result))
      return err;
    if (auto err = validate(result))
      return in.locate(err);
  } catch (const YAML::Exception& ex) {
    return detail::yaml_error(ex, source, errc::invalid_breaker_config);
  }
  return result;
}

} // namespace ft
