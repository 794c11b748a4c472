#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <caf/actor_clock.hpp>
#include <caf/sec.hpp>

#include "ft/deadline.hpp"
#include "ft/error.hpp"
#include "ft/retry.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;

namespace {

using time_point = caf::actor_clock::time_point;
using ft::backoff_kind;
using ft::errc;
using ft::jitter_kind;
using ft::retry_policy;
using ft::retry_state;

const time_point t0 = time_point{} + std::chrono::hours(1);

// A transient failure worth retrying.
const caf::error boom = ft::make_error(errc::call_timeout, "backend slow");

retry_policy make_policy(backoff_kind kind, caf::timespan initial,
                         caf::timespan max, int max_attempts = 100,
                         double multiplier = 2.0) {
  retry_policy p;
  p.backoff = kind;
  p.initial_delay = initial;
  p.max_delay = max;
  p.max_attempts = max_attempts;
  p.multiplier = multiplier;
  return p;
}

// The pauses of `n` consecutive failures, each attempt failing 10ms after the
// previous pause ended.
std::vector<caf::timespan> schedule(const retry_policy& p, int n,
                                    double random01 = 0.5) {
  std::vector<caf::timespan> result;
  retry_state st;
  auto now = t0;
  st.start(now);
  for (int i = 0; i < n; ++i) {
    now += 10ms;
    auto d = st.next(p, now, boom, random01);
    REQUIRE(d);
    result.push_back(*d);
    now += *d;
  }
  return result;
}

std::vector<caf::timespan> ms(std::initializer_list<int> xs) {
  std::vector<caf::timespan> result;
  for (auto x : xs)
    result.emplace_back(std::chrono::milliseconds(x));
  return result;
}

} // namespace

// -- enums --------------------------------------------------------------------

TEST_CASE("retry: backoff and jitter kinds round-trip through strings",
          "[retry]") {
  for (auto k : {backoff_kind::fixed, backoff_kind::linear,
                 backoff_kind::exponential,
                 backoff_kind::exponential_with_jitter}) {
    auto parsed = ft::parse_backoff_kind(ft::to_string(k));
    REQUIRE(parsed);
    CHECK(*parsed == k);
  }
  for (auto k : {jitter_kind::full, jitter_kind::decorrelated}) {
    auto parsed = ft::parse_jitter_kind(ft::to_string(k));
    REQUIRE(parsed);
    CHECK(*parsed == k);
  }
  CHECK(std::string{ft::to_string(backoff_kind::exponential_with_jitter)}
        == "exponential_with_jitter");
  CHECK(std::string{ft::to_string(jitter_kind::decorrelated)}
        == "decorrelated");
  CHECK_FALSE(ft::parse_backoff_kind("Exponential"));
  CHECK_FALSE(ft::parse_backoff_kind(""));
  CHECK_FALSE(ft::parse_jitter_kind("equal"));
}

// -- schedules ----------------------------------------------------------------

TEST_CASE("retry: defaults: exponential from 100ms, cap 10s, 3 attempts",
          "[retry]") {
  retry_policy p;
  CHECK(p.backoff == backoff_kind::exponential);
  CHECK(p.jitter == jitter_kind::full);
  CHECK(p.initial_delay == 100ms);
  CHECK(p.max_delay == 10s);
  CHECK(p.multiplier == 2.0);
  CHECK(p.max_attempts == 3);
  CHECK(p.max_elapsed == 0s);
  CHECK_FALSE(p.retryable);
  CHECK_FALSE(p.wait_for_half_open);
  CHECK_FALSE(ft::validate(p));
  CHECK(schedule(p, 2) == ms({100, 200}));
}

TEST_CASE("retry: fixed: always initial_delay", "[retry]") {
  auto p = make_policy(backoff_kind::fixed, 250ms, 10s);
  CHECK(schedule(p, 6) == ms({250, 250, 250, 250, 250, 250}));
  // Jitter settings and the multiplier do not apply.
  p.multiplier = 5.0;
  p.jitter = jitter_kind::decorrelated;
  CHECK(schedule(p, 3, 0.0) == ms({250, 250, 250}));
  // Zero means immediate retries.
  p.initial_delay = 0s;
  CHECK_FALSE(ft::validate(p));
  CHECK(schedule(p, 3) == ms({0, 0, 0}));
}

