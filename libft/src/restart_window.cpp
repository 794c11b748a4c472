#include "ft/restart_window.hpp"

namespace ft {

bool add_restart(std::deque<caf::actor_clock::time_point>& restarts,
                 caf::actor_clock::time_point now, int intensity,
                 caf::timespan period) {
  // As OTP: keep the restarts at or after now - period, add this one, and
  // allow at most `intensity` of them.
  auto threshold = now - period;
  while (!restarts.empty() && restarts.front() < threshold)
    restarts.pop_front();
  restarts.push_back(now);
  return restarts.size() <= static_cast<size_t>(intensity < 0 ? 0 : intensity);
}

} // namespace ft
