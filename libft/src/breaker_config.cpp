#include "ft/breaker_config.hpp"

#include "breaker_config_yaml.hpp"
#include "yaml_reader.hpp"

#include <cmath>
#include <initializer_list>
#include <set>
#include <sstream>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "ft/error.hpp"

namespace ft {

using detail::context_of;

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
  // The adaptive bounds are checked even when off, so enabling is one line.
  auto& a = x.adaptive;
  if (a.min_failure_threshold < 1)
    return fail("adaptive.min_failure_threshold",
                std::to_string(a.min_failure_threshold), "must be >= 1");
  if (a.max_failure_threshold < a.min_failure_threshold)
    return fail("adaptive.max_failure_threshold",
                std::to_string(a.max_failure_threshold),
                "must be >= adaptive.min_failure_threshold "
                  + std::to_string(a.min_failure_threshold));
  if (a.min_recovery_timeout.count() <= 0)
    return fail("adaptive.min_recovery_timeout",
                render_seconds(a.min_recovery_timeout), "must be > 0");
  if (a.max_recovery_timeout < a.min_recovery_timeout)
    return fail("adaptive.max_recovery_timeout",
                render_seconds(a.max_recovery_timeout),
                "must be >= adaptive.min_recovery_timeout "
                  + render_seconds(a.min_recovery_timeout));
  if (!(a.false_trip_probability > 0.0 && a.false_trip_probability < 1.0))
    return fail("adaptive.false_trip_probability",
                render_number(a.false_trip_probability), "must be in (0, 1)");
  if (!(a.smoothing > 0.0 && a.smoothing <= 1.0))
    return fail("adaptive.smoothing", render_number(a.smoothing),
                "must be in (0, 1]");
  if (!a.enabled)
    return caf::none;
  // Enabled: the configured values are the starting point of the tuning.
  if (x.failure_threshold < a.min_failure_threshold
      || x.failure_threshold > a.max_failure_threshold)
    return fail("failure_threshold", std::to_string(x.failure_threshold),
                "must be within the adaptive bounds ["
                  + std::to_string(a.min_failure_threshold) + ", "
                  + std::to_string(a.max_failure_threshold) + "]");
  if (x.recovery_timeout < a.min_recovery_timeout
      || x.recovery_timeout > a.max_recovery_timeout)
    return fail("recovery_timeout", render_seconds(x.recovery_timeout),
                "must be within the adaptive bounds ["
                  + render_seconds(a.min_recovery_timeout) + ", "
                  + render_seconds(a.max_recovery_timeout) + "]");
  if (a.max_recovery_timeout > x.max_reset_timeout)
    return fail("adaptive.max_recovery_timeout",
                render_seconds(a.max_recovery_timeout),
                "must be <= max_reset_timeout "
                  + render_seconds(x.max_reset_timeout)
                  + ", else a failed trial shortens the open period");
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
    x.adaptive.min_failure_threshold = 3;
    x.adaptive.max_failure_threshold = 20;
    x.adaptive.min_recovery_timeout = 10s;
    x.adaptive.max_recovery_timeout = 2min;
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
    x.adaptive.min_failure_threshold = 5;
    x.adaptive.max_failure_threshold = 30;
    x.adaptive.min_recovery_timeout = 1s;
    x.adaptive.max_recovery_timeout = 30s;
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
    x.adaptive.min_failure_threshold = 2;
    x.adaptive.max_failure_threshold = 8;
    x.adaptive.min_recovery_timeout = 5s;
    x.adaptive.max_recovery_timeout = 1min;
    return x;
  }
  return make_error(errc::invalid_breaker_config,
                    "preset = '" + name
                      + "' is not production, development or aggressive");
}

// -- YAML ---------------------------------------------------------------------

