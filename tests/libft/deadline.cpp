#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include <caf/actor_clock.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/deep_to_string.hpp>

#include "ft/deadline.hpp"
#include "ft/error.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

using time_point = caf::actor_clock::time_point;
using ft::deadline;

const time_point t0 = time_point{} + std::chrono::hours(1);

constexpr auto forever = caf::timespan::max();

} // namespace

// -- construction and queries -------------------------------------------------

TEST_CASE("deadline: after: expires exactly budget after now", "[deadline]") {
  auto d = deadline::after(t0, 1s);
  CHECK_FALSE(d.is_never());
  CHECK(d.when() == t0 + 1s);
  CHECK_FALSE(d.expired(t0));
  CHECK_FALSE(d.expired(t0 + 999ms));
  CHECK_FALSE(d.expired(t0 + 1s - caf::timespan{1}));
  CHECK(d.expired(t0 + 1s));
  CHECK(d.expired(t0 + 2s));
  CHECK(d.remaining(t0) == 1s);
  CHECK(d.remaining(t0 + 400ms) == 600ms);
  CHECK(d.remaining(t0 + 1s) == 0s);
  CHECK(d.remaining(t0 + 5s) == 0s);
  // Before `now` (a clock read earlier) the remaining time is larger.
  CHECK(d.remaining(t0 - 1s) == 2s);
}

TEST_CASE("deadline: after: a budget <= 0 is expired at once", "[deadline]") {
  auto zero = deadline::after(t0, 0s);
  CHECK(zero.expired(t0));
  CHECK(zero.remaining(t0) == 0s);
  auto negative = deadline::after(t0, -300ms);
  CHECK(negative.expired(t0));
  CHECK(negative.when() == t0 - 300ms);
  CHECK(negative.remaining(t0) == 0s);
}

TEST_CASE("deadline: never: never expires and has all the time", "[deadline]") {
  auto d = deadline::never();
  CHECK(d.is_never());
  CHECK_FALSE(d.expired(t0));
  CHECK_FALSE(d.expired(time_point::max() - 1s));
  CHECK(d.remaining(t0) == forever);
  CHECK(d.budget(t0) == forever);
  CHECK_FALSE(d.check(t0));
  // A default-constructed deadline (an unset message field) is never.
  CHECK(deadline{} == deadline::never());
  CHECK(deadline{}.is_never());
  // A budget too large for the clock saturates to never.
  CHECK(deadline::after(t0, forever).is_never());
  CHECK(deadline::at(time_point::max()).is_never());
}

TEST_CASE("deadline: comparison orders by expiry, never last", "[deadline]") {
  auto a = deadline::after(t0, 1s);
  auto b = deadline::after(t0, 2s);
  auto a2 = deadline::after(t0 + 500ms, 500ms);
  CHECK(a == a2);
  CHECK_FALSE(a != a2);
  CHECK(a != b);
  CHECK(a < b);
  CHECK(a <= b);
  CHECK(a <= a2);
  CHECK(b > a);
  CHECK(b >= a);
  CHECK_FALSE(b < a);
  CHECK(b < deadline::never());
  CHECK(ft::min(a, b) == a);
  CHECK(ft::min(b, a) == a);
  CHECK(ft::min(deadline::never(), b) == b);
  CHECK(ft::min(deadline::never(), deadline::never()).is_never());
}

// -- children -----------------------------------------------------------------

