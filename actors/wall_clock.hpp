#pragma once

// Private to ft_actors: events and snapshots carry wall-clock time (for
// humans, logs and other hosts), while every timer runs on the actor clock
// (steady, and the test clock in tests).

#include <chrono>
#include <cstdint>

namespace ft::detail {

/// Milliseconds since the Unix epoch.
inline int64_t wall_clock_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

} // namespace ft::detail
