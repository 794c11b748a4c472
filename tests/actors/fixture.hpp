#pragma once

// A Catch2 fixture around CAF's deterministic test scheduler: actors run only
// when a test calls run(), and time moves only when it calls advance(), so
// every supervision timing (delays, shutdown timeouts, restart windows) is
// exact and no test sleeps.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <catch2/catch.hpp>

#include "ft/all.hpp"

namespace ft::test {

using crash_atom = caf::atom_constant<caf::atom("crash")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using shut_atom = caf::atom_constant<caf::atom("shut")>;
using whoami_atom = caf::atom_constant<caf::atom("whoami")>;

/// What the test workers and start functions record, in order.
struct journal {
  std::vector<std::string> lines;
  std::map<std::string, int> starts;

  /// Lines starting with `prefix`, in order.
  std::vector<std::string> with(const std::string& prefix) const {
    std::vector<std::string> result;
    for (auto& x : lines)
      if (x.rfind(prefix, 0) == 0)
        result.push_back(x);
    return result;
  }
};

using journal_ptr = std::shared_ptr<journal>;

/// A worker that answers `int` with `int + offset`, `whoami` with its name
/// and start count, quits normally on `stop`, with `user_shutdown` on
/// `shut`, abnormally on `crash`; it logs "start:NAME" and "stop:NAME".
/// With `trap_exits`, it ignores exit messages (only a kill stops it).
inline caf::behavior test_worker(caf::event_based_actor* self, journal_ptr j,
                                 std::string name, bool trap_exits) {
  auto incarnation = ++j->starts[name];
  j->lines.push_back("start:" + name);
  self->attach_functor(
    [j, name](const caf::error&) { j->lines.push_back("stop:" + name); });
  if (trap_exits)
    self->set_exit_handler([](caf::exit_msg&) {});
  return {
    [](int x) { return x + 1000; },
    [name, incarnation](whoami_atom) {
      return name + "#" + std::to_string(incarnation);
    },
    [self](stop_atom) { self->quit(); },
    [self](shut_atom) { self->quit(caf::exit_reason::user_shutdown); },
    [self](crash_atom) {
      self->quit(caf::make_error(caf::sec::runtime_error, "crash"));
    },
  };
}

/// A start function for test_worker; fails (start_failed) while `*fail`.
inline start_fn worker_start(journal_ptr j, std::string name,
                             std::shared_ptr<bool> fail = nullptr,
                             bool trap_exits = false) {
  return [=](caf::actor_system& sys,
             const caf::message&) -> caf::expected<caf::actor> {
    if (fail && *fail)
      return make_error(errc::invalid_config, "refusing to start " + name);
    return sys.spawn(test_worker, j, name, trap_exits);
  };
}

inline child_spec test_child(journal_ptr j, std::string id,
                             restart_type restart = restart_type::permanent) {
  return worker(id, worker_start(j, id), restart);
}

struct fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  journal_ptr j = std::make_shared<journal>();
  std::vector<caf::actor> keep_alive;

  fixture() {
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.verbosity", caf::atom("quiet"));
    cfg.add_error_category(error_category, render_ft_error);
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
  }

  ~fixture() {
    // Drain: pending timers (e.g. shutdown kill timers) hold their actors.
    run();
    for (int i = 0; i < 100 && sched->trigger_timeouts() > 0; ++i)
      run();
    // Stop what the test kept alive: a test target that holds its callers'
    // promises (to answer later, or never) holds itself through them, and
    // only its termination (which drops its behaviour and with it the
    // test's log of promises) breaks that cycle.
    for (auto& x : keep_alive)
      caf::anon_send_exit(x, caf::exit_reason::kill);
    run();
    // Actors a test left running (e.g. a live supervisor) must not block the
    // system's destructor.
    keep_alive.clear();
    sys->await_actors_before_shutdown(false);
  }

  /// Runs every actor until no work is left.
  void run() {
    sched->run();
  }

  /// Moves the test clock forward, firing due timers, then runs.
  void advance(caf::timespan x) {
    sched->advance_time(x);
    run();
  }

  caf::actor spawn_sup(supervisor_flags flags, std::vector<child_spec> xs) {
    auto res = spawn_supervisor(*sys, std::move(flags), std::move(xs));
    REQUIRE(res);
    run();
    return *res;
  }