TEST_CASE("retry: linear: initial_delay * n, capped at max_delay", "[retry]") {
  auto p = make_policy(backoff_kind::linear, 100ms, 450ms);
  CHECK(schedule(p, 7) == ms({100, 200, 300, 400, 450, 450, 450}));
  p.max_delay = 10s;
  CHECK(schedule(p, 5) == ms({100, 200, 300, 400, 500}));
  // The multiplier does not apply.
  p.multiplier = 3.0;
  CHECK(schedule(p, 3) == ms({100, 200, 300}));
}

TEST_CASE("retry: exponential: initial * multiplier^n, capped", "[retry]") {
  SECTION("doubling") {
    auto p = make_policy(backoff_kind::exponential, 100ms, 1s);
    CHECK(schedule(p, 7) == ms({100, 200, 400, 800, 1000, 1000, 1000}));
  }
  SECTION("multiplier 3") {
    auto p = make_policy(backoff_kind::exponential, 100ms, 2s, 100, 3.0);
    CHECK(schedule(p, 5) == ms({100, 300, 900, 2000, 2000}));
  }
  SECTION("multiplier 1 stays at initial_delay") {
    auto p = make_policy(backoff_kind::exponential, 300ms, 10s, 100, 1.0);
    CHECK(schedule(p, 4) == ms({300, 300, 300, 300}));
  }
  SECTION("never overflows") {
    auto p = make_policy(backoff_kind::exponential, 1ms,
                         caf::timespan::max(), 1000, 10.0);
    caf::timespan previous{0};
    for (int n = 1; n <= 500; ++n) {
      CAPTURE(n);
      auto d = ft::backoff_delay(p, n, previous, 0.5);
      REQUIRE(d >= previous);
      REQUIRE(d.count() > 0);
      previous = d;
    }
    CHECK(previous == caf::timespan::max());
  }
}

TEST_CASE("retry: backoff_delay is the schedule without bookkeeping",
          "[retry]") {
  auto p = make_policy(backoff_kind::exponential, 100ms, 1s);
  CHECK(ft::backoff_delay(p, 1, 0s, 0.5) == 100ms);
  CHECK(ft::backoff_delay(p, 3, 0s, 0.5) == 400ms);
  CHECK(ft::backoff_delay(p, 0, 0s, 0.5) == 100ms); // clamped to 1
  p.backoff = backoff_kind::exponential_with_jitter;
  CHECK(ft::backoff_delay(p, 3, 0s, 0.0) == 0s);
  CHECK(ft::backoff_delay(p, 3, 0s, 0.25) == 100ms);
  CHECK(ft::backoff_delay(p, 3, 0s, 1.0) == 400ms);
  CHECK(ft::backoff_delay(p, 3, 0s, 7.0) == 400ms);    // clamped
  CHECK(ft::backoff_delay(p, 3, 0s, -1.0) == 0s);      // clamped
  CHECK(ft::backoff_delay(p, 3, 0s, std::nan("")) == 0s);
  p.jitter = jitter_kind::decorrelated;
  // uniform[100ms, 3 * previous]
  CHECK(ft::backoff_delay(p, 1, 0s, 0.0) == 100ms);
  CHECK(ft::backoff_delay(p, 1, 0s, 1.0) == 300ms);
  CHECK(ft::backoff_delay(p, 2, 200ms, 0.5) == 350ms);
  CHECK(ft::backoff_delay(p, 5, 900ms, 1.0) == 1s); // capped
}

// -- jitter -------------------------------------------------------------------

