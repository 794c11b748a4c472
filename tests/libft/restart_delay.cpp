#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <string>

#include <caf/actor_clock.hpp>

#include "ft/error.hpp"
#include "ft/restart_delay.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

using time_point = caf::actor_clock::time_point;
using ft::restart_delay;
using ft::restart_delay_state;

const time_point t0 = time_point{} + std::chrono::hours(1);

// A child that fails shortly after starting: never counts as stable.
constexpr auto stable_after = 5s;
constexpr auto short_run = 10ms;

caf::timespan ns(double x) {
  return caf::timespan{static_cast<caf::timespan::rep>(x)};
}

// Drives `state` like a supervisor: a failure at `now` of a child started
// `short_run` earlier.
caf::expected<caf::timespan> fail_at(restart_delay_state& state,
                                     const restart_delay& policy,
                                     time_point now, double random01 = 0.5) {
  return state.next(policy, now, now - short_run, stable_after, random01);
}

std::string message(const caf::error& err) {
  return ft::render(err);
}

} // namespace

// -- validate -----------------------------------------------------------------

TEST_CASE("validate accepts well-formed delays", "[restart_delay]") {
  CHECK_FALSE(ft::validate(restart_delay::none()));
  CHECK_FALSE(ft::validate(restart_delay::fixed(0s)));
  CHECK_FALSE(ft::validate(restart_delay::fixed(250ms, 3)));
  CHECK_FALSE(ft::validate(restart_delay::exponential(100ms, 5s)));
  CHECK_FALSE(ft::validate(restart_delay::exponential(1s, 1s, 1.0)));
  CHECK_FALSE(ft::validate(restart_delay::exponential(1s, 10s, 2.0, 5, 0.0)));
  CHECK_FALSE(ft::validate(restart_delay::exponential(1s, 10s, 2.0, 5, 1.0)));
  CHECK_FALSE(ft::validate(restart_delay::failure_rate(1, 1s, 0s)));
  CHECK_FALSE(ft::validate(restart_delay::failure_rate(3, 60s, 1s)));
}

TEST_CASE("validate rejects each out-of-range field, naming it",
          "[restart_delay]") {
  auto check_rejects = [](const restart_delay& x, const std::string& field) {
    CAPTURE(field, ft::to_string(x.type));
    auto err = ft::validate(x);
    REQUIRE(err);
    CHECK(ft::is(err, ft::errc::invalid_delay));
    CHECK_THAT(message(err), StartsWith("invalid_delay: " + field + " = "));
  };
  SECTION("fixed") {
    check_rejects(restart_delay::fixed(-1ms), "delay");
    check_rejects(restart_delay::fixed(1s, -1), "max_attempts");
  }
  SECTION("exponential") {
    check_rejects(restart_delay::exponential(0s, 1s), "initial_delay");
    check_rejects(restart_delay::exponential(-1s, 1s), "initial_delay");
    check_rejects(restart_delay::exponential(2s, 1s), "max_delay");
    check_rejects(restart_delay::exponential(1s, 2s, 0.5), "multiplier");
    check_rejects(restart_delay::exponential(1s, 2s, 0.0), "multiplier");
    check_rejects(restart_delay::exponential(1s, 2s, std::nan("")),
                  "multiplier");
    check_rejects(restart_delay::exponential(1s, 2s, HUGE_VAL), "multiplier");
    check_rejects(restart_delay::exponential(1s, 2s, 2.0, 0, -0.1), "jitter");
    check_rejects(restart_delay::exponential(1s, 2s, 2.0, 0, 1.5), "jitter");
    check_rejects(restart_delay::exponential(1s, 2s, 2.0, 0, std::nan("")),
                  "jitter");
    check_rejects(restart_delay::exponential(1s, 2s, 2.0, -1), "max_attempts");
  }
  SECTION("failure_rate") {
    check_rejects(restart_delay::failure_rate(0, 10s, 1s),
                  "max_failures_per_interval");
    check_rejects(restart_delay::failure_rate(-2, 10s, 1s),
                  "max_failures_per_interval");
    check_rejects(restart_delay::failure_rate(3, 0s, 1s), "interval_seconds");
    check_rejects(restart_delay::failure_rate(3, -5s, 1s), "interval_seconds");
    check_rejects(restart_delay::failure_rate(3, 10s, -1s), "delay");
  }
  SECTION("unknown kind") {
    restart_delay x;
    x.type = static_cast<restart_delay::kind>(42);
    auto err = ft::validate(x);
    REQUIRE(err);
    CHECK(ft::is(err, ft::errc::invalid_delay));
  }
}