TEST_CASE("deadline: child: min(parent's remaining time, own timeout)",
          "[deadline]") {
  auto parent = deadline::after(t0, 1s);
  SECTION("own timeout shorter than the parent's remaining time") {
    auto c = parent.child(t0 + 200ms, 300ms);
    CHECK(c.when() == t0 + 500ms);
    CHECK(c.remaining(t0 + 200ms) == 300ms);
    CHECK(c < parent);
  }
  SECTION("parent's remaining time shorter than the own timeout") {
    auto c = parent.child(t0 + 200ms, 5s);
    CHECK(c == parent);
    CHECK(c.remaining(t0 + 200ms) == 800ms);
  }
  SECTION("equal") {
    auto c = parent.child(t0 + 200ms, 800ms);
    CHECK(c == parent);
  }
  SECTION("no own timeout inherits the parent") {
    CHECK(parent.child(t0 + 200ms, forever) == parent);
  }
  SECTION("a child of never gets its own timeout") {
    auto c = deadline::never().child(t0, 250ms);
    CHECK(c == deadline::after(t0, 250ms));
    CHECK(deadline::never().child(t0, forever).is_never());
  }
  SECTION("a child of an expired parent is expired, as late as the parent") {
    auto c = parent.child(t0 + 3s, 5s);
    CHECK(c.expired(t0 + 3s));
    CHECK(c == parent);
    CHECK(c.remaining(t0 + 3s) == 0s);
  }
  SECTION("a child is never later than its parent") {
    for (auto own : {0ms, 1ms, 799ms, 800ms, 801ms, 10000ms}) {
      CAPTURE(own.count());
      auto c = parent.child(t0 + 200ms, own);
      CHECK(c <= parent);
      CHECK(c.remaining(t0 + 200ms) == std::min<caf::timespan>(own, 800ms));
    }
  }
}

TEST_CASE("deadline: three hops: each gets min(what is left, its own timeout)",
          "[deadline]") {
  // The caller gives the request 1s; each hop handles it a little later and
  // calls the next hop with its own timeout.
  auto root = deadline::after(t0, 1s);
  // Hop 1 at +100ms, own timeout 5s: the parent's 900ms win.
  auto now = t0 + 100ms;
  auto hop1 = root.child(now, 5s);
  CHECK(hop1.remaining(now) == 900ms);
  CHECK(hop1 == root);
  // Hop 2 at +250ms, own timeout 300ms: its own timeout wins (750ms left).
  now = t0 + 250ms;
  auto hop2 = hop1.child(now, 300ms);
  CHECK(hop2.remaining(now) == 300ms);
  CHECK(hop2.when() == t0 + 550ms);
  // Hop 3 at +400ms, own timeout 2s: only hop 2's remaining 150ms are left.
  now = t0 + 400ms;
  auto hop3 = hop2.child(now, 2s);
  CHECK(hop3.remaining(now) == 150ms);
  CHECK(hop3 == hop2);
  // At +550ms hop 3 and hop 2 are out of time, hop 1 and the root are not.
  now = t0 + 550ms;
  CHECK(hop3.expired(now));
  CHECK(hop2.expired(now));
  CHECK_FALSE(hop1.expired(now));
  CHECK(hop1.remaining(now) == 450ms);
  auto err = hop3.check(now);
  REQUIRE(err);
  CHECK(ft::is(err, ft::errc::deadline_exceeded));
}

TEST_CASE("deadline: three hops across nodes via budgets", "[deadline]") {
  // Each node's steady clock has a different epoch; only budgets travel.
  const time_point node_a = time_point{} + 10h;
  const time_point node_b = time_point{} + 3min;
  const time_point node_c = time_point{} + 777h;
  auto root = deadline::after(node_a, 1s);
  // 100ms pass on node A before it sends; the budget travels to node B.
  auto sent_ab = root.child(node_a + 100ms, 5s).budget(node_a + 100ms);
  CHECK(sent_ab == 900ms);
  auto at_b = deadline::from_budget(node_b, sent_ab);
  CHECK(at_b.remaining(node_b) == 900ms);
  // Node B works 150ms, then calls node C with its own timeout 300ms.
  auto sent_bc = at_b.child(node_b + 150ms, 300ms).budget(node_b + 150ms);
  CHECK(sent_bc == 300ms);
  auto at_c = deadline::from_budget(node_c, sent_bc);
  // Node C works 150ms, then calls a third hop with its own timeout 2s.
  auto sent_cd = at_c.child(node_c + 150ms, 2s).budget(node_c + 150ms);
  CHECK(sent_cd == 150ms);
}

// -- budgets, check, retry_fits -----------------------------------------------

