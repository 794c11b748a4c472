// The breaker guard on the deterministic test scheduler: calls, replies,
// tripping, recovery, call timeouts and events happen only when a test runs
// the actors or advances the clock, so every timing is checked exactly.

#include "ft/breaker_guard.hpp"
#include "ft/deadline_request.hpp"
#include "actors/fixture.hpp"

#include <algorithm>

using namespace ft;
using namespace ft::test;
using namespace std::chrono_literals;

namespace {

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using release_atom = caf::atom_constant<caf::atom("release")>;

/// What the test target does and saw. The test changes the mode between
/// calls; the target reads it on each call.
struct target_state {
  /// Calls that reached the target (ints, strings, pings and async ints).
  int calls = 0;
  /// Answer ints with `runtime_error`.
  bool fail = false;
  /// Answer ints with `x % 3 == 0` with `runtime_error`.
  bool fail_multiples_of_3 = false;
  /// Keep int calls unanswered until `release`.
  bool hold = false;
  /// `current_deadline()` during the last int call.
  deadline last_deadline;
  std::vector<std::pair<caf::response_promise, int>> held;
};

using target_ptr = std::shared_ptr<target_state>;

caf::error target_error() {
  return caf::make_error(caf::sec::runtime_error, "target failed");
}

caf::message answer(const target_state& st, int x) {
  if (st.fail || (st.fail_multiples_of_3 && x % 3 == 0))
    return caf::make_message(target_error());
  return caf::make_message(x * 2);
}

/// Answers `int x` with `2 * x` (or an error, or later, per its state),
/// `std::string s` with `s + "!"`, `ping` with nothing; `release` delivers
/// the held int calls (per the state at release time); `stop` quits.
caf::behavior test_target(caf::event_based_actor* self, target_ptr st) {
  return {
    [=](int x) -> caf::result<caf::message> {
      ++st->calls;
      st->last_deadline = current_deadline();
      if (st->hold) {
        auto rp = self->make_response_promise();
        st->held.emplace_back(rp, x);
        return rp;
      }
      return answer(*st, x);
    },
    [=](const std::string& s) {
      ++st->calls;
      return s + "!";
    },
    [=](ping_atom) { ++st->calls; },
    [=](release_atom) {
      auto held = std::move(st->held);
      st->held.clear();
      for (auto& kvp : held)
        kvp.first.deliver(answer(*st, kvp.second));
    },
    [=](stop_atom) { self->quit(); },
  };
}

/// Trips after 3 consecutive failures, probes after 10 s with 2 trials at
/// once, closes after 2 trial successes; no call timeout.
breaker_config test_config() {
  breaker_config cfg;
  cfg.failure_threshold = 3;
  cfg.success_threshold = 2;
  cfg.recovery_timeout = 10s;
  cfg.reset_timeout_factor = 2.0;
  cfg.max_reset_timeout = 60s;
  cfg.half_open_max_calls = 2;
  cfg.call_timeout = caf::timespan{0};
  return cfg;
}

struct guard_fixture : fixture {
  caf::actor_clock::time_point t0 = sys->clock().now();
  target_ptr st = std::make_shared<target_state>();
  caf::actor target;
  /// The deadline-aware target of spawn_aware_guard().
  caf::actor aware;
  std::shared_ptr<std::vector<breaker_event>> events
    = std::make_shared<std::vector<breaker_event>>();
  caf::actor sink;

  guard_fixture() {
    target = sys->spawn(test_target, st);
    sink = breaker_event_sink(*sys, events);
    keep_alive.push_back(target);
  }

  caf::actor spawn_guard(breaker_config cfg = test_config()) {
    guard_options opts;
    opts.name = "db";
    opts.subscribers.push_back(sink);
    auto res = spawn_breaker_guard(*sys, target, std::move(cfg),
                                   std::move(opts));
    REQUIRE(res);
    run();
    return *res;
  }

  /// Sends `x` to `g` from a fresh actor without running: callers started
  /// one after another reach the guard together on the next run().
  call_ptr start_call(const caf::actor& g, int x) {
    auto res = std::make_shared<call_result>();
    sys->spawn([=](caf::event_based_actor* self) {
      self->request(g, caf::infinite, x)
        .then(
          [=](int y) {
            ++res->answers;
            res->value = y;
          },
          [=](caf::error& err) {
            ++res->answers;
            res->value = std::move(err);
          });
    });
    return res;
  }

