// The watchdog actor with real ft supervisors, on CAF's deterministic
// scheduler and test clock: stale, stuck and zombie workers are found
// exactly at their timeouts and recovered through their supervisor; failed
// recoveries escalate to the operator hook; a node watchdog finds a hung
// watchdog. Only the test that runs a real hook command waits (for the
// process, at most 2 s).

#include "ft/watchdog.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "actors/fixture.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace ft::test {
namespace {

using hang_atom = caf::atom_constant<caf::atom("hang")>;
using work_atom = caf::atom_constant<caf::atom("work")>;

/// A worker that heartbeats to `wd` every 100 ms (`heartbeat_loop`),
/// reports progress 1, 2, 3, ... on each `work`, quits normally on `stop`,
/// crashes on `crash`, and on `hang` stops handling anything (its timer
/// messages included), as a worker caught in a loop would look from
/// outside. Logs "start:ID" and "stop:ID".
caf::behavior beating_worker(caf::event_based_actor* self, journal_ptr j,
                             std::string id, watchdog_ref wd) {
  ++j->starts[id];
  j->lines.push_back("start:" + id);
  self->attach_functor(
    [j, id](const caf::error&) { j->lines.push_back("stop:" + id); });
  auto counter = std::make_shared<int64_t>(0);
  auto loop = heartbeat_loop(self, wd, id, 100ms);
  return caf::message_handler{
    [self, wd, id, counter](work_atom) {
      watchdog_progress(self, wd, id, ++*counter);
    },
    [self](hang_atom) {
      // (An unexpected message would end a CAF 0.17 actor: swallow the
      // timer's ticks instead of sending heartbeats.)
      self->become(caf::behavior{[](watchdog_tick_atom) {}, [](int) {}});
    },
    [self](stop_atom) { self->quit(); },
    [self](crash_atom) {
      self->quit(caf::make_error(caf::sec::runtime_error, "crash"));
    },
  }
    .or_else(loop);
}

start_fn beating_start(journal_ptr j, std::string id, watchdog_ref wd) {
  return start_fun(beating_worker, j, id, wd);
}

/// 0.5 s heartbeat timeout, 2 s zombie timeout, 1 s kill timeout, 3
/// recoveries, 10 s healthy period.
watchdog_config wd_config(std::string name = "wd") {
  watchdog_config cfg;
  cfg.name = std::move(name);
  cfg.node = "n1";
  cfg.heartbeat_timeout = 500ms;
  cfg.zombie_timeout = 2s;
  cfg.kill_timeout = 1s;
  cfg.max_recoveries = 3;
  cfg.healthy_period = 10s;
  return cfg;
}

supervisor_flags pool_flags(std::string name = "pool") {
  supervisor_flags f;
  f.name = std::move(name);
  f.intensity = 100;
  f.period = 60s;
  return f;
}

struct wd_fixture : fixture {
  std::shared_ptr<std::vector<watchdog_event>> evs
    = std::make_shared<std::vector<watchdog_event>>();
  caf::actor sink;

  /// Supervisors and watchdogs to kill at the end.
  std::vector<caf::actor> to_stop;

  wd_fixture() {
    sink = sys->spawn([evs = evs](caf::event_based_actor*) -> caf::behavior {
      return {[evs](const watchdog_event& ev) { evs->push_back(ev); }};
    });
  }

  ~wd_fixture() {
    // Heartbeat loops and parent heartbeats are timers that never run out,
    // and the test scheduler's shutdown runs until no timer is left: stop
    // every supervisor (with its workers) and watchdog first.
    for (auto& x : to_stop)
      caf::anon_send_exit(x, caf::exit_reason::kill);
    run();
  }

  caf::actor spawn_sup(supervisor_flags flags, std::vector<child_spec> xs) {
    auto sup = fixture::spawn_sup(std::move(flags), std::move(xs));
    to_stop.push_back(sup);
    return sup;
  }

  caf::actor spawn_wd(watchdog_config cfg, caf::actor sup,
                      watchdog_options opts = {}) {
    opts.subscribers.push_back(sink);
    auto res = spawn_watchdog(*sys, std::move(cfg), std::move(sup),
                              std::move(opts));
    REQUIRE(res);
    to_stop.push_back(*res);
    run();
    return *res;
  }

  caf::actor start(const caf::actor& sup, child_spec spec) {
    auto res = ask<caf::actor>(sup, start_child_atom::value, std::move(spec));
    REQUIRE(res);
    REQUIRE(*res);
    return **res;
  }

