// The built-in event subscriber: one line per supervisor event.

#include <iostream>

#include <caf/all.hpp>

#include "ft/supervisor.hpp"

namespace ft {

caf::actor spawn_event_logger(caf::actor_system& sys, std::ostream& out) {
  auto* os = &out;
  return sys.spawn([os](caf::event_based_actor* self) -> caf::behavior {
    return {
      [self, os](const supervisor_event& ev) {
        // aout serialises lines from many actors on std::cout.
        if (os == &std::cout)
          caf::aout(self) << "[ft] " << to_string(ev) << std::endl;
        else
          *os << "[ft] " << to_string(ev) << std::endl;
      },
    };
  });
}

} // namespace ft