TEST_CASE("retry: full jitter: uniform in [0, min(cap, initial * 2^n)]",
          "[retry]") {
  std::mt19937 gen{4711};
  std::uniform_real_distribution<double> dist{0.0, 1.0};
  auto p = make_policy(backoff_kind::exponential_with_jitter, 100ms, 1s);
  p.jitter = jitter_kind::full;
  // The ceiling of retry n: 100, 200, 400, 800, 1000 (capped), 1000.
  const auto ceilings = ms({100, 200, 400, 800, 1000, 1000});
  constexpr int samples = 10000;
  for (size_t n = 0; n < ceilings.size(); ++n) {
    CAPTURE(n);
    auto cap_n = ceilings[n];
    caf::timespan lo = caf::timespan::max();
    caf::timespan hi = caf::timespan::min();
    double sum = 0;
    int below_half = 0;
    for (int i = 0; i < samples; ++i) {
      retry_state st;
      st.start(t0);
      // Earlier retries draw 0.5; only the last draw is random.
      for (size_t k = 0; k < n; ++k)
        REQUIRE(st.next(p, t0, boom, 0.5));
      auto d = st.next(p, t0, boom, dist(gen));
      REQUIRE(d);
      REQUIRE(*d >= 0s);
      REQUIRE(*d <= cap_n);
      lo = std::min(lo, *d);
      hi = std::max(hi, *d);
      sum += static_cast<double>(d->count());
      if (*d < cap_n / 2)
        ++below_half;
    }
    // Spread over the whole range, centered on half the ceiling.
    CHECK(lo < cap_n / 100);
    CHECK(hi > cap_n * 99 / 100);
    auto mean = sum / samples / static_cast<double>(cap_n.count());
    CHECK(mean > 0.48);
    CHECK(mean < 0.52);
    CHECK(below_half > 4700);
    CHECK(below_half < 5300);
  }
}

TEST_CASE("retry: decorrelated jitter: min(cap, uniform[initial, 3 * prev])",
          "[retry]") {
  std::mt19937 gen{1234};
  std::uniform_real_distribution<double> dist{0.0, 1.0};
  auto p = make_policy(backoff_kind::exponential_with_jitter, 100ms, 2s,
                       1000000);
  p.jitter = jitter_kind::decorrelated;
  int at_cap = 0;
  int total = 0;
  caf::timespan lo = caf::timespan::max();
  caf::timespan hi = caf::timespan::min();
  for (int run = 0; run < 100; ++run) {
    retry_state st;
    st.start(t0);
    caf::timespan previous = p.initial_delay;
    for (int i = 0; i < 100; ++i) {
      auto d = st.next(p, t0, boom, dist(gen));
      REQUIRE(d);
      CAPTURE(run, i, previous.count(), d->count());
      REQUIRE(*d >= p.initial_delay);
      REQUIRE(*d <= std::min(p.max_delay, previous * 3));
      CHECK(st.last_pause() == *d);
      lo = std::min(lo, *d);
      hi = std::max(hi, *d);
      if (*d == p.max_delay)
        ++at_cap;
      ++total;
      previous = *d;
    }
  }
  // Reaches both ends of its range.
  CHECK(lo < 110ms);
  CHECK(hi == p.max_delay);
  // It drifts up to the cap and often sits there, but not always.
  CHECK(at_cap > total / 10);
  CHECK(at_cap < total);
  SECTION("first retry spreads over [initial, 3 * initial]") {
    caf::timespan first_lo = caf::timespan::max();
    caf::timespan first_hi = caf::timespan::min();
    for (int i = 0; i < 10000; ++i) {
      retry_state st;
      auto d = st.next(p, t0, boom, dist(gen));
      REQUIRE(d);
      REQUIRE(*d >= 100ms);
      REQUIRE(*d <= 300ms);
      first_lo = std::min(first_lo, *d);
      first_hi = std::max(first_hi, *d);
    }
    CHECK(first_lo < 101ms);
    CHECK(first_hi > 299ms);
  }
}

// -- attempts -----------------------------------------------------------------