  call_ptr call(const caf::actor& g, int x) {
    auto res = start_call(g, x);
    run();
    return res;
  }

  /// As call(), with `msg` (e.g. a deadline envelope) instead of an int:
  /// a plain request without timeout, so only the guard can end it.
  call_ptr call_msg(const caf::actor& g, caf::message msg) {
    auto res = std::make_shared<call_result>();
    sys->spawn([=](caf::event_based_actor* self) {
      self->request(g, caf::infinite, msg)
        .then(
          [=](int y) {
            ++res->answers;
            res->value = y;
          },
          [=](caf::error& err) {
            ++res->answers;
            res->value = std::move(err);
          });
    });
    run();
    return res;
  }

  /// A call of `x` with a deadline at `t0 + at`, sent raw (see call_msg()).
  call_ptr call_until(const caf::actor& g, int x, caf::timespan at) {
    return call_msg(g, with_deadline(deadline::at(t0 + at),
                                     caf::make_message(x)));
  }

  /// Spawns the same test target (same `st`), but `deadline_aware`, and a
  /// guard in front of it.
  caf::actor spawn_aware_guard(breaker_config cfg = test_config()) {
    auto s = st;
    aware = sys->spawn([s](caf::event_based_actor* self) {
      return deadline_aware(self, test_target(self, s));
    });
    keep_alive.push_back(aware);
    guard_options opts;
    opts.name = "db";
    opts.subscribers.push_back(sink);
    auto res = spawn_breaker_guard(*sys, aware, std::move(cfg),
                                   std::move(opts));
    REQUIRE(res);
    run();
    return *res;
  }

  breaker_stats stats(const caf::actor& g) {
    auto res = ask<breaker_stats>(g, breaker_stats_atom::value);
    REQUIRE(res);
    REQUIRE(*res);
    return **res;
  }

  void trip(const caf::actor& g) {
    st->fail = true;
    for (int i = 0; i < 3; ++i) {
      auto r = call(g, i);
      REQUIRE(r->answers == 1);
      REQUIRE(r->value);
      REQUIRE_FALSE(*r->value);
      REQUIRE(r->value->error() == caf::sec::runtime_error);
    }
    REQUIRE(stats(g).state == breaker_state::open);
    st->fail = false;
  }

  std::vector<std::pair<breaker_state, breaker_state>> transitions() const {
    std::vector<std::pair<breaker_state, breaker_state>> result;
    for (auto& ev : *events)
      if (ev.kind == breaker_event_kind::transition)
        result.emplace_back(ev.from, ev.to);
    return result;
  }

  size_t count_events(breaker_event_kind kind) const {
    return static_cast<size_t>(
      std::count_if(events->begin(), events->end(),
                    [kind](const breaker_event& ev) { return ev.kind == kind; }));
  }
};

using bs = breaker_state;

} // namespace

TEST_CASE_METHOD(guard_fixture,
                 "a closed guard passes calls and replies of any type",
                 "[breaker_guard]") {
  auto g = spawn_guard();
  auto i = ask<int>(g, 21);
  REQUIRE(i);
  REQUIRE(*i);
  CHECK(**i == 42);
  auto s = ask<std::string>(g, std::string{"hi"});
  REQUIRE(s);
  REQUIRE(*s);
  CHECK(**s == "hi!");
  auto v = ask_void(g, ping_atom::value);
  REQUIRE(v);
  CHECK_FALSE(*v);
  CHECK(st->calls == 3);
  // Asynchronous messages reach the target but count nothing.
  caf::anon_send(g, 5);
  run();
  CHECK(st->calls == 4);
  auto x = stats(g);
  CHECK(x.state == bs::closed);
  CHECK(x.success_count == 3);
  CHECK(x.failure_count == 0);
  CHECK(x.rejected_count == 0);
  CHECK(count_events(breaker_event_kind::success) == 3);
  CHECK(transitions().empty());
}

