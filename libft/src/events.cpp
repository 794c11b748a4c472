#include "ft/events.hpp"

#include <caf/exit_reason.hpp>

#include "ft/error.hpp"

namespace ft {

const char* to_string(event_kind x) noexcept {
  switch (x) {
    case event_kind::child_started: return "child_started";
    case event_kind::child_exited: return "child_exited";
    case event_kind::restart_scheduled: return "restart_scheduled";
    case event_kind::child_restarted: return "child_restarted";
    case event_kind::restart_failed: return "restart_failed";
    case event_kind::intensity_exceeded: return "intensity_exceeded";
    case event_kind::escalated: return "escalated";
    case event_kind::shutdown: return "shutdown";
  }
  return "invalid";
}

uint8_t default_severity(event_kind x) noexcept {
  switch (x) {
    case event_kind::child_started:
    case event_kind::child_restarted:
    case event_kind::shutdown:
      return 1;
    case event_kind::child_exited:
    case event_kind::restart_scheduled:
      return 2;
    case event_kind::restart_failed:
    case event_kind::intensity_exceeded:
      return 3;
    case event_kind::escalated:
      return 4;
  }
  return 1;
}

uint8_t severity_of(event_kind x, const caf::error& reason) noexcept {
  if (x == event_kind::shutdown && reason
      && reason != caf::exit_reason::normal
      && reason != caf::exit_reason::user_shutdown)
    return 3;
  return default_severity(x);
}

std::string to_string(const supervisor_event& x) {
  std::string result = "[";
  result += x.supervisor;
  result += "] ";
  result += to_string(x.kind);
  if (!x.child.empty()) {
    result += " child=";
    result += x.child;
  }
  if (x.kind == event_kind::restart_scheduled) {
    result += " delay=";
    result += std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(x.delay).count());
    result += "ms";
  }
  if (x.reason) {
    result += " reason=";
    result += render(x.reason);
  }
  result += " severity=";
  result += std::to_string(x.severity);
  return result;
}

} // namespace ft