TEST_CASE("retry: max_attempts counts the first call", "[retry]") {
  auto p = make_policy(backoff_kind::fixed, 100ms, 1s, 3);
  retry_state st;
  st.start(t0);
  CHECK(st.attempts() == 0);
  // Attempt 1 fails: retry.
  auto d = st.next(p, t0 + 10ms, boom, 0.5);
  REQUIRE(d);
  CHECK(st.attempts() == 1);
  // Attempt 2 fails: retry.
  d = st.next(p, t0 + 120ms, boom, 0.5);
  REQUIRE(d);
  CHECK(st.attempts() == 2);
  // Attempt 3 fails: that was the last one.
  d = st.next(p, t0 + 230ms, ft::make_error(errc::call_timeout, "third"),
              0.5);
  REQUIRE_FALSE(d);
  CHECK(st.attempts() == 3);
  CHECK(ft::is(d.error(), errc::retries_exhausted));
  auto text = ft::render(d.error());
  CHECK_THAT(text, StartsWith("retries_exhausted: max_attempts = 3"));
  CHECK_THAT(text, Contains("3 attempts in 0.23s"));
  CHECK_THAT(text, EndsWith("last error: call_timeout: third"));
  // It stays exhausted.
  CHECK_FALSE(st.next(p, t0 + 240ms, boom, 0.5));
}

TEST_CASE("retry: max_attempts 1 never retries", "[retry]") {
  auto p = make_policy(backoff_kind::fixed, 100ms, 1s, 1);
  retry_state st;
  auto d = st.next(p, t0, caf::make_error(caf::sec::request_timeout), 0.5);
  REQUIRE_FALSE(d);
  CHECK(ft::is(d.error(), errc::retries_exhausted));
  CHECK_THAT(ft::render(d.error()), Contains("1 attempt in 0s"));
  CHECK_THAT(ft::render(d.error()), EndsWith("last error: request_timeout"));
}

TEST_CASE("retry: reset starts a new call", "[retry]") {
  auto p = make_policy(backoff_kind::exponential, 100ms, 1s, 5);
  retry_state st;
  REQUIRE(st.next(p, t0, boom, 0.5));
  REQUIRE(st.next(p, t0 + 1s, boom, 0.5));
  CHECK(st.attempts() == 2);
  CHECK(st.last_pause() == 200ms);
  st.reset();
  CHECK(st.attempts() == 0);
  CHECK_FALSE(st.started());
  CHECK(st.last_pause() == 0s);
  auto d = st.next(p, t0 + 5s, boom, 0.5);
  REQUIRE(d);
  CHECK(*d == 100ms);
  CHECK(st.started_at() == t0 + 5s);
}

// -- max_elapsed --------------------------------------------------------------

TEST_CASE("retry: max_elapsed: give up when the next attempt starts too late",
          "[retry]") {
  // fixed 300ms, max_elapsed 1s from the start at t0.
  auto p = make_policy(backoff_kind::fixed, 300ms, 1s);
  p.max_elapsed = 1s;
  retry_state st;
  st.start(t0);
  CHECK(st.elapsed(t0 + 400ms) == 400ms);
  SECTION("starting exactly at start + max_elapsed is still allowed") {
    auto d = st.next(p, t0 + 700ms, boom, 0.5);
    REQUIRE(d);
    CHECK(*d == 300ms);
  }
  SECTION("one nanosecond later is not") {
    auto d = st.next(p, t0 + 700ms + caf::timespan{1}, boom, 0.5);
    REQUIRE_FALSE(d);
    CHECK(ft::is(d.error(), errc::retries_exhausted));
    auto text = ft::render(d.error());
    CHECK_THAT(text, StartsWith("retries_exhausted: max_elapsed = 1s"));
    CHECK_THAT(text, Contains("pause of 0.3s"));
    CHECK_THAT(text, EndsWith("last error: call_timeout: backend slow"));
  }
  SECTION("already past max_elapsed") {
    auto d = st.next(p, t0 + 2s, boom, 0.5);
    REQUIRE_FALSE(d);
    CHECK(ft::is(d.error(), errc::retries_exhausted));
  }
  SECTION("a series cut off by time before attempts") {
    p.max_attempts = 100;
    auto now = t0;
    int retries = 0;
    for (;;) {
      now += 50ms; // each attempt takes 50ms
      auto d = st.next(p, now, boom, 0.5);
      if (!d) {
        CHECK(ft::is(d.error(), errc::retries_exhausted));
        break;
      }
      ++retries;
      now += *d;
    }
    // Attempts start at 0, 350, 700; the next would start at 1050ms.
    CHECK(retries == 2);
    CHECK(st.attempts() == 3);
  }
}

