#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include <caf/actor_clock.hpp>
#include <caf/sec.hpp>

#include "ft/breaker.hpp"
#include "ft/error.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

using time_point = caf::actor_clock::time_point;
using ft::breaker;
using ft::breaker_config;
using ft::breaker_permit;
using ft::breaker_state;
using ft::breaker_transition;
using window_kind = ft::breaker_config::window_kind;

const time_point t0 = time_point{} + std::chrono::hours(1);

const caf::error some_error = caf::make_error(caf::sec::runtime_error);

/// Small numbers so schedules stay readable: trips after 3 consecutive
/// failures, 2 trial successes close, open 10s, doubling up to 40s.
breaker_config small_config() {
  breaker_config cfg;
  cfg.failure_threshold = 3;
  cfg.success_threshold = 2;
  cfg.recovery_timeout = 10s;
  cfg.reset_timeout_factor = 2.0;
  cfg.max_reset_timeout = 40s;
  cfg.half_open_max_calls = 1;
  return cfg;
}

/// Records every transition the breaker reports.
struct recorder {
  std::vector<breaker_transition> seen;

  void attach(breaker& b) {
    b.on_transition([this](const breaker_transition& x) { seen.push_back(x); });
  }
};

breaker_permit acquire(breaker& b, time_point now) {
  auto p = b.try_acquire(now);
  REQUIRE(p);
  return *p;
}

void succeed(breaker& b, time_point now, caf::timespan duration = 1ms) {
  auto p = acquire(b, now);
  b.record_success(p, now, duration);
}

void fail(breaker& b, time_point now, caf::timespan duration = 1ms) {
  auto p = acquire(b, now);
  b.record_error(p, now, duration, some_error);
}

/// Trips a small_config breaker at `now`.
void trip(breaker& b, time_point now) {
  for (int i = 0; i < b.config().failure_threshold; ++i)
    fail(b, now);
  REQUIRE(b.current_state() == breaker_state::open);
}

std::string message(const caf::error& err) {
  return ft::render(err);
}

} // namespace

// -- names --------------------------------------------------------------------

TEST_CASE("breaker states and window kinds round-trip through their names",
          "[breaker]") {
  for (auto st : {breaker_state::closed, breaker_state::open,
                  breaker_state::half_open, breaker_state::forced_open,
                  breaker_state::disabled}) {
    auto parsed = ft::parse_breaker_state(ft::to_string(st));
    REQUIRE(parsed);
    CHECK(*parsed == st);
  }
  CHECK(std::string{ft::to_string(breaker_state::half_open)} == "half_open");
  CHECK_FALSE(ft::parse_breaker_state("halfopen"));
  for (auto k : {window_kind::none, window_kind::count_based,
                 window_kind::time_based}) {
    auto parsed = ft::parse_window_kind(ft::to_string(k));
    REQUIRE(parsed);
    CHECK(*parsed == k);
  }
  CHECK(std::string{ft::to_string(window_kind::time_based)} == "time_based");
  CHECK_FALSE(ft::parse_window_kind("sliding"));
}

// -- validate -----------------------------------------------------------------

TEST_CASE("validate accepts the defaults and sensible configs", "[breaker]") {
  CHECK_FALSE(ft::validate(breaker_config{}));
  CHECK_FALSE(ft::validate(small_config()));
  auto cfg = small_config();
  cfg.window = window_kind::count_based;
  cfg.window_size = 10;
  cfg.minimum_calls = 10;
  cfg.failure_threshold = 0;
  cfg.slow_call_duration = 1s;
  cfg.failure_rate_threshold = 100;
  cfg.slow_call_rate_threshold = 0.5;
  cfg.reset_timeout_factor = 1.0;
  cfg.max_reset_timeout = cfg.recovery_timeout;
  CHECK_FALSE(ft::validate(cfg));
  cfg.window = window_kind::time_based;
  cfg.minimum_calls = 1000; // no window_size bound for time windows
  CHECK_FALSE(ft::validate(cfg));
}

TEST_CASE("validate rejects each out-of-range field, naming field and value",
          "[breaker]") {
  auto check_rejects = [](const breaker_config& x, const std::string& prefix) {
    CAPTURE(prefix);
    auto err = ft::validate(x);
    REQUIRE(err);
    CHECK(ft::is(err, ft::errc::invalid_breaker_config));
    CHECK_THAT(message(err), StartsWith("invalid_breaker_config: " + prefix));
    // make() refuses the same config.
    CHECK_FALSE(breaker::make(x, t0));
  };
  auto with = [](auto f) {
    auto cfg = small_config();
    f(cfg);
    return cfg;
  };
  check_rejects(with([](auto& c) { c.failure_threshold = -1; }),
                "failure_threshold = -1");
  check_rejects(with([](auto& c) { c.failure_threshold = 0; }),
                "failure_threshold = 0");
  check_rejects(with([](auto& c) { c.success_threshold = 0; }),
                "success_threshold = 0");
  check_rejects(with([](auto& c) { c.success_threshold = -3; }),
                "success_threshold = -3");
  check_rejects(with([](auto& c) { c.recovery_timeout = 0s; }),
                "recovery_timeout = 0s");
  check_rejects(with([](auto& c) { c.recovery_timeout = -1s; }),
                "recovery_timeout = -1s");
  check_rejects(with([](auto& c) { c.reset_timeout_factor = 0.5; }),
                "reset_timeout_factor = 0.5");
  check_rejects(with([](auto& c) { c.reset_timeout_factor = std::nan(""); }),
                "reset_timeout_factor = ");
  check_rejects(with([](auto& c) { c.reset_timeout_factor = HUGE_VAL; }),
                "reset_timeout_factor = ");
  check_rejects(with([](auto& c) { c.max_reset_timeout = 5s; }),
                "max_reset_timeout = 5s");
  check_rejects(with([](auto& c) { c.call_timeout = -2s; }),
                "call_timeout = -2s");
  check_rejects(with([](auto& c) { c.half_open_max_calls = 0; }),
                "half_open_max_calls = 0");
  check_rejects(with([](auto& c) { c.window = static_cast<window_kind>(9); }),
                "window = 9");
  check_rejects(with([](auto& c) {
                  c.window = window_kind::count_based;
                  c.window_size = 0;
                }),
                "window_size = 0");
  check_rejects(with([](auto& c) {
                  c.window = window_kind::count_based;
                  c.window_size = 2'000'000;
                }),
                "window_size = 2000000");
  check_rejects(with([](auto& c) {
                  c.window = window_kind::time_based;
                  c.window_duration = 0s;
                }),
                "window_duration = 0s");
  check_rejects(with([](auto& c) { c.minimum_calls = 0; }),
                "minimum_calls = 0");
  check_rejects(with([](auto& c) {
                  c.window = window_kind::count_based;
                  c.window_size = 5;
                  c.minimum_calls = 6;
                }),
                "minimum_calls = 6");
  check_rejects(with([](auto& c) { c.failure_rate_threshold = 0; }),
                "failure_rate_threshold = 0");
  check_rejects(with([](auto& c) { c.failure_rate_threshold = 100.5; }),
                "failure_rate_threshold = 100.5");
  check_rejects(with([](auto& c) { c.failure_rate_threshold = -5; }),
                "failure_rate_threshold = -5");
  check_rejects(with([](auto& c) { c.slow_call_duration = -1s; }),
                "slow_call_duration = -1s");
  check_rejects(with([](auto& c) { c.slow_call_duration = 1s; }),
                "slow_call_duration = 1s"); // needs a window
  check_rejects(with([](auto& c) { c.slow_call_rate_threshold = 0; }),
                "slow_call_rate_threshold = 0");
  check_rejects(with([](auto& c) { c.slow_call_rate_threshold = 101; }),
                "slow_call_rate_threshold = 101");
}