  std::vector<watchdog_event> events(watchdog_event_kind kind) const {
    std::vector<watchdog_event> result;
    for (auto& x : *evs)
      if (x.kind == kind)
        result.push_back(x);
    return result;
  }

  std::vector<watchdog_worker_info> status(const caf::actor& wd) {
    auto res = ask<std::vector<watchdog_worker_info>>(
      wd, watchdog_status_atom::value);
    REQUIRE(res);
    REQUIRE(*res);
    return **res;
  }

  watchdog_worker_info wd_info(const caf::actor& wd, const std::string& id) {
    for (auto& x : status(wd))
      if (x.id == id)
        return x;
    FAIL("watchdog does not know " << id);
    return {};
  }

  /// Simulates a hang of `x`: schedules it (a message it ignores) and
  /// takes its job out of the scheduler's queue, so it stops processing
  /// its mailbox while messages keep arriving. `release` puts it back.
  caf::resumable* hold(const caf::actor& x) {
    caf::anon_send(x, watchdog_status_atom::value);
    auto ptr = dynamic_cast<caf::resumable*>(
      caf::actor_cast<caf::abstract_actor*>(x));
    auto i = std::find(sched->jobs.begin(), sched->jobs.end(), ptr);
    REQUIRE(i != sched->jobs.end());
    sched->jobs.erase(i);
    return ptr;
  }

  void release(caf::resumable* ptr) {
    sched->jobs.push_back(ptr);
    run();
  }
};

} // namespace

// -- stale --------------------------------------------------------------------

TEST_CASE_METHOD(wd_fixture,
                 "a worker that stops heartbeating is asked to exit exactly at "
                 "heartbeat_timeout and restarted by its supervisor",
                 "[watchdog_actor]") {
  auto sup = spawn_sup(pool_flags(), {});
  // Static: the logger may still write while the fixture drains.
  static std::ostringstream log;
  log.str("");
  watchdog_options opts;
  opts.subscribers.push_back(spawn_event_logger(*sys, log));
  auto wd = spawn_wd(wd_config(), sup, opts);
  auto w1 = start(sup, worker("w", beating_start(j, "w", wd)));
  auto down = watch(w1);
  // Its first heartbeat registered it.
  REQUIRE(wd_info(wd, "w").actor == w1);
  for (int i = 0; i < 3; ++i)
    advance(100ms);
  // The last heartbeat was the one just now; then it hangs.
  caf::anon_send(w1, hang_atom::value);
  run();
  advance(499ms);
  CHECK(events(watchdog_event_kind::stale).empty());
  CHECK_FALSE(*down);
  advance(1ms);
  auto stale = events(watchdog_event_kind::stale);
  REQUIRE(stale.size() == 1);
  CHECK(stale[0].worker == "w");
  CHECK(stale[0].watchdog == "wd");
  CHECK(stale[0].severity == 2);
  CHECK_THAT(stale[0].detail, Contains("w stale for 0.5s"));
  // Killed with watchdog_timeout, so its supervisor restarted it.
  REQUIRE(*down);
  CHECK(is(**down, errc::watchdog_timeout));
  CHECK_THAT(render(**down), Contains("w stale for 0.5s"));
  CHECK(j->starts["w"] == 2);
  auto w2 = child_handle(sup, "w");
  CHECK(w2 != w1);
  auto x = wd_info(wd, "w");
  CHECK(x.actor == w2);
  CHECK(x.alive);
  CHECK(x.incarnation == 2);
  CHECK(x.recovering);
  CHECK(x.last_fault == "stale");
  CHECK(events(watchdog_event_kind::recovered).size() == 1);
  CHECK_THAT(log.str(), Contains("[ft] [wd] stale worker=w severity=2"));
  // The replacement beats: no more findings, and after the healthy period
  // the recovery counts as done.
  for (int i = 0; i < 110; ++i)
    advance(100ms);
  CHECK(events(watchdog_event_kind::stale).size() == 1);
  CHECK(j->starts["w"] == 2);
  CHECK_FALSE(wd_info(wd, "w").recovering);
}

