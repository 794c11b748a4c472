// ft-bench-supervision: what supervision costs over bare CAF.
//
//   ft-bench-supervision [restart_cycle|memory_per_child|spawn_1m]
//
// Prints one JSON object per benchmark on stdout (progress on stderr):
//
// - supervision.restart_cycle (1/s): child crash -> replacement answers its
//   first message, vs caf.spawn_monitor_cycle (spawn + monitor + request +
//   reply + kill + down with bare CAF). Goal: ratio >= 0.8.
// - supervision.memory_per_child (bytes): RSS per child of a
//   simple_one_for_one supervisor minus RSS per bare actor. Goal: <= 1024.
// - supervision.spawn_1m (s): start 1,000,000 children under a
//   simple_one_for_one supervisor, vs spawning 1,000,000 bare actors.
//   Goal: < 10 s.
//
// Every measurement runs in a fresh copy of this program
// (`/proc/self/exe --phase NAME`), so that one phase's heap (freed but still
// resident memory, grown hash tables) cannot flatter or penalise the next,
// and so a watchdog can bound each phase. A phase prints its raw numbers as
// JSON lines (measurements first, shutdown results after); the parent merges
// them into the result lines. Baseline and libft phases of one benchmark
// always run in the same invocation.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/all.hpp>

#include "ft/all.hpp"

#include "bench_json.hpp"

extern char** environ;