TEST_CASE_METHOD(guard_fixture,
                 "failures trip the guard, which then fails fast",
                 "[breaker_guard]") {
  auto g = spawn_guard();
  st->fail = true;
  for (int i = 0; i < 2; ++i) {
    auto r = call(g, i);
    REQUIRE(r->answers == 1);
    CHECK(r->value->error() == caf::sec::runtime_error);
  }
  CHECK(stats(g).state == bs::closed);
  CHECK(stats(g).consecutive_failures == 2);
  auto r = call(g, 2);
  CHECK(r->value->error() == caf::sec::runtime_error);
  CHECK(stats(g).state == bs::open);
  CHECK(st->calls == 3);
  // Open: no call reaches the target, whatever its type.
  st->fail = false;
  for (int i = 0; i < 5; ++i)
    CHECK(is_error(call(g, i), errc::circuit_open));
  auto s = ask<std::string>(g, std::string{"hi"});
  REQUIRE(s);
  REQUIRE_FALSE(*s);
  CHECK(is(s->error(), errc::circuit_open));
  CHECK(st->calls == 3);
  // Asynchronous messages are dropped while open.
  caf::anon_send(g, 7);
  run();
  CHECK(st->calls == 3);
  auto x = stats(g);
  CHECK(x.failure_count == 3);
  CHECK(x.rejected_count == 6);
  CHECK(x.success_count == 0);
}

TEST_CASE_METHOD(guard_fixture,
                 "after the recovery timeout, limited trials close the guard",
                 "[breaker_guard]") {
  auto g = spawn_guard();
  trip(g);
  advance(10s - 1ns);
  CHECK(is_error(call(g, 1), errc::circuit_open));
  CHECK(st->calls == 3);
  advance(1ns);
  CHECK(stats(g).state == bs::half_open);
  // Three callers at once: two trials are admitted, the third is refused.
  st->hold = true;
  auto a = start_call(g, 10);
  auto b = start_call(g, 11);
  auto c = start_call(g, 12);
  run();
  CHECK(st->calls == 5);
  CHECK(a->answers == 0);
  CHECK(b->answers == 0);
  CHECK(is_error(c, errc::half_open_limit));
  CHECK(stats(g).half_open_in_flight == 2);
  CHECK(stats(g).state == bs::half_open);
  // Both trials succeed: success_threshold = 2 closes the circuit.
  caf::anon_send(target, release_atom::value);
  run();
  CHECK(is_value(a, 20));
  CHECK(is_value(b, 22));
  CHECK(stats(g).state == bs::closed);
  st->hold = false;
  CHECK(is_value(call(g, 4), 8));
  CHECK(st->calls == 6);
}

TEST_CASE_METHOD(guard_fixture,
                 "a failed trial reopens the guard for a longer period",
                 "[breaker_guard]") {
  auto g = spawn_guard();
  trip(g);
  advance(10s);
  st->fail = true;
  CHECK(call(g, 1)->value->error() == caf::sec::runtime_error);
  CHECK(stats(g).state == bs::open);
  // The open period doubled: still open after 10 s, half-open at 20 s.
  advance(10s);
  CHECK(stats(g).state == bs::open);
  advance(10s);
  CHECK(stats(g).state == bs::half_open);
  CHECK(transitions()
        == std::vector<std::pair<bs, bs>>{{bs::closed, bs::open},
                                          {bs::open, bs::half_open},
                                          {bs::half_open, bs::open},
                                          {bs::open, bs::half_open}});
}

TEST_CASE_METHOD(guard_fixture,
                 "a call without reply fails with call_timeout on time",
                 "[breaker_guard]") {
  auto cfg = test_config();
  cfg.call_timeout = 5s;
  auto g = spawn_guard(cfg);
  st->hold = true;
  auto r = call(g, 1);
  CHECK(st->calls == 1);
  CHECK(r->answers == 0);
  advance(5s - 1ns);
  CHECK(r->answers == 0);
  advance(1ns);
  CHECK(is_error(r, errc::call_timeout));
  auto x = stats(g);
  CHECK(x.failure_count == 1);
  CHECK(x.timeout_count == 1);
  CHECK(x.consecutive_failures == 1);
  CHECK(count_events(breaker_event_kind::timeout) == 1);
  // The late reply is dropped: no second answer, no success counted.
  caf::anon_send(target, release_atom::value);
  run();
  CHECK(r->answers == 1);
  x = stats(g);
  CHECK(x.success_count == 0);
  CHECK(x.failure_count == 1);
  // A reply in time cancels the timeout.
  auto r2 = call(g, 2);
  advance(4s);
  caf::anon_send(target, release_atom::value);
  run();
  CHECK(is_value(r2, 4));
  advance(2s);
  CHECK(r2->answers == 1);
  x = stats(g);
  CHECK(x.success_count == 1);
  CHECK(x.timeout_count == 1);
}