TEST_CASE_METHOD(wd_fixture,
                 "a worker that traps the watchdog's exit is killed after "
                 "kill_timeout; its replacement is adopted from the "
                 "supervisor's event",
                 "[watchdog_actor]") {
  auto sup = spawn_sup(pool_flags(), {});
  auto wd = spawn_wd(wd_config(), sup);
  // The fixture's test worker traps exits and never heartbeats itself.
  auto t1 = start(sup, worker("t", worker_start(j, "t", nullptr, true)));
  auto down = watch(t1);
  auto reg = ask_void(wd, watchdog_register_atom::value, std::string{"t"}, t1);
  REQUIRE(reg);
  REQUIRE_FALSE(*reg);
  // Anonymous heartbeats count too.
  advance(400ms);
  caf::anon_send(wd, watchdog_heartbeat_atom::value, std::string{"t"});
  run();
  advance(499ms);
  CHECK(events(watchdog_event_kind::stale).empty());
  advance(1ms);
  CHECK(events(watchdog_event_kind::stale).size() == 1);
  // It ignored the exit ...
  CHECK_FALSE(*down);
  advance(999ms);
  CHECK_FALSE(*down);
  // ... so it is killed one kill_timeout later.
  advance(1ms);
  REQUIRE(*down);
  CHECK(**down == caf::exit_reason::kill);
  auto t2 = child_handle(sup, "t");
  CHECK(t2 != t1);
  CHECK(j->starts["t"] == 2);
  // It never registered itself: the watchdog took it from child_restarted.
  auto x = wd_info(wd, "t");
  CHECK(x.actor == t2);
  CHECK(x.alive);
  CHECK(events(watchdog_event_kind::recovered).size() == 1);
}

// -- stuck --------------------------------------------------------------------

TEST_CASE_METHOD(wd_fixture,
                 "a worker that heartbeats without progress is stuck exactly "
                 "progress_timeout after its last progress",
                 "[watchdog_actor]") {
  auto sup = spawn_sup(pool_flags(), {});
  auto cfg = wd_config();
  cfg.progress_timeout = 1s;
  auto wd = spawn_wd(cfg, sup);
  auto w1 = start(sup, worker("w", beating_start(j, "w", wd)));
  auto down = watch(w1);
  for (int i = 0; i < 3; ++i) {
    advance(100ms);
    caf::anon_send(w1, work_atom::value);
    run();
  }
  CHECK(wd_info(wd, "w").progress == 3);
  // Heartbeats go on every 100 ms, progress does not.
  for (int i = 0; i < 9; ++i)
    advance(100ms);
  CHECK(events(watchdog_event_kind::stuck).empty());
  CHECK(events(watchdog_event_kind::stale).empty());
  CHECK_FALSE(*down);
  advance(99ms);
  CHECK(events(watchdog_event_kind::stuck).empty());
  advance(1ms);
  auto stuck = events(watchdog_event_kind::stuck);
  REQUIRE(stuck.size() == 1);
  CHECK_THAT(stuck[0].detail, Contains("w stuck for 1s"));
  REQUIRE(*down);
  CHECK(is(**down, errc::watchdog_timeout));
  CHECK_THAT(render(**down), Contains("w stuck for 1s"));
  CHECK(j->starts["w"] == 2);
  // The replacement has not reported progress yet: it is not stuck.
  for (int i = 0; i < 30; ++i)
    advance(100ms);
  CHECK(events(watchdog_event_kind::stuck).size() == 1);
  CHECK_FALSE(wd_info(wd, "w").has_progress);
}

// -- zombie -------------------------------------------------------------------

TEST_CASE_METHOD(wd_fixture,
                 "a registered worker that died without a replacement is "
                 "restarted through restart_child after zombie_timeout",
                 "[watchdog_actor]") {
  // Workers started before their watchdog reach it by its registered name
  // and register with their next heartbeat once it exists.
  auto name = caf::atom("ftpoolwd");
  auto sup = spawn_sup(pool_flags(), {worker("w", beating_start(j, "w", name),
                                             restart_type::transient)});
  watchdog_options opts;
  opts.registered_name = name;
  auto wd = spawn_wd(wd_config(), sup, opts);
  CHECK(sys->registry().get<caf::actor>(name) == wd);
  CHECK(status(wd).empty());
  advance(100ms);
  auto w1 = child_handle(sup, "w");
  REQUIRE(wd_info(wd, "w").actor == w1);
  // A normal exit: the transient child stays down, still registered.
  caf::anon_send(w1, stop_atom::value);
  run();
  CHECK(info(sup, "w").state == child_state::undefined);
  CHECK_FALSE(wd_info(wd, "w").alive);
  advance(1999ms);
  CHECK(events(watchdog_event_kind::zombie).empty());
  CHECK(j->starts["w"] == 1);
  advance(1ms);
  auto zombie = events(watchdog_event_kind::zombie);
  REQUIRE(zombie.size() == 1);
  CHECK_THAT(zombie[0].detail, Contains("w zombie for 2s"));
  CHECK_THAT(zombie[0].detail, Contains("restart_child w"));
  CHECK(j->starts["w"] == 2);
  auto w2 = child_handle(sup, "w");
  auto x = wd_info(wd, "w");
  CHECK(x.actor == w2);
  CHECK(x.alive);
  CHECK(x.incarnation == 2);
  CHECK(events(watchdog_event_kind::recovered).size() == 1);
  CHECK(events(watchdog_event_kind::recovery_failed).empty());
}

