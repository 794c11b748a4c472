#include "ft/recovery_request.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/fixture.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace ft::test {
namespace {

using kind = recovery_step_kind;

/// Every call any test worker received: `name@ms`, in order.
struct call_log {
  std::vector<std::string> calls;
  std::vector<caf::response_promise> held;

  /// The calls `name` received, as times since the start.
  std::vector<caf::timespan> times_of(const std::string& name) const {
    std::vector<caf::timespan> result;
    for (auto& x : calls)
      if (x.rfind(name + "@", 0) == 0)
        result.emplace_back(
          std::chrono::milliseconds(std::stoll(x.substr(name.size() + 1))));
    return result;
  }

  size_t count(const std::string& name) const {
    return times_of(name).size();
  }
};

using call_log_ptr = std::shared_ptr<call_log>;

/// How a test worker misbehaves.
enum class mode { ok, fail, silent };

/// Answers `int x` with `"NAME:x"`, or fails with `child_stopped`, or never
/// answers; logs each call with its test-clock time.
caf::behavior test_target(caf::event_based_actor* self, call_log_ptr log,
                          std::string name, mode m,
                          caf::actor_clock::time_point t0) {
  return {
    [=](int x) -> caf::result<std::string> {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        self->clock().now() - t0);
      log->calls.push_back(name + "@" + std::to_string(ms.count()));
      switch (m) {
        case mode::ok:
          return name + ":" + std::to_string(x);
        case mode::fail:
          return make_error(errc::child_stopped, name + " is broken");
        case mode::silent:
          log->held.push_back(self->make_response_promise());
          return caf::delegated<std::string>{};
      }
      return caf::error{};
    },
  };
}

/// A supervised worker whose first incarnation fails every call and whose
/// later ones answer `"NAME#incarnation:x"`.
caf::behavior broken_first(caf::event_based_actor*, journal_ptr j,
                           std::string name) {
  auto incarnation = ++j->starts[name];
  j->lines.push_back("start:" + name);
  return {
    [=](int x) -> caf::result<std::string> {
      if (incarnation == 1)
        return make_error(errc::child_stopped, "first incarnation is bad");
      return name + "#" + std::to_string(incarnation) + ":"
             + std::to_string(x);
    },
  };
}

/// `step#attempt target outcome` (attempt and target left out when empty).
std::string line(const recovery_event& ev) {
  std::string result = to_string(ev.step);
  if (ev.attempt > 0)
    result += "#" + std::to_string(ev.attempt);
  if (!ev.target.empty())
    result += " " + ev.target;
  return result + " " + to_string(ev.outcome);
}

using result_ptr = std::shared_ptr<std::optional<caf::expected<recovery_result>>>;

struct rec_fixture : fixture {
  caf::actor_clock::time_point t0 = sys->clock().now();
  call_log_ptr log = std::make_shared<call_log>();
  std::vector<recovery_event> events;
  std::vector<recovery_event> escalations;
  int fallback_calls = 0;

  caf::actor target(const std::string& name, mode m) {
    auto x = sys->spawn(test_target, log, name, m, t0);
    keep_alive.push_back(x);
    return x;
  }

  /// Options with the hooks recording into this fixture.
  recovery_options options(caf::actor worker) {
    recovery_options opts;
    opts.name = "job";
    opts.worker = std::move(worker);
    opts.on_event = [this](const recovery_event& ev) {
      events.push_back(ev);
    };
    opts.on_escalate = [this](const recovery_event& ev) {
      escalations.push_back(ev);
    };
    opts.random01 = [] { return 0.5; };
    return opts;
  }

  /// A fallback that answers `"degraded:x"`, or fails if `ok` is false.
  recovery_fallback fallback(bool ok) {
    return [this, ok](const caf::message& req,
                      const caf::error& last) -> caf::expected<caf::message> {
      ++fallback_calls;
      CHECK(last); // it gets the error it recovers from
      if (!ok)
        return make_error(errc::not_supported, "no cached answer");
      return caf::make_message("degraded:"
                               + std::to_string(req.get_as<int>(0)));
    };
  }

  /// Spawns a caller making one recovery request for `x`.
  result_ptr start(recovery_options opts, int x = 7,
                   caf::actor* caller_out = nullptr) {
    auto res = std::make_shared<
      std::optional<caf::expected<recovery_result>>>();
    auto caller = sys->spawn(
      [=](caf::event_based_actor* self) -> caf::behavior {
        auto me = self->id();
        recovery_request(self, caf::make_message(x), opts,
                         [=](caf::expected<recovery_result> r) {
                           // The handler runs inside the caller.
                           CHECK(self->id() == me);
                           *res = std::move(r);
                         });
        return {[](int) {}};
      });
    keep_alive.push_back(caller);
    if (caller_out)
      *caller_out = caller;
    run();
    return res;
  }