TEST_CASE("make constructs a breaker from a valid config", "[breaker]") {
  auto b = breaker::make(small_config(), t0);
  REQUIRE(b);
  CHECK(b->state(t0) == breaker_state::closed);
  CHECK(b->config().failure_threshold == 3);
  CHECK(b->stats(t0).last_transition == t0);
}

// -- closed -> open -----------------------------------------------------------

TEST_CASE("a new breaker is closed and admits calls", "[breaker]") {
  breaker b{small_config(), t0};
  CHECK(b.state(t0) == breaker_state::closed);
  for (int i = 0; i < 100; ++i)
    succeed(b, t0 + i * 1ms);
  auto s = b.stats(t0 + 1s);
  CHECK(s.state == breaker_state::closed);
  CHECK(s.success_count == 100);
  CHECK(s.failure_count == 0);
  CHECK(s.rejected_count == 0);
  CHECK(s.success_rate == 100.0);
  CHECK(s.health_percentage == 100.0);
  CHECK_FALSE(s.open_until);
}

TEST_CASE("failure_threshold consecutive failures trip the circuit",
          "[breaker]") {
  breaker b{small_config(), t0};
  recorder rec;
  rec.attach(b);
  // Failures separated by a success are not consecutive.
  fail(b, t0);
  fail(b, t0);
  succeed(b, t0);
  fail(b, t0);
  fail(b, t0);
  CHECK(b.state(t0) == breaker_state::closed);
  CHECK(b.stats(t0).consecutive_failures == 2);
  CHECK(rec.seen.empty());
  fail(b, t0 + 1s);
  CHECK(b.state(t0 + 1s) == breaker_state::open);
  REQUIRE(rec.seen.size() == 1);
  CHECK(rec.seen[0].from == breaker_state::closed);
  CHECK(rec.seen[0].to == breaker_state::open);
  CHECK(rec.seen[0].at == t0 + 1s);
  CHECK_THAT(rec.seen[0].reason, Contains("3 consecutive failures"));
  // Open: fail fast, counted as rejected.
  auto p = b.try_acquire(t0 + 2s);
  REQUIRE_FALSE(p);
  CHECK(ft::is(p.error(), ft::errc::circuit_open));
  // The rejection names the open period (prebuilt once per trip: cheap).
  CHECK_THAT(message(p.error()), Contains("open for 10s"));
  CHECK_FALSE(b.try_acquire(t0 + 3s));
  auto s = b.stats(t0 + 3s);
  CHECK(s.state == breaker_state::open);
  CHECK(s.rejected_count == 2);
  CHECK(s.failure_count == 5);
  CHECK(s.success_count == 1);
  REQUIRE(s.open_until);
  CHECK(*s.open_until == t0 + 11s);
  CHECK(s.open_period == 10s);
  CHECK(s.last_transition == t0 + 1s);
}

// -- open -> half_open -> closed / open ---------------------------------------

TEST_CASE("open turns half_open exactly when the open period ends",
          "[breaker]") {
  breaker b{small_config(), t0};
  recorder rec;
  rec.attach(b);
  trip(b, t0);
  auto end = t0 + 10s;
  CHECK(b.state(end - 1ns) == breaker_state::open);
  CHECK_FALSE(b.try_acquire(end - 1ns));
  // stats() is const but reports what state() would make of it.
  auto s = b.stats(end);
  CHECK(s.state == breaker_state::half_open);
  CHECK(s.last_transition == end);
  REQUIRE(rec.seen.size() == 1);
  // Noticed late, stamped with the end of the open period.
  CHECK(b.state(end + 5s) == breaker_state::half_open);
  REQUIRE(rec.seen.size() == 2);
  CHECK(rec.seen[1].from == breaker_state::open);
  CHECK(rec.seen[1].to == breaker_state::half_open);
  CHECK(rec.seen[1].at == end);
  CHECK(b.stats(end + 5s).last_transition == end);
}

TEST_CASE("success_threshold trial successes close the circuit", "[breaker]") {
  breaker b{small_config(), t0};
  recorder rec;
  rec.attach(b);
  trip(b, t0);
  auto t = t0 + 10s;
  succeed(b, t);
  CHECK(b.state(t) == breaker_state::half_open);
  CHECK(b.stats(t).half_open_successes == 1);
  succeed(b, t + 1s);
  CHECK(b.state(t + 1s) == breaker_state::closed);
  REQUIRE(rec.seen.size() == 3);
  CHECK(rec.seen[2].from == breaker_state::half_open);
  CHECK(rec.seen[2].to == breaker_state::closed);
  CHECK(rec.seen[2].at == t + 1s);
  CHECK_THAT(rec.seen[2].reason, Contains("success_threshold = 2"));
  // Closed again with fresh consecutive counts: 2 failures do not trip.
  fail(b, t + 2s);
  fail(b, t + 2s);
  CHECK(b.state(t + 2s) == breaker_state::closed);
}

TEST_CASE("half_open admits exactly half_open_max_calls trials at once",
          "[breaker]") {
  auto cfg = small_config();
  cfg.half_open_max_calls = 2;
  cfg.success_threshold = 3;
  breaker b{cfg, t0};
  trip(b, t0);
  auto t = t0 + 10s;
  auto p1 = acquire(b, t);
  auto p2 = acquire(b, t);
  CHECK(p1.admitted_in == breaker_state::half_open);
  CHECK(b.stats(t).half_open_in_flight == 2);
  for (int i = 0; i < 3; ++i) {
    auto p3 = b.try_acquire(t);
    REQUIRE_FALSE(p3);
    CHECK(ft::is(p3.error(), ft::errc::half_open_limit));
    CHECK_THAT(message(p3.error()), Contains("half_open_max_calls = 2"));
  }
  CHECK(b.stats(t).rejected_count == 3);
  // One completes: one more slot.
  b.record_success(p1, t + 1s, 1s);
  CHECK(b.stats(t + 1s).half_open_in_flight == 1);
  auto p3 = acquire(b, t + 1s);
  CHECK_FALSE(b.try_acquire(t + 1s));
  // release() frees a slot without counting an outcome.
  b.release(p2);
  auto p4 = acquire(b, t + 2s);
  CHECK(b.stats(t + 2s).half_open_successes == 1);
  CHECK(b.stats(t + 2s).success_count == 1);
  b.record_success(p3, t + 3s, 1ms);
  CHECK(b.state(t + 3s) == breaker_state::half_open);
  b.record_success(p4, t + 3s, 1ms);
  CHECK(b.state(t + 3s) == breaker_state::closed);
}