TEST_CASE("validate names the offending value", "[restart_delay]") {
  auto err = ft::validate(restart_delay::fixed(1s, -7));
  CHECK_THAT(message(err), Contains("-7"));
  err = ft::validate(restart_delay::failure_rate(-2, 10s, 1s));
  CHECK_THAT(message(err), Contains("-2"));
  err = ft::validate(restart_delay::exponential(1s, 2s, 0.5));
  CHECK_THAT(message(err), Contains("0.5"));
}

TEST_CASE("factories set the kind and the parameters", "[restart_delay]") {
  auto f = restart_delay::fixed(250ms, 3);
  CHECK(f.type == restart_delay::kind::fixed);
  CHECK(f.delay == 250ms);
  CHECK(f.max_attempts == 3);
  auto e = restart_delay::exponential(100ms, 5s, 3.0, 7, 0.25);
  CHECK(e.type == restart_delay::kind::exponential);
  CHECK(e.initial_delay == 100ms);
  CHECK(e.max_delay == 5s);
  CHECK(e.multiplier == 3.0);
  CHECK(e.max_attempts == 7);
  CHECK(e.jitter == 0.25);
  auto r = restart_delay::failure_rate(4, 30s, 2s);
  CHECK(r.type == restart_delay::kind::failure_rate);
  CHECK(r.max_failures_per_interval == 4);
  CHECK(r.interval == 30s);
  CHECK(r.delay == 2s);
  CHECK(restart_delay::none().type == restart_delay::kind::none);
}

TEST_CASE("to_string names each delay kind", "[restart_delay]") {
  CHECK(std::string{ft::to_string(restart_delay::kind::none)} == "none");
  CHECK(std::string{ft::to_string(restart_delay::kind::fixed)} == "fixed");
  CHECK(std::string{ft::to_string(restart_delay::kind::exponential)}
        == "exponential");
  CHECK(std::string{ft::to_string(restart_delay::kind::failure_rate)}
        == "failure_rate");
}

// -- none ---------------------------------------------------------------------

TEST_CASE("none gives zero delays and never gives up", "[restart_delay]") {
  restart_delay_state state;
  auto policy = restart_delay::none();
  for (int i = 0; i < 1000; ++i) {
    auto d = fail_at(state, policy, t0 + i * 1ms);
    REQUIRE(d);
    REQUIRE(*d == caf::timespan{0});
  }
  CHECK(state.attempts() == 1000);
}

// -- fixed --------------------------------------------------------------------

TEST_CASE("fixed gives a constant delay", "[restart_delay]") {
  restart_delay_state state;
  auto policy = restart_delay::fixed(250ms);
  for (int i = 0; i < 50; ++i) {
    auto d = fail_at(state, policy, t0 + i * 1ms);
    REQUIRE(d);
    CHECK(*d == 250ms);
  }
  CHECK(state.attempts() == 50);
}

TEST_CASE("fixed with max_attempts gives up after that many attempts",
          "[restart_delay]") {
  restart_delay_state state;
  auto policy = restart_delay::fixed(100ms, 3);
  auto now = t0;
  for (int i = 0; i < 3; ++i) {
    auto d = fail_at(state, policy, now);
    REQUIRE(d);
    CHECK(*d == 100ms);
    now += 200ms;
  }
  CHECK(state.attempts() == 3);
  auto d = fail_at(state, policy, now);
  REQUIRE_FALSE(d);
  CHECK(ft::is(d.error(), ft::errc::max_attempts_exceeded));
  CHECK_THAT(message(d.error()), Contains("max_attempts = 3"));
  // It keeps refusing while the child keeps failing fast.
  CHECK_FALSE(fail_at(state, policy, now + 200ms));
  // reset() starts afresh.
  state.reset();
  CHECK(state.attempts() == 0);
  CHECK(fail_at(state, policy, now + 400ms));
}