TEST_CASE("retry: max_elapsed counts from the first next without start()",
          "[retry]") {
  auto p = make_policy(backoff_kind::fixed, 300ms, 1s);
  p.max_elapsed = 1s;
  retry_state st;
  CHECK_FALSE(st.started());
  CHECK(st.elapsed(t0) == 0s);
  REQUIRE(st.next(p, t0 + 5s, boom, 0.5));
  CHECK(st.started());
  CHECK(st.started_at() == t0 + 5s);
  CHECK(st.next(p, t0 + 5s + 700ms, boom, 0.5));
  CHECK_FALSE(st.next(p, t0 + 5s + 701ms, boom, 0.5));
}

TEST_CASE("retry: max_elapsed 0 is unlimited", "[retry]") {
  auto p = make_policy(backoff_kind::fixed, 1h, 1h, 1000);
  retry_state st;
  st.start(t0);
  auto now = t0;
  for (int i = 0; i < 500; ++i) {
    auto d = st.next(p, now, boom, 0.5);
    REQUIRE(d);
    now += *d;
  }
  CHECK(st.elapsed(now) == 500h);
}

TEST_CASE("retry: within_elapsed checks waits that are not backoff pauses",
          "[retry]") {
  retry_policy p;
  p.max_elapsed = 2s;
  retry_state st;
  CHECK(st.within_elapsed(p, t0, 1h)); // not started
  st.start(t0);
  CHECK(st.within_elapsed(p, t0 + 1s, 1s));
  CHECK_FALSE(st.within_elapsed(p, t0 + 1s, 1001ms));
  CHECK_FALSE(st.within_elapsed(p, t0 + 3s, 0s));
  CHECK_FALSE(st.within_elapsed(p, t0, caf::timespan::max()));
  p.max_elapsed = 0s;
  CHECK(st.within_elapsed(p, t0 + 1h, caf::timespan::max()));
}

// -- retryable errors ---------------------------------------------------------

TEST_CASE("retry: default predicate: not deadline, breaker or exhausted errors",
          "[retry]") {
  CHECK(ft::default_retryable(boom));
  CHECK(ft::default_retryable(ft::make_error(errc::start_failed)));
  CHECK(ft::default_retryable(caf::make_error(caf::sec::request_timeout)));
  CHECK(ft::default_retryable(
    caf::make_error(caf::sec::request_receiver_down)));
  CHECK_FALSE(ft::default_retryable(ft::make_error(errc::deadline_exceeded)));
  CHECK_FALSE(ft::default_retryable(ft::make_error(errc::circuit_open)));
  CHECK_FALSE(ft::default_retryable(ft::make_error(errc::half_open_limit)));
  CHECK_FALSE(ft::default_retryable(ft::make_error(errc::retries_exhausted)));
}