TEST_CASE("a failed trial reopens with a longer period, capped; closing "
          "resets it",
          "[breaker]") {
  breaker b{small_config(), t0};
  recorder rec;
  rec.attach(b);
  trip(b, t0);
  auto t = t0;
  // Open periods: 10s, then 20s, 40s, 40s (cap).
  for (auto period : {10s, 20s, 40s, 40s}) {
    CAPTURE(period.count());
    CHECK(b.stats(t).open_period == period);
    CHECK(b.state(t + period - 1ns) == breaker_state::open);
    t += period;
    CHECK(b.state(t) == breaker_state::half_open);
    fail(b, t);
    CHECK(b.current_state() == breaker_state::open);
    CHECK_THAT(rec.seen.back().reason, Contains("trial call failed"));
  }
  CHECK(b.stats(t).open_period == 40s);
  // Recover: closing resets the period to recovery_timeout.
  t += 40s;
  succeed(b, t);
  succeed(b, t);
  REQUIRE(b.state(t) == breaker_state::closed);
  CHECK(b.stats(t).open_period == 10s);
  trip(b, t);
  CHECK(b.state(t + 10s - 1ns) == breaker_state::open);
  CHECK(b.state(t + 10s) == breaker_state::half_open);
}

TEST_CASE("reset_timeout_factor 1 keeps the open period constant",
          "[breaker]") {
  auto cfg = small_config();
  cfg.reset_timeout_factor = 1.0;
  breaker b{cfg, t0};
  trip(b, t0);
  auto t = t0;
  for (int i = 0; i < 5; ++i) {
    t += 10s;
    REQUIRE(b.state(t) == breaker_state::half_open);
    fail(b, t);
  }
  CHECK(b.stats(t).open_period == 10s);
  CHECK(b.state(t + 10s) == breaker_state::half_open);
}

TEST_CASE("huge open periods saturate instead of overflowing", "[breaker]") {
  auto cfg = small_config();
  cfg.recovery_timeout = caf::timespan::max();
  cfg.max_reset_timeout = caf::timespan::max();
  breaker b{cfg, t0};
  trip(b, t0);
  auto s = b.stats(t0);
  REQUIRE(s.open_until);
  CHECK(*s.open_until == time_point::max());
  CHECK(b.state(t0 + std::chrono::hours(24 * 365)) == breaker_state::open);
}

TEST_CASE("late outcomes from before a transition do not drive the state "
          "machine",
          "[breaker]") {
  breaker b{small_config(), t0};
  // Three calls admitted while closed, still running when the circuit trips.
  auto late1 = acquire(b, t0);
  auto late2 = acquire(b, t0);
  auto late3 = acquire(b, t0);
  trip(b, t0 + 1s);
  auto t = t0 + 11s;
  REQUIRE(b.state(t) == breaker_state::half_open);
  // Their successes are no trials: they neither close the circuit nor take
  // trial slots.
  b.record_success(late1, t, 5s);
  b.record_success(late2, t, 5s);
  CHECK(b.state(t) == breaker_state::half_open);
  CHECK(b.stats(t).half_open_successes == 0);
  auto trial = acquire(b, t);
  // A late failure does not reopen it either.
  b.record_error(late3, t, 5s, some_error);
  CHECK(b.state(t) == breaker_state::half_open);
  CHECK(b.stats(t).half_open_in_flight == 1);
  // They still count for monitoring.
  CHECK(b.stats(t).success_count == 2);
  CHECK(b.stats(t).failure_count == 4);
  b.record_success(trial, t, 1ms);
  CHECK(b.stats(t).half_open_successes == 1);
}

// -- sliding windows ----------------------------------------------------------

TEST_CASE("count-based window: no trip below minimum_calls, then the rate "
          "trips",
          "[breaker]") {
  auto cfg = small_config();
  cfg.failure_threshold = 0; // rates only
  cfg.window = window_kind::count_based;
  cfg.window_size = 10;
  cfg.minimum_calls = 5;
  cfg.failure_rate_threshold = 50;
  breaker b{cfg, t0};
  recorder rec;
  rec.attach(b);
  SECTION("100% failures below minimum_calls do not trip") {
    for (int i = 0; i < 4; ++i)
      fail(b, t0);
    CHECK(b.state(t0) == breaker_state::closed);
    CHECK(b.stats(t0).window_calls == 4);
    CHECK(b.stats(t0).window_failure_rate == 100.0);
    fail(b, t0);
    CHECK(b.state(t0) == breaker_state::open);
    REQUIRE(rec.seen.size() == 1);
    CHECK_THAT(rec.seen[0].reason, Contains("failure rate 100% of 5 calls"));
  }
  SECTION("below the rate it stays closed; at the rate it trips") {
    for (int i = 0; i < 6; ++i)
      succeed(b, t0);
    for (int i = 0; i < 4; ++i)
      fail(b, t0);
    // 4 of 10 = 40%.
    CHECK(b.state(t0) == breaker_state::closed);
    CHECK(b.stats(t0).window_failure_rate == 40.0);
    // The window is full: this failure pushes out a success -> 5 of 10.
    fail(b, t0);
    CHECK(b.state(t0) == breaker_state::open);
    CHECK_THAT(rec.seen.at(0).reason, Contains("50% of 10 calls"));
  }
  SECTION("old calls roll out of the window") {
    for (int i = 0; i < 2; ++i)
      fail(b, t0);
    for (int i = 0; i < 10; ++i)
      succeed(b, t0);
    auto s = b.stats(t0);
    CHECK(s.window_calls == 10);
    CHECK(s.window_failure_rate == 0.0);
    for (int i = 0; i < 4; ++i)
      fail(b, t0);
    CHECK(b.state(t0) == breaker_state::closed);
    CHECK(b.stats(t0).window_failure_rate == 40.0);
  }
}

TEST_CASE("consecutive failures trip even with a window", "[breaker]") {
  auto cfg = small_config();
  cfg.window = window_kind::count_based;
  cfg.window_size = 100;
  cfg.minimum_calls = 100;
  breaker b{cfg, t0};
  for (int i = 0; i < 3; ++i)
    fail(b, t0);
  CHECK(b.state(t0) == breaker_state::open);
}