// -- exponential --------------------------------------------------------------

TEST_CASE("exponential doubles from initial_delay and caps at max_delay",
          "[restart_delay]") {
  restart_delay_state state;
  auto policy = restart_delay::exponential(100ms, 1s);
  const caf::timespan expected[] = {100ms, 200ms, 400ms, 800ms, 1s, 1s, 1s};
  auto now = t0;
  for (auto want : expected) {
    auto d = fail_at(state, policy, now);
    REQUIRE(d);
    CHECK(*d == want);
    now += 1ms;
  }
}

TEST_CASE("exponential uses the multiplier", "[restart_delay]") {
  restart_delay_state state;
  auto policy = restart_delay::exponential(100ms, 2s, 3.0);
  const caf::timespan expected[] = {100ms, 300ms, 900ms, 2s, 2s};
  auto now = t0;
  for (auto want : expected) {
    auto d = fail_at(state, policy, now);
    REQUIRE(d);
    CHECK(*d == want);
    now += 1ms;
  }
}

TEST_CASE("exponential with multiplier 1 stays at initial_delay",
          "[restart_delay]") {
  restart_delay_state state;
  auto policy = restart_delay::exponential(300ms, 10s, 1.0);
  for (int i = 0; i < 20; ++i) {
    auto d = fail_at(state, policy, t0 + i * 1ms);
    REQUIRE(d);
    CHECK(*d == 300ms);
  }
}

TEST_CASE("exponential never overflows, even with a huge max_delay",
          "[restart_delay]") {
  restart_delay_state state;
  auto policy = restart_delay::exponential(1ms, caf::timespan::max(), 10.0);
  caf::timespan previous{0};
  for (int i = 0; i < 200; ++i) {
    CAPTURE(i);
    auto d = fail_at(state, policy, t0 + i * 1ms);
    REQUIRE(d);
    REQUIRE(d->count() > 0);
    REQUIRE(*d >= previous);
    previous = *d;
  }
  CHECK(previous == caf::timespan::max());
}

TEST_CASE("exponential with max_attempts gives up after that many attempts",
          "[restart_delay]") {
  restart_delay_state state;
  auto policy = restart_delay::exponential(100ms, 10s, 2.0, 4);
  for (int i = 0; i < 4; ++i)
    REQUIRE(fail_at(state, policy, t0 + i * 1ms));
  auto d = fail_at(state, policy, t0 + 4ms);
  REQUIRE_FALSE(d);
  CHECK(ft::is(d.error(), ft::errc::max_attempts_exceeded));
}

TEST_CASE("jitter 0 and 1 give the bounds of the jitter range",
          "[restart_delay]") {
  auto policy = restart_delay::exponential(100ms, 10s, 2.0, 0, 0.2);
  auto first = [&](double u) {
    restart_delay_state state;
    auto d = fail_at(state, policy, t0, u);
    REQUIRE(d);
    return *d;
  };
  // base = 100ms: range [80ms, 120ms].
  CHECK(std::abs((first(0.0) - 80ms).count()) <= 1);
  CHECK(std::abs((first(std::nextafter(1.0, 0.0)) - 120ms).count()) <= 1);
  CHECK(std::abs((first(0.5) - 100ms).count()) <= 1);
  // Out-of-range draws are clamped to the range.
  CHECK(std::abs((first(-3.0) - 80ms).count()) <= 1);
  CHECK(std::abs((first(7.0) - 120ms).count()) <= 1);
}