TEST_CASE_METHOD(wd_fixture,
                 "unregistered workers are no longer watched",
                 "[watchdog_actor]") {
  auto sup = spawn_sup(pool_flags(), {});
  auto wd = spawn_wd(wd_config(), sup);
  auto w = start(sup, worker("w", worker_start(j, "w"),
                             restart_type::temporary));
  auto reg = ask_void(wd, watchdog_register_atom::value, std::string{"w"}, w,
                      std::string{"w"});
  REQUIRE(reg);
  REQUIRE_FALSE(*reg);
  // An invalid handle is refused.
  auto bad = ask_void(wd, watchdog_register_atom::value, std::string{"x"},
                      caf::actor{});
  REQUIRE(bad);
  CHECK(is(*bad, errc::invalid_config));
  CHECK(status(wd).size() == 1);
  auto none = ask_void(wd, watchdog_unregister_atom::value, std::string{"w"});
  REQUIRE(none);
  CHECK_FALSE(*none);
  auto again = ask_void(wd, watchdog_unregister_atom::value, std::string{"w"});
  REQUIRE(again);
  CHECK(is(*again, errc::not_found));
  caf::anon_send(w, crash_atom::value);
  run();
  advance(5s);
  CHECK(status(wd).empty());
  CHECK(evs->empty());
}

// -- escalation ---------------------------------------------------------------

TEST_CASE_METHOD(wd_fixture,
                 "failed restarts escalate after max_recoveries; the hook runs "
                 "at most once per hook_min_interval",
                 "[watchdog_actor]") {
  auto sup = spawn_sup(pool_flags(), {});
  auto cfg = wd_config();
  cfg.zombie_timeout = 1s;
  cfg.max_recoveries = 2;
  cfg.escalation_severity = 3;
  cfg.operator_hook = "page-oncall";
  cfg.hook_min_interval = 60s;
  auto calls = std::make_shared<std::vector<hook_invocation>>();
  watchdog_options opts;
  opts.run_hook = [calls](const hook_invocation& x) { calls->push_back(x); };
  auto wd = spawn_wd(cfg, sup, opts);
  // A temporary child: its supervisor drops it when it dies, so
  // restart_child cannot bring it back.
  auto w = start(sup, worker("tmp", beating_start(j, "tmp", wd),
                             restart_type::temporary));
  REQUIRE(wd_info(wd, "tmp").actor == w);
  caf::anon_send(w, crash_atom::value);
  run();
  advance(1s);
  CHECK(events(watchdog_event_kind::zombie).size() == 1);
  auto failed = events(watchdog_event_kind::recovery_failed);
  REQUIRE(failed.size() == 1);
  CHECK(failed[0].severity == 3);
  CHECK_THAT(failed[0].detail, Contains("not_found"));
  CHECK_THAT(failed[0].detail, Contains("1 failed recoveries in a row"));
  CHECK(events(watchdog_event_kind::escalated).empty());
  CHECK(calls->empty());
  advance(1s);
  auto esc = events(watchdog_event_kind::escalated);
  REQUIRE(esc.size() == 1);
  CHECK(esc[0].severity == 3);
  CHECK(esc[0].fault == watchdog_fault::zombie);
  CHECK_THAT(esc[0].detail, Contains("tmp: 2 failed recoveries in a row"));
  REQUIRE(calls->size() == 1);
  auto& x = calls->front();
  CHECK(x.command == "page-oncall");
  CHECK(x.severity == 3);
  CHECK(x.worker == "tmp");
  CHECK(x.kind == "zombie");
  CHECK(x.node == "n1");
  CHECK(x.watchdog == "wd");
  CHECK(x.failed_recoveries == 2);
  CHECK(x.suppressed == 0);
  // It keeps failing: an escalation every 2 s, the hook once a minute.
  for (int i = 0; i < 59; ++i)
    advance(1s);
  CHECK(events(watchdog_event_kind::escalated).size() == 30);
  CHECK(calls->size() == 1);
  advance(1s);
  CHECK(events(watchdog_event_kind::escalated).size() == 31);
  REQUIRE(calls->size() == 2);
  CHECK(calls->back().suppressed == 29);
}

