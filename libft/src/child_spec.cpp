#include "ft/child_spec.hpp"

#include <set>

#include <caf/exit_reason.hpp>

#include "ft/error.hpp"

namespace ft {

namespace {

template <class Enum, size_t N>
std::optional<Enum> parse_enum(const std::string& x, const Enum (&xs)[N]) {
  for (auto e : xs)
    if (x == to_string(e))
      return e;
  return std::nullopt;
}

} // namespace

const char* to_string(restart_type x) noexcept {
  switch (x) {
    case restart_type::permanent: return "permanent";
    case restart_type::transient: return "transient";
    case restart_type::temporary: return "temporary";
  }
  return "invalid";
}

const char* to_string(child_type x) noexcept {
  switch (x) {
    case child_type::worker: return "worker";
    case child_type::supervisor: return "supervisor";
  }
  return "invalid";
}

const char* to_string(supervision_strategy x) noexcept {
  switch (x) {
    case supervision_strategy::one_for_one: return "one_for_one";
    case supervision_strategy::one_for_all: return "one_for_all";
    case supervision_strategy::rest_for_one: return "rest_for_one";
    case supervision_strategy::simple_one_for_one: return "simple_one_for_one";
  }
  return "invalid";
}

const char* to_string(auto_shutdown x) noexcept {
  switch (x) {
    case auto_shutdown::never: return "never";
    case auto_shutdown::any_significant: return "any_significant";
    case auto_shutdown::all_significant: return "all_significant";
  }
  return "invalid";
}

const char* to_string(directive x) noexcept {
  switch (x) {
    case directive::restart: return "restart";
    case directive::stop: return "stop";
    case directive::escalate: return "escalate";
    case directive::ignore: return "ignore";
  }
  return "invalid";
}

std::optional<restart_type> parse_restart_type(const std::string& x) {
  static constexpr restart_type xs[] = {restart_type::permanent,
                                        restart_type::transient,
                                        restart_type::temporary};
  return parse_enum(x, xs);
}

std::optional<child_type> parse_child_type(const std::string& x) {
  static constexpr child_type xs[] = {child_type::worker,
                                      child_type::supervisor};
  return parse_enum(x, xs);
}

std::optional<supervision_strategy> parse_strategy(const std::string& x) {
  static constexpr supervision_strategy xs[]
    = {supervision_strategy::one_for_one, supervision_strategy::one_for_all,
       supervision_strategy::rest_for_one,
       supervision_strategy::simple_one_for_one};
  return parse_enum(x, xs);
}

std::optional<auto_shutdown> parse_auto_shutdown(const std::string& x) {
  static constexpr auto_shutdown xs[] = {auto_shutdown::never,
                                         auto_shutdown::any_significant,
                                         auto_shutdown::all_significant};
  return parse_enum(x, xs);
}

std::string to_string(const shutdown_spec& x) {
  switch (x.mode) {
    case shutdown_spec::kind::brutal_kill: return "brutal_kill";
    case shutdown_spec::kind::infinity: return "infinity";
    case shutdown_spec::kind::timeout: return render_seconds(x.timeout);
  }
  return "invalid";
}

child_spec worker(std::string id, start_fn start, restart_type restart) {
  child_spec result;
  result.id = std::move(id);
  result.start = std::move(start);
  result.restart = restart;
  return result;
}

caf::error validate(const supervisor_flags& flags) {
  if (static_cast<uint8_t>(flags.strategy)
      > static_cast<uint8_t>(supervision_strategy::simple_one_for_one))
    return make_error(errc::invalid_strategy,
                      "strategy = "
                        + std::to_string(static_cast<int>(flags.strategy)));
  if (flags.intensity < 0)
    return make_error(errc::invalid_intensity,
                      "intensity = " + std::to_string(flags.intensity));
  if (flags.period.count() <= 0)
    return make_error(errc::invalid_period,
                      "period = " + render_seconds(flags.period));
  auto mode = static_cast<uint8_t>(flags.auto_shutdown_mode);
  if (mode > static_cast<uint8_t>(auto_shutdown::all_significant))
    return make_error(errc::bad_combination,
                      "auto_shutdown = " + std::to_string(mode));
  if (flags.strategy == supervision_strategy::simple_one_for_one
      && flags.auto_shutdown_mode != auto_shutdown::never)
    return make_error(errc::bad_combination,
                      std::string{"auto_shutdown = "}
                        + to_string(flags.auto_shutdown_mode)
                        + " with strategy = simple_one_for_one");
  if (flags.buffer_capacity == 0)
    return make_error(errc::invalid_config, "buffer_capacity = 0");
  if (auto err = validate(flags.delay))
    return err;
  return caf::none;
}

caf::error validate(const child_spec& spec, const supervisor_flags& flags) {
  if (spec.id.empty())
    return make_error(errc::invalid_child_spec, "id is empty");
  auto in = [&spec](const std::string& what) {
    return "child " + spec.id + ": " + what;
  };
  if (!spec.start)
    return make_error(errc::invalid_child_spec, in("start is not set"));
  if (static_cast<uint8_t>(spec.restart)
      > static_cast<uint8_t>(restart_type::temporary))
    return make_error(errc::invalid_restart_type,
                      in("restart = "
                         + std::to_string(static_cast<int>(spec.restart))));
  if (static_cast<uint8_t>(spec.type)
      > static_cast<uint8_t>(child_type::supervisor))
    return make_error(errc::invalid_child_type,
                      in("type = "
                         + std::to_string(static_cast<int>(spec.type))));
  if (spec.shutdown) {
    auto mode = static_cast<uint8_t>(spec.shutdown->mode);
    if (mode > static_cast<uint8_t>(shutdown_spec::kind::infinity))
      return make_error(errc::invalid_shutdown,
                        in("shutdown = " + std::to_string(mode)));
    if (spec.shutdown->mode == shutdown_spec::kind::timeout
        && spec.shutdown->timeout.count() <= 0)
      return make_error(errc::invalid_shutdown,
                        in("shutdown = " + render_seconds(spec.shutdown->timeout)));
  }
  if (spec.significant && spec.restart == restart_type::permanent)
    return make_error(errc::bad_combination,
                      in("significant = true with restart = permanent"));
  if (spec.significant && flags.auto_shutdown_mode == auto_shutdown::never)
    return make_error(errc::bad_combination,
                      in("significant = true with auto_shutdown = never"));
  if (spec.delay)
    if (auto err = validate(*spec.delay))
      return make_error(errc::invalid_delay,
                        in(err.context().empty()
                             ? std::string{"delay"}
                             : err.context().get_as<std::string>(0)));
  return caf::none;
}

caf::error check_childspecs(const std::vector<child_spec>& specs,
                            const supervisor_flags& flags) {
  std::set<std::string> ids;
  for (auto& spec : specs) {
    if (auto err = validate(spec, flags))
      return err;
    if (!ids.insert(spec.id).second)
      return make_error(errc::duplicate_child_name, "id = " + spec.id);
  }
  return caf::none;
}

bool is_normal_exit(const caf::error& reason) noexcept {
  return !reason || reason == caf::exit_reason::normal
         || reason == caf::exit_reason::user_shutdown;
}

bool should_restart(restart_type type, const caf::error& reason) noexcept {
  switch (type) {
    case restart_type::permanent: return true;
    case restart_type::transient: return !is_normal_exit(reason);
    case restart_type::temporary: return false;
  }
  return false;
}

std::vector<size_t> restart_scope(supervision_strategy strategy,
                                  size_t num_children, size_t failed) {
  std::vector<size_t> result;
  switch (strategy) {
    case supervision_strategy::one_for_all:
      for (size_t i = 0; i < num_children; ++i)
        result.push_back(i);
      break;
    case supervision_strategy::rest_for_one:
      for (size_t i = failed; i < num_children; ++i)
        result.push_back(i);
      break;
    default:
      result.push_back(failed);
  }
  return result;
}

} // namespace ft