TEST_CASE("jittered delays lie within bounds and spread over them",
          "[restart_delay]") {
  std::mt19937 gen{42};
  std::uniform_real_distribution<double> dist{0.0, 1.0};
  SECTION("below the cap") {
    // attempt 0: base = 100ms, jitter 0.3 -> [70ms, 130ms].
    auto policy = restart_delay::exponential(100ms, 10s, 2.0, 0, 0.3);
    const auto lo = ns(100e6 * 0.7);
    const auto hi = ns(100e6 * 1.3);
    caf::timespan min = caf::timespan::max();
    caf::timespan max = caf::timespan::min();
    double sum = 0;
    for (int i = 0; i < 10000; ++i) {
      restart_delay_state state;
      auto d = fail_at(state, policy, t0, dist(gen));
      REQUIRE(d);
      REQUIRE(*d >= lo - caf::timespan{1});
      REQUIRE(*d <= hi + caf::timespan{1});
      min = std::min(min, *d);
      max = std::max(max, *d);
      sum += static_cast<double>(d->count());
    }
    CHECK(min < lo + 100us);
    CHECK(max > hi - 100us);
    // Centered on the base.
    auto mean = ns(sum / 10000);
    CHECK(mean > 99ms);
    CHECK(mean < 101ms);
  }
  SECTION("at a later attempt") {
    // attempt 2: base = 400ms, jitter 0.5 -> [200ms, 600ms].
    auto policy = restart_delay::exponential(100ms, 10s, 2.0, 0, 0.5);
    caf::timespan min = caf::timespan::max();
    caf::timespan max = caf::timespan::min();
    for (int i = 0; i < 10000; ++i) {
      restart_delay_state state;
      REQUIRE(fail_at(state, policy, t0, 0.5));
      REQUIRE(fail_at(state, policy, t0 + 1ms, 0.5));
      auto d = fail_at(state, policy, t0 + 2ms, dist(gen));
      REQUIRE(d);
      REQUIRE(*d >= 200ms - caf::timespan{1});
      REQUIRE(*d <= 600ms + caf::timespan{1});
      min = std::min(min, *d);
      max = std::max(max, *d);
    }
    CHECK(min < 201ms);
    CHECK(max > 599ms);
  }
  SECTION("at the cap, jitter never exceeds max_delay") {
    // attempt 1: base = min(2s, 1500ms) = 1500ms, jitter 0.5
    //   -> [750ms, min(2250ms, 1500ms)].
    auto policy = restart_delay::exponential(1s, 1500ms, 2.0, 0, 0.5);
    caf::timespan min = caf::timespan::max();
    caf::timespan max = caf::timespan::min();
    int at_cap = 0;
    for (int i = 0; i < 10000; ++i) {
      restart_delay_state state;
      REQUIRE(fail_at(state, policy, t0, 0.5));
      auto d = fail_at(state, policy, t0 + 1ms, dist(gen));
      REQUIRE(d);
      REQUIRE(*d >= 750ms - caf::timespan{1});
      REQUIRE(*d <= 1500ms);
      min = std::min(min, *d);
      max = std::max(max, *d);
      if (*d == 1500ms)
        ++at_cap;
    }
    CHECK(min < 751ms);
    CHECK(max == 1500ms);
    // Half of the draws land above the base and get capped.
    CHECK(at_cap > 4000);
    CHECK(at_cap < 6000);
  }
}

// -- stable runs --------------------------------------------------------------