namespace {

using namespace std::chrono_literals;
using ft::bench::json;
using clk = std::chrono::steady_clock;

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using batch_atom = caf::atom_constant<caf::atom("batch")>;

// -- parameters ---------------------------------------------------------------

constexpr int cycle_warmup = 1'000;
constexpr int cycle_count = 20'000;
constexpr int cycle_rounds = 3;

constexpr size_t mem_children = 100'000;
constexpr size_t spawn_children = 1'000'000;

/// spawn_1m's tree: 1 = one simple_one_for_one supervisor; k > 1 = a
/// one_for_one root over k simple_one_for_one supervisors.
constexpr int spawn_subs = 1;

/// Requests in flight per driver (start_child, ping).
constexpr size_t pipeline_window = 1024;

/// Bare spawns per driver message: the bare driver yields between batches.
constexpr size_t spawn_batch = 1024;

/// How a child is made to crash: an abnormal exit with an error, as a real
/// crash looks. Not `exit_reason::kill`: in CAF 0.17 an actor that dies of
/// `kill` sends exit_msg{kill} over its links, which is fatal to the
/// receiver whether it traps exits or not, so a supervisor that links to its
/// children would die with them.
caf::error crash_reason() {
  return caf::make_error(caf::sec::runtime_error, "bench crash");
}

void progress(const std::string& x) {
  std::fprintf(stderr, "[bench] %s\n", x.c_str());
  std::fflush(stderr);
}

double us(clk::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// -- the child ------------------------------------------------------------------

/// The same behaviour for bare actors and supervised children: answers
/// `(ping, int)` with its own handle, so a driver can tell incarnations apart
/// and crash the one that answered.
caf::behavior bench_child(caf::event_based_actor* self) {
  return {
    [self](ping_atom, int) { return caf::actor_cast<caf::actor>(self); },
  };
}

caf::expected<caf::actor> start_bench_child(caf::actor_system& sys,
                                            const caf::message&) {
  return sys.spawn(bench_child);
}

/// Stops a supervision tree: asks `sup` to exit with `user_shutdown` and
/// waits up to `limit` for its down_msg. If the orderly shutdown does not
/// finish in time, kills the supervisor (a supervisor takes its children
/// with it however it ends) so that the phase can end.
/// Returns an empty string for an orderly stop, else what happened.
std::string stop_tree(caf::actor_system& sys, const caf::actor& sup,
                      caf::timespan limit) {
  caf::scoped_actor self{sys};
  self->monitor(sup);
  self->send_exit(sup, caf::exit_reason::user_shutdown);
  std::string result;
  bool down = false;
  // Wait in steps of 1 s, reporting progress (actors still running).
  auto t0 = clk::now();
  auto deadline = t0 + limit;
  while (!down && clk::now() < deadline) {
    auto step = std::min<caf::timespan>(1s, deadline - clk::now());
    self->receive(
      [&](caf::down_msg& x) {
        down = true;
        if (x.reason != caf::exit_reason::user_shutdown)
          result = "supervisor stopped with " + sys.render(x.reason);
      },
      caf::after(step) >> [&] {
        if (limit > 1s)
          progress("  stopping: "
                   + std::to_string(sys.registry().running())
                   + " actors running after "
                   + std::to_string(ft::bench::seconds_since(t0)) + " s");
      });
  }
  if (!down) {
    result = "orderly shutdown did not finish within "
             + std::to_string(std::chrono::duration<double>(limit).count())
             + " s; killed the supervisor";
    self->send_exit(sup, caf::exit_reason::kill);
    self->receive([](caf::down_msg&) {},
                  caf::after(std::chrono::seconds(5)) >> [&] {
                    result += "; kill did not stop it within 5 s";
                  });
  }
  return result;
}

// -- restart cycle ----------------------------------------------------------------
//
// What one libft cycle measures: from the moment the driver crashes the
// child (send_exit with an abnormal error) until the replacement has answered
// its first message. Three ways a client can get there are measured:
//
// - `ft_direct` (the headline): the driver subscribes to the supervisor; the
//   child_restarted event carries the replacement's handle, and the driver
//   sends its request straight to it;
// - `ft_event`: on that event, the request goes through the supervisor
//   (request_child), which forwards it and relays the reply (two more hops);
// - `ft_retry` (reported as "immediate"): request_child right after the
//   crash, without waiting. The request usually overtakes the child's down
//   message at the supervisor; the supervisor buffers it for the replacement
//   (an error answer would be retried and counted, expected: 0).
//
// Each reply carries the answering actor's handle, so an answer from the
// crashed incarnation would be detected.
//
// All cycles are driven by an event-based actor (no blocking round trips);
// main() only waits once for the whole run.

enum class cycle_mode {
  /// spawn + monitor + request + reply + kill + down, bare CAF (the "kill"
  /// is the same abnormal exit the supervised child gets).
  caf_baseline,
  /// crash the child; on the supervisor's child_restarted event, request_child
  /// through the supervisor; the replacement's answer ends the cycle.
  ft_event,
  /// crash the child and at once request_child through the supervisor; an
  /// error answer (expected: none, the supervisor buffers) is retried.
  ft_retry,
  /// crash the child; on the child_restarted event, request the replacement
  /// (the event's handle) directly.
  ft_direct,
};

const char* to_string(cycle_mode x) {
  switch (x) {
    case cycle_mode::caf_baseline: return "caf";
    case cycle_mode::ft_event: return "ft_event";
    case cycle_mode::ft_retry: return "ft_retry";
    case cycle_mode::ft_direct: return "ft_direct";
  }
  return "?";
}

struct cycle_stats {
  std::vector<double> lat_us;
  double seconds = 0;
  uint64_t retries = 0;
  uint64_t stale = 0;
  std::string first_retry_error;
  std::string error;
  /// Empty if the supervisor stopped in order afterwards.
  std::string shutdown_error;
};

using cycle_promise = std::shared_ptr<std::promise<cycle_stats>>;

/// Runs `warmup + n` cycles back to back, each started by the previous one's
/// completion (no blocking round trip), and reports the measured ones.
class cycle_driver : public ft::bench::result_driver<cycle_stats> {
public:
  cycle_driver(caf::actor_config& cfg, cycle_mode mode, caf::actor sup,
               int warmup, int n, cycle_promise done)
    : ft::bench::result_driver<cycle_stats>(cfg, std::move(done)),
      mode_(mode),
      sup_(std::move(sup)),
      warmup_(warmup),
      n_(n) {
    stats_.lat_us.reserve(static_cast<size_t>(n));
  }

  caf::behavior make_behavior() override {
    set_down_handler([this](caf::down_msg&) {
      if (mode_ == cycle_mode::caf_baseline)
        cycle_done();
    });
    if (mode_ == cycle_mode::caf_baseline) {
      next_cycle();
    } else {
      // Subscribe first: the supervisor handles our messages in order, so
      // every event after this one reaches us.
      if (mode_ == cycle_mode::ft_event || mode_ == cycle_mode::ft_direct)
        send(sup_, ft::subscribe_atom::value,
             caf::actor_cast<caf::actor>(this),
             ft::mask_of({ft::event_kind::child_restarted}));
      auto self = this;
      ft::request_child(self, sup_, "w", caf::infinite, ping_atom::value, 0)
        .then(
          [this](caf::actor& a) {
            cur_ = std::move(a);
            next_cycle();
          },
          [this](caf::error& e) { fail(e); });
    }
    return {
      [this](const ft::supervisor_event& ev) {
        if (ev.kind == ft::event_kind::child_restarted && awaiting_event_) {
          awaiting_event_ = false;
          if (mode_ == cycle_mode::ft_direct)
            ask_direct(ev.actor);
          else
            ask();
        }
      },
    };
  }

private:
  void next_cycle() {
    if (i_ == warmup_)
      start_ = clk::now();
    t0_ = clk::now();
    switch (mode_) {
      case cycle_mode::caf_baseline: {
        auto c = system().spawn(bench_child);
        monitor(c);
        request(c, caf::infinite, ping_atom::value, i_)
          .then(
            [this, c](caf::actor&) {
              send_exit(c, crash_reason());
              // The cycle ends with the down_msg.
            },
            [this](caf::error& e) { fail(e); });
        return;
      }
      case cycle_mode::ft_event:
      case cycle_mode::ft_direct:
        old_id_ = cur_.id();
        send_exit(cur_, crash_reason());
        cur_ = nullptr;
        awaiting_event_ = true;
        return;
      case cycle_mode::ft_retry:
        old_id_ = cur_.id();
        send_exit(cur_, crash_reason());
        cur_ = nullptr;
        ask();
        return;
    }
  }

  /// Sends the first message straight to the replacement.
  void ask_direct(const caf::actor& replacement) {
    request(replacement, caf::infinite, ping_atom::value, i_)
      .then(
        [this](caf::actor& a) {
          cur_ = std::move(a);
          cycle_done();
        },
        [this](caf::error& e) { fail(e); });
  }

  /// Sends the first message for the replacement through the supervisor.
  void ask() {
    auto self = this;
    ft::request_child(self, sup_, "w", caf::infinite, ping_atom::value, i_)
      .then(
        [this](caf::actor& a) {
          if (a.id() == old_id_) {
            // The crashed incarnation answered: must not happen (the exit is
            // ahead of our request in its mailbox); counted, not timed.
            ++stats_.stale;
            ask();
            return;
          }
          cur_ = std::move(a);
          cycle_done();
        },
        [this](caf::error& e) {
          if (mode_ == cycle_mode::ft_retry && stats_.retries < 100'000'000) {
            if (stats_.first_retry_error.empty())
              stats_.first_retry_error = system().render(e);
            ++stats_.retries;
            ask();
            return;
          }
          fail(e);
        });
  }

  void cycle_done() {
    auto now = clk::now();
    if (i_ >= warmup_)
      stats_.lat_us.push_back(us(now - t0_));
    if (++i_ == warmup_ + n_) {
      stats_.seconds = std::chrono::duration<double>(now - start_).count();
      finish();
      return;
    }
    next_cycle();
  }

  void fail(caf::error& e) {
    stats_.error = system().render(e);
    finish();
  }

  void finish() {
    deliver(std::move(stats_));
  }

  cycle_mode mode_;
  caf::actor sup_;
  int warmup_;
  int n_;
  int i_ = 0;
  clk::time_point start_;
  clk::time_point t0_;
  caf::actor cur_;
  caf::actor_id old_id_ = 0;
  bool awaiting_event_ = false;
  cycle_stats stats_;
};

cycle_stats run_cycles(caf::actor_system& sys, cycle_mode mode) {
  caf::actor sup;
  if (mode != cycle_mode::caf_baseline) {
    ft::supervisor_flags flags;
    flags.name = "bench";
    flags.strategy = ft::supervision_strategy::one_for_one;
    // Never give up: every cycle is a restart.
    flags.intensity = 1'000'000'000;
    flags.period = 1s;
    auto res = ft::spawn_supervisor(sys, flags,
                                    {ft::worker("w", start_bench_child)});
    if (!res) {
      cycle_stats st;
      st.error = sys.render(res.error());
      return st;
    }
    sup = *res;
  }
  auto p = std::make_shared<std::promise<cycle_stats>>();
  auto f = p->get_future();
  sys.spawn<cycle_driver>(mode, sup, cycle_warmup, cycle_count, p);
  auto st = f.get(); // bounded by the phase watchdog
  // One child: an orderly stop takes microseconds; 1 s is generous.
  if (sup)
    st.shutdown_error = stop_tree(sys, sup, 1s);
  return st;
}

/// Alternates rounds of the three modes so that drift (CPU frequency, other
/// load) hits all of them alike.
json phase_cycle() {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  json out;
  const cycle_mode modes[] = {cycle_mode::caf_baseline, cycle_mode::ft_direct,
                              cycle_mode::ft_event, cycle_mode::ft_retry};
  constexpr int num_modes = 4;
  for (auto m : modes) {
    out[to_string(m)]["rates"] = json::array();
    out[to_string(m)]["retries"] = 0;
    out[to_string(m)]["stale"] = 0;
  }
  std::vector<double> lat[num_modes];
  for (int r = 0; r < cycle_rounds; ++r) {
    for (int k = 0; k < num_modes; ++k) {
      auto m = modes[k];
      auto st = run_cycles(sys, m);
      auto& o = out[to_string(m)];
      if (!st.error.empty()) {
        o["error"] = st.error;
        progress(std::string{"restart_cycle "} + to_string(m)
                 + " failed: " + st.error);
        continue;
      }
      double rate = st.seconds > 0 ? st.lat_us.size() / st.seconds : 0;
      progress("restart_cycle round " + std::to_string(r + 1) + " "
               + to_string(m) + ": " + std::to_string(rate) + " cycles/s");
      o["rates"].push_back(rate);
      o["retries"] = o["retries"].get<uint64_t>() + st.retries;
      o["stale"] = o["stale"].get<uint64_t>() + st.stale;
      if (!st.first_retry_error.empty())
        o["retry_error"] = st.first_retry_error;
      if (!st.shutdown_error.empty())
        o["shutdown_error"] = st.shutdown_error;
      lat[k].insert(lat[k].end(), st.lat_us.begin(), st.lat_us.end());
    }
  }
  for (int k = 0; k < num_modes; ++k) {
    auto& o = out[to_string(modes[k])];
    o["n"] = lat[k].size();
    o["p50_us"] = ft::bench::quantile(lat[k], 0.5);
    o["p99_us"] = ft::bench::quantile(lat[k], 0.99);
  }
  return out;
}

// -- filling: many bare actors or many dynamic children ---------------------------

struct fill_result {
  std::vector<caf::actor> handles;
  double fill_s = 0;
  double ping_s = 0;
  std::string error;
};

using fill_promise = std::shared_ptr<std::promise<fill_result>>;

/// Creates `n` actors, bare (spawned here in batches) or supervised
/// (start_child requests to `sups`, round robin, `pipeline_window` in flight
/// each), keeps their handles, and optionally pings every one of them so
/// that each has run at least once. Reports when all are confirmed.
class fill_driver : public ft::bench::result_driver<fill_result> {
public:
  fill_driver(caf::actor_config& cfg, std::vector<caf::actor> sups, size_t n,
              bool ping, std::vector<caf::actor> handles, fill_promise done)
    : ft::bench::result_driver<fill_result>(cfg, std::move(done)),
      sups_(std::move(sups)),
      n_(n),
      ping_(ping) {
    res_.handles = std::move(handles); // reserved by the caller
  }

  caf::behavior make_behavior() override {
    t0_ = clk::now();
    if (sups_.empty()) {
      send(this, batch_atom::value);
    } else {
      auto window = pipeline_window * sups_.size();
      for (size_t i = 0; i < window && issued_ < n_; ++i)
        start_one();
    }
    return {
      [this](batch_atom) {
        for (size_t i = 0; i < spawn_batch && issued_ < n_; ++i, ++issued_)
          res_.handles.push_back(system().spawn(bench_child));
        if (issued_ < n_)
          send(this, batch_atom::value);
        else
          filled();
      },
    };
  }

private:
  void start_one() {
    auto& sup = sups_[issued_ % sups_.size()];
    auto args = caf::make_message(static_cast<int>(issued_));
    ++issued_;
    auto self = this;
    ft::start_dynamic_child(self, sup, std::move(args))
      .then(
        [this](caf::actor& a) {
          res_.handles.push_back(std::move(a));
          if (res_.handles.size() == n_)
            filled();
          else if (issued_ < n_)
            start_one();
        },
        [this](caf::error& e) { fail(e); });
  }

  void filled() {
    res_.fill_s = ft::bench::seconds_since(t0_);
    if (!ping_) {
      finish();
      return;
    }
    t0_ = clk::now();
    for (size_t i = 0; i < pipeline_window && next_ping_ < n_; ++i)
      ping_one();
  }

  void ping_one() {
    auto& h = res_.handles[next_ping_++];
    request(h, caf::infinite, ping_atom::value, 0)
      .then(
        [this](caf::actor&) {
          if (++pinged_ == n_) {
            res_.ping_s = ft::bench::seconds_since(t0_);
            finish();
          } else if (next_ping_ < n_) {
            ping_one();
          }
        },
        [this](caf::error& e) { fail(e); });
  }

  void fail(caf::error& e) {
    res_.error = system().render(e);
    finish();
  }

  void finish() {
    deliver(std::move(res_));
  }

  std::vector<caf::actor> sups_;
  size_t n_;
  bool ping_;
  size_t issued_ = 0;
  size_t next_ping_ = 0;
  size_t pinged_ = 0;
  clk::time_point t0_;
  fill_result res_;
};

ft::supervisor_flags simple_flags(std::string name) {
  ft::supervisor_flags flags;
  flags.name = std::move(name);
  flags.strategy = ft::supervision_strategy::simple_one_for_one;
  flags.intensity = 1'000'000'000;
  flags.period = 1s;
  return flags;
}

/// Builds the supervision tree for a fill phase: one simple_one_for_one
/// supervisor (`subs == 1`), or a one_for_one root with `subs`
/// simple_one_for_one supervisors as children. Returns the root and the
/// supervisors that take start_child requests.
caf::expected<std::pair<caf::actor, std::vector<caf::actor>>>
make_tree(caf::actor_system& sys, int subs) {
  std::vector<ft::child_spec> template_child{
    ft::worker("w", start_bench_child)};
  if (subs == 1) {
    auto sup = ft::spawn_supervisor(sys, simple_flags("pool"), template_child);
    if (!sup)
      return sup.error();
    return std::make_pair(*sup, std::vector<caf::actor>{*sup});
  }
  ft::supervisor_flags root_flags;
  root_flags.name = "root";
  root_flags.strategy = ft::supervision_strategy::one_for_one;
  root_flags.intensity = 1'000'000'000;
  root_flags.period = 1s;
  std::vector<ft::child_spec> specs;
  for (int i = 0; i < subs; ++i)
    specs.push_back(ft::supervisor_child("pool" + std::to_string(i),
                                         simple_flags("pool"
                                                      + std::to_string(i)),
                                         template_child));
  auto root = ft::spawn_supervisor(sys, root_flags, specs);
  if (!root)
    return root.error();
  std::vector<caf::actor> pools;
  caf::error err;
  caf::scoped_actor self{sys};
  ft::which_children(self, *root, 10s)
    .receive(
      [&](std::vector<ft::child_info>& xs) {
        for (auto& x : xs)
          pools.push_back(x.actor);
      },
      [&](caf::error& e) { err = e; });
  if (err)
    return err;
  return std::make_pair(*root, std::move(pools));
}

/// One fill phase: `n` bare actors (`subs == 0`) or `n` dynamic children
/// under `make_tree(subs)`. Measures RSS before (after the tree exists) and
/// after all are confirmed, prints that as one JSON line at once (so a slow
/// shutdown cannot lose it), then shuts everything down and returns the
/// shutdown numbers. `stop_limit` bounds the orderly stop of the tree.
json phase_fill(int subs, size_t n, bool ping, caf::timespan stop_limit) {
  json out;
  double shutdown_s = 0;
  auto t_down = clk::now();
  {
    caf::actor_system_config cfg;
    caf::actor_system sys{cfg};
    caf::actor root;
    std::vector<caf::actor> sups;
    if (subs > 0) {
      auto tree = make_tree(sys, subs);
      if (!tree) {
        out["error"] = sys.render(tree.error());
        return out;
      }
      root = tree->first;
      sups = std::move(tree->second);
    }
    std::vector<caf::actor> handles;
    handles.reserve(n);
    // Let the scheduler settle (supervisors started, threads idle).
    std::this_thread::sleep_for(50ms);
    auto rss0 = ft::bench::rss_bytes();
    auto p = std::make_shared<std::promise<fill_result>>();
    auto f = p->get_future();
    sys.spawn<fill_driver>(sups, n, ping, std::move(handles), p);
    auto res = f.get(); // bounded by the phase watchdog
    auto rss1 = ft::bench::rss_bytes();
    {
      json m;
      m["n"] = n;
      m["rss0"] = rss0;
      m["rss1"] = rss1;
      m["fill_s"] = res.fill_s;
      m["ping_s"] = res.ping_s;
      if (!res.error.empty())
        m["error"] = res.error;
      ft::bench::emit(m);
    }
    progress(std::string{subs > 0 ? "supervised" : "bare"} + " fill of "
             + std::to_string(n) + ": " + std::to_string(res.fill_s) + " s, "
             + std::to_string((rss1 - rss0) / static_cast<double>(n))
             + " bytes each");
    // Shut down: the tree stops its children (a simple_one_for_one all at
    // once, as OTP); bare actors are killed one by one. The system's
    // destructor then waits for every actor to be gone.
    t_down = clk::now();
    if (root) {
      progress("stopping the supervision tree");
      auto err = stop_tree(sys, root, stop_limit);
      out["sup_stop_s"] = ft::bench::seconds_since(t_down);
      if (!err.empty()) {
        // Do not wait for the remains: report how far the stop got and
        // let the end of this process clean up (bounded time).
        auto running = sys.registry().running();
        err += " (" + std::to_string(running)
               + " actors still running; process exits without waiting)";
        out["shutdown_error"] = err;
        progress(err);
        ft::bench::emit(out);
        std::fflush(nullptr);
        _exit(0);
      }
      progress("tree stopped after "
               + std::to_string(out["sup_stop_s"].get<double>()) + " s");
    } else {
      for (auto& h : res.handles)
        caf::anon_send_exit(h, caf::exit_reason::kill);
    }
    res.handles.clear();
    res.handles.shrink_to_fit();
    progress("waiting for all actors to end");
  }
  shutdown_s = ft::bench::seconds_since(t_down);
  out["shutdown_s"] = shutdown_s;
  progress("all actors ended after " + std::to_string(shutdown_s) + " s");
  return out;
}

// -- phases in child processes ------------------------------------------------------

json run_phase(const std::string& name) {
  if (name == "cycle")
    return phase_cycle();
  if (name == "mem_bare")
    return phase_fill(0, mem_children, true, 0s);
  if (name == "mem_sup")
    return phase_fill(1, mem_children, true, 20s);
  if (name == "spawn_bare")
    return phase_fill(0, spawn_children, false, 0s);
  if (name == "spawn_sup")
    return phase_fill(spawn_subs, spawn_children, false, 15s);
  json out;
  out["error"] = "unknown phase " + name;
  return out;
}

/// Runs `/proc/self/exe --phase name` and parses the JSON it prints.
json spawn_phase(const std::string& name) {
  int fds[2];
  if (pipe(fds) != 0)
    return json{{"error", "pipe failed"}};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  posix_spawn_file_actions_addclose(&fa, fds[1]);
  std::string exe = "/proc/self/exe";
  std::string flag = "--phase";
  char* argv[] = {exe.data(), flag.data(), const_cast<char*>(name.c_str()),
                  nullptr};
  pid_t pid = 0;
  auto rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return json{{"error", std::string{"posix_spawn: "} + std::strerror(rc)}};
  }
  std::string text;
  char buf[4096];
  ssize_t k;
  while ((k = read(fds[0], buf, sizeof(buf))) > 0)
    text.append(buf, static_cast<size_t>(k));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  // A phase prints one or more JSON objects, one per line; merge them.
  json result = json::object();
  size_t lines = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    auto eol = text.find('\n', pos);
    if (eol == std::string::npos)
      eol = text.size();
    auto line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty())
      continue;
    try {
      auto j = json::parse(line);
      for (auto& [key, val] : j.items())
        result[key] = val;
      ++lines;
    } catch (std::exception& ex) {
      result["error"] = "phase " + name + ": bad output: " + ex.what();
    }
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    auto what = "phase " + name + " exited abnormally (status "
                + std::to_string(status) + ", watchdog?)";
    if (lines > 0 && result.contains("fill_s") && !result.contains("shutdown_s"))
      result["shutdown_error"] = what + " while shutting down";
    else
      result["error"] = what;
  }
  return result;
}