TEST_CASE_METHOD(guard_fixture,
                 "concurrent callers each get exactly one answer",
                 "[breaker_guard]") {
  auto cfg = test_config();
  cfg.call_timeout = 1s;
  auto g = spawn_guard(cfg);
  SECTION("a flaky target answering at once") {
    st->fail_multiples_of_3 = true;
    std::vector<call_ptr> rs;
    for (int i = 1; i <= 8; ++i)
      rs.push_back(start_call(g, i));
    run();
    advance(2s); // No timeout may answer a second time.
    int ok = 0;
    int failed = 0;
    for (int i = 1; i <= 8; ++i) {
      auto& r = rs[static_cast<size_t>(i - 1)];
      REQUIRE(r->answers == 1);
      if (i % 3 == 0) {
        CHECK(r->value->error() == caf::sec::runtime_error);
        ++failed;
      } else {
        CHECK(is_value(r, 2 * i));
        ++ok;
      }
    }
    auto x = stats(g);
    CHECK(x.success_count == static_cast<uint64_t>(ok));
    CHECK(x.failure_count == static_cast<uint64_t>(failed));
    CHECK(x.timeout_count == 0);
    CHECK(x.state == bs::closed);
    CHECK(st->calls == 8);
  }
  SECTION("a slow target: half answer in time, half time out") {
    st->hold = true;
    std::vector<call_ptr> rs;
    for (int i = 1; i <= 4; ++i)
      rs.push_back(start_call(g, i));
    run();
    advance(500ms);
    caf::anon_send(target, release_atom::value);
    for (int i = 5; i <= 8; ++i)
      rs.push_back(start_call(g, i));
    run();
    advance(2s);
    caf::anon_send(target, release_atom::value); // Late replies.
    run();
    for (int i = 1; i <= 8; ++i) {
      auto& r = rs[static_cast<size_t>(i - 1)];
      REQUIRE(r->answers == 1);
      if (i <= 4)
        CHECK(is_value(r, 2 * i));
      else
        CHECK(is_error(r, errc::call_timeout));
    }
    auto x = stats(g);
    CHECK(x.success_count == 4);
    CHECK(x.failure_count == 4);
    CHECK(x.timeout_count == 4);
    CHECK(x.state == bs::open);
    CHECK(st->calls == 8);
  }
}

TEST_CASE_METHOD(guard_fixture, "manual reset, force_open and disable",
                 "[breaker_guard]") {
  auto g = spawn_guard();
  auto none = ask_void(g, breaker_force_open_atom::value);
  REQUIRE(none);
  CHECK_FALSE(*none);
  CHECK(stats(g).state == bs::forced_open);
  CHECK(is_error(call(g, 1), errc::circuit_open));
  // Forced open outlasts any recovery timeout.
  advance(1h);
  CHECK(is_error(call(g, 1), errc::circuit_open));
  CHECK(st->calls == 0);
  REQUIRE(ask_void(g, breaker_reset_atom::value));
  CHECK(stats(g).state == bs::closed);
  CHECK(is_value(call(g, 1), 2));
  CHECK(st->calls == 1);
  // Disabled: failures reach the caller but never trip the circuit.
  REQUIRE(ask_void(g, breaker_disable_atom::value));
  st->fail = true;
  for (int i = 0; i < 10; ++i)
    CHECK(call(g, i)->value->error() == caf::sec::runtime_error);
  auto x = stats(g);
  CHECK(x.state == bs::disabled);
  CHECK(x.failure_count == 10);
  CHECK(st->calls == 11);
  REQUIRE(ask_void(g, breaker_reset_atom::value));
  CHECK(stats(g).state == bs::closed);
  // The open circuit closes by reset, too.
  trip(g);
  REQUIRE(ask_void(g, breaker_reset_atom::value));
  CHECK(is_value(call(g, 3), 6));
  CHECK(transitions()
        == std::vector<std::pair<bs, bs>>{{bs::closed, bs::forced_open},
                                          {bs::forced_open, bs::closed},
                                          {bs::closed, bs::disabled},
                                          {bs::disabled, bs::closed},
                                          {bs::closed, bs::open},
                                          {bs::open, bs::closed}});
}