TEST_CASE("time-based window: minimum_calls and forgetting old calls",
          "[breaker]") {
  auto cfg = small_config();
  cfg.failure_threshold = 0;
  cfg.window = window_kind::time_based;
  cfg.window_duration = 10s; // buckets of 100ms
  cfg.minimum_calls = 4;
  cfg.failure_rate_threshold = 50;
  breaker b{cfg, t0};
  SECTION("no trip below minimum_calls at 100% failures") {
    for (int i = 0; i < 3; ++i)
      fail(b, t0 + i * 1s);
    CHECK(b.state(t0 + 3s) == breaker_state::closed);
    CHECK(b.stats(t0 + 3s).window_calls == 3);
    fail(b, t0 + 3s);
    CHECK(b.state(t0 + 3s) == breaker_state::open);
  }
  SECTION("calls older than window_duration are forgotten") {
    for (int i = 0; i < 3; ++i)
      succeed(b, t0);
    CHECK(b.stats(t0 + 10s).window_calls == 3);
    CHECK(b.stats(t0 + 10s + 100ms).window_calls == 0);
    // The old successes no longer dilute fresh failures: 3 failures stay
    // below minimum_calls, the 4th is a 100% rate.
    for (int i = 0; i < 3; ++i)
      fail(b, t0 + 11s);
    CHECK(b.state(t0 + 11s) == breaker_state::closed);
    CHECK(b.stats(t0 + 11s).window_failure_rate == 100.0);
    fail(b, t0 + 11s);
    CHECK(b.state(t0 + 11s) == breaker_state::open);
  }
  SECTION("within window_duration, old calls still count") {
    for (int i = 0; i < 3; ++i)
      succeed(b, t0);
    fail(b, t0 + 9s);
    fail(b, t0 + 9s);
    CHECK(b.state(t0 + 9s) == breaker_state::closed); // 2 of 5 = 40%
    fail(b, t0 + 9s);
    CHECK(b.state(t0 + 9s) == breaker_state::open); // 3 of 6 = 50%
  }
  SECTION("the window slides: part of it ages out") {
    fail(b, t0);
    succeed(b, t0 + 5s);
    succeed(b, t0 + 5s);
    succeed(b, t0 + 5s);
    // 1 of 4 = 25%, closed.
    CHECK(b.state(t0 + 5s) == breaker_state::closed);
    CHECK(b.stats(t0 + 5s).window_calls == 4);
    CHECK(b.stats(t0 + 14s).window_calls == 3);
    CHECK(b.stats(t0 + 14s).window_failure_rate == 0.0);
    CHECK(b.stats(t0 + 16s).window_calls == 0);
  }
}

TEST_CASE("slow calls trip via slow_call_rate_threshold", "[breaker]") {
  auto cfg = small_config();
  cfg.window = window_kind::count_based;
  cfg.window_size = 10;
  cfg.minimum_calls = 4;
  cfg.slow_call_duration = 2s;
  cfg.slow_call_rate_threshold = 50;
  breaker b{cfg, t0};
  recorder rec;
  rec.attach(b);
  succeed(b, t0, 1999ms); // just under: not slow
  succeed(b, t0, 100ms);
  succeed(b, t0, 2s); // at the threshold: slow
  CHECK(b.stats(t0).slow_call_count == 1);
  CHECK(b.state(t0) == breaker_state::closed);
  // 2 of 4 slow = 50%, though every call succeeded.
  succeed(b, t0, 5s);
  CHECK(b.state(t0) == breaker_state::open);
  REQUIRE(rec.seen.size() == 1);
  CHECK_THAT(rec.seen[0].reason, Contains("slow call rate 50% of 4 calls"));
  CHECK(b.stats(t0).failure_count == 0);
  SECTION("a slow trial reopens the circuit") {
    auto t = t0 + 10s;
    succeed(b, t, 3s);
    CHECK(b.current_state() == breaker_state::open);
    CHECK_THAT(rec.seen.back().reason, Contains("trial call slow"));
    CHECK(b.stats(t).open_period == 20s);
  }
  SECTION("fast trials close it") {
    auto t = t0 + 10s;
    succeed(b, t, 10ms);
    succeed(b, t, 10ms);
    CHECK(b.state(t) == breaker_state::closed);
  }
}

// -- what counts as a failure -------------------------------------------------

TEST_CASE("the is_failure predicate excludes errors; they count as successes",
          "[breaker]") {
  auto cfg = small_config();
  cfg.is_failure = [](const caf::error& err) {
    return !ft::is(err, ft::errc::not_found);
  };
  breaker b{cfg, t0};
  auto not_found = ft::make_error(ft::errc::not_found, "key");
  for (int i = 0; i < 10; ++i) {
    auto p = acquire(b, t0);
    b.record_error(p, t0, 1ms, not_found);
  }
  CHECK(b.state(t0) == breaker_state::closed);
  CHECK(b.stats(t0).success_count == 10);
  CHECK(b.stats(t0).failure_count == 0);
  // Other errors still count, and an excluded error breaks the run of
  // consecutive failures.
  fail(b, t0);
  fail(b, t0);
  auto p = acquire(b, t0);
  b.record_error(p, t0, 1ms, not_found);
  fail(b, t0);
  fail(b, t0);
  CHECK(b.state(t0) == breaker_state::closed);
  fail(b, t0);
  CHECK(b.state(t0) == breaker_state::open);
  CHECK(b.stats(t0).failure_count == 5);
}

TEST_CASE("the default predicate counts every error; an empty error is none",
          "[breaker]") {
  breaker b{small_config(), t0};
  for (int i = 0; i < 2; ++i) {
    auto p = acquire(b, t0);
    b.record_error(p, t0, 1ms, ft::make_error(ft::errc::not_found));
  }
  auto p = acquire(b, t0);
  b.record_error(p, t0, 1ms, caf::error{});
  CHECK(b.stats(t0).consecutive_failures == 0);
  CHECK(b.stats(t0).success_count == 1);
  CHECK(b.stats(t0).failure_count == 2);
}

TEST_CASE("timeouts count as failures", "[breaker]") {
  auto cfg = small_config();
  cfg.call_timeout = 3s;
  breaker b{cfg, t0};
  for (int i = 0; i < 3; ++i) {
    auto p = acquire(b, t0);
    b.record_timeout(p, t0 + 3s);
  }
  CHECK(b.state(t0 + 3s) == breaker_state::open);
  auto s = b.stats(t0 + 3s);
  CHECK(s.failure_count == 3);
  CHECK(s.timeout_count == 3);
  // A timed-out trial reopens.
  auto t = t0 + 13s;
  auto p = acquire(b, t);
  b.record_timeout(p, t + 3s);
  CHECK(b.current_state() == breaker_state::open);
  CHECK(b.stats(t + 3s).open_period == 20s);
}

TEST_CASE("timeouts are slow calls when call_timeout >= slow_call_duration",
          "[breaker]") {
  auto cfg = small_config();
  cfg.failure_threshold = 100;
  cfg.window = window_kind::count_based;
  cfg.window_size = 4;
  cfg.minimum_calls = 4;
  cfg.failure_rate_threshold = 100;
  cfg.call_timeout = 2s;
  cfg.slow_call_duration = 1s;
  cfg.slow_call_rate_threshold = 50;
  breaker b{cfg, t0};
  succeed(b, t0);
  succeed(b, t0);
  auto p = acquire(b, t0);
  b.record_timeout(p, t0 + 2s);
  CHECK(b.stats(t0 + 2s).slow_call_count == 1);
  p = acquire(b, t0 + 2s);
  b.record_timeout(p, t0 + 4s);
  CHECK(b.state(t0 + 4s) == breaker_state::open);
}

// -- manual control -----------------------------------------------------------

