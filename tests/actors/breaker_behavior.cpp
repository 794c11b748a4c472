// The breaker behaviour decorator on the deterministic test scheduler: a
// worker actor whose own behaviour is wrapped; calls, outcomes, tripping,
// trials, call timeouts and events happen only when a test runs the actors
// or advances the clock.

#include "ft/breaker_behavior.hpp"
#include "actors/fixture.hpp"

#include <algorithm>

using namespace ft;
using namespace ft::test;
using namespace std::chrono_literals;

namespace {

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using release_atom = caf::atom_constant<caf::atom("release")>;
using blind_atom = caf::atom_constant<caf::atom("blind")>;
using abandon_atom = caf::atom_constant<caf::atom("abandon")>;
using switch_atom = caf::atom_constant<caf::atom("switch")>;

caf::error worker_error() {
  return caf::make_error(caf::sec::runtime_error, "worker failed");
}

// -- the backend: what a deferred handler waits for ---------------------------

struct backend_state {
  int calls = 0;
  /// Answer with `runtime_error`.
  bool fail = false;
  /// When >= 0: answer with `runtime_error` once `calls` exceeds it.
  int fail_after = -1;
  /// Keep calls unanswered until `release`.
  bool hold = false;
  std::vector<std::pair<caf::response_promise, int>> held;
};

using backend_ptr = std::shared_ptr<backend_state>;

caf::message backend_answer(const backend_state& b, int x) {
  if (b.fail || (b.fail_after >= 0 && b.calls > b.fail_after))
    return caf::make_message(worker_error());
  return caf::make_message(x * 2);
}

/// Answers `int x` with `2 * x` (or an error, or later); `release` delivers
/// the held calls (per the state at release time).
caf::behavior backend(caf::event_based_actor* self, backend_ptr b) {
  return {
    [=](int x) -> caf::result<caf::message> {
      ++b->calls;
      if (b->hold) {
        auto rp = self->make_response_promise();
        b->held.emplace_back(rp, x);
        return rp;
      }
      return backend_answer(*b, x);
    },
    [=](release_atom) {
      auto held = std::move(b->held);
      b->held.clear();
      for (auto& kvp : held)
        kvp.first.deliver(backend_answer(*b, kvp.second));
    },
  };
}

// -- the decorated worker -----------------------------------------------------

/// What the worker does and saw; the test changes the modes between calls.
struct worker_state {
  /// Handler runs of the first behaviour (int, string, ping, blind, abandon).
  int runs = 0;
  /// Handler runs of the behaviour `switch` becomes.
  int switched_runs = 0;
  /// Answer int calls with `runtime_error`.
  bool fail = false;
  /// When >= 0: int calls fail once `runs` exceeds it.
  int fail_after = -1;
  /// Answer int calls later through a breaker_promise, after a request to
  /// the backend.
  bool defer = false;
  /// The error of breaker_decorator::make, if it failed.
  std::optional<caf::error> make_error;
};

using worker_ptr = std::shared_ptr<worker_state>;

/// The behaviour `switch` becomes: int calls answer `3 * x`.
caf::behavior switched_behavior(worker_ptr st) {
  return {
    [=](int x) -> caf::result<int> {
      ++st->switched_runs;
      if (st->fail)
        return worker_error();
      return x * 3;
    },
  };
}

/// `int x` -> `2 * x` (or an error, or later per the state), `string s` ->
/// `s + "!"`, `ping` -> nothing, `(blind, x)` delegates to the backend,
/// `abandon` makes a breaker_promise and drops it, `switch` becomes
/// `switched_behavior` behind the same decorator.
caf::behavior worker_behavior(caf::event_based_actor* self, worker_ptr st,
                              caf::actor be, breaker_decorator dec) {
  return {
    [=](int x) -> caf::result<int> {
      ++st->runs;
      if (st->defer) {
        auto rp = dec.make_response_promise();
        self->request(be, caf::infinite, x)
          .then([rp](int y) mutable { rp.deliver(y); },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      }
      if (st->fail || (st->fail_after >= 0 && st->runs > st->fail_after))
        return worker_error();
      return x * 2;
    },
    [=](const std::string& s) -> caf::result<caf::message> {
      ++st->runs;
      // A message that holds an error is an error answer.
      if (s == "bad")
        return caf::make_message(worker_error());
      return caf::make_message(s + "!");
    },
    [=](ping_atom) { ++st->runs; },
    [=](blind_atom, int x) {
      ++st->runs;
      return self->delegate(be, x);
    },
    [=](abandon_atom) -> caf::result<int> {
      ++st->runs;
      auto rp = dec.make_response_promise();
      return rp; // the last copy goes here
    },
    [=](switch_atom) { self->become(dec.wrap(switched_behavior(st))); },
  };
}

caf::behavior decorated_worker(caf::event_based_actor* self, worker_ptr st,
                               caf::actor be, breaker_config cfg,
                               decorator_options opts) {
  // Unmatched messages: an `unexpected_message` error, without printing.
  self->set_default_handler(caf::drop);
  auto dec = breaker_decorator::make(self, std::move(cfg), std::move(opts));
  if (!dec) {
    st->make_error = dec.error();
    self->quit(dec.error());
    return {};
  }
  return dec->wrap(worker_behavior(self, st, be, *dec));
}

/// As the guard tests: trips after 3 consecutive failures, probes after
/// 10 s with 2 trials at once, closes after 2 trial successes.
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

bool is_worker_error(const call_ptr& x) {
  return x->answers == 1 && x->value && !*x->value
         && x->value->error() == caf::sec::runtime_error;
}

/// What one of the concurrent callers got.
struct tally {
  int answers = 0;
  int values = 0;
  int failures = 0;
  int rejected = 0;
  int other = 0;
};

using tally_ptr = std::shared_ptr<tally>;

/// Requests `(first)` from `w`, and on its answer the next, `n` in all.
void caller_step(caf::event_based_actor* self, caf::actor w, tally_ptr t,
                 int first, int n) {
  if (n == 0)
    return;
  self->request(w, caf::infinite, first)
    .then(
      [=](int) {
        ++t->answers;
        ++t->values;
        caller_step(self, w, t, first + 1, n - 1);
      },
      [=](caf::error& err) {
        ++t->answers;
        if (err == caf::sec::runtime_error)
          ++t->failures;
        else if (is(err, errc::circuit_open))
          ++t->rejected;
        else
          ++t->other;
        caller_step(self, w, t, first + 1, n - 1);
      });
}

struct decorator_fixture : fixture {
  worker_ptr st = std::make_shared<worker_state>();
  backend_ptr bst = std::make_shared<backend_state>();
  caf::actor be;
  std::shared_ptr<std::vector<breaker_event>> events
    = std::make_shared<std::vector<breaker_event>>();
  caf::actor sink;

  decorator_fixture() {
    be = sys->spawn(backend, bst);
    sink = breaker_event_sink(*sys, events);
  }

  caf::actor spawn_worker(breaker_config cfg = test_config(),
                          bool subscribe = true) {
    decorator_options opts;
    opts.name = "svc";
    if (subscribe)
      opts.subscribers.push_back(sink);
    auto w = sys->spawn(decorated_worker, st, be, std::move(cfg),
                        std::move(opts));
    run();
    REQUIRE_FALSE(st->make_error);
    return w;
  }

  /// Sends `(xs...)` to `w` from a fresh actor without running: callers
  /// started one after another reach the worker together on the next run().
  template <class... Ts>
  call_ptr start_call(const caf::actor& w, Ts... xs) {
    auto res = std::make_shared<call_result>();
    sys->spawn([=](caf::event_based_actor* self) {
      self->request(w, caf::infinite, xs...)
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

  template <class... Ts>
  call_ptr call(const caf::actor& w, Ts... xs) {
    auto res = start_call(w, xs...);
    run();
    return res;
  }

  breaker_stats stats(const caf::actor& w) {
    auto res = ask<breaker_stats>(w, breaker_stats_atom::value);
    REQUIRE(res);
    REQUIRE(*res);
    return **res;
  }

  void trip(const caf::actor& w) {
    st->fail = true;
    for (int i = 0; i < 3; ++i)
      REQUIRE(is_worker_error(call(w, i)));
    REQUIRE(stats(w).state == breaker_state::open);
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
                    [kind](const breaker_event& ev) {
                      return ev.kind == kind;
                    }));
  }
};

using bs = breaker_state;

} // namespace

TEST_CASE_METHOD(decorator_fixture,
                 "a closed decorator passes values and errors and counts them",
                 "[breaker_behavior]") {
  auto w = spawn_worker();
  CHECK(is_value(call(w, 21), 42));
  auto s = ask<std::string>(w, std::string{"hi"});
  REQUIRE(s);
  REQUIRE(*s);
  CHECK(**s == "hi!");
  auto v = ask_void(w, ping_atom::value);
  REQUIRE(v);
  CHECK_FALSE(*v);
  st->fail = true;
  CHECK(is_worker_error(call(w, 1)));
  st->fail = false;
  auto bad = ask<std::string>(w, std::string{"bad"});
  REQUIRE(bad);
  REQUIRE_FALSE(*bad);
  CHECK(bad->error() == caf::sec::runtime_error);
  CHECK(st->runs == 5);
  auto x = stats(w);
  CHECK(x.state == bs::closed);
  CHECK(x.success_count == 3);
  CHECK(x.failure_count == 2);
  CHECK(x.consecutive_failures == 2);
  CHECK(x.rejected_count == 0);
  // An asynchronous message is a call, too.
  caf::anon_send(w, 5);
  run();
  CHECK(st->runs == 6);
  CHECK(stats(w).success_count == 4);
  CHECK(count_events(breaker_event_kind::success) == 4);
  CHECK(count_events(breaker_event_kind::failure) == 2);
  CHECK(transitions().empty());
  REQUIRE_FALSE(events->empty());
  CHECK(events->front().name == "svc");
}

TEST_CASE_METHOD(decorator_fixture,
                 "without subscribers, successes skip the clock and failures "
                 "still trip on time",
                 "[breaker_behavior]") {
  auto w = spawn_worker(test_config(), false);
  // Successes over an hour of test time: the fast path reads no clock.
  for (int i = 0; i < 4; ++i) {
    CHECK(is_value(call(w, i), 2 * i));
    advance(15min);
  }
  // The failure that trips reads the clock: the open period starts now,
  // not at the last reading (an hour ago; stats would read the clock).
  st->fail = true;
  for (int i = 0; i < 3; ++i)
    CHECK(is_worker_error(call(w, i)));
  st->fail = false;
  auto x = stats(w);
  CHECK(x.state == bs::open);
  CHECK(x.success_count == 4);
  CHECK(x.failure_count == 3);
  advance(10s - 1ns);
  CHECK(is_error(call(w, 1), errc::circuit_open));
  advance(1ns);
  CHECK(is_value(call(w, 1), 2));
  CHECK(is_value(call(w, 2), 4));
  CHECK(stats(w).state == bs::closed);
  CHECK(events->empty());
}

TEST_CASE_METHOD(decorator_fixture,
                 "without subscribers, a window's rate trips on a success "
                 "on time",
                 "[breaker_behavior]") {
  auto cfg = test_config();
  cfg.failure_threshold = 0;
  cfg.window = breaker_config::window_kind::count_based;
  cfg.window_size = 4;
  cfg.minimum_calls = 4;
  cfg.failure_rate_threshold = 50.0;
  auto w = spawn_worker(cfg, false);
  st->fail = true;
  CHECK(is_worker_error(call(w, 1)));
  CHECK(is_worker_error(call(w, 2)));
  st->fail = false;
  advance(1h);
  CHECK(is_value(call(w, 3), 6));
  // The fourth call is a success, and 2 failures of 4 calls trip.
  CHECK(is_value(call(w, 4), 8));
  CHECK(stats(w).state == bs::open);
  advance(10s - 1ns);
  CHECK(is_error(call(w, 5), errc::circuit_open));
  advance(1ns);
  CHECK(stats(w).state == bs::half_open);
}

TEST_CASE_METHOD(decorator_fixture,
                 "failures trip the decorator, which then fails fast "
                 "without running the handler",
                 "[breaker_behavior]") {
  auto w = spawn_worker();
  st->fail = true;
  CHECK(is_worker_error(call(w, 1)));
  CHECK(is_worker_error(call(w, 2)));
  CHECK(stats(w).state == bs::closed);
  CHECK(is_worker_error(call(w, 3)));
  CHECK(stats(w).state == bs::open);
  CHECK(st->runs == 3);
  // The call that tripped it reports its failure before the transition.
  REQUIRE(events->size() == 4);
  CHECK((*events)[2].kind == breaker_event_kind::failure);
  CHECK((*events)[2].reason == caf::sec::runtime_error);
  CHECK((*events)[3].kind == breaker_event_kind::transition);
  CHECK((*events)[3].from == bs::closed);
  CHECK((*events)[3].to == bs::open);
  CHECK_FALSE((*events)[3].detail.empty());
  // Open: no handler runs, whatever the message.
  st->fail = false;
  for (int i = 0; i < 5; ++i)
    CHECK(is_error(call(w, i), errc::circuit_open));
  auto s = ask<std::string>(w, std::string{"hi"});
  REQUIRE(s);
  REQUIRE_FALSE(*s);
  CHECK(is(s->error(), errc::circuit_open));
  CHECK(st->runs == 3);
  auto x = stats(w);
  CHECK(x.failure_count == 3);
  CHECK(x.rejected_count == 6);
  CHECK(x.success_count == 0);
  CHECK(count_events(breaker_event_kind::rejected) == 6);
  CHECK(is(events->back().reason, errc::circuit_open));
  // open -> half_open is published when the period ends, without a call.
  auto before = events->size();
  advance(10s - 1ns);
  CHECK(events->size() == before);
  advance(1ns);
  REQUIRE(events->size() == before + 1);
  CHECK(events->back().from == bs::open);
  CHECK(events->back().to == bs::half_open);
}

TEST_CASE_METHOD(decorator_fixture,
                 "half_open admits half_open_max_calls deferred trials and "
                 "rejects the rest",
                 "[breaker_behavior]") {
  auto w = spawn_worker();
  trip(w);
  advance(10s - 1ns);
  CHECK(is_error(call(w, 1), errc::circuit_open));
  advance(1ns);
  CHECK(stats(w).state == bs::half_open);
  // Three callers at once; the trials wait for the backend.
  st->defer = true;
  bst->hold = true;
  auto runs = st->runs;
  auto a = start_call(w, 10);
  auto b = start_call(w, 11);
  auto c = start_call(w, 12);
  run();
  CHECK(st->runs == runs + 2);
  CHECK(bst->calls == 2);
  CHECK(a->answers == 0);
  CHECK(b->answers == 0);
  CHECK(is_error(c, errc::half_open_limit));
  CHECK(stats(w).half_open_in_flight == 2);
  CHECK(stats(w).state == bs::half_open);
  CHECK(is_error(call(w, 13), errc::half_open_limit));
  // Both trials succeed: success_threshold = 2 closes the circuit.
  caf::anon_send(be, release_atom::value);
  run();
  CHECK(is_value(a, 20));
  CHECK(is_value(b, 22));
  auto x = stats(w);
  CHECK(x.state == bs::closed);
  CHECK(x.success_count == 2);
  CHECK(x.rejected_count == 3);
  st->defer = false;
  CHECK(is_value(call(w, 4), 8));
  CHECK(transitions()
        == std::vector<std::pair<bs, bs>>{{bs::closed, bs::open},
                                          {bs::open, bs::half_open},
                                          {bs::half_open, bs::closed}});
}

TEST_CASE_METHOD(decorator_fixture,
                 "a failed deferred trial reopens the decorator",
                 "[breaker_behavior]") {
  auto w = spawn_worker();
  trip(w);
  advance(10s);
  st->defer = true;
  bst->fail = true;
  CHECK(is_worker_error(call(w, 1)));
  CHECK(stats(w).state == bs::open);
  CHECK(stats(w).failure_count == 4);
  // The open period doubled.
  advance(10s);
  CHECK(stats(w).state == bs::open);
  advance(10s);
  CHECK(stats(w).state == bs::half_open);
}

TEST_CASE_METHOD(decorator_fixture,
                 "asynchronous messages are dropped while open, with a "
                 "rejected event",
                 "[breaker_behavior]") {
  auto w = spawn_worker();
  trip(w);
  auto runs = st->runs;
  auto rejected = count_events(breaker_event_kind::rejected);
  caf::anon_send(w, 7);
  run();
  CHECK(st->runs == runs);
  CHECK(count_events(breaker_event_kind::rejected) == rejected + 1);
  CHECK(is(events->back().reason, errc::circuit_open));
  CHECK(stats(w).rejected_count == 1);
  // A sender that is an actor gets no answer either: no error message
  // lands in its mailbox.
  caf::scoped_actor self{*sys};
  self->send(w, 8);
  run();
  CHECK(self->mailbox().empty());
  CHECK(st->runs == runs);
  CHECK(stats(w).rejected_count == 2);
  // Closed again: asynchronous messages run the handler and count; an
  // error result goes back to the sender, as CAF does for any actor.
  REQUIRE(ask_void(w, breaker_reset_atom::value));
  caf::anon_send(w, 9);
  run();
  CHECK(st->runs == runs + 1);
  CHECK(stats(w).success_count == 1);
  st->fail = true;
  self->send(w, 10);
  run();
  CHECK(st->runs == runs + 2);
  CHECK(stats(w).failure_count == 4);
  CHECK_FALSE(self->mailbox().empty());
}

TEST_CASE_METHOD(decorator_fixture,
                 "control messages reset, force open, disable, report and "
                 "subscribe on the decorated actor",
                 "[breaker_behavior]") {
  auto w = spawn_worker();
  auto none = ask_void(w, breaker_force_open_atom::value);
  REQUIRE(none);
  CHECK_FALSE(*none);
  CHECK(stats(w).state == bs::forced_open);
  CHECK(is_error(call(w, 1), errc::circuit_open));
  advance(1h);
  CHECK(is_error(call(w, 1), errc::circuit_open));
  CHECK(st->runs == 0);
  REQUIRE(ask_void(w, breaker_reset_atom::value));
  CHECK(stats(w).state == bs::closed);
  CHECK(is_value(call(w, 1), 2));
  // Disabled: failures reach the caller but never trip the circuit.
  REQUIRE(ask_void(w, breaker_disable_atom::value));
  st->fail = true;
  for (int i = 0; i < 10; ++i)
    CHECK(is_worker_error(call(w, i)));
  auto x = stats(w);
  CHECK(x.state == bs::disabled);
  CHECK(x.failure_count == 10);
  CHECK(st->runs == 11);
  REQUIRE(ask_void(w, breaker_reset_atom::value));
  st->fail = false;
  // Control messages are no calls.
  x = stats(w);
  CHECK(x.success_count == 1);
  CHECK(x.rejected_count == 2);
  CHECK(transitions()
        == std::vector<std::pair<bs, bs>>{{bs::closed, bs::forced_open},
                                          {bs::forced_open, bs::closed},
                                          {bs::closed, bs::disabled},
                                          {bs::disabled, bs::closed}});
  // A late subscriber sees only what happens after it subscribed; an
  // unsubscribed one nothing more; a terminated one is dropped.
  auto late = std::make_shared<std::vector<breaker_event>>();
  auto late_sink = breaker_event_sink(*sys, late);
  REQUIRE(ask_void(w, breaker_subscribe_atom::value, late_sink));
  REQUIRE(ask_void(w, breaker_subscribe_atom::value, late_sink));
  REQUIRE(ask_void(w, breaker_unsubscribe_atom::value, sink));
  auto before = events->size();
  CHECK(is_value(call(w, 3), 6));
  CHECK(events->size() == before);
  REQUIRE(late->size() == 1); // subscribed once
  CHECK(late->front().kind == breaker_event_kind::success);
  CHECK(late->front().name == "svc");
  caf::anon_send_exit(late_sink, caf::exit_reason::user_shutdown);
  run();
  CHECK(is_value(call(w, 4), 8));
  CHECK(late->size() == 1);
}

TEST_CASE_METHOD(decorator_fixture,
                 "a deferred call fails with call_timeout on time and its "
                 "late deliver is dropped",
                 "[breaker_behavior]") {
  auto cfg = test_config();
  cfg.call_timeout = 5s;
  auto w = spawn_worker(cfg);
  st->defer = true;
  bst->hold = true;
  auto r = call(w, 1);
  CHECK(st->runs == 1);
  CHECK(r->answers == 0);
  advance(5s - 1ns);
  CHECK(r->answers == 0);
  advance(1ns);
  CHECK(is_error(r, errc::call_timeout));
  auto x = stats(w);
  CHECK(x.failure_count == 1);
  CHECK(x.timeout_count == 1);
  CHECK(x.consecutive_failures == 1);
  CHECK(count_events(breaker_event_kind::timeout) == 1);
  // The late answer is dropped: no second answer, no success counted.
  caf::anon_send(be, release_atom::value);
  run();
  CHECK(r->answers == 1);
  x = stats(w);
  CHECK(x.success_count == 0);
  CHECK(x.failure_count == 1);
  // Seen from a mailbox: exactly one answer, the timeout.
  caf::scoped_actor self{*sys};
  self->request(w, caf::infinite, 3);
  run();
  advance(5s);
  CHECK(self->mailbox().size() == 1);
  caf::anon_send(be, release_atom::value);
  run();
  CHECK(self->mailbox().size() == 1);
  CHECK(stats(w).timeout_count == 2);
  // An answer in time cancels the timeout.
  auto r2 = call(w, 2);
  advance(4s);
  caf::anon_send(be, release_atom::value);
  run();
  CHECK(is_value(r2, 4));
  advance(2s);
  CHECK(r2->answers == 1);
  x = stats(w);
  CHECK(x.success_count == 1);
  CHECK(x.timeout_count == 2);
  CHECK(x.consecutive_failures == 0);
}

TEST_CASE_METHOD(decorator_fixture,
                 "become(dec.wrap(other)) keeps the same circuit",
                 "[breaker_behavior]") {
  auto w = spawn_worker();
  st->fail = true;
  CHECK(is_worker_error(call(w, 1)));
  CHECK(is_worker_error(call(w, 2)));
  CHECK(stats(w).consecutive_failures == 2);
  st->fail = false;
  // `switch` is a call, too: a success that clears the consecutive count.
  REQUIRE(ask_void(w, switch_atom::value));
  CHECK(is_value(call(w, 5), 15));
  CHECK(st->switched_runs == 1);
  st->fail = true;
  for (int i = 0; i < 3; ++i)
    CHECK(is_worker_error(call(w, i)));
  // The new behaviour trips the same circuit, which keeps its counters.
  auto x = stats(w);
  CHECK(x.state == bs::open);
  CHECK(x.failure_count == 5);
  CHECK(x.success_count == 2);
  CHECK(is_error(call(w, 1), errc::circuit_open));
  CHECK(st->switched_runs == 4);
  // Its timers reach it, too.
  advance(10s);
  CHECK(transitions().back() == std::make_pair(bs::open, bs::half_open));
}

TEST_CASE_METHOD(decorator_fixture,
                 "8 concurrent callers each get exactly one answer while the "
                 "circuit trips",
                 "[breaker_behavior]") {
  constexpr int callers = 8;
  constexpr int per_caller = 10;
  constexpr int total = callers * per_caller;
  auto cfg = test_config();
  cfg.call_timeout = 1s;
  auto w = spawn_worker(cfg);
  SECTION("synchronous handlers") {
    st->fail_after = 20;
  }
  SECTION("deferred handlers, answered through the backend") {
    // Failures come back while other calls are in flight: their outcomes
    // arrive after the trip and still count once each.
    st->defer = true;
    bst->fail_after = 20;
  }
  // Each caller sends its next request when the previous one is answered;
  // all eight are in the worker's mailbox together.
  std::vector<std::shared_ptr<tally>> ts;
  for (int c = 0; c < callers; ++c) {
    auto t = std::make_shared<tally>();
    ts.push_back(t);
    sys->spawn([=](caf::event_based_actor* self) {
      caller_step(self, w, t, c * 100, per_caller);
    });
  }
  run();
  advance(2s); // No timeout may answer a second time.
  tally sum;
  for (auto& t : ts) {
    CHECK(t->answers == per_caller);
    sum.answers += t->answers;
    sum.values += t->values;
    sum.failures += t->failures;
    sum.rejected += t->rejected;
    sum.other += t->other;
  }
  CHECK(sum.answers == total);
  CHECK(sum.other == 0);
  auto x = stats(w);
  CHECK(x.success_count + x.failure_count + x.rejected_count
        == static_cast<uint64_t>(total));
  CHECK(x.success_count == static_cast<uint64_t>(sum.values));
  CHECK(x.failure_count == static_cast<uint64_t>(sum.failures));
  CHECK(x.rejected_count == static_cast<uint64_t>(sum.rejected));
  CHECK(x.timeout_count == 0);
  CHECK(x.state == bs::open);
  CHECK(sum.rejected > 0);
  CHECK(sum.values > 0);
  CHECK(st->runs == sum.values + sum.failures);
}

TEST_CASE_METHOD(decorator_fixture,
                 "unmatched messages are not counted and free their permit",
                 "[breaker_behavior]") {
  auto w = spawn_worker();
  auto r = ask<int>(w, 1.5);
  REQUIRE(r);
  REQUIRE_FALSE(*r);
  CHECK(r->error() == caf::sec::unexpected_message);
  auto x = stats(w);
  CHECK(x.success_count == 0);
  CHECK(x.failure_count == 0);
  CHECK(x.rejected_count == 0);
  CHECK(count_events(breaker_event_kind::success) == 0);
  // Half-open: an unmatched message takes no trial slot.
  trip(w);
  advance(10s);
  st->defer = true;
  bst->hold = true;
  auto a = start_call(w, 1);
  run();
  CHECK(ask<int>(w, 2.5));
  CHECK(stats(w).half_open_in_flight == 1);
  auto b = start_call(w, 2);
  run();
  CHECK(stats(w).half_open_in_flight == 2);
  CHECK(bst->calls == 2);
  caf::anon_send(be, release_atom::value);
  run();
  CHECK(is_value(a, 2));
  CHECK(is_value(b, 4));
  CHECK(stats(w).state == bs::closed);
}

TEST_CASE_METHOD(decorator_fixture,
                 "delegated and abandoned calls release their trial slot "
                 "and count nothing",
                 "[breaker_behavior]") {
  auto w = spawn_worker();
  trip(w);
  advance(10s);
  auto before = stats(w);
  // Delegated: the backend answers the caller directly; the breaker is
  // blind to the outcome.
  CHECK(is_value(call(w, blind_atom::value, 4), 8));
  // Abandoned: the handler dropped its breaker_promise (no call timeout:
  // the caller gets no answer, as with CAF's own promises).
  auto r = call(w, abandon_atom::value);
  CHECK(r->answers == 0);
  auto x = stats(w);
  CHECK(x.state == bs::half_open);
  CHECK(x.half_open_in_flight == 0);
  CHECK(x.success_count == before.success_count);
  CHECK(x.failure_count == before.failure_count);
  CHECK(st->runs == 3 + 2);
}

TEST_CASE_METHOD(decorator_fixture, "a bad config is refused",
                 "[breaker_behavior]") {
  auto cfg = test_config();
  cfg.failure_threshold = -1;
  auto w = sys->spawn(decorated_worker, st, be, cfg, decorator_options{});
  run();
  REQUIRE(st->make_error);
  CHECK(is(*st->make_error, errc::invalid_breaker_config));
  auto res = breaker_decorator::make(nullptr, test_config());
  CHECK_FALSE(res);
}

TEST_CASE_METHOD(decorator_fixture, "typed behaviours can be decorated",
                 "[breaker_behavior]") {
  using doubler = caf::typed_actor<caf::replies_to<int>::with<int>>;
  auto runs = std::make_shared<int>(0);
  auto fail = std::make_shared<bool>(false);
  auto t = sys->spawn([=](doubler::pointer self) -> doubler::behavior_type {
    auto dec = breaker_decorator::make(self, test_config());
    REQUIRE(dec);
    return dec->wrap(doubler::behavior_type{
      [=](int x) -> caf::result<int> {
        ++*runs;
        if (*fail)
          return worker_error();
        return x * 2;
      },
    });
  });
  run();
  auto w = caf::actor_cast<caf::actor>(t);
  CHECK(is_value(call(w, 4), 8));
  *fail = true;
  for (int i = 0; i < 3; ++i)
    CHECK(is_worker_error(call(w, i)));
  CHECK(is_error(call(w, 5), errc::circuit_open));
  CHECK(*runs == 4);
  auto x = stats(w);
  CHECK(x.state == bs::open);
  CHECK(x.success_count == 1);
  CHECK(x.failure_count == 3);
  CHECK(x.rejected_count == 1);
}