namespace {

/// Reads those of `fields` the mapping of `in` has.
template <class T>
caf::error read_each(const detail::yaml_reader& in,
                     std::initializer_list<std::pair<const char*, T*>> fields) {
  for (auto [field, dst] : fields)
    if (auto err = in.read_optional(field, *dst))
      return err;
  return caf::none;
}

caf::error read_fields(const detail::yaml_reader& in, const YAML::Node& root,
                       breaker_config& x) {
  if (auto err = read_each<int>(
        in,
        {{"failure_threshold", &x.failure_threshold},
         {"success_threshold", &x.success_threshold},
         {"half_open_max_calls", &x.half_open_max_calls},
         {"window_size", &x.window_size},
         {"minimum_calls", &x.minimum_calls}}))
    return err;
  if (auto err = read_each<caf::timespan>(
        in,
        {{"recovery_timeout", &x.recovery_timeout},
         {"max_reset_timeout", &x.max_reset_timeout},
         {"call_timeout", &x.call_timeout},
         {"window_duration", &x.window_duration},
         {"slow_call_duration", &x.slow_call_duration}}))
    return err;
  if (auto err = read_each<double>(
        in,
        {{"reset_timeout_factor", &x.reset_timeout_factor},
         {"failure_rate_threshold", &x.failure_rate_threshold},
         {"slow_call_rate_threshold", &x.slow_call_rate_threshold}}))
    return err;
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


/// Turns `source:line: field ...` from the reader of the nested mapping into
/// `source:line: adaptive.field ...`, the name `validate` uses.
caf::error in_adaptive(const caf::error& err, const std::string& source) {
  return detail::in_section(err, source, "adaptive",
                            errc::invalid_breaker_config);
}

caf::error read_adaptive(const detail::yaml_reader& in,
                         const std::string& source,
                         breaker_config::adaptive_config& x) {
  auto node = in.root()["adaptive"];
  if (!node || node.IsNull()) // `adaptive:` alone keeps every default
    return caf::none;
  if (!node.IsMap())
    return in.fail(node, "adaptive", "must be a mapping");
  detail::yaml_reader sub{node, source, errc::invalid_breaker_config};
  auto err = sub.check_known({"enabled", "min_failure_threshold",
                              "max_failure_threshold", "min_recovery_timeout",
                              "max_recovery_timeout", "false_trip_probability",
                              "smoothing"});
  if (!err)
    err = read_each<bool>(sub, {{"enabled", &x.enabled}});
  if (!err)
    err = read_each<int>(sub,
                         {{"min_failure_threshold", &x.min_failure_threshold},
                          {"max_failure_threshold", &x.max_failure_threshold}});
  if (!err)
    err = read_each<caf::timespan>(
      sub,
      {{"min_recovery_timeout", &x.min_recovery_timeout},
       {"max_recovery_timeout", &x.max_recovery_timeout}});
  if (!err)
    err = read_each<double>(
      sub,
      {{"false_trip_probability", &x.false_trip_probability},
       {"smoothing", &x.smoothing}});
  return err ? in_adaptive(err, source) : caf::none;
}

/// Points an error of `validate` at its line: an `adaptive.*` field at its
/// line inside the nested mapping (or at the mapping when it does not set
/// the field), a field checked against the adaptive bounds at the mapping
/// when the document does not set that field.
caf::error locate(const detail::yaml_reader& in, const caf::error& err) {
  auto ctx = context_of(err);
  auto adaptive = in.root()["adaptive"];
  if (!adaptive || ctx.find("adaptive") == std::string::npos)
    return in.locate(err);
  if (ctx.rfind("adaptive.", 0) != 0)
    return in.locate(err, "adaptive");
  auto field = ctx.substr(9, ctx.find(' ') - 9);
  auto node = adaptive.IsMap() && adaptive[field] ? adaptive[field] : adaptive;
  return make_error(errc::invalid_breaker_config,
                    in.where(node) + ": " + ctx);
}

} // namespace

namespace detail {

caf::error read_breaker_config(const YAML::Node& root,
                               const std::string& source, breaker_config& x) {
  if (!root || root.IsNull()) {
    x = breaker_config{};
    return caf::none;
  }
  detail::yaml_reader in{root, source, errc::invalid_breaker_config};
  if (!root.IsMap())
    return in.fail(root, "breaker settings", "must be a mapping");
  breaker_config result;
  if (auto err = in.check_known(
        {"preset", "failure_threshold", "success_threshold",
         "recovery_timeout", "reset_timeout_factor", "max_reset_timeout",
         "call_timeout", "half_open_max_calls", "window", "window_size",
         "window_duration", "minimum_calls", "failure_rate_threshold",
         "slow_call_duration", "slow_call_rate_threshold", "adaptive"}))
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
  if (auto err = read_adaptive(in, source, result.adaptive))
    return err;
  if (auto err = validate(result))
    return locate(in, err);
  x = std::move(result);
  return caf::none;
}

} // namespace detail

caf::expected<breaker_config>
breaker_config_from_yaml(const std::string& text, const std::string& source) {
  auto loaded = detail::load_mapping(text, source,
                                     errc::invalid_breaker_config,
                                     "breaker settings");
  if (!loaded)
    return loaded.error();
  breaker_config result;
  try {
    if (auto err = detail::read_breaker_config(*loaded, source, result))
      return err;
  } catch (const YAML::Exception& ex) {
    return detail::yaml_error(ex, source, errc::invalid_breaker_config);
  }
  return result;
}

} // namespace ft