TEST_CASE("force_open rejects every call until reset", "[breaker]") {
  breaker b{small_config(), t0};
  recorder rec;
  rec.attach(b);
  b.force_open(t0);
  CHECK(b.state(t0) == breaker_state::forced_open);
  // No recovery timeout applies.
  for (auto t : {t0, t0 + 1h, t0 + std::chrono::hours(1000)}) {
    auto p = b.try_acquire(t);
    REQUIRE_FALSE(p);
    CHECK(ft::is(p.error(), ft::errc::circuit_open));
    CHECK_THAT(message(p.error()), Contains("forced_open"));
  }
  auto s = b.stats(t0 + 1h);
  CHECK(s.rejected_count == 3);
  CHECK(s.health_percentage == 0.0);
  CHECK_FALSE(s.open_until);
  // Forcing again is no transition.
  b.force_open(t0 + 2h);
  REQUIRE(rec.seen.size() == 1);
  CHECK(rec.seen[0].from == breaker_state::closed);
  CHECK(rec.seen[0].to == breaker_state::forced_open);
  b.reset(t0 + 3h);
  CHECK(b.state(t0 + 3h) == breaker_state::closed);
  REQUIRE(rec.seen.size() == 2);
  CHECK(rec.seen[1].from == breaker_state::forced_open);
  CHECK(rec.seen[1].to == breaker_state::closed);
  succeed(b, t0 + 3h);
}

TEST_CASE("disable admits everything and never trips until reset",
          "[breaker]") {
  auto cfg = small_config();
  cfg.window = window_kind::count_based;
  cfg.window_size = 10;
  cfg.minimum_calls = 1;
  breaker b{cfg, t0};
  recorder rec;
  rec.attach(b);
  fail(b, t0); // minimum_calls 1: one failure is 100%
  REQUIRE(b.current_state() == breaker_state::open);
  b.disable(t0 + 1s);
  CHECK(b.state(t0 + 1s) == breaker_state::disabled);
  for (int i = 0; i < 100; ++i) {
    auto p = b.try_acquire(t0 + 1s);
    REQUIRE(p);
    CHECK(p->admitted_in == breaker_state::disabled);
    b.record_error(*p, t0 + 1s, 1ms, some_error);
  }
  CHECK(b.state(t0 + 1h) == breaker_state::disabled);
  auto s = b.stats(t0 + 1h);
  CHECK(s.failure_count == 101);
  CHECK(s.rejected_count == 0);
  CHECK(s.health_percentage == 0.0); // every call since disable failed
  REQUIRE(rec.seen.size() == 2);
  CHECK(rec.seen[1].from == breaker_state::open);
  CHECK(rec.seen[1].to == breaker_state::disabled);
  // reset closes with fresh counts and the initial open period.
  b.reset(t0 + 2h);
  CHECK(b.state(t0 + 2h) == breaker_state::closed);
  CHECK(b.stats(t0 + 2h).window_calls == 0);
  CHECK(b.stats(t0 + 2h).open_period == 10s);
  fail(b, t0 + 2h);
  CHECK(b.state(t0 + 2h) == breaker_state::open); // minimum_calls 1, 100%
}

TEST_CASE("reset closes an open or half_open circuit", "[breaker]") {
  breaker b{small_config(), t0};
  recorder rec;
  rec.attach(b);
  trip(b, t0);
  SECTION("from open") {
    b.reset(t0 + 1s);
    CHECK(b.state(t0 + 1s) == breaker_state::closed);
    REQUIRE(rec.seen.size() == 2);
    CHECK(rec.seen[1].from == breaker_state::open);
    CHECK(rec.seen[1].reason == "manual reset");
  }
  SECTION("from a due open: reports open -> half_open -> closed") {
    b.reset(t0 + 20s);
    REQUIRE(rec.seen.size() == 3);
    CHECK(rec.seen[1].to == breaker_state::half_open);
    CHECK(rec.seen[2].from == breaker_state::half_open);
    CHECK(rec.seen[2].to == breaker_state::closed);
    CHECK(rec.seen[2].at == t0 + 20s);
  }
  SECTION("from half_open after failed trials: the period starts over") {
    fail(b, t0 + 10s);
    REQUIRE(b.stats(t0 + 10s).open_period == 20s);
    b.reset(t0 + 11s);
    CHECK(b.stats(t0 + 11s).open_period == 10s);
    trip(b, t0 + 12s);
    CHECK(b.state(t0 + 22s) == breaker_state::half_open);
  }
}

TEST_CASE("reset of a closed circuit clears counts without a transition",
          "[breaker]") {
  breaker b{small_config(), t0};
  recorder rec;
  rec.attach(b);
  auto late = acquire(b, t0);
  fail(b, t0);
  fail(b, t0);
  b.reset(t0 + 1s);
  CHECK(rec.seen.empty());
  CHECK(b.stats(t0 + 1s).consecutive_failures == 0);
  // A call admitted before the reset does not count towards tripping.
  b.record_error(late, t0 + 2s, 2s, some_error);
  fail(b, t0 + 2s);
  fail(b, t0 + 2s);
  CHECK(b.state(t0 + 2s) == breaker_state::closed);
  // Lifetime counters survive the reset.
  CHECK(b.stats(t0 + 2s).failure_count == 5);
  fail(b, t0 + 2s);
  CHECK(b.state(t0 + 2s) == breaker_state::open);
}

// -- listener -----------------------------------------------------------------

TEST_CASE("the listener sees each transition once, in order", "[breaker]") {
  breaker b{small_config(), t0};
  recorder rec;
  rec.attach(b);
  trip(b, t0);                 // closed -> open
  fail(b, t0 + 10s);           // open -> half_open -> open (20s)
  succeed(b, t0 + 30s);        // open -> half_open
  succeed(b, t0 + 30s);        // half_open -> closed
  b.force_open(t0 + 31s);      // closed -> forced_open
  b.disable(t0 + 32s);         // forced_open -> disabled
  b.reset(t0 + 33s);           // disabled -> closed
  b.reset(t0 + 34s);           // no-op
  b.disable(t0 + 35s);         // closed -> disabled
  b.disable(t0 + 36s);         // no-op
  b.state(t0 + 37s);
  b.stats(t0 + 38s);
  using st = breaker_state;
  std::vector<std::pair<st, st>> want = {
    {st::closed, st::open},          {st::open, st::half_open},
    {st::half_open, st::open},       {st::open, st::half_open},
    {st::half_open, st::closed},     {st::closed, st::forced_open},
    {st::forced_open, st::disabled}, {st::disabled, st::closed},
    {st::closed, st::disabled},
  };
  std::vector<time_point> at = {t0,        t0 + 10s,  t0 + 10s,
                                t0 + 30s,  t0 + 30s,  t0 + 31s,
                                t0 + 32s,  t0 + 33s,  t0 + 35s};
  REQUIRE(rec.seen.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK(rec.seen[i].from == want[i].first);
    CHECK(rec.seen[i].to == want[i].second);
    CHECK(rec.seen[i].at == at[i]);
    CHECK_FALSE(rec.seen[i].reason.empty());
    if (i > 0)
      CHECK(rec.seen[i].from == rec.seen[i - 1].to);
  }
}

// -- stats and health ---------------------------------------------------------

