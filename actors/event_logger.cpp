// The built-in event subscriber: one line per supervisor, breaker,
// recovery or watchdog event.

#include <iostream>

#include <caf/all.hpp>

#include "ft/breaker_guard.hpp"
#include "ft/recovery.hpp"
#include "ft/supervisor.hpp"
#include "ft/watchdog.hpp"

namespace ft {

caf::actor spawn_event_logger(caf::actor_system& sys, std::ostream& out) {
  auto* os = &out;
  return sys.spawn([os](caf::event_based_actor* self) -> caf::behavior {
    auto print = [self, os](const std::string& line) {
      // aout serialises lines from many actors on std::cout.
      if (os == &std::cout)
        caf::aout(self) << "[ft] " << line << std::endl;
      else
        *os << "[ft] " << line << std::endl;
    };
    return {
      [print](const supervisor_event& ev) { print(to_string(ev)); },
      [print](const breaker_event& ev) { print(to_string(ev)); },
      [print](const recovery_event& ev) { print(to_string(ev)); },
      [print](const watchdog_event& ev) { print(to_string(ev)); },
    };
  });
}

} // namespace ft
