#include <catch2/catch.hpp>

#include <chrono>
#include <deque>

#include <caf/actor_clock.hpp>

#include "ft/restart_window.hpp"

using namespace std::chrono_literals;

namespace {

using time_point = caf::actor_clock::time_point;

// An arbitrary, deterministic origin; nothing here reads a clock.
const time_point t0 = time_point{} + std::chrono::hours(1);

} // namespace

TEST_CASE("intensity restarts within the period are allowed, one more is not",
          "[restart_window]") {
  for (int intensity : {1, 2, 3, 5, 10}) {
    CAPTURE(intensity);
    ft::restart_window w{intensity, 5s};
    for (int i = 0; i < intensity; ++i)
      CHECK(w.add(t0 + i * 100ms));
    CHECK(w.size() == static_cast<size_t>(intensity));
    CHECK_FALSE(w.add(t0 + intensity * 100ms));
  }
}

TEST_CASE("all restarts at the same instant count", "[restart_window]") {
  ft::restart_window w{3, 1s};
  CHECK(w.add(t0));
  CHECK(w.add(t0));
  CHECK(w.add(t0));
  CHECK_FALSE(w.add(t0));
  CHECK(w.size() == 4);
}

TEST_CASE("intensity 0 means the first restart already exceeds",
          "[restart_window]") {
  ft::restart_window w{0, 5s};
  CHECK_FALSE(w.add(t0));
  // Even long after, any restart exceeds.
  ft::restart_window w2{0, 5s};
  CHECK_FALSE(w2.add(t0 + std::chrono::hours(10)));
}

TEST_CASE("a negative intensity behaves as intensity 0", "[restart_window]") {
  ft::restart_window w{-3, 5s};
  CHECK_FALSE(w.add(t0));
}

TEST_CASE("restarts spaced wider than the period never exceed",
          "[restart_window]") {
  constexpr auto period = 5s;
  ft::restart_window w{1, period};
  auto now = t0;
  for (int i = 0; i < 100; ++i) {
    CAPTURE(i);
    REQUIRE(w.add(now));
    CHECK(w.size() == 1);
    now += period + 1ms;
  }
}

TEST_CASE("restarts spaced exactly one period apart are both in the window",
          "[restart_window]") {
  // The window is [now - period, now], inclusive as in OTP.
  ft::restart_window w{1, 5s};
  CHECK(w.add(t0));
  CHECK_FALSE(w.add(t0 + 5s));
  CHECK(w.size() == 2);
}

TEST_CASE("the window slides: old restarts are dropped", "[restart_window]") {
  ft::restart_window w{3, 10s};
  CHECK(w.add(t0));      // {0}
  CHECK(w.add(t0 + 4s)); // {0, 4}
  CHECK(w.add(t0 + 8s)); // {0, 4, 8}
  CHECK(w.size() == 3);
  // At 12s, the restart at 0 is older than 10s and falls out.
  CHECK(w.add(t0 + 12s)); // {4, 8, 12}
  CHECK(w.size() == 3);
  // At 30s, everything before 20s falls out.
  CHECK(w.add(t0 + 30s)); // {30}
  CHECK(w.size() == 1);
  // Three more within the period around 30s exceed the limit.
  CHECK(w.add(t0 + 31s));
  CHECK(w.add(t0 + 32s));
  CHECK_FALSE(w.add(t0 + 33s));
  CHECK(w.size() == 4);
}

TEST_CASE("after exceeding, the window recovers once the period has passed",
          "[restart_window]") {
  ft::restart_window w{2, 1s};
  CHECK(w.add(t0));
  CHECK(w.add(t0 + 100ms));
  CHECK_FALSE(w.add(t0 + 200ms));
  CHECK(w.add(t0 + 1201ms));
  CHECK(w.size() == 1);
}

TEST_CASE("add_restart keeps the deque newest last and drops old entries",
          "[restart_window]") {
  std::deque<time_point> restarts;
  CHECK(ft::add_restart(restarts, t0, 2, 1s));
  CHECK(ft::add_restart(restarts, t0 + 500ms, 2, 1s));
  REQUIRE(restarts.size() == 2);
  CHECK(restarts.front() == t0);
  CHECK(restarts.back() == t0 + 500ms);
  CHECK_FALSE(ft::add_restart(restarts, t0 + 1s, 2, 1s));
  REQUIRE(restarts.size() == 3);
  CHECK(ft::add_restart(restarts, t0 + 1600ms, 2, 1s));
  REQUIRE(restarts.size() == 2);
  CHECK(restarts.front() == t0 + 1s);
  CHECK(restarts.back() == t0 + 1600ms);
}