std::string error_of(const json& a, const json& b = json::object()) {
  std::string result;
  for (auto* x : {&a, &b})
    if (x->is_object() && x->contains("error"))
      result += (result.empty() ? "" : "; ") + (*x)["error"].get<std::string>();
  return result;
}

// -- result lines ---------------------------------------------------------------

void bench_restart_cycle() {
  progress("restart_cycle: " + std::to_string(cycle_rounds) + " rounds of "
           + std::to_string(cycle_count) + " cycles per mode");
  auto r = spawn_phase("cycle");
  auto rates = [&](const char* mode) {
    std::vector<double> xs;
    if (r.contains(mode))
      for (auto& x : r[mode]["rates"])
        xs.push_back(x.get<double>());
    return xs;
  };
  auto caf_rates = rates("caf");
  double base = ft::bench::median(caf_rates);
  double value = ft::bench::median(rates("ft_direct"));
  double ratio = base > 0 ? value / base : 0;
  auto line = ft::bench::result_line("supervision.restart_cycle", "1/s",
                                     value, "caf.spawn_monitor_cycle", base,
                                     0.8, ratio >= 0.8 && value > 0, 0);
  if (r.contains("ft_direct")) {
    auto& e = r["ft_direct"];
    line["p50_us"] = ft::bench::round_to(e.value("p50_us", 0.0), 2);
    line["p99_us"] = ft::bench::round_to(e.value("p99_us", 0.0), 2);
    line["n"] = e.value("n", 0);
  }
  line["rounds"] = cycle_rounds;
  line["method"] = "crash child (abnormal exit); the child_restarted event "
                   "carries the replacement; request it directly";
  if (r.contains("caf")) {
    line["baseline_p50_us"] = ft::bench::round_to(r["caf"].value("p50_us", 0.0), 2);
    line["baseline_p99_us"] = ft::bench::round_to(r["caf"].value("p99_us", 0.0), 2);
  }
  // The same cycle with the request routed through the supervisor, on the
  // event (via_supervisor_*) or at once after the crash (immediate_*).
  auto extra = [&](const char* mode, const std::string& prefix) {
    if (!r.contains(mode))
      return;
    auto& x = r[mode];
    double v = ft::bench::median(rates(mode));
    line[prefix + "_value"] = ft::bench::round_to(v, 0);
    line[prefix + "_ratio"] = ft::bench::round_to(base > 0 ? v / base : 0, 3);
    line[prefix + "_p50_us"] = ft::bench::round_to(x.value("p50_us", 0.0), 2);
    line[prefix + "_p99_us"] = ft::bench::round_to(x.value("p99_us", 0.0), 2);
  };
  extra("ft_event", "via_supervisor");
  extra("ft_retry", "immediate");
  if (r.contains("ft_retry")) {
    auto& x = r["ft_retry"];
    auto n = x.value("n", 0);
    // Requests that reached a dead incarnation and came back as errors
    // (expected: 0, the supervisor buffers them).
    line["immediate_errors_per_cycle"] = ft::bench::round_to(
      n > 0 ? x.value("retries", uint64_t{0}) / static_cast<double>(n) : 0, 3);
    if (x.contains("retry_error"))
      line["immediate_error"] = x["retry_error"];
  }
  for (auto* m : {"ft_direct", "ft_event", "ft_retry"}) {
    // Answers from a crashed incarnation (expected: 0).
    if (r.contains(m) && r[m].value("stale", uint64_t{0}) > 0)
      line[std::string{m} + "_stale_answers"] = r[m]["stale"];
  }
  std::string err;
  for (auto* m : {"caf", "ft_direct", "ft_event", "ft_retry"})
    if (r.contains(m))
      if (auto e = error_of(r[m]); !e.empty())
        err += std::string{m} + ": " + e + " ";
  if (auto e = error_of(r); !e.empty())
    err += e;
  if (!err.empty())
    line["error"] = err;
  for (auto* m : {"ft_direct", "ft_event", "ft_retry"})
    if (r.contains(m) && r[m].contains("shutdown_error"))
      line["shutdown_error"] = r[m]["shutdown_error"];
  ft::bench::emit(line);
}