TEST_CASE_METHOD(guard_fixture, "subscribers see events in order, on time",
                 "[breaker_guard]") {
  auto g = spawn_guard();
  trip(g);
  // The call that tripped it reports its failure before the transition.
  REQUIRE(events->size() == 4);
  CHECK((*events)[0].kind == breaker_event_kind::failure);
  CHECK((*events)[0].reason == caf::sec::runtime_error);
  CHECK((*events)[2].kind == breaker_event_kind::failure);
  CHECK((*events)[3].kind == breaker_event_kind::transition);
  CHECK((*events)[3].from == bs::closed);
  CHECK((*events)[3].to == bs::open);
  CHECK((*events)[3].name == "db");
  CHECK_FALSE((*events)[3].detail.empty());
  CHECK(call(g, 1)->answers == 1);
  REQUIRE(events->size() == 5);
  CHECK(events->back().kind == breaker_event_kind::rejected);
  CHECK(is(events->back().reason, errc::circuit_open));
  // open -> half_open is published when the period ends, without a call.
  advance(10s - 1ns);
  CHECK(events->size() == 5);
  advance(1ns);
  REQUIRE(events->size() == 6);
  CHECK(events->back().kind == breaker_event_kind::transition);
  CHECK(events->back().from == bs::open);
  CHECK(events->back().to == bs::half_open);
  CHECK(is_value(call(g, 1), 2));
  CHECK(is_value(call(g, 2), 4));
  CHECK(transitions()
        == std::vector<std::pair<bs, bs>>{{bs::closed, bs::open},
                                          {bs::open, bs::half_open},
                                          {bs::half_open, bs::closed}});
  CHECK(count_events(breaker_event_kind::success) == 2);
  // A late subscriber sees only what happens after it subscribed; an
  // unsubscribed one nothing more.
  auto late = std::make_shared<std::vector<breaker_event>>();
  auto late_sink = breaker_event_sink(*sys, late);
  REQUIRE(ask_void(g, breaker_subscribe_atom::value, late_sink));
  REQUIRE(ask_void(g, breaker_unsubscribe_atom::value, sink));
  auto before = events->size();
  CHECK(is_value(call(g, 3), 6));
  CHECK(events->size() == before);
  REQUIRE(late->size() == 1);
  CHECK(late->front().kind == breaker_event_kind::success);
}

TEST_CASE_METHOD(guard_fixture, "a dying target fails its pending calls",
                 "[breaker_guard]") {
  auto g = spawn_guard();
  st->hold = true;
  auto r = call(g, 1);
  CHECK(r->answers == 0);
  caf::anon_send(target, stop_atom::value);
  run();
  REQUIRE(r->answers == 1);
  CHECK(r->value->error() == caf::sec::request_receiver_down);
  CHECK(stats(g).failure_count == 1);
  // Calls to the dead target fail, too, and trip the circuit.
  CHECK(call(g, 2)->value->error() == caf::sec::request_receiver_down);
  CHECK(call(g, 3)->value->error() == caf::sec::request_receiver_down);
  CHECK(stats(g).state == bs::open);
  CHECK(is_error(call(g, 4), errc::circuit_open));
}

TEST_CASE_METHOD(guard_fixture, "a bad config is refused by spawn_breaker_guard",
                 "[breaker_guard]") {
  auto cfg = test_config();
  cfg.failure_threshold = -1;
  auto res = spawn_breaker_guard(*sys, target, cfg);
  REQUIRE_FALSE(res);
  CHECK(is(res.error(), errc::invalid_breaker_config));
  cfg = test_config();
  cfg.half_open_max_calls = 0;
  res = spawn_breaker_guard(*sys, target, cfg);
  REQUIRE_FALSE(res);
  CHECK(is(res.error(), errc::invalid_breaker_config));
  res = spawn_breaker_guard(*sys, caf::actor{}, test_config());
  CHECK_FALSE(res);
}