TEST_CASE("retry: a non-retryable error stops at once and is returned as is",
          "[retry]") {
  auto p = make_policy(backoff_kind::fixed, 100ms, 1s, 10);
  SECTION("default predicate") {
    retry_state st;
    REQUIRE(st.next(p, t0, boom, 0.5));
    auto open = ft::make_error(errc::circuit_open, "breaker db");
    auto d = st.next(p, t0 + 200ms, open, 0.5);
    REQUIRE_FALSE(d);
    CHECK(d.error() == open);
    CHECK(ft::render(d.error()) == "circuit_open: breaker db");
    CHECK(st.attempts() == 2);
  }
  SECTION("custom predicate") {
    p.retryable = [](const caf::error& err) {
      return ft::is(err, errc::call_timeout);
    };
    CHECK(ft::is_retryable(p, boom));
    CHECK_FALSE(ft::is_retryable(p, ft::make_error(errc::start_failed)));
    // The custom predicate replaces the default one entirely.
    CHECK_FALSE(
      ft::is_retryable(p, caf::make_error(caf::sec::request_timeout)));
    retry_state st;
    REQUIRE(st.next(p, t0, boom, 0.5));
    REQUIRE(st.next(p, t0 + 200ms, boom, 0.5));
    auto fatal = caf::make_error(caf::sec::unexpected_message);
    auto d = st.next(p, t0 + 400ms, fatal, 0.5);
    REQUIRE_FALSE(d);
    CHECK(d.error() == fatal);
  }
  SECTION("a custom predicate can retry what the default would not") {
    p.retryable = [](const caf::error&) { return true; };
    retry_state st;
    CHECK(st.next(p, t0, ft::make_error(errc::circuit_open), 0.5));
  }
  SECTION("an empty error counts as retryable") {
    p.retryable = [](const caf::error&) { return false; };
    retry_state st;
    auto d = st.next(p, t0, caf::error{}, 0.5);
    REQUIRE(d);
    CHECK(*d == 100ms);
  }
}

// -- deadline -----------------------------------------------------------------

TEST_CASE("retry: next with a deadline: expiry and pauses that do not fit",
          "[retry]") {
  auto p = make_policy(backoff_kind::exponential, 100ms, 10s, 10);
  auto dl = ft::deadline::after(t0, 1s);
  retry_state st;
  st.start(t0);
  // 100ms fits at +100ms, 200ms fits at +300ms, 400ms does not fit at +700ms.
  auto d = st.next(p, t0 + 100ms, boom, 0.5, dl);
  REQUIRE(d);
  CHECK(*d == 100ms);
  d = st.next(p, t0 + 300ms, boom, 0.5, dl);
  REQUIRE(d);
  CHECK(*d == 200ms);
  SECTION("a pause that would end after the deadline is cancelled now") {
    d = st.next(p, t0 + 600ms, boom, 0.5, dl);
    REQUIRE_FALSE(d);
    CHECK(ft::is(d.error(), errc::deadline_exceeded));
    auto text = ft::render(d.error());
    CHECK_THAT(text, Contains("deadline in 0.4s"));
    CHECK_THAT(text, Contains("pause of 0.4s"));
    CHECK_THAT(text, EndsWith("last error: call_timeout: backend slow"));
  }
  SECTION("just fits") {
    d = st.next(p, t0 + 600ms - caf::timespan{1}, boom, 0.5, dl);
    REQUIRE(d);
    CHECK(*d == 400ms);
  }
  SECTION("expiry wins over everything else") {
    p.max_attempts = 3; // this would be the last attempt anyway
    d = st.next(p, t0 + 1s, ft::make_error(errc::circuit_open), 0.5, dl);
    REQUIRE_FALSE(d);
    CHECK(ft::is(d.error(), errc::deadline_exceeded));
    CHECK_THAT(ft::render(d.error()), Contains("passed 0s ago"));
    CHECK_THAT(ft::render(d.error()), EndsWith("last error: circuit_open"));
  }
  SECTION("never changes nothing") {
    d = st.next(p, t0 + 600ms, boom, 0.5, ft::deadline::never());
    REQUIRE(d);
    CHECK(*d == 400ms);
  }
}

// -- validate -----------------------------------------------------------------

