#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <random>

#include "ft/error.hpp"
#include "ft/failure_detector.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using ft::failure_detector;
using ft::failure_detector_config;
using time_point = failure_detector::time_point;

namespace {

const time_point t0 = time_point{} + 1h;

/// Heartbeats every `interval` from t0, `n` of them; returns the last time.
time_point regular(failure_detector& fd, caf::timespan interval, int n) {
  auto t = t0;
  for (int i = 0; i < n; ++i) {
    fd.heartbeat(t);
    if (i + 1 < n)
      t += interval;
  }
  return t;
}

/// The first time after `last` (1 ms steps) at which the peer is down.
caf::timespan time_to_down(const failure_detector& fd, time_point last) {
  for (auto dt = 0ms; dt < 60s; dt += 1ms)
    if (!fd.available(last + dt))
      return dt;
  return caf::timespan::max();
}

} // namespace

TEST_CASE("failure detector configs are validated field by field",
          "[failure_detector]") {
  CHECK_FALSE(ft::validate(failure_detector_config{}));
  auto bad = [](auto mutate, const char* field) {
    failure_detector_config cfg;
    mutate(cfg);
    auto err = ft::validate(cfg);
    REQUIRE(err);
    CHECK(ft::is(err, ft::errc::invalid_config));
    CHECK_THAT(ft::render(err), Contains(field));
    CHECK_FALSE(failure_detector::make(cfg));
  };
  bad([](auto& c) { c.heartbeat_interval = 0ms; }, "heartbeat_interval");
  bad([](auto& c) { c.threshold = 0; }, "threshold");
  bad([](auto& c) { c.threshold = NAN; }, "threshold");
  bad([](auto& c) { c.max_sample_size = 1; }, "max_sample_size");
  bad([](auto& c) { c.min_std_deviation = 0ms; }, "min_std_deviation");
  bad([](auto& c) { c.acceptable_heartbeat_pause = -1ms; },
      "acceptable_heartbeat_pause");
  CHECK(ft::parse_detector_kind("timeout") == ft::detector_kind::timeout);
  CHECK(ft::parse_detector_kind(ft::to_string(ft::detector_kind::phi_accrual))
        == ft::detector_kind::phi_accrual);
  CHECK_FALSE(ft::parse_detector_kind("gossip"));
}

TEST_CASE("before the first heartbeat a peer is not judged",
          "[failure_detector]") {
  failure_detector fd{{}};
  CHECK_FALSE(fd.monitoring());
  CHECK(fd.available(t0 + 1h));
  CHECK(fd.phi(t0 + 1h) == 0.0);
  CHECK_FALSE(fd.deadline());
  fd.heartbeat(t0);
  CHECK(fd.monitoring());
  CHECK(fd.deadline());
}

TEST_CASE("the defaults find a silent peer within 1 s on loopback",
          "[failure_detector]") {
  failure_detector fd{{}};
  auto last = regular(fd, 100ms, 50);
  CHECK(fd.mean_interval() == 100ms);
  CHECK(fd.available(last + 100ms));
  CHECK(fd.phi(last + 100ms) < 0.1);
  auto down = time_to_down(fd, last);
  CHECK(down > 500ms);
  CHECK(down < 1s);
  // deadline() tells the caller when to look again, to the millisecond.
  auto dl = fd.deadline();
  REQUIRE(dl);
  CHECK(fd.available(*dl - 2ms));
  CHECK_FALSE(fd.available(*dl));
}

TEST_CASE("a pause shorter than the grace period is not fatal",
          "[failure_detector]") {
  failure_detector fd{{}};
  auto last = regular(fd, 100ms, 50);
  // A 400 ms stall: the next heartbeat comes 500 ms after the last one.
  CHECK(fd.available(last + 500ms));
  CHECK(fd.phi(last + 500ms) < 1.0);
  fd.heartbeat(last + 500ms);
  // One long interval raises the deviation: the peer gets more slack.
  CHECK(fd.std_deviation() > 50ms);
  CHECK(time_to_down(fd, last + 500ms) > 800ms);
}

TEST_CASE("phi grows with the silence", "[failure_detector]") {
  failure_detector fd{{}};
  auto last = regular(fd, 100ms, 20);
  double prev = -1;
  for (auto dt = 0ms; dt <= 2s; dt += 10ms) {
    auto p = fd.phi(last + dt);
    CHECK(p >= prev);
    prev = p;
  }
  CHECK(std::isinf(fd.phi(last + 10s)));
}

TEST_CASE("a jittery peer is given more time than a regular one",
          "[failure_detector]") {
  failure_detector steady{{}};
  auto steady_last = regular(steady, 100ms, 100);
  failure_detector jittery{{}};
  std::mt19937 rng{3};
  std::uniform_int_distribution<int> ms{20, 280};
  auto t = t0;
  for (int i = 0; i < 100; ++i) {
    jittery.heartbeat(t);
    t += std::chrono::milliseconds(ms(rng));
  }
  auto jittery_last = t - 1ms; // the loop advanced past the last heartbeat
  jittery.heartbeat(jittery_last);
  CHECK(jittery.std_deviation() > 60ms);
  CHECK(time_to_down(jittery, jittery_last)
        > time_to_down(steady, steady_last));
}

TEST_CASE("the statistics follow the recent intervals",
          "[failure_detector]") {
  failure_detector_config cfg;
  cfg.max_sample_size = 10;
  failure_detector fd{cfg};
  auto last = regular(fd, 100ms, 50);
  for (int i = 1; i <= 10; ++i)
    fd.heartbeat(last + i * 1s);
  // Only the last 10 intervals count: all 1 s now.
  CHECK(fd.mean_interval() == 1s);
  CHECK(fd.std_deviation() == cfg.min_std_deviation);
  CHECK(fd.available(last + 10s + 1s + 300ms));
}

TEST_CASE("late and duplicate heartbeats do not skew the intervals",
          "[failure_detector]") {
  failure_detector fd{{}};
  auto last = regular(fd, 100ms, 10);
  fd.heartbeat(last - 50ms); // out of order: ignored
  CHECK(fd.mean_interval() == 100ms);
  CHECK(fd.available(last + 500ms));
}

TEST_CASE("the timeout detector declares a peer down at a fixed time",
          "[failure_detector]") {
  failure_detector_config cfg;
  cfg.kind = ft::detector_kind::timeout;
  cfg.heartbeat_interval = 100ms;
  cfg.acceptable_heartbeat_pause = 400ms;
  failure_detector fd{cfg};
  auto last = regular(fd, 100ms, 5);
  CHECK(fd.available(last + 499ms));
  CHECK_FALSE(fd.available(last + 500ms));
  CHECK(fd.deadline() == last + 500ms);
  fd.heartbeat(last + 450ms);
  CHECK(fd.available(last + 900ms));
}