void bench_memory_per_child() {
  progress("memory_per_child: " + std::to_string(mem_children)
           + " bare actors, then as many supervised children");
  auto bare = spawn_phase("mem_bare");
  auto sup = spawn_phase("mem_sup");
  auto per = [](const json& x) {
    if (!x.contains("rss1") || !x.contains("rss0"))
      return 0.0;
    return (x["rss1"].get<double>() - x["rss0"].get<double>())
           / x["n"].get<double>();
  };
  double bare_per = per(bare);
  double sup_per = per(sup);
  double value = sup_per - bare_per;
  auto err = error_of(bare, sup);
  auto line = ft::bench::result_line("supervision.memory_per_child", "bytes",
                                     value, "caf.actor", bare_per, 1024,
                                     err.empty() && value <= 1024, 1);
  line["n"] = mem_children;
  line["supervised_bytes_per_child"] = ft::bench::round_to(sup_per, 1);
  line["start_child_per_s"] = ft::bench::round_to(
    sup.value("fill_s", 0.0) > 0 ? mem_children / sup.value("fill_s", 0.0) : 0,
    0);
  if (!err.empty())
    line["error"] = err;
  if (sup.contains("shutdown_error"))
    line["shutdown_error"] = sup["shutdown_error"];
  ft::bench::emit(line);
}