TEST_CASE("retry: validate accepts well-formed policies", "[retry]") {
  CHECK_FALSE(ft::validate(retry_policy{}));
  for (auto k : {backoff_kind::fixed, backoff_kind::linear,
                 backoff_kind::exponential,
                 backoff_kind::exponential_with_jitter}) {
    CAPTURE(ft::to_string(k));
    CHECK_FALSE(ft::validate(make_policy(k, 1ms, 1ms, 1, 1.0)));
    CHECK_FALSE(ft::validate(make_policy(k, 1s, 1h, 50, 3.5)));
  }
  auto zero_fixed = make_policy(backoff_kind::linear, 0s, 0s, 3);
  CHECK_FALSE(ft::validate(zero_fixed));
  auto p = make_policy(backoff_kind::exponential, 1s, 2s, 3);
  p.max_elapsed = 30s;
  p.wait_for_half_open = true;
  p.jitter = jitter_kind::decorrelated;
  CHECK_FALSE(ft::validate(p));
}

TEST_CASE("retry: validate rejects each bad field, naming field and value",
          "[retry]") {
  auto rejects = [](const retry_policy& p, const std::string& field,
                    const std::string& value) {
    CAPTURE(field, value);
    auto err = ft::validate(p);
    REQUIRE(err);
    CHECK(ft::is(err, errc::invalid_breaker_config));
    CHECK_THAT(ft::render(err),
               StartsWith("invalid_breaker_config: " + field + " = " + value
                          + " "));
  };
  retry_policy p;
  SECTION("backoff") {
    p.backoff = static_cast<backoff_kind>(9);
    rejects(p, "backoff", "9");
  }
  SECTION("jitter") {
    p.jitter = static_cast<jitter_kind>(7);
    rejects(p, "jitter", "7");
  }
  SECTION("initial_delay < 0") {
    p.initial_delay = -1s;
    rejects(p, "initial_delay", "-1s");
    p.backoff = backoff_kind::fixed;
    rejects(p, "initial_delay", "-1s");
  }
  SECTION("initial_delay = 0 for the exponential kinds") {
    p.initial_delay = 0s;
    rejects(p, "initial_delay", "0s");
    p.backoff = backoff_kind::exponential_with_jitter;
    rejects(p, "initial_delay", "0s");
  }
  SECTION("max_delay < initial_delay") {
    p.initial_delay = 2s;
    p.max_delay = 1500ms;
    rejects(p, "max_delay", "1.5s");
    CHECK_THAT(ft::render(ft::validate(p)), Contains("initial_delay = 2s"));
  }
  SECTION("multiplier") {
    p.multiplier = 0.5;
    rejects(p, "multiplier", "0.5");
    p.multiplier = 0.0;
    rejects(p, "multiplier", "0");
    p.multiplier = -2.0;
    rejects(p, "multiplier", "-2");
    p.multiplier = std::nan("");
    rejects(p, "multiplier", "nan");
    p.multiplier = HUGE_VAL;
    rejects(p, "multiplier", "inf");
  }
  SECTION("max_attempts") {
    p.max_attempts = 0;
    rejects(p, "max_attempts", "0");
    p.max_attempts = -3;
    rejects(p, "max_attempts", "-3");
  }
  SECTION("max_elapsed") {
    p.max_elapsed = -250ms;
    rejects(p, "max_elapsed", "-0.25s");
  }
}

// -- YAML ---------------------------------------------------------------------

TEST_CASE("retry: retry_policy_from_yaml reads every field", "[retry]") {
  auto p = ft::retry_policy_from_yaml("backoff: exponential_with_jitter\n"
                                      "jitter: decorrelated\n"
                                      "initial_delay: 0.05\n"
                                      "max_delay: 2.5\n"
                                      "multiplier: 1.5\n"
                                      "max_attempts: 7\n"
                                      "max_elapsed: 30\n"
                                      "wait_for_half_open: true\n");
  REQUIRE(p);
  CHECK(p->backoff == backoff_kind::exponential_with_jitter);
  CHECK(p->jitter == jitter_kind::decorrelated);
  CHECK(p->initial_delay == 50ms);
  CHECK(p->max_delay == 2500ms);
  CHECK(p->multiplier == 1.5);
  CHECK(p->max_attempts == 7);
  CHECK(p->max_elapsed == 30s);
  CHECK(p->wait_for_half_open);
  CHECK_FALSE(p->retryable);
}