  /// Sends a request from a fresh event-based actor and returns what came
  /// back after running: nothing (no answer yet), a value or an error.
  template <class T, class... Ts>
  std::optional<caf::expected<T>> ask(const caf::actor& dest, Ts... xs) {
    auto res = std::make_shared<std::optional<caf::expected<T>>>();
    sys->spawn([=](caf::event_based_actor* self) {
      self->request(dest, caf::infinite, xs...)
        .then([=](T& x) { *res = std::move(x); },
              [=](caf::error& err) { *res = std::move(err); });
    });
    run();
    return *res;
  }

  /// As ask(), for requests answered with nothing (void) or an error.
  template <class... Ts>
  std::optional<caf::error> ask_void(const caf::actor& dest, Ts... xs) {
    auto res = std::make_shared<std::optional<caf::error>>();
    sys->spawn([=](caf::event_based_actor* self) {
      self->request(dest, caf::infinite, xs...)
        .then([=]() { *res = caf::error{}; },
              [=](caf::error& err) { *res = std::move(err); });
    });
    run();
    return *res;
  }

  std::vector<child_info> which(const caf::actor& sup) {
    auto res = ask<std::vector<child_info>>(sup, which_children_atom::value);
    REQUIRE(res);
    REQUIRE(*res);
    return **res;
  }

  child_counts count(const caf::actor& sup) {
    auto res = ask<child_counts>(sup, count_children_atom::value);
    REQUIRE(res);
    REQUIRE(*res);
    return **res;
  }

  child_info info(const caf::actor& sup, const std::string& id) {
    for (auto& x : which(sup))
      if (x.id == id)
        return x;
    FAIL("no child " << id);
    return {};
  }

  caf::actor child_handle(const caf::actor& sup, const std::string& id) {
    auto x = info(sup, id);
    REQUIRE(x.state == child_state::running);
    REQUIRE(x.actor);
    return x.actor;
  }

  /// Sends `msg` to the child `id` (looked up through the supervisor).
  template <class T>
  void tell(const caf::actor& sup, const std::string& id, T msg) {
    caf::anon_send(child_handle(sup, id), msg);
    run();
  }

  /// Records the exit reason of `x` once it terminates.
  std::shared_ptr<std::optional<caf::error>> watch(const caf::actor& x) {
    auto res = std::make_shared<std::optional<caf::error>>();
    // CAF collects actors no one references: keep the watcher alive.
    keep_alive.push_back(sys->spawn([=](caf::event_based_actor* self)
                                      -> caf::behavior {
      self->monitor(x);
      self->set_down_handler([=](caf::down_msg& msg) {
        *res = msg.reason;
        self->quit();
      });
      return {[](int) {}};
    }));
    run();
    return res;
  }

  /// Spawns an actor that collects the events of supervisors it subscribes to.
  std::pair<caf::actor, std::shared_ptr<std::vector<supervisor_event>>>
  event_sink() {
    auto evs = std::make_shared<std::vector<supervisor_event>>();
    auto sink = sys->spawn([evs](caf::event_based_actor*) -> caf::behavior {
      return {[evs](const supervisor_event& ev) { evs->push_back(ev); }};
    });
    return {sink, evs};
  }
};

/// The answers one caller got: exactly one is the contract.
struct call_result {
  int answers = 0;
  std::optional<caf::expected<int>> value;
};

using call_ptr = std::shared_ptr<call_result>;

inline bool is_value(const call_ptr& x, int expected) {
  return x->answers == 1 && x->value && *x->value && **x->value == expected;
}

inline bool is_error(const call_ptr& x, errc code) {
  return x->answers == 1 && x->value && !*x->value
         && is(x->value->error(), code);
}

/// Spawns an actor that collects the breaker events it receives.
inline caf::actor
breaker_event_sink(caf::actor_system& sys,
                   std::shared_ptr<std::vector<breaker_event>> evs) {
  return sys.spawn([evs](caf::event_based_actor*) -> caf::behavior {
    return {[evs](const breaker_event& ev) { evs->push_back(ev); }};
  });
}

/// Events of one kind, in order.
inline std::vector<supervisor_event>
events_of(const std::vector<supervisor_event>& xs, event_kind kind) {
  std::vector<supervisor_event> result;
  for (auto& x : xs)
    if (x.kind == kind)
      result.push_back(x);
  return result;
}

} // namespace ft::test