TEST_CASE("health_percentage follows the documented formula", "[breaker]") {
  SECTION("closed without a window: min(success rate, headroom)") {
    auto cfg = small_config();
    cfg.failure_threshold = 4;
    breaker b{cfg, t0};
    CHECK(b.stats(t0).health_percentage == 100.0);
    for (int i = 0; i < 9; ++i)
      succeed(b, t0);
    fail(b, t0);
    // Success rate 90%, headroom 1 - 1/4 = 75%.
    CHECK(b.stats(t0).health_percentage == Approx(75.0));
    succeed(b, t0);
    // 10 of 11 = 90.9%, headroom 100%.
    CHECK(b.stats(t0).health_percentage == Approx(100.0 * 10 / 11));
    fail(b, t0);
    fail(b, t0);
    fail(b, t0);
    // Headroom 1 - 3/4 = 25%.
    CHECK(b.stats(t0).health_percentage == Approx(25.0));
    CHECK(b.stats(t0).success_rate == Approx(100.0 * 10 / 14));
  }
  SECTION("closed with a window: success rate over the window") {
    auto cfg = small_config();
    cfg.failure_threshold = 0;
    cfg.window = window_kind::count_based;
    cfg.window_size = 4;
    cfg.minimum_calls = 4;
    cfg.failure_rate_threshold = 75;
    breaker b{cfg, t0};
    for (int i = 0; i < 4; ++i)
      fail(b, t0 - 1s);
    REQUIRE(b.current_state() == breaker_state::open);
    // Reset to get an empty window but keep lifetime failures.
    b.reset(t0);
    succeed(b, t0);
    succeed(b, t0);
    succeed(b, t0);
    fail(b, t0);
    CHECK(b.stats(t0).health_percentage == Approx(75.0));
    CHECK(b.stats(t0).success_rate < 75.0);
  }
  SECTION("open and forced_open: 0; half_open: 25 rising towards 50") {
    auto cfg = small_config();
    cfg.success_threshold = 4;
    breaker b{cfg, t0};
    trip(b, t0);
    CHECK(b.stats(t0).health_percentage == 0.0);
    CHECK(b.stats(t0 + 10s).health_percentage == 25.0); // due, unobserved
    succeed(b, t0 + 10s);
    CHECK(b.stats(t0 + 10s).health_percentage == Approx(31.25));
    succeed(b, t0 + 10s);
    succeed(b, t0 + 10s);
    CHECK(b.stats(t0 + 10s).health_percentage == Approx(43.75));
    CHECK(b.stats(t0 + 10s).health_percentage < 50.0);
    succeed(b, t0 + 10s);
    CHECK(b.stats(t0 + 10s).health_percentage == 100.0); // closed, fresh
    b.force_open(t0 + 11s);
    CHECK(b.stats(t0 + 11s).health_percentage == 0.0);
  }
  SECTION("disabled: success rate since disabled") {
    breaker b{small_config(), t0};
    fail(b, t0);
    b.disable(t0);
    CHECK(b.stats(t0).health_percentage == 100.0);
    succeed(b, t0);
    fail(b, t0);
    CHECK(b.stats(t0).health_percentage == Approx(50.0));
  }
}

TEST_CASE("stats report the open period of the next trip", "[breaker]") {
  breaker b{small_config(), t0};
  CHECK(b.stats(t0).open_period == 10s);
  trip(b, t0);
  CHECK(b.stats(t0).open_period == 10s);
  // In half_open the next open period is the grown one.
  CHECK(b.stats(t0 + 10s).open_period == 20s);
  CHECK(b.stats(t0 + 10s).open_until == std::nullopt);
  fail(b, t0 + 10s);
  auto s = b.stats(t0 + 10s);
  CHECK(s.open_period == 20s);
  REQUIRE(s.open_until);
  CHECK(*s.open_until == t0 + 30s);
}

// -- adaptive mode ------------------------------------------------------------

namespace {

/// small_config with adaptive bounds: threshold in [2, 10], recovery timeout
/// in [4s, 20s] (max_reset_timeout stays 40s), q = 0.001, smoothing 0.2.
breaker_config adaptive_config(bool enabled = true) {
  auto cfg = small_config();
  cfg.adaptive.enabled = enabled;
  cfg.adaptive.min_failure_threshold = 2;
  cfg.adaptive.max_failure_threshold = 10;
  cfg.adaptive.min_recovery_timeout = 4s;
  cfg.adaptive.max_recovery_timeout = 20s;
  cfg.adaptive.false_trip_probability = 0.001;
  cfg.adaptive.smoothing = 0.2;
  return cfg;
}

/// Records one call per character of `pattern` at `now`: `S` succeeds, `F`
/// fails.
void feed(breaker& b, time_point now, const std::string& pattern) {
  for (auto c : pattern) {
    if (c == 'S')
      succeed(b, now);
    else
      fail(b, now);
  }
}

/// A healthy but noisy callee: 30% failures, never two in a row.
const std::string noisy = [] {
  std::string result;
  for (int i = 0; i < 10; ++i)
    result += "SSFSSFSFSS";
  return result;
}();

/// Fails calls at `now` until the circuit opens; returns how many it took.
int trip_adaptive(breaker& b, time_point now) {
  int n = 0;
  while (b.current_state() == breaker_state::closed && n < 1000) {
    fail(b, now);
    ++n;
  }
  REQUIRE(b.current_state() == breaker_state::open);
  return n;
}

} // namespace