TEST_CASE("retry: retry_policy_from_yaml keeps defaults for missing fields",
          "[retry]") {
  auto p = ft::retry_policy_from_yaml("backoff: linear\nmax_attempts: 5\n");
  REQUIRE(p);
  CHECK(p->backoff == backoff_kind::linear);
  CHECK(p->max_attempts == 5);
  CHECK(p->initial_delay == 100ms);
  CHECK(p->max_delay == 10s);
  CHECK_FALSE(p->wait_for_half_open);
  auto empty = ft::retry_policy_from_yaml("");
  REQUIRE(empty);
  CHECK(empty->backoff == backoff_kind::exponential);
  CHECK(empty->max_attempts == 3);
  auto no = ft::retry_policy_from_yaml("wait_for_half_open: false\n");
  REQUIRE(no);
  CHECK_FALSE(no->wait_for_half_open);
}

TEST_CASE("retry: retry_policy_from_yaml names source:line, field and value",
          "[retry]") {
  auto fails = [](const std::string& yaml, const std::string& expected) {
    CAPTURE(yaml);
    auto p = ft::retry_policy_from_yaml(yaml, "retry.yaml");
    REQUIRE_FALSE(p);
    CHECK(ft::is(p.error(), errc::invalid_breaker_config));
    CHECK_THAT(ft::render(p.error()),
               StartsWith("invalid_breaker_config: " + expected));
    return ft::render(p.error());
  };
  SECTION("unknown field") {
    auto text = fails("backoff: fixed\nmax_attempts: 3\nmax_attempt: 4\n",
                      "retry.yaml:3: max_attempt is not a known field");
    CHECK_THAT(text, Contains("max_attempts"));
  }
  SECTION("bad enum values") {
    fails("max_attempts: 2\nbackoff: quadratic\n",
          "retry.yaml:2: backoff = 'quadratic' is not fixed, linear");
    fails("jitter: equal\n", "retry.yaml:1: jitter = 'equal' is not full");
  }
  SECTION("bad numbers") {
    fails("initial_delay: soon\n",
          "retry.yaml:1: initial_delay = 'soon' is not a number");
    fails("backoff: fixed\nmax_delay: -1\n",
          "retry.yaml:2: max_delay = -1 is out of range");
    fails("max_attempts: 2.5\n",
          "retry.yaml:1: max_attempts = '2.5' is not an integer");
    fails("multiplier: 2x\n",
          "retry.yaml:1: multiplier = '2x' is not a number");
    fails("wait_for_half_open: maybe\n",
          "retry.yaml:1: wait_for_half_open = 'maybe' is not true or false");
    fails("max_elapsed: [1, 2]\n",
          "retry.yaml:1: max_elapsed must be a scalar");
  }
  SECTION("values out of range point at their line") {
    fails("backoff: fixed\nmax_attempts: 0\n",
          "retry.yaml:2: max_attempts = 0 must be >= 1");
    fails("initial_delay: 1\n\nmax_delay: 0.5\n",
          "retry.yaml:3: max_delay = 0.5s is < initial_delay = 1s");
    fails("multiplier: 0.5\n", "retry.yaml:1: multiplier = 0.5 must be");
    // The default max_delay loses: point at the initial_delay that was set.
    fails("backoff: fixed\ninitial_delay: 20\n",
          "retry.yaml:2: max_delay = 10s is < initial_delay = 20s");
  }
  SECTION("malformed documents") {
    fails("backoff: [fixed\n", "retry.yaml:");
    fails("- fixed\n- linear\n", "retry.yaml: expected a mapping");
    fails("just text\n", "retry.yaml: expected a mapping");
  }
}

TEST_CASE("retry: retry_policy_from_yaml uses <config> as the default source",
          "[retry]") {
  auto p = ft::retry_policy_from_yaml("max_attempts: -1\n");
  REQUIRE_FALSE(p);
  CHECK_THAT(ft::render(p.error()), Contains("<config>:1: max_attempts"));
}
