#include "ft/config.hpp"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "ft/error.hpp"
#include "ft/fault_handler.hpp"

#include "yaml_reader.hpp"

namespace ft {

caf::expected<supervisor_flags>
supervisor_flags_from_yaml(const std::string& text, const std::string& source) {
  auto loaded = detail::load_mapping(text, source, errc::invalid_config,
                                     "supervisor flags");
  if (!loaded)
    return loaded.error();
  auto& root = *loaded;
  if (root.IsNull())
    return supervisor_flags{};
  detail::yaml_reader in{root, source, errc::invalid_config};
  if (auto err = in.check_known(
        {"name", "strategy", "intensity", "period", "auto_shutdown",
         "buffer_capacity", "restart_strategy", "delay", "max_attempts",
         "initial_delay", "max_delay", "multiplier", "jitter",
         "max_failures_per_interval", "interval_seconds"}))
    return err;
  supervisor_flags flags;
  try {
    if (auto err = in.read_optional("name", flags.name))
      return err;
    if (in.has("strategy")) {
      auto x = in.text("strategy");
      if (!x)
        return x.error();
      if (auto s = parse_strategy(*x)) {
        flags.strategy = *s;
      } else if (has_fault_handler(*x)) {
        auto handler = make_fault_handler(*x);
        if (!handler)
          return handler.error();
        flags.handler = std::move(*handler);
      } else {
        return in.fail(errc::invalid_strategy, root["strategy"], "strategy",
                       "= '" + *x
                         + "' is neither one_for_one, one_for_all, "
                           "rest_for_one, simple_one_for_one nor a "
                           "registered fault handler");
      }
    }
    if (in.has("intensity")) {
      auto x = in.integer("intensity", errc::invalid_intensity);
      if (!x)
        return x.error();
      if (*x < 0)
        return in.fail(errc::invalid_intensity, root["intensity"],
                       "intensity", "= " + std::to_string(*x) + " is < 0");
      flags.intensity = *x;
    }
    if (in.has("period")) {
      auto x = in.seconds("period", errc::invalid_period);
      if (!x)
        return x.error();
      if (x->count() <= 0)
        return in.fail(errc::invalid_period, root["period"], "period",
                       "= " + root["period"].Scalar() + " must be > 0");
      flags.period = *x;
    }
    if (in.has("auto_shutdown")) {
      auto x = in.text("auto_shutdown");
      if (!x)
        return x.error();
      auto mode = parse_auto_shutdown(*x);
      if (!mode)
        return in.fail(errc::bad_combination, root["auto_shutdown"],
                       "auto_shutdown",
                       "= '" + *x
                         + "' is not never, any_significant or "
                           "all_significant");
      flags.auto_shutdown_mode = *mode;
    }
    if (in.has("buffer_capacity")) {
      auto x = in.integer("buffer_capacity", errc::invalid_config);
      if (!x)
        return x.error();
      if (*x < 1)
        return in.fail(errc::invalid_config, root["buffer_capacity"],
                       "buffer_capacity", "= " + std::to_string(*x)
                                            + " must be >= 1");
      flags.buffer_capacity = static_cast<size_t>(*x);
    }
    // Restart delay, with the seed configs' parameter names.
    std::string kind = "none";
    if (auto err = in.read_optional("restart_strategy", kind))
      return err;
    auto& d = flags.delay;
    if (kind == "none") {
      d.type = restart_delay::kind::none;
    } else if (kind == "fixed") {
      d.type = restart_delay::kind::fixed;
    } else if (kind == "exponential") {
      d.type = restart_delay::kind::exponential;
      d.initial_delay = std::chrono::milliseconds(100);
      d.max_delay = std::chrono::seconds(30);
    } else if (kind == "failure_rate") {
      d.type = restart_delay::kind::failure_rate;
      d.max_failures_per_interval = 3;
      d.interval = std::chrono::seconds(60);
    } else {
      return in.fail(errc::invalid_delay, root["restart_strategy"],
                     "restart_strategy",
                     "= '" + kind
                       + "' is not none, fixed, exponential or "
                         "failure_rate");
    }
    for (const char* field : {"delay", "initial_delay", "max_delay",
                              "interval_seconds"}) {
      if (!in.has(field))
        continue;
      auto x = in.seconds(field, errc::invalid_delay);
      if (!x)
        return x.error();
      std::string f = field;
      if (f == "delay")
        d.delay = *x;
      else if (f == "initial_delay")
        d.initial_delay = *x;
      else if (f == "max_delay")
        d.max_delay = *x;
      else
        d.interval = *x;
    }
    for (const char* field : {"multiplier", "jitter"}) {
      if (!in.has(field))
        continue;
      auto x = in.number(field);
      if (!x)
        return x.error();
      (std::string{field} == "multiplier" ? d.multiplier : d.jitter) = *x;
    }
    for (const char* field : {"max_attempts", "max_failures_per_interval"}) {
      if (!in.has(field))
        continue;
      auto x = in.integer(field, errc::invalid_delay);
      if (!x)
        return x.error();
      (std::string{field} == "max_attempts" ? d.max_attempts
                                            : d.max_failures_per_interval)
        = *x;
    }
    if (auto err = validate(d))
      return in.locate(err, "initial_delay");
  } catch (const YAML::Exception& ex) {
    return detail::yaml_error(ex, source, errc::invalid_config);
  }
  if (auto err = validate(flags))
    return err;
  return flags;
}

caf::expected<supervisor_flags>
supervisor_flags_from_yaml_file(const std::string& path) {
  std::ifstream in{path};
  if (!in)
    return make_error(errc::invalid_config, path + ": cannot open file");
  std::stringstream buf;
  buf << in.rdbuf();
  return supervisor_flags_from_yaml(buf.str(), path);
}

} // namespace ft