  /// Advances in steps of `step`, so each timer fires at its own time.
  void advance_steps(caf::timespan total, caf::timespan step = 1ms) {
    for (caf::timespan t{0}; t < total; t += step)
      advance(step);
  }

  std::vector<std::string> lines() const {
    std::vector<std::string> result;
    for (auto& ev : events)
      result.push_back(line(ev));
    return result;
  }
};

/// A chain with short, fixed delayed_retry pauses for walking quickly.
recovery_chain_config quick_chain() {
  recovery_chain_config cfg;
  cfg.steps[1].backoff.initial_delay = 100ms;
  return cfg;
}

std::string reply_of(const result_ptr& res) {
  REQUIRE(*res);
  REQUIRE(**res);
  auto& msg = (**res)->reply;
  REQUIRE(msg.match_elements<std::string>());
  return msg.get_as<std::string>(0);
}

} // namespace

TEST_CASE("recovery_request: a first call that answers needs no recovery",
          "[recovery_request]") {
  rec_fixture f;
  auto res = f.start(f.options(f.target("p", mode::ok)));
  CHECK(reply_of(res) == "p:7");
  CHECK_FALSE((**res)->recovered());
  CHECK((**res)->attempts == 1);
  CHECK(f.events.empty());
}

TEST_CASE("recovery_request: a worker failing always walks the whole chain "
          "in order",
          "[recovery_request]") {
  rec_fixture f;
  auto p = f.target("p", mode::fail);
  auto opts = f.options(p);
  opts.chain = quick_chain();
  opts.pool = {f.target("w1", mode::fail), p, f.target("w2", mode::fail)};
  opts.resources = {{"gpu", f.target("g1", mode::fail)}};
  opts.fallback = f.fallback(false);
  auto res = f.start(opts);
  // Up to the first pause: the first call and the immediate retry.
  CHECK(f.log->calls == std::vector<std::string>{"p@0", "p@0"});
  CHECK_FALSE(*res);
  f.advance_steps(700ms);
  REQUIRE(*res);
  CHECK(f.lines()
        == std::vector<std::string>{
          "immediate_retry#1 primary failed",
          "delayed_retry#1 primary failed",
          "delayed_retry#2 primary failed",
          "delayed_retry#3 primary failed",
          "switch_worker#1 pool[0] failed",
          "switch_worker#2 pool[1] failed",
          "switch_resource#1 gpu failed",
          "degrade#1 fallback failed",
          "escalate#1 operator escalated",
        });
  // The workers saw exactly these calls, in this order.
  CHECK(f.log->calls
        == std::vector<std::string>{"p@0", "p@0", "p@100", "p@300", "p@700",
                                    "w1@700", "w2@700", "g1@700"});
  CHECK(f.fallback_calls == 1);
  // Events carry the error, the pause and a severity.
  CHECK(is(f.events[0].error, errc::child_stopped));
  CHECK(f.events[2].delay == 200ms);
  CHECK(f.events[0].severity == 2);
  CHECK(f.events[7].error == make_error(errc::not_supported));
  CHECK(f.events.back().severity == 4);
  CHECK(f.events.back().timestamp_ms > 0);
  // The answer: recovery_exhausted naming the escalation and last error.
  REQUIRE_FALSE(**res);
  auto err = (**res).error();
  CHECK(is(err, errc::recovery_exhausted));
  CHECK_THAT(render(err), Contains("job: escalated after 9 calls"));
  CHECK_THAT(render(err), Contains("last error: not_supported"));
  // Nothing is left to run.
  f.advance_steps(10s, 100ms);
  CHECK(f.log->calls.size() == 8);
  CHECK(f.events.size() == 9);
}

TEST_CASE("recovery_request: delayed_retry pauses per its backoff on the "
          "actor clock",
          "[recovery_request]") {
  rec_fixture f;
  auto opts = f.options(f.target("p", mode::fail));
  recovery_step delayed{kind::delayed_retry, 3};
  delayed.backoff.backoff = backoff_kind::exponential;
  delayed.backoff.initial_delay = 50ms;
  delayed.backoff.max_delay = 150ms;
  opts.chain.steps = {delayed};
  auto res = f.start(opts);
  CHECK(f.log->times_of("p") == std::vector<caf::timespan>{0ms});
  f.advance_steps(49ms);
  CHECK(f.log->count("p") == 1);
  f.advance_steps(1ms);
  CHECK(f.log->count("p") == 2);
  f.advance_steps(250ms);
  CHECK(f.log->times_of("p")
        == std::vector<caf::timespan>{0ms, 50ms, 150ms, 300ms});
  REQUIRE(*res);
  REQUIRE_FALSE(**res);
  CHECK(is((**res).error(), errc::recovery_exhausted));
  CHECK_THAT(render((**res).error()), Contains("chain exhausted after 4"));
  CHECK(f.lines().back() == "delayed_retry exhausted");
  CHECK(f.events.back().severity == 3);
  CHECK(f.escalations.empty());
}