TEST_CASE_METHOD(guard_fixture,
                 "the built-in event logger prints breaker transitions",
                 "[breaker_guard][events]") {
  std::ostringstream out;
  auto logger = spawn_event_logger(*sys, out);
  guard_options opts;
  opts.name = "db";
  opts.subscribers.push_back(logger);
  auto res = spawn_breaker_guard(*sys, target, test_config(), opts);
  REQUIRE(res);
  run();
  st->fail = true;
  for (int i = 0; i < 3; ++i) {
    auto r = call(*res, i);
    REQUIRE(r->value);
    CHECK(!*r->value);
  }
  auto text = out.str();
  CHECK(text.find("[ft] [db] failure") != std::string::npos);
  CHECK(text.find("[ft] [db] transition closed -> open") != std::string::npos);
  // The logger must not outlive its stream.
  caf::anon_send_exit(logger, caf::exit_reason::kill);
  run();
}

// -- deadlines ----------------------------------------------------------------

TEST_CASE_METHOD(guard_fixture,
                 "a deadline shorter than call_timeout ends the call without "
                 "charging the breaker",
                 "[breaker_guard][deadline_request]") {
  auto cfg = test_config();
  cfg.call_timeout = 5s;
  auto g = spawn_aware_guard(cfg);
  st->hold = true;
  auto r = call_until(g, 1, 2s);
  // The envelope reached the target unchanged.
  CHECK(st->calls == 1);
  CHECK(st->last_deadline == deadline::at(t0 + 2s));
  advance(2s - 1ns);
  CHECK(r->answers == 0);
  advance(1ns);
  REQUIRE(is_error(r, errc::deadline_exceeded));
  CHECK_THAT(render(r->value->error()),
             Catch::Contains("no reply from the target of guard 'db' within "
                             "the deadline (waited 2s)"));
  auto x = stats(g);
  CHECK(x.failure_count == 0);
  CHECK(x.timeout_count == 0);
  CHECK(x.success_count == 0);
  CHECK(x.consecutive_failures == 0);
  CHECK(count_events(breaker_event_kind::timeout) == 0);
  CHECK(count_events(breaker_event_kind::failure) == 0);
  CHECK(count_events(breaker_event_kind::success) == 0);
  // The late reply is dropped and counts nothing.
  caf::anon_send(aware, release_atom::value);
  run();
  CHECK(r->answers == 1);
  CHECK(stats(g).success_count == 0);
  // A deadline after the call timeout leaves the call timeout in charge.
  auto r2 = call_until(g, 2, 2s + 10s);
  advance(5s);
  CHECK(is_error(r2, errc::call_timeout));
  x = stats(g);
  CHECK(x.timeout_count == 1);
  CHECK(x.failure_count == 1);
  advance(10s);
  CHECK(r2->answers == 1);
}

TEST_CASE_METHOD(guard_fixture,
                 "a call whose deadline passed on arrival never reaches the "
                 "target",
                 "[breaker_guard][deadline_request]") {
  auto g = spawn_guard();
  events->clear();
  auto r = call_msg(g, with_deadline(deadline::at(t0 - 1s),
                                     caf::make_message(1)));
  REQUIRE(is_error(r, errc::deadline_exceeded));
  CHECK_THAT(render(r->value->error()),
             Catch::Contains("deadline passed 1s before guard 'db' could "
                             "call its target"));
  CHECK(st->calls == 0);
  auto x = stats(g);
  CHECK(x.rejected_count == 0);
  CHECK(x.success_count == 0);
  CHECK(x.failure_count == 0);
  CHECK(events->empty());
  // A deadline at exactly now has passed, too.
  CHECK(is_error(call_until(g, 1, 0s), errc::deadline_exceeded));
  CHECK(st->calls == 0);
}