TEST_CASE("deadline: budget round trip", "[deadline]") {
  auto d = deadline::after(t0, 2s);
  CHECK(d.budget(t0 + 500ms) == 1500ms);
  auto back = deadline::from_budget(t0 + 500ms, d.budget(t0 + 500ms));
  CHECK(back == d);
  // Rebuilt on another clock, the same time is left.
  const time_point elsewhere = time_point{} + 42h;
  auto remote = deadline::from_budget(elsewhere, d.budget(t0 + 500ms));
  CHECK(remote.remaining(elsewhere) == 1500ms);
  CHECK(remote.remaining(elsewhere + 1s) == 500ms);
  // An expired deadline travels as budget 0 and stays expired.
  CHECK(d.budget(t0 + 3s) == 0s);
  CHECK(deadline::from_budget(elsewhere, d.budget(t0 + 3s)).expired(elsewhere));
  // Never travels as the maximum budget and comes back as never.
  CHECK(deadline::from_budget(elsewhere, deadline::never().budget(t0))
          .is_never());
}

TEST_CASE("deadline: check: deadline_exceeded saying how late", "[deadline]") {
  auto d = deadline::after(t0, 1s);
  CHECK_FALSE(d.check(t0));
  CHECK_FALSE(d.check(t0 + 999ms));
  auto err = d.check(t0 + 1250ms);
  REQUIRE(err);
  CHECK(ft::is(err, ft::errc::deadline_exceeded));
  CHECK(ft::render(err) == "deadline_exceeded: deadline passed 0.25s ago");
  auto at_expiry = d.check(t0 + 1s);
  REQUIRE(at_expiry);
  CHECK_THAT(ft::render(at_expiry), Contains("passed 0s ago"));
}

TEST_CASE("deadline: retry_fits: the pause must end before the deadline",
          "[deadline]") {
  auto d = deadline::after(t0, 1s);
  CHECK(ft::retry_fits(d, t0, 0s));
  CHECK(ft::retry_fits(d, t0, 999ms));
  CHECK_FALSE(ft::retry_fits(d, t0, 1s)); // would start exactly at expiry
  CHECK_FALSE(ft::retry_fits(d, t0, 2s));
  CHECK(ft::retry_fits(d, t0 + 600ms, 399ms));
  CHECK_FALSE(ft::retry_fits(d, t0 + 600ms, 400ms));
  CHECK_FALSE(ft::retry_fits(d, t0 + 1s, 0s)); // already expired
  CHECK_FALSE(ft::retry_fits(d, t0, forever)); // no overflow
  CHECK(ft::retry_fits(deadline::never(), t0, forever));
  CHECK(ft::retry_fits(deadline::never(), t0, 1h));
  // Agrees with expired() at the end of the pause.
  for (auto pause : {0ms, 1ms, 500ms, 999ms, 1000ms, 1001ms}) {
    CAPTURE(pause.count());
    CHECK(ft::retry_fits(d, t0, pause) == !d.expired(t0 + pause));
  }
}

TEST_CASE("deadline: to_string renders relative to now", "[deadline]") {
  auto d = deadline::after(t0, 1s);
  CHECK(ft::to_string(d, t0 + 750ms) == "deadline in 0.25s");
  CHECK(ft::to_string(d, t0 + 3s) == "deadline passed 2s ago");
  CHECK(ft::to_string(deadline::never(), t0) == "no deadline");
}

// -- serialization ------------------------------------------------------------

TEST_CASE("a deadline serializes within a process", "[deadline]") {
  auto round_trip = [](deadline x) {
    std::vector<char> buf;
    caf::binary_serializer sink{nullptr, buf};
    REQUIRE_FALSE(sink(x));
    deadline y = deadline::after(t0, 123ms);
    caf::binary_deserializer source{nullptr, buf};
    REQUIRE_FALSE(source(y));
    return y;
  };
  auto d = deadline::after(t0, 1500ms);
  CHECK(round_trip(d) == d);
  CHECK(round_trip(deadline::never()).is_never());
  CHECK_THAT(caf::deep_to_string(d), StartsWith("ft.deadline"));
}