TEST_CASE("a child that stayed up for stable_after starts a fresh schedule",
          "[restart_delay]") {
  restart_delay_state state;
  auto policy = restart_delay::exponential(100ms, 10s);
  auto now = t0;
  for (auto want : {100ms, 200ms, 400ms}) {
    auto d = state.next(policy, now, now - 10ms, stable_after, 0.5);
    REQUIRE(d);
    CHECK(*d == want);
    now += 1s;
  }
  CHECK(state.attempts() == 3);
  SECTION("up for exactly stable_after resets") {
    auto d = state.next(policy, now, now - stable_after, stable_after, 0.5);
    REQUIRE(d);
    CHECK(*d == 100ms);
    CHECK(state.attempts() == 1);
    d = state.next(policy, now + 1s, now + 1s - 10ms, stable_after, 0.5);
    REQUIRE(d);
    CHECK(*d == 200ms);
  }
  SECTION("up for longer resets") {
    auto d = state.next(policy, now, now - 1h, stable_after, 0.5);
    REQUIRE(d);
    CHECK(*d == 100ms);
    CHECK(state.attempts() == 1);
  }
  SECTION("up for just under stable_after does not reset") {
    auto d = state.next(policy, now, now - stable_after + 1ms, stable_after,
                        0.5);
    REQUIRE(d);
    CHECK(*d == 800ms);
    CHECK(state.attempts() == 4);
  }
}

TEST_CASE("a stable run resets max_attempts", "[restart_delay]") {
  restart_delay_state state;
  auto policy = restart_delay::fixed(100ms, 2);
  REQUIRE(fail_at(state, policy, t0));
  REQUIRE(fail_at(state, policy, t0 + 1s));
  REQUIRE_FALSE(fail_at(state, policy, t0 + 2s));
  auto now = t0 + 1h;
  auto d = state.next(policy, now, now - stable_after, stable_after, 0.5);
  REQUIRE(d);
  CHECK(*d == 100ms);
  CHECK(fail_at(state, policy, now + 1s));
  CHECK_FALSE(fail_at(state, policy, now + 2s));
}

// -- failure_rate -------------------------------------------------------------

TEST_CASE("failure_rate allows max_failures_per_interval failures per interval",
          "[restart_delay]") {
  restart_delay_state state;
  auto policy = restart_delay::failure_rate(3, 10s, 1s);
  for (int i = 0; i < 3; ++i) {
    auto d = fail_at(state, policy, t0 + i * 1s);
    REQUIRE(d);
    CHECK(*d == 1s);
  }
  auto d = fail_at(state, policy, t0 + 3s);
  REQUIRE_FALSE(d);
  CHECK(ft::is(d.error(), ft::errc::max_attempts_exceeded));
  CHECK_THAT(message(d.error()), Contains("max_failures_per_interval = 3"));
}

TEST_CASE("failure_rate: failures spread wider than the interval never give up",
          "[restart_delay]") {
  restart_delay_state state;
  auto policy = restart_delay::failure_rate(1, 10s, 500ms);
  auto now = t0;
  for (int i = 0; i < 100; ++i) {
    CAPTURE(i);
    auto d = fail_at(state, policy, now);
    REQUIRE(d);
    REQUIRE(*d == 500ms);
    now += 10s + 1ms;
  }
}

TEST_CASE("failure_rate: the interval slides", "[restart_delay]") {
  restart_delay_state state;
  auto policy = restart_delay::failure_rate(3, 10s, 1s);
  REQUIRE(fail_at(state, policy, t0));
  REQUIRE(fail_at(state, policy, t0 + 1s));
  REQUIRE(fail_at(state, policy, t0 + 2s));
  // The failure at t0 is older than 10s at t0 + 10.5s.
  CHECK(fail_at(state, policy, t0 + 10500ms));
  // Now t0+1s, t0+2s and t0+10.5s are in the window; one more within 10s of
  // t0+1s is too many.
  CHECK_FALSE(fail_at(state, policy, t0 + 10800ms));
}

TEST_CASE("failure_rate counts failures of children that ran a while",
          "[restart_delay]") {
  // A failure rate counts failures in time, not consecutive fast failures:
  // a child that ran longer than stable_after still counts within interval.
  restart_delay_state state;
  auto policy = restart_delay::failure_rate(2, 60s, 1s);
  auto after_run = [&](time_point now) {
    return state.next(policy, now, now - 9s, stable_after, 0.5);
  };
  REQUIRE(after_run(t0));
  REQUIRE(after_run(t0 + 10s));
  auto d = after_run(t0 + 20s);
  REQUIRE_FALSE(d);
  CHECK(ft::is(d.error(), ft::errc::max_attempts_exceeded));
}