TEST_CASE_METHOD(guard_fixture,
                 "calls end at their own deadlines, not in call order",
                 "[breaker_guard][deadline_request]") {
  auto g = spawn_aware_guard();
  st->hold = true;
  auto late = call_until(g, 1, 3s);
  auto early = call_until(g, 2, 1s);
  auto none = call(g, 3);
  CHECK(st->calls == 3);
  advance(1s - 1ns);
  CHECK(early->answers == 0);
  advance(1ns);
  CHECK(is_error(early, errc::deadline_exceeded));
  CHECK(late->answers == 0);
  advance(2s - 1ns);
  CHECK(late->answers == 0);
  advance(1ns);
  CHECK(is_error(late, errc::deadline_exceeded));
  // The call without a deadline (and no call_timeout) still waits.
  advance(1h);
  CHECK(none->answers == 0);
  caf::anon_send(aware, release_atom::value);
  run();
  CHECK(is_value(none, 6));
  auto x = stats(g);
  CHECK(x.success_count == 1);
  CHECK(x.failure_count == 0);
}

TEST_CASE_METHOD(guard_fixture,
                 "a call ended by its deadline frees its half-open slot",
                 "[breaker_guard][deadline_request]") {
  auto g = spawn_aware_guard();
  trip(g);
  advance(10s);
  REQUIRE(stats(g).state == bs::half_open);
  st->hold = true;
  auto a = call_until(g, 1, 10s + 1s);
  auto b = call_until(g, 2, 10s + 1s);
  CHECK(st->calls == 5);
  // Both trial slots taken.
  CHECK(is_error(call(g, 3), errc::half_open_limit));
  advance(1s);
  CHECK(is_error(a, errc::deadline_exceeded));
  CHECK(is_error(b, errc::deadline_exceeded));
  // The slots are free again, and nothing was held against the target.
  st->hold = false;
  CHECK(is_value(call(g, 4), 8));
  auto x = stats(g);
  CHECK(x.state == bs::half_open);
  CHECK(x.failure_count == 3);
  CHECK(x.half_open_successes == 1);
}

TEST_CASE_METHOD(guard_fixture,
                 "a target refusing an expired deadline is not charged",
                 "[breaker_guard][deadline_request]") {
  auto g = spawn_aware_guard();
  auto r = std::make_shared<call_result>();
  auto msg = with_deadline(deadline::at(t0 + 1s), caf::make_message(1));
  sys->spawn([=](caf::event_based_actor* self) {
    self->request(g, caf::infinite, msg)
      .then([=](int y) { ++r->answers; r->value = y; },
            [=](caf::error& err) {
              ++r->answers;
              r->value = std::move(err);
            });
  });
  // Everything runs but the target: the call waits in its mailbox while
  // the deadline passes (without firing the guard's timer).
  auto t = caf::actor_cast<caf::abstract_actor*>(aware);
  sched->run_jobs_filtered([t](caf::resumable* x) {
    return dynamic_cast<caf::abstract_actor*>(x) != t;
  });
  CHECK(st->calls == 0);
  sched->clock().current_time += 1s;
  run();
  // The target refused without running its handler.
  CHECK(st->calls == 0);
  REQUIRE(is_error(r, errc::deadline_exceeded));
  CHECK_THAT(render(r->value->error()), Catch::Contains("could handle"));
  auto x = stats(g);
  CHECK(x.failure_count == 0);
  CHECK(x.success_count == 0);
  CHECK(count_events(breaker_event_kind::failure) == 0);
  advance(10s);
  CHECK(r->answers == 1);
}

TEST_CASE_METHOD(guard_fixture,
                 "request_with_deadline works across the guard",
                 "[breaker_guard][deadline_request]") {
  auto g = spawn_aware_guard();
  auto res = std::make_shared<std::vector<caf::expected<caf::message>>>();
  auto ask_with_deadline = [&](int x) {
    sys->spawn([=](caf::event_based_actor* self) {
      request_with_deadline(self, g, 2s, caf::make_message(x),
                            [=](caf::expected<caf::message> y) {
                              res->push_back(std::move(y));
                            });
    });
    run();
  };
  ask_with_deadline(21);
  REQUIRE(res->size() == 1);
  REQUIRE(res->front());
  CHECK(res->front()->get_as<int>(0) == 42);
  CHECK(st->last_deadline == deadline::at(t0 + 2s));
  st->hold = true;
  ask_with_deadline(1);
  advance(2s);
  REQUIRE(res->size() == 2);
  REQUIRE(!res->back());
  CHECK(is(res->back().error(), errc::deadline_exceeded));
  auto x = stats(g);
  CHECK(x.success_count == 1);
  CHECK(x.failure_count == 0);
}