TEST_CASE("recovery_request: switch_worker answers from the pool's next "
          "worker and ends the chain",
          "[recovery_request]") {
  rec_fixture f;
  auto p = f.target("p", mode::fail);
  auto w1 = f.target("w1", mode::fail);
  auto w2 = f.target("w2", mode::ok);
  auto opts = f.options(p);
  opts.chain.steps = {recovery_step{kind::switch_worker},
                      recovery_step{kind::switch_resource},
                      recovery_step{kind::degrade}, recovery_step{kind::escalate}};
  opts.pool = {p, w1, w2};
  opts.resources = {{"gpu", f.target("g1", mode::ok)}};
  opts.fallback = f.fallback(true);
  auto res = f.start(opts);
  CHECK(reply_of(res) == "w2:7");
  CHECK((**res)->step == kind::switch_worker);
  CHECK((**res)->worker == w2);
  CHECK((**res)->attempts == 3);
  CHECK_FALSE((**res)->degraded());
  CHECK(f.lines()
        == std::vector<std::string>{"switch_worker#1 pool[0] failed",
                                    "switch_worker#2 pool[1] succeeded"});
  CHECK(f.events.back().actor == w2);
  // Later steps never ran.
  CHECK(f.log->count("g1") == 0);
  CHECK(f.fallback_calls == 0);
  CHECK(f.escalations.empty());
}

TEST_CASE("recovery_request: switch_resource answers from another resource",
          "[recovery_request]") {
  rec_fixture f;
  auto g2 = f.target("g2", mode::ok);
  auto opts = f.options(f.target("p", mode::fail));
  opts.chain.steps = {recovery_step{kind::switch_worker},
                      recovery_step{kind::switch_resource},
                      recovery_step{kind::escalate}};
  opts.resources = {{"gpu-a", f.target("g1", mode::fail)}, {"gpu-b", g2}};
  auto res = f.start(opts);
  CHECK(reply_of(res) == "g2:7");
  CHECK((**res)->step == kind::switch_resource);
  CHECK((**res)->worker == g2);
  CHECK(f.lines()
        == std::vector<std::string>{"switch_worker skipped",
                                    "switch_resource#1 gpu-a failed",
                                    "switch_resource#2 gpu-b succeeded"});
  CHECK(f.events[0].detail == "no other worker in the pool");
}

TEST_CASE("recovery_request: degrade answers from the fallback",
          "[recovery_request]") {
  rec_fixture f;
  auto opts = f.options(f.target("p", mode::fail));
  opts.fallback = f.fallback(true);
  opts.chain.steps = {recovery_step{kind::immediate_retry},
                      recovery_step{kind::degrade},
                      recovery_step{kind::escalate}};
  auto res = f.start(opts);
  CHECK(reply_of(res) == "degraded:7");
  CHECK((**res)->degraded());
  CHECK_FALSE((**res)->worker);
  CHECK(f.lines()
        == std::vector<std::string>{"immediate_retry#1 primary failed",
                                    "degrade#1 fallback succeeded"});
  CHECK(f.events.back().severity == 2);
  CHECK(f.fallback_calls == 1);
  CHECK(f.escalations.empty());
}

TEST_CASE("recovery_request: steps without targets are recorded as skipped",
          "[recovery_request]") {
  rec_fixture f;
  auto opts = f.options(f.target("p", mode::fail));
  opts.chain.steps = {recovery_step{kind::restart},
                      recovery_step{kind::switch_worker},
                      recovery_step{kind::switch_resource},
                      recovery_step{kind::degrade},
                      recovery_step{kind::escalate}};
  // Only the primary itself in the pool: nobody to switch to.
  opts.pool = {opts.worker};
  auto res = f.start(opts);
  REQUIRE(*res);
  CHECK(f.lines()
        == std::vector<std::string>{"restart skipped", "switch_worker skipped",
                                    "switch_resource skipped",
                                    "degrade skipped",
                                    "escalate#1 operator escalated"});
  for (size_t i = 0; i < 4; ++i) {
    CHECK(f.events[i].severity == 1);
    CHECK_FALSE(f.events[i].detail.empty());
  }
  CHECK(f.events[3].detail == "no fallback");
  CHECK(f.log->count("p") == 1);
}