TEST_CASE("validate checks the adaptive bounds, naming the field",
          "[breaker][adaptive]") {
  auto check_rejects = [](const breaker_config& x, const std::string& prefix) {
    CAPTURE(prefix);
    auto err = ft::validate(x);
    REQUIRE(err);
    CHECK(ft::is(err, ft::errc::invalid_breaker_config));
    CHECK_THAT(message(err), StartsWith("invalid_breaker_config: " + prefix));
    CHECK_FALSE(breaker::make(x, t0));
  };
  auto with = [](bool enabled, auto f) {
    auto cfg = adaptive_config(enabled);
    f(cfg);
    return cfg;
  };
  CHECK_FALSE(ft::validate(adaptive_config()));
  // The defaults are valid, and so is enabling them on the default config.
  breaker_config defaults;
  defaults.adaptive.enabled = true;
  CHECK_FALSE(ft::validate(defaults));
  // Bounds are checked whether adaptive mode is on or off.
  for (auto enabled : {false, true}) {
    CAPTURE(enabled);
    check_rejects(with(enabled, [](auto& c) {
                    c.adaptive.min_failure_threshold = -1;
                  }),
                  "adaptive.min_failure_threshold = -1 (must be >= 1)");
    check_rejects(with(enabled, [](auto& c) {
                    c.adaptive.min_failure_threshold = 0;
                  }),
                  "adaptive.min_failure_threshold = 0 (must be >= 1)");
    check_rejects(with(enabled, [](auto& c) {
                    c.adaptive.max_failure_threshold = 1;
                  }),
                  "adaptive.max_failure_threshold = 1 (must be >= "
                  "adaptive.min_failure_threshold 2)");
    check_rejects(with(enabled, [](auto& c) {
                    c.adaptive.min_recovery_timeout = 0s;
                  }),
                  "adaptive.min_recovery_timeout = 0s (must be > 0)");
    check_rejects(with(enabled, [](auto& c) {
                    c.adaptive.min_recovery_timeout = -1s;
                  }),
                  "adaptive.min_recovery_timeout = -1s");
    check_rejects(with(enabled, [](auto& c) {
                    c.adaptive.max_recovery_timeout = 3s;
                  }),
                  "adaptive.max_recovery_timeout = 3s (must be >= "
                  "adaptive.min_recovery_timeout 4s)");
    for (auto q : {0.0, 1.0, -0.5, 2.0, std::nan("")})
      check_rejects(with(enabled, [q](auto& c) {
                      c.adaptive.false_trip_probability = q;
                    }),
                    "adaptive.false_trip_probability = ");
    check_rejects(with(enabled, [](auto& c) {
                    c.adaptive.false_trip_probability = 1.5;
                  }),
                  "adaptive.false_trip_probability = 1.5 (must be in (0, 1))");
    for (auto s : {0.0, -0.1, 1.5, std::nan("")})
      check_rejects(with(enabled, [s](auto& c) { c.adaptive.smoothing = s; }),
                    "adaptive.smoothing = ");
    check_rejects(with(enabled, [](auto& c) { c.adaptive.smoothing = 0; }),
                  "adaptive.smoothing = 0 (must be in (0, 1])");
  }
  // smoothing 1 (only the newest observation counts) is allowed.
  CHECK_FALSE(ft::validate(with(true, [](auto& c) {
    c.adaptive.smoothing = 1.0;
  })));
  // Enabled: the configured values must lie within the bounds ...
  check_rejects(with(true, [](auto& c) { c.failure_threshold = 11; }),
                "failure_threshold = 11 (must be within the adaptive bounds "
                "[2, 10])");
  check_rejects(with(true, [](auto& c) { c.failure_threshold = 1; }),
                "failure_threshold = 1");
  check_rejects(with(true, [](auto& c) { c.recovery_timeout = 3s; }),
                "recovery_timeout = 3s (must be within the adaptive bounds "
                "[4s, 20s])");
  check_rejects(with(true, [](auto& c) { c.recovery_timeout = 30s; }),
                "recovery_timeout = 30s");
  // ... and a failed trial must never shorten the open period.
  check_rejects(with(true, [](auto& c) { c.max_reset_timeout = 15s; }),
                "adaptive.max_recovery_timeout = 20s (must be <= "
                "max_reset_timeout 15s");
  // Off: the configured values need not lie within the bounds.
  CHECK_FALSE(ft::validate(with(false, [](auto& c) {
    c.failure_threshold = 50;
    c.recovery_timeout = 1s;
    c.max_reset_timeout = 2s;
  })));
}

TEST_CASE("adaptive mode off leaves the breaker unchanged",
          "[breaker][adaptive]") {
  // Same schedule on a breaker with default adaptive settings and one with
  // (disabled) adaptive bounds: identical transitions and open periods.
  breaker plain{small_config(), t0};
  breaker off{adaptive_config(false), t0};
  recorder plain_rec;
  recorder off_rec;
  plain_rec.attach(plain);
  off_rec.attach(off);
  auto t = t0;
  for (auto* b : {&plain, &off}) {
    feed(*b, t, noisy);
    feed(*b, t, "FFF"); // trips the fixed threshold of 3
    fail(*b, t + 10s);  // failed trial: open 20s
    feed(*b, t + 30s, "SS");
    feed(*b, t + 31s, noisy);
    feed(*b, t + 31s, "FFF");
  }
  REQUIRE(off_rec.seen.size() == plain_rec.seen.size());
  REQUIRE(off_rec.seen.size() == 6);
  for (size_t i = 0; i < off_rec.seen.size(); ++i) {
    CAPTURE(i);
    CHECK(off_rec.seen[i].from == plain_rec.seen[i].from);
    CHECK(off_rec.seen[i].to == plain_rec.seen[i].to);
    CHECK(off_rec.seen[i].at == plain_rec.seen[i].at);
    CHECK(off_rec.seen[i].reason == plain_rec.seen[i].reason);
  }
  CHECK(off_rec.seen[0].reason
        == "3 consecutive failures (failure_threshold = 3)");
  CHECK(off_rec.seen[4].reason
        == "2 trial successes (success_threshold = 2)");
  // The effective values are the configured ones; nothing is observed.
  auto s = off.stats(t + 31s);
  CHECK(s.effective_failure_threshold == 3);
  CHECK(s.effective_recovery_timeout == 10s);
  CHECK(s.observed_failure_rate == 0.0);
  CHECK(s.observed_recovery_time == caf::timespan{0});
  REQUIRE(s.open_until);
  CHECK(*s.open_until == t + 41s);
}

TEST_CASE("adaptive: a noisy but healthy callee raises the threshold; chance "
          "runs do not trip",
          "[breaker][adaptive]") {
  breaker b{adaptive_config(), t0};
  recorder rec;
  rec.attach(b);
  // Before any observation: the configured values.
  auto s = b.stats(t0);
  CHECK(s.effective_failure_threshold == 3);
  CHECK(s.effective_recovery_timeout == 10s);
  // The starting rate is the one the configured threshold suits: p^3 = q.
  CHECK(s.observed_failure_rate == Approx(10.0));
  feed(b, t0, noisy);
  s = b.stats(t0);
  CHECK(s.observed_failure_rate > 20.0);
  CHECK(s.observed_failure_rate < 40.0);
  // p ~ 0.3 needs 6 failures in a row for p^k <= 0.001.
  CHECK(s.effective_failure_threshold >= 5);
  CHECK(s.effective_failure_threshold <= 7);
  CHECK(rec.seen.empty());
  // A chance run trips a fixed threshold of 2 (and one of 3, the configured
  // start), but not the adaptive breaker.
  for (auto fixed_threshold : {2, 3}) {
    auto fixed_cfg = small_config();
    fixed_cfg.failure_threshold = fixed_threshold;
    breaker fixed{fixed_cfg, t0};
    feed(fixed, t0, noisy);
    REQUIRE(fixed.current_state() == breaker_state::closed);
    feed(fixed, t0, std::string(fixed_threshold, 'F'));
    CHECK(fixed.current_state() == breaker_state::open);
  }
  feed(b, t0, "FFF");
  CHECK(b.current_state() == breaker_state::closed);
  CHECK(b.stats(t0).consecutive_failures == 3);
  // Health measures the headroom against the threshold in force.
  auto k = b.stats(t0).effective_failure_threshold;
  CHECK(b.stats(t0).health_percentage
        == Approx(100.0 * (1.0 - 3.0 / k)).margin(1e-9));
  // The success ending the run counts the run as noise: the bar goes up,
  // within the bounds.
  succeed(b, t0);
  s = b.stats(t0);
  CHECK(s.effective_failure_threshold > k);
  CHECK(s.effective_failure_threshold <= 10);
  CHECK(rec.seen.empty());
}