void bench_spawn_1m() {
  progress("spawn_1m: " + std::to_string(spawn_children)
           + " bare actors, then as many supervised children");
  auto bare = spawn_phase("spawn_bare");
  auto sup = spawn_phase("spawn_sup");
  auto err = error_of(bare, sup);
  double value = sup.value("fill_s", 0.0);
  double base = bare.value("fill_s", 0.0);
  auto line = ft::bench::result_line("supervision.spawn_1m", "s", value,
                                     "caf.spawn_1m", base, 10,
                                     err.empty() && value > 0 && value < 10,
                                     3);
  line["n"] = spawn_children;
  line["shape"] = spawn_subs == 1
                    ? std::string{"one simple_one_for_one supervisor"}
                    : "one_for_one root over " + std::to_string(spawn_subs)
                        + " simple_one_for_one supervisors";
  // Time to stop the tree in order and to have every actor gone; missing
  // when the orderly stop did not finish (see shutdown_error).
  if (sup.contains("shutdown_s"))
    line["shutdown_s"] = ft::bench::round_to(sup["shutdown_s"].get<double>(),
                                             3);
  if (bare.contains("shutdown_s"))
    line["baseline_shutdown_s"]
      = ft::bench::round_to(bare["shutdown_s"].get<double>(), 3);
  if (sup.contains("rss0") && sup.contains("rss1"))
    line["rss_mib"] = ft::bench::round_to(
      (sup["rss1"].get<double>() - sup["rss0"].get<double>()) / (1 << 20), 1);
  if (bare.contains("rss0") && bare.contains("rss1"))
    line["baseline_rss_mib"] = ft::bench::round_to(
      (bare["rss1"].get<double>() - bare["rss0"].get<double>()) / (1 << 20),
      1);
  if (!err.empty())
    line["error"] = err;
  if (sup.contains("shutdown_error"))
    line["shutdown_error"] = sup["shutdown_error"];
  ft::bench::emit(line);
}

} // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string{argv[1]} == "--phase") {
    std::string name = argv[2];
    // Bounds per phase; the whole run stays around a minute.
    ft::bench::start_watchdog(name == "spawn_sup" ? 45s : 30s,
                              "phase " + name);
    auto out = run_phase(name);
    ft::bench::emit(out);
    std::fflush(nullptr);
    _exit(0);
  }
  std::string which = argc > 1 ? argv[1] : "all";
  if (which == "-h" || which == "--help") {
    std::fprintf(stderr,
                 "usage: %s [restart_cycle|memory_per_child|spawn_1m]\n",
                 argv[0]);
    return 0;
  }
  bool any = false;
  if (which == "all" || which == "restart_cycle") {
    bench_restart_cycle();
    any = true;
  }
  if (which == "all" || which == "memory_per_child") {
    bench_memory_per_child();
    any = true;
  }
  if (which == "all" || which == "spawn_1m") {
    bench_spawn_1m();
    any = true;
  }
  if (!any) {
    std::fprintf(stderr,
                 "unknown benchmark '%s' (known: restart_cycle, "
                 "memory_per_child, spawn_1m)\n",
                 which.c_str());
    return 2;
  }
  return 0;
}