TEST_CASE("recovery_request: escalate calls the operator hook and can "
          "escalate to the supervisor",
          "[recovery_request]") {
  rec_fixture f;
  auto [sink, sup_events] = f.event_sink();
  f.keep_alive.push_back(sink);
  supervisor_flags flags;
  flags.name = "pool";
  flags.subscribers = {sink};
  auto sup = f.spawn_sup(flags, {worker("w", [j = f.j](caf::actor_system& sys,
                                                       const caf::message&)
                                               -> caf::expected<caf::actor> {
                                   return sys.spawn(broken_first, j, "w");
                                 })});
  auto w = f.child_handle(sup, "w");
  auto opts = f.options(w);
  opts.chain.steps = {recovery_step{kind::escalate}};
  SECTION("the operator hook only") {
    auto res = f.start(opts);
    REQUIRE(*res);
    CHECK_FALSE(**res);
    REQUIRE(f.escalations.size() == 1);
    auto& ev = f.escalations.front();
    CHECK(ev.step == kind::escalate);
    CHECK(ev.outcome == recovery_outcome::escalated);
    CHECK(ev.severity == 4);
    CHECK(ev.name == "job");
    CHECK(is(ev.error, errc::child_stopped));
    CHECK_THAT(ev.detail, StartsWith("escalated after 1 call;"));
    CHECK(f.j->starts["w"] == 1);
  }
  SECTION("and the supervisor") {
    opts.escalate_to_supervisor = true;
    auto res = f.start(opts);
    REQUIRE(*res);
    CHECK(f.escalations.size() == 1);
    // The worker failed with `escalated`; its supervisor restarted it.
    auto exits = events_of(*sup_events, event_kind::child_exited);
    REQUIRE(exits.size() == 1);
    CHECK(is(exits[0].reason, errc::escalated));
    CHECK(f.j->starts["w"] == 2);
  }
}

TEST_CASE("recovery_request: restart asks the supervisor for a new "
          "incarnation and calls it",
          "[recovery_request]") {
  rec_fixture f;
  auto [sink, sup_events] = f.event_sink();
  f.keep_alive.push_back(sink);
  supervisor_flags flags;
  flags.name = "pool";
  flags.subscribers = {sink};
  auto sup = f.spawn_sup(flags, {worker("w", [j = f.j](caf::actor_system& sys,
                                                       const caf::message&)
                                               -> caf::expected<caf::actor> {
                                   return sys.spawn(broken_first, j, "w");
                                 })});
  auto first = f.child_handle(sup, "w");
  auto opts = f.options(first);
  opts.supervisor = sup;
  opts.child_id = "w";
  opts.chain.steps = {recovery_step{kind::restart, 2, 1s},
                      recovery_step{kind::escalate}};
  auto res = f.start(opts);
  // The restart waits for its delay.
  CHECK_FALSE(*res);
  f.advance_steps(999ms);
  CHECK_FALSE(*res);
  CHECK(f.j->starts["w"] == 1);
  f.advance_steps(1ms);
  REQUIRE(*res);
  CHECK(reply_of(res) == "w#2:7");
  CHECK((**res)->step == kind::restart);
  auto second = f.child_handle(sup, "w");
  CHECK(second != first);
  CHECK((**res)->worker == second);
  CHECK(f.j->starts["w"] == 2);
  CHECK(f.lines() == std::vector<std::string>{"restart#1 restart:w succeeded"});
  CHECK(f.events[0].delay == 1s);
  CHECK(f.events[0].actor == second);
  // The supervisor saw an orderly stop and a start, not a crash.
  CHECK(events_of(*sup_events, event_kind::child_started).size() == 2);
  CHECK(events_of(*sup_events, event_kind::child_restarted).empty());
  CHECK(f.escalations.empty());
}

TEST_CASE("recovery_request: a failed restart is an attempt that failed",
          "[recovery_request]") {
  rec_fixture f;
  auto sup = f.spawn_sup(supervisor_flags{}, {test_child(f.j, "other")});
  auto opts = f.options(f.target("p", mode::fail));
  opts.supervisor = sup;
  opts.child_id = "missing";
  opts.chain.steps = {recovery_step{kind::restart, 1}};
  auto res = f.start(opts);
  REQUIRE(*res);
  CHECK(f.lines()
        == std::vector<std::string>{"restart#1 restart:missing failed",
                                    "restart exhausted"});
  CHECK(is(f.events[0].error, errc::not_found));
  CHECK_THAT(render((**res).error()), Contains("last error: not_found"));
}