TEST_CASE("adaptive: the threshold never exceeds max_failure_threshold",
          "[breaker][adaptive]") {
  breaker b{adaptive_config(), t0};
  // Noise growing to 70% failures in runs of up to 4: the threshold grows
  // ahead of the runs, then stops at the bound.
  for (int i = 0; i < 3; ++i)
    feed(b, t0, "FFS");
  for (int i = 0; i < 3; ++i)
    feed(b, t0, "FFFS");
  for (int i = 0; i < 20; ++i)
    feed(b, t0, "FFFFSFFFS");
  REQUIRE(b.current_state() == breaker_state::closed);
  auto s = b.stats(t0);
  CHECK(s.observed_failure_rate > 60.0);
  CHECK(s.effective_failure_threshold == 10);
  CHECK(trip_adaptive(b, t0) == 10);
}

TEST_CASE("adaptive: a clean callee lowers the threshold to the minimum",
          "[breaker][adaptive]") {
  breaker b{adaptive_config(), t0};
  recorder rec;
  rec.attach(b);
  feed(b, t0, std::string(30, 'S'));
  auto s = b.stats(t0);
  CHECK(s.observed_failure_rate < 0.1);
  CHECK(s.effective_failure_threshold == 2);
  fail(b, t0);
  CHECK(b.stats(t0).health_percentage == Approx(50.0));
  fail(b, t0);
  CHECK(b.current_state() == breaker_state::open);
  REQUIRE(rec.seen.size() == 1);
  CHECK_THAT(rec.seen[0].reason,
             StartsWith("2 consecutive failures (failure_threshold = 2, "
                        "adaptive to a failure rate of "));
}

TEST_CASE("adaptive: an outage trips at the learned threshold and does not "
          "count as noise",
          "[breaker][adaptive]") {
  breaker b{adaptive_config(), t0};
  recorder rec;
  rec.attach(b);
  feed(b, t0, noisy);
  auto before = b.stats(t0);
  auto k = before.effective_failure_threshold;
  REQUIRE(k > 3);
  // The run in progress does not raise the bar it is measured against.
  for (int i = 1; i < k; ++i)
    fail(b, t0);
  CHECK(b.current_state() == breaker_state::closed);
  CHECK(b.stats(t0).effective_failure_threshold == k);
  fail(b, t0);
  CHECK(b.current_state() == breaker_state::open);
  REQUIRE(rec.seen.size() == 1);
  CHECK_THAT(rec.seen[0].reason,
             StartsWith(std::to_string(k) + " consecutive failures "
                        "(failure_threshold = " + std::to_string(k)
                        + ", adaptive to a failure rate of "));
  // The tripping run is an outage, not noise: neither the rate nor the
  // threshold moved, also after the circuit closed again.
  auto after = b.stats(t0 + 10s);
  CHECK(after.observed_failure_rate == before.observed_failure_rate);
  feed(b, t0 + 10s, "SS");
  REQUIRE(b.current_state() == breaker_state::closed);
  after = b.stats(t0 + 10s);
  CHECK(after.observed_failure_rate == before.observed_failure_rate);
  CHECK(after.effective_failure_threshold == k);
}

TEST_CASE("adaptive: the recovery timeout follows observed recovery times",
          "[breaker][adaptive]") {
  auto cfg = adaptive_config();
  cfg.adaptive.smoothing = 0.5;
  breaker b{cfg, t0};
  recorder rec;
  rec.attach(b);
  // Outage 1: the trial at +10s fails, the one at +30s succeeds. The callee
  // came back between the two: observed (10s + 30s) / 2 = 20s, so the
  // average moves from 10s halfway to 20s.
  trip_adaptive(b, t0);
  fail(b, t0 + 10s);
  feed(b, t0 + 30s, "SS");
  REQUIRE(b.current_state() == breaker_state::closed);
  CHECK_THAT(rec.seen.back().reason,
             Contains("2 trial successes (success_threshold = 2); recovered "
                      "after about 20s, recovery_timeout 15s (adaptive)"));
  auto s = b.stats(t0 + 30s);
  CHECK(s.effective_recovery_timeout == 15s);
  CHECK(s.observed_recovery_time == 15s);
  CHECK(s.open_period == 15s);
  // Outage 2 waits 15s; the first trial succeeds: observed 7.5s, average
  // 11.25s.
  auto t1 = t0 + 100s;
  trip_adaptive(b, t1);
  s = b.stats(t1);
  REQUIRE(s.open_until);
  CHECK(*s.open_until == t1 + 15s);
  CHECK(b.state(t1 + 15s - 1ns) == breaker_state::open);
  feed(b, t1 + 15s, "SS");
  REQUIRE(b.current_state() == breaker_state::closed);
  CHECK(b.stats(t1 + 15s).effective_recovery_timeout == 11250ms);
  // Failed trials still grow the open period from the tuned start.
  auto t2 = t0 + 200s;
  trip_adaptive(b, t2);
  fail(b, t2 + 11250ms);
  CHECK(b.stats(t2 + 11250ms).open_period == 22500ms);
  // A manual reset, of an open or a closed circuit, keeps what was learned.
  for (auto t : {t2 + 12s, t2 + 13s}) {
    b.reset(t);
    REQUIRE(b.current_state() == breaker_state::closed);
    CHECK(b.stats(t).open_period == 11250ms);
    CHECK(b.stats(t).effective_recovery_timeout == 11250ms);
  }
}

TEST_CASE("adaptive: the recovery timeout is clamped at both bounds",
          "[breaker][adaptive]") {
  auto cfg = adaptive_config();
  cfg.adaptive.smoothing = 0.5;
  breaker b{cfg, t0};
  auto t = t0;
  SECTION("fast recoveries: down to min_recovery_timeout") {
    // Each first trial succeeds: observed half the wait, so the average
    // halves towards 0 ... but the wait stops at 4s.
    for (int i = 0; i < 8; ++i) {
      trip_adaptive(b, t);
      auto wait = *b.stats(t).open_until - t;
      CHECK(wait >= 4s);
      feed(b, t + wait, "SS");
      REQUIRE(b.current_state() == breaker_state::closed);
      t += 100s;
    }
    auto s = b.stats(t);
    CHECK(s.effective_recovery_timeout == 4s);
    CHECK(s.observed_recovery_time < 4s);
    trip_adaptive(b, t);
    CHECK(*b.stats(t).open_until == t + 4s);
  }
  SECTION("slow recoveries: up to max_recovery_timeout") {
    // Trials fail at +10s and +30s (open 20s, then 40s), succeed at +70s:
    // observed (30s + 70s) / 2 = 50s, average 30s, clamped to 20s.
    trip_adaptive(b, t);
    fail(b, t + 10s);
    fail(b, t + 30s);
    feed(b, t + 70s, "SS");
    REQUIRE(b.current_state() == breaker_state::closed);
    auto s = b.stats(t + 70s);
    CHECK(s.observed_recovery_time == 30s);
    CHECK(s.effective_recovery_timeout == 20s);
    t += 100s;
    trip_adaptive(b, t);
    CHECK(*b.stats(t).open_until == t + 20s);
    CHECK(b.state(t + 20s) == breaker_state::half_open);
  }
}
