#include "ft/error.hpp"

#include <caf/deep_to_string.hpp>
#include <caf/exit_reason.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

#include <sstream>

namespace ft {

const char* to_string(errc x) noexcept {
  switch (x) {
    case errc::none: return "none";
    case errc::already_started: return "already_started";
    case errc::already_present: return "already_present";
    case errc::running: return "running";
    case errc::restarting: return "restarting";
    case errc::not_found: return "not_found";
    case errc::not_supported: return "not_supported";
    case errc::invalid_strategy: return "invalid_strategy";
    case errc::invalid_intensity: return "invalid_intensity";
    case errc::invalid_period: return "invalid_period";
    case errc::invalid_restart_type: return "invalid_restart_type";
    case errc::invalid_shutdown: return "invalid_shutdown";
    case errc::invalid_child_type: return "invalid_child_type";
    case errc::duplicate_child_name: return "duplicate_child_name";
    case errc::bad_combination: return "bad_combination";
    case errc::invalid_child_spec: return "invalid_child_spec";
    case errc::invalid_delay: return "invalid_delay";
    case errc::invalid_config: return "invalid_config";
    case errc::unknown_fault_handler: return "unknown_fault_handler";
    case errc::start_failed: return "start_failed";
    case errc::restart_intensity_exceeded: return "restart_intensity_exceeded";
    case errc::max_attempts_exceeded: return "max_attempts_exceeded";
    case errc::escalated: return "escalated";
    case errc::buffer_full: return "buffer_full";
    case errc::child_stopped: return "child_stopped";
    case errc::circuit_open: return "circuit_open";
    case errc::half_open_limit: return "half_open_limit";
    case errc::call_timeout: return "call_timeout";
    case errc::deadline_exceeded: return "deadline_exceeded";
    case errc::retries_exhausted: return "retries_exhausted";
    case errc::invalid_breaker_config: return "invalid_breaker_config";
    case errc::too_many_retries: return "too_many_retries";
    case errc::recovery_exhausted: return "recovery_exhausted";
    case errc::snapshot_not_found: return "snapshot_not_found";
    case errc::stale_sequence: return "stale_sequence";
    case errc::checksum_mismatch: return "checksum_mismatch";
    case errc::corrupt_snapshot: return "corrupt_snapshot";
    case errc::schema_mismatch: return "schema_mismatch";
    case errc::store_full: return "store_full";
    case errc::store_unavailable: return "store_unavailable";
    case errc::store_error: return "store_error";
    case errc::restore_failed: return "restore_failed";
    case errc::duplicate_message: return "duplicate_message";
    case errc::placement_failed: return "placement_failed";
    case errc::unknown_entity_type: return "unknown_entity_type";
    case errc::unknown_entity: return "unknown_entity";
    case errc::entity_exists: return "entity_exists";
    case errc::entity_unavailable: return "entity_unavailable";
    case errc::node_unreachable: return "node_unreachable";
    case errc::auth_failed: return "auth_failed";
    case errc::duplicate_node_name: return "duplicate_node_name";
    case errc::node_down: return "node_down";
    case errc::replication_failed: return "replication_failed";
    case errc::join_failed: return "join_failed";
    case errc::stale_epoch: return "stale_epoch";
    case errc::watchdog_timeout: return "watchdog_timeout";
    case errc::invalid_argument: return "invalid_argument";
  }
  return "unknown_ft_error";
}

caf::error make_error(errc x) {
  return caf::error{static_cast<uint8_t>(x), error_category};
}

caf::error make_error(errc x, std::string context) {
  return caf::error{static_cast<uint8_t>(x), error_category,
                    caf::make_message(std::move(context))};
}

bool is(const caf::error& err, errc x) noexcept {
  if (x == errc::none)
    return !err;
  // CAF's category() and code() require a non-empty error.
  return err && err.category() == error_category
         && err.code() == static_cast<uint8_t>(x);
}

std::string render_ft_error(uint8_t code, caf::atom_value,
                            const caf::message& context) {
  std::string result = to_string(static_cast<errc>(code));
  if (!context.empty()) {
    result += ": ";
    if (context.size() == 1 && context.match_element<std::string>(0))
      result += context.get_as<std::string>(0);
    else
      result += caf::deep_to_string(context);
  }
  return result;
}

std::string render_seconds(caf::timespan x) {
  std::ostringstream out;
  out << std::chrono::duration<double>(x).count() << 's';
  return out.str();
}

std::string render(const caf::error& err) {
  if (!err)
    return "none";
  if (err.category() == error_category)
    return render_ft_error(err.code(), err.category(), err.context());
  if (err.category() == caf::atom("exit"))
    return caf::to_string(static_cast<caf::exit_reason>(err.code()));
  if (err.category() == caf::atom("system"))
    return caf::to_string(static_cast<caf::sec>(err.code()));
  return caf::to_string(err);
}

} // namespace ft