TEST_CASE("recovery_request: a silent worker fails with call_timeout",
          "[recovery_request]") {
  rec_fixture f;
  auto opts = f.options(f.target("p", mode::silent));
  opts.chain.call_timeout = 1s;
  opts.pool = {f.target("w1", mode::ok)};
  opts.chain.steps = {recovery_step{kind::immediate_retry},
                      recovery_step{kind::switch_worker}};
  auto res = f.start(opts);
  f.advance_steps(999ms, 333ms);
  CHECK(f.log->count("p") == 1);
  f.advance_steps(1ms);
  CHECK(f.log->count("p") == 2);
  CHECK_FALSE(*res);
  f.advance_steps(1s, 500ms);
  CHECK(reply_of(res) == "w1:7");
  CHECK(f.lines()
        == std::vector<std::string>{"immediate_retry#1 primary failed",
                                    "switch_worker#1 pool[0] succeeded"});
  CHECK(is(f.events[0].error, errc::call_timeout));
  CHECK(f.log->times_of("w1") == std::vector<caf::timespan>{2000ms});
}

TEST_CASE("recovery_request: on/except send resource errors straight to "
          "degrade",
          "[recovery_request]") {
  rec_fixture f;
  auto opts = f.options(f.target("p", mode::fail));
  opts.fallback = f.fallback(true);
  recovery_step retry{kind::immediate_retry, 2};
  retry.except = {"child_stopped"};
  opts.chain.steps = {retry, recovery_step{kind::degrade}};
  auto res = f.start(opts);
  CHECK(reply_of(res) == "degraded:7");
  CHECK(f.lines()
        == std::vector<std::string>{"immediate_retry skipped",
                                    "degrade#1 fallback succeeded"});
  CHECK(f.events[0].detail == "does not apply to child_stopped");
  CHECK(f.log->count("p") == 1);
}

TEST_CASE("recovery_request: subscribers receive the events as messages",
          "[recovery_request]") {
  rec_fixture f;
  auto got = std::make_shared<std::vector<recovery_event>>();
  auto sub = f.sys->spawn([got](caf::event_based_actor*) -> caf::behavior {
    return {[got](const recovery_event& ev) { got->push_back(ev); }};
  });
  f.keep_alive.push_back(sub);
  auto opts = f.options(f.target("p", mode::fail));
  opts.subscribers = {sub};
  opts.chain.steps = {recovery_step{kind::immediate_retry},
                      recovery_step{kind::escalate}};
  f.start(opts);
  REQUIRE(got->size() == 2);
  CHECK(line((*got)[0]) == "immediate_retry#1 primary failed");
  CHECK(line((*got)[1]) == "escalate#1 operator escalated");
  CHECK_THAT(to_string((*got)[1]),
             StartsWith("[job] escalate #1 operator escalated (escalated "
                        "after 2 calls"));
}

TEST_CASE("recovery_request: bad options are answered, never thrown",
          "[recovery_request]") {
  rec_fixture f;
  SECTION("invalid chain") {
    auto opts = f.options(f.target("p", mode::ok));
    opts.chain.steps = {recovery_step{kind::escalate},
                        recovery_step{kind::degrade}};
    auto res = f.start(opts);
    REQUIRE(*res);
    REQUIRE_FALSE(**res);
    CHECK(is((**res).error(), errc::invalid_config));
    CHECK_THAT(render((**res).error()), Contains("chain[0].step = escalate"));
    CHECK(f.log->calls.empty());
  }
  SECTION("no worker") {
    auto res = f.start(f.options(caf::actor{}));
    REQUIRE(*res);
    REQUIRE_FALSE(**res);
    CHECK((**res).error() == caf::sec::invalid_argument);
  }
}

TEST_CASE("recovery_request: the helper dies with its caller",
          "[recovery_request]") {
  rec_fixture f;
  auto opts = f.options(f.target("p", mode::fail));
  recovery_step delayed{kind::delayed_retry, 3};
  delayed.backoff.backoff = backoff_kind::fixed;
  delayed.backoff.initial_delay = 100ms;
  opts.chain.steps = {delayed};
  caf::actor caller;
  auto res = f.start(opts, 7, &caller);
  CHECK(f.log->count("p") == 1);
  caf::anon_send_exit(caller, caf::exit_reason::kill);
  f.run();
  f.advance_steps(1s, 50ms);
  CHECK(f.log->count("p") == 1);
  CHECK_FALSE(*res);
  CHECK(f.events.empty());
}

} // namespace ft::test