TEST_CASE_METHOD(wd_fixture,
                 "the default hook runner runs the operator command with the "
                 "escalation in its environment",
                 "[watchdog_actor]") {
  auto path = "/tmp/ft-watchdog-actor-hook-" + std::to_string(getpid());
  std::remove(path.c_str());
  auto sup = spawn_sup(pool_flags(), {});
  auto cfg = wd_config();
  cfg.zombie_timeout = 1s;
  cfg.max_recoveries = 1;
  cfg.operator_hook = "echo \"$FT_SEVERITY $FT_WORKER $FT_KIND $FT_NODE "
                      "$FT_WATCHDOG\" > "
                      + path + ".tmp && mv " + path + ".tmp " + path;
  cfg.hook_timeout = 5s;
  auto wd = spawn_wd(cfg, sup);
  auto w = start(sup, worker("tmp", beating_start(j, "tmp", wd),
                             restart_type::temporary));
  caf::anon_send(w, crash_atom::value);
  run();
  advance(1s);
  REQUIRE(events(watchdog_event_kind::escalated).size() == 1);
  // The hook runs on its own thread: wait for its file, 2 s at most.
  std::string line;
  for (int i = 0; i < 200 && line.empty(); ++i) {
    std::ifstream in{path};
    std::getline(in, line);
    if (line.empty())
      std::this_thread::sleep_for(10ms);
  }
  CHECK(line == "4 tmp zombie n1 wd");
  std::remove(path.c_str());
}

// -- layering -----------------------------------------------------------------

TEST_CASE_METHOD(wd_fixture,
                 "a node watchdog finds a hung watchdog, which its "
                 "supervisor then restarts",
                 "[watchdog_actor]") {
  auto node_sup = spawn_sup(pool_flags("node"), {});
  auto node_cfg = wd_config("node-wd");
  node_cfg.heartbeat_timeout = 1s;
  watchdog_options node_opts;
  node_opts.registered_name = caf::atom("ftnodewd");
  auto node_wd = spawn_wd(node_cfg, node_sup, node_opts);
  // The pool watchdog heartbeats to the node watchdog by name every 200 ms;
  // its child id in the node supervisor is its name.
  auto pool_cfg = wd_config("pool-wd");
  pool_cfg.heartbeat_interval = 200ms;
  auto pool_start = [pool_cfg](caf::actor_system& sys, const caf::message&) {
    watchdog_options opts;
    opts.parent = caf::atom("ftnodewd");
    return spawn_watchdog(sys, pool_cfg, caf::actor{}, opts);
  };
  auto pool_wd = start(node_sup, worker("pool-wd", pool_start));
  auto down = watch(pool_wd);
  REQUIRE(wd_info(node_wd, "pool-wd").actor == pool_wd);
  for (int i = 0; i < 5; ++i)
    advance(200ms);
  CHECK(wd_info(node_wd, "pool-wd").silent_for == 0s);
  // It hangs right after its heartbeat.
  auto job = hold(pool_wd);
  for (int i = 0; i < 9; ++i)
    advance(100ms);
  advance(99ms);
  CHECK(events(watchdog_event_kind::stale).empty());
  advance(1ms);
  auto stale = events(watchdog_event_kind::stale);
  REQUIRE(stale.size() == 1);
  CHECK(stale[0].watchdog == "node-wd");
  CHECK(stale[0].worker == "pool-wd");
  CHECK_THAT(stale[0].detail, Contains("pool-wd stale for 1s"));
  // Hung, it cannot even process the exit ...
  CHECK_FALSE(*down);
  // ... until it comes back: then it ends, and its supervisor restarts it.
  release(job);
  REQUIRE(*down);
  CHECK(is(**down, errc::watchdog_timeout));
  auto pool_wd2 = child_handle(node_sup, "pool-wd");
  CHECK(pool_wd2 != pool_wd);
  auto x = wd_info(node_wd, "pool-wd");
  CHECK(x.actor == pool_wd2);
  CHECK(x.alive);
  CHECK(x.incarnation == 2);
  CHECK(events(watchdog_event_kind::recovered).size() == 1);
  // The new incarnation heartbeats: no further findings.
  for (int i = 0; i < 20; ++i)
    advance(200ms);
  CHECK(events(watchdog_event_kind::stale).size() == 1);
}

} // namespace ft::test
