// supervision_tree: a worker pool with one flaky worker, supervised by libft.
//
//   app        one_for_one
//   |-- pool   rest_for_one
//   |   |-- db        a connection the workers after it depend on
//   |   |-- flaky     does the work; crashes on every third request
//   |   `-- reporter  aggregates flaky's results, so it depends on flaky
//   `-- metrics       counts served requests; independent of the pool
//
// The demo runs three phases and checks every outcome. It exits with 0 if
// all went as predicted and with 1 otherwise:
//
//   1. steady traffic: flaky crashes twice; rest_for_one restarts flaky and
//      reporter (db keeps running) after an exponential restart delay, and
//      requests sent meanwhile wait in the pool's buffer;
//   2. a burst: flaky crashes more often than the pool's restart intensity
//      (3 restarts in 5 s) allows, so the pool gives up and exits with
//      restart_intensity_exceeded; app restarts the whole pool (escalation
//      through one level) while metrics keeps running;
//   3. the fresh pool serves again; the demo prints a summary and stops.
//
// Lines starting with "[ft]" come from ft::spawn_event_logger, subscribed to
// both supervisors; lines starting with "demo:" come from the driver below.

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "ft/all.hpp"

using namespace std::chrono_literals;

namespace {

// -- messages -----------------------------------------------------------------

/// `(work_atom, int x) -> int`: flaky computes x * x.
using work_atom = caf::atom_constant<caf::atom("work")>;

/// `(query_atom, std::string sql) -> std::string`: db runs a query.
using query_atom = caf::atom_constant<caf::atom("query")>;

/// `(record_atom, int result) -> int`: reporter adds a result and returns how
/// many it holds; `(report_atom) -> int` only returns that count.
using record_atom = caf::atom_constant<caf::atom("record")>;
using report_atom = caf::atom_constant<caf::atom("report")>;

/// `(tick_atom) -> int`: metrics counts one served request and returns the
/// total; `(report_atom) -> int` only returns it.
using tick_atom = caf::atom_constant<caf::atom("tick")>;

// -- workers ------------------------------------------------------------------

// Workers are plain CAF actors: they know nothing about supervision. Their
// state lives in the actor, so a restart starts them from scratch; that is
// the point of restarting.

/// A database connection. Stateless here; in real code it would own a socket
/// that the workers after it in the pool rely on.
caf::behavior db_worker(caf::event_based_actor* self) {
  return {
    [self](query_atom, const std::string& sql) {
      return "conn#" + std::to_string(self->id()) + ": '" + sql + "' ok";
    },
  };
}

struct flaky_state {
  int served = 0;
  static inline const char* name = "flaky";
};

/// Does the work, but every `crash_every`-th request of an incarnation kills
/// it, as a worker with a resource leak would.
caf::behavior flaky_worker(caf::stateful_actor<flaky_state>* self,
                           int crash_every) {
  return {
    [self, crash_every](work_atom, int x) -> caf::result<int> {
      if (++self->state.served % crash_every == 0) {
        auto reason = caf::make_error(caf::sec::runtime_error,
                                      "flaky: simulated crash");
        // Answer the request that killed us, then die with an abnormal
        // reason, so the supervisor restarts us.
        self->quit(reason);
        return reason;
      }
      return x * x;
    },
  };
}

struct counter_state {
  int count = 0;
};

/// Aggregates flaky's results. It comes after flaky in the pool, so a flaky
/// restart restarts it too (rest_for_one): its count starts over at 0.
caf::behavior reporter_worker(caf::stateful_actor<counter_state>* self) {
  return {
    [self](record_atom, int) { return ++self->state.count; },
    [self](report_atom) { return self->state.count; },
  };
}

/// Counts served requests for the whole app; a sibling of the pool, so the
/// pool's troubles never touch it (one_for_one).
caf::behavior metrics_worker(caf::stateful_actor<counter_state>* self) {
  return {
    [self](tick_atom) { return ++self->state.count; },
    [self](report_atom) { return self->state.count; },
  };
}

// -- configuration ------------------------------------------------------------

constexpr int crash_every = 3;

/// The pool tolerates 3 restarts within 5 s; the 4th in that window makes it
/// give up and escalate to app.
constexpr int pool_intensity = 3;
constexpr auto pool_period = 5s;

/// Bounds for every wait of the driver: nothing in this demo may hang.
constexpr auto request_timeout = 3s;
constexpr auto event_timeout = 3s;

/// Builds the tree. `subscribers` receive every event of both supervisors;
/// a restarted pool subscribes them again, since it starts from its flags.
caf::expected<caf::actor> spawn_tree(caf::actor_system& sys,
                                     std::vector<caf::actor> subscribers) {
  auto flaky = ft::worker("flaky", ft::start_fun(flaky_worker, crash_every));
  // Give flaky time to recover between crashes: 100 ms, then 200 ms, 400 ms,
  // ... up to 2 s. Without a delay, a crash loop would burn through the
  // pool's restart intensity in microseconds.
  flaky.delay = ft::restart_delay::exponential(100ms, 2s);

  ft::supervisor_flags pool_flags;
  pool_flags.name = "pool";
  // A worker depends on those started before it: a crash restarts the
  // crashed worker and all after it, not the ones before.
  pool_flags.strategy = ft::supervision_strategy::rest_for_one;
  pool_flags.intensity = pool_intensity;
  pool_flags.period = pool_period;
  pool_flags.subscribers = subscribers;
  auto pool = ft::supervisor_child("pool", pool_flags,
                                   {
                                     ft::worker("db", ft::start_fun(db_worker)),
                                     std::move(flaky),
                                     ft::worker("reporter",
                                                ft::start_fun(reporter_worker)),
                                   });

  ft::supervisor_flags app_flags;
  app_flags.name = "app";
  app_flags.strategy = ft::supervision_strategy::one_for_one;
  // Allow two restarts of the pool (or metrics) within 10 s before app gives
  // up itself; app has no parent, so giving up would end the service.
  app_flags.intensity = 2;
  app_flags.period = 10s;
  app_flags.subscribers = std::move(subscribers);
  return ft::spawn_supervisor(
    sys, app_flags,
    {std::move(pool), ft::worker("metrics", ft::start_fun(metrics_worker))});
}

// -- the driver ---------------------------------------------------------------

using clock_type = std::chrono::steady_clock;

long long ms_since(clock_type::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           clock_type::now() - t0)
    .count();
}

/// Plays the scenario from the main thread. Talks to the workers only
/// through the supervisors (ft::request_child), never by actor handle, so a
/// request finds whichever incarnation of a worker is current.
class driver {
public:
  explicit driver(caf::actor_system& sys) : self_(sys) {
    // nop
  }

  /// The driver's own handle, to subscribe it to supervisor events.
  caf::actor handle() {
    return caf::actor_cast<caf::actor>(self_);
  }

  /// Runs all phases; false as soon as one outcome differs from the plan.
  bool run(const caf::actor& app) {
    app_ = app;
    return steady_traffic() && burst() && after_escalation();
  }

  /// Stops the tree (in reverse start order, as OTP) and waits for it.
  bool shutdown() {
    if (!app_)
      return true;
    say("stopping the tree");
    self_->monitor(app_);
    self_->send_exit(app_, caf::exit_reason::user_shutdown);
    bool down = false;
    bool timed_out = false;
    while (!down && !timed_out)
      self_->receive([&](ft::supervisor_event& ev) { tally(ev); },
                     [&](caf::down_msg& msg) {
                       down = msg.source == app_.address();
                     },
                     caf::after(event_timeout) >> [&] { timed_out = true; });
    return down || fail("app did not stop within the timeout");
  }

  void summary() {
    say("summary: ", answered_, " requests answered, ", crashes_,
        " crashes (all predicted), ", escalations_, " escalation(s)");
    for (auto& [who, n] : restarts_)
      say("  restarts of ", who, ": ", n);
  }

private:
  // -- phases -----------------------------------------------------------------

  bool steady_traffic() {
    say("phase 1: steady traffic; flaky crashes every ", crash_every,
        " requests");
    auto before = children_of("pool");
    if (!before)
      return false;
    if (!query_db("SELECT 1"))
      return false;
    for (int n = 1; n <= 7; ++n) {
      if (!work(n))
        return false;
      std::this_thread::sleep_for(20ms); // steady, not bursty
    }
    // rest_for_one: flaky and reporter are new actors, db is the same one.
    auto after = children_of("pool");
    if (!after)
      return false;
    if ((*after)["db"] != (*before)["db"])
      return fail("db was restarted; rest_for_one must leave it alone");
    for (auto id : {"flaky", "reporter"})
      if ((*after)[id] == (*before)[id])
        return fail(id, " was not restarted");
    say("db kept actor #", (*after)["db"].id(), "; flaky #",
        (*before)["flaky"].id(), " -> #", (*after)["flaky"].id(),
        ", reporter #", (*before)["reporter"].id(), " -> #",
        (*after)["reporter"].id());
    // The reporter restarted with flaky, so it only holds the results since
    // flaky's last restart: request 7.
    auto count = ask_pool<int>("reporter", report_atom::value);
    if (!count)
      return fail("reporter: ", ft::render(count.error()));
    if (*count != 1)
      return fail("reporter holds ", *count, " results, expected 1");
    say("reporter holds ", *count,
        " result: its state started over with flaky (rest_for_one)");
    return true;
  }

  bool burst() {
    say("phase 2: a burst; flaky's crashes now come faster than the pool "
        "tolerates (", pool_intensity, " restarts in ", pool_period.count(),
        " s)");
    auto before = children_of("app");
    if (!before)
      return false;
    // Requests 8..12 back to back: crashes at 9 and 12 are the pool's 3rd
    // and 4th restart within 5 s, so the 4th makes the pool give up.
    for (int n = 8; n <= 12; ++n)
      if (!work(n))
        return false;
    if (!await_event(ft::event_kind::intensity_exceeded, "pool", "flaky"))
      return false;
    auto exited = await_event(ft::event_kind::child_exited, "app", "pool");
    if (!exited)
      return false;
    if (!ft::is(exited->reason, ft::errc::restart_intensity_exceeded))
      return fail("pool exited with ", ft::render(exited->reason));
    ++escalations_;
    if (!await_event(ft::event_kind::child_restarted, "app", "pool"))
      return false;
    auto after = children_of("app");
    if (!after)
      return false;
    if ((*after)["pool"] == (*before)["pool"])
      return fail("pool was not restarted");
    if ((*after)["metrics"] != (*before)["metrics"])
      return fail("metrics was restarted; one_for_one must leave it alone");
    say("escalation handled: app restarted pool (#", (*before)["pool"].id(),
        " -> #", (*after)["pool"].id(), "), metrics kept actor #",
        (*after)["metrics"].id());
    return true;
  }

  bool after_escalation() {
    say("phase 3: the fresh pool serves again");
    // The new pool started a new flaky, whose crash count starts at 0.
    served_ = 0;
    restarting_ = false;
    if (!query_db("SELECT 1"))
      return false;
    for (int n = 13; n <= 14; ++n)
      if (!work(n))
        return false;
    // metrics saw every answered request: the escalation never touched it.
    auto ticks = ask<int>(app_, "metrics", report_atom::value);
    if (!ticks)
      return fail("metrics: ", ft::render(ticks.error()));
    if (*ticks != answered_)
      return fail("metrics counted ", *ticks, ", expected ", answered_);
    say("metrics counted all ", answered_, " answered requests");
    return true;
  }

  // -- requests ---------------------------------------------------------------

  /// Sends request `n` to flaky and checks the outcome against flaky's crash
  /// schedule, which the driver mirrors in `served_`.
  bool work(int n) {
    bool crash_expected = ++served_ % crash_every == 0;
    auto t0 = clock_type::now();
    auto res = ask_pool<int>("flaky", work_atom::value, n);
    auto ms = ms_since(t0);
    if (!crash_expected) {
      if (!res)
        return fail("request ", n, " failed: ", ft::render(res.error()));
      if (*res != n * n)
        return fail("request ", n, " returned ", *res);
      ++answered_;
      if (restarting_)
        say("request ", n, " -> ", *res, " after ", ms,
            " ms: sent while flaky restarted, it waited in the pool's buffer");
      else
        say("request ", n, " -> ", *res, " (", ms, " ms)");
      restarting_ = false;
      auto recorded = ask_pool<int>("reporter", record_atom::value, *res);
      auto ticked = ask<int>(app_, "metrics", tick_atom::value);
      if (!recorded || !ticked)
        return fail("reporter or metrics failed after request ", n);
      return true;
    }
    if (res)
      return fail("request ", n, " should have crashed flaky, got ", *res);
    ++crashes_;
    served_ = 0;
    restarting_ = true;
    say("request ", n, " -> flaky crashed (", ft::render(res.error()),
        "), as planned");
    // Wait until the pool has handled the crash before the next request.
    // A request sent between flaky's death and the pool noticing it would
    // still be forwarded to the dead actor and fail (request_receiver_down);
    // once the pool knows, it buffers requests until the replacement runs.
    return await_event(ft::event_kind::child_exited, "pool", "flaky")
           .has_value();
  }

  bool query_db(const std::string& sql) {
    auto res = ask_pool<std::string>("db", query_atom::value, sql);
    if (!res)
      return fail("db query failed: ", ft::render(res.error()));
    say("db answered: ", *res);
    return true;
  }

  /// Sends `xs...` to child `id` of `sup` and waits for the reply.
  template <class T, class... Ts>
  caf::expected<T> ask(const caf::actor& sup, const std::string& id,
                       Ts&&... xs) {
    caf::expected<T> result = caf::make_error(caf::sec::request_timeout);
    ft::request_child(self_, sup, id, request_timeout, std::forward<Ts>(xs)...)
      .receive([&](T& x) { result = std::move(x); },
               [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  /// Sends `xs...` to worker `id` of the pool, addressed through the tree:
  /// app forwards to its child "pool", pool to its child `id`. Each
  /// supervisor on the way buffers the request while its child restarts.
  template <class T, class... Ts>
  caf::expected<T> ask_pool(const std::string& id, Ts&&... xs) {
    return ask<T>(app_, "pool", ft::send_to_child_atom::value, id,
                  caf::make_message(std::forward<Ts>(xs)...));
  }

  /// Child id -> actor handle, from `which_children` of app or of the pool.
  std::optional<std::map<std::string, caf::actor>>
  children_of(const std::string& sup) {
    auto rows = sup == "app"
                  ? ask_which(app_)
                  : ask<std::vector<ft::child_info>>(app_, "pool",
                                                     ft::which_children_atom::value);
    if (!rows) {
      fail("which_children of ", sup, ": ", ft::render(rows.error()));
      return std::nullopt;
    }
    std::map<std::string, caf::actor> result;
    for (auto& row : *rows)
      result[row.id] = row.actor;
    return result;
  }

  caf::expected<std::vector<ft::child_info>> ask_which(const caf::actor& sup) {
    caf::expected<std::vector<ft::child_info>> result
      = caf::make_error(caf::sec::request_timeout);
    ft::which_children(self_, sup, request_timeout)
      .receive([&](std::vector<ft::child_info>& xs) { result = std::move(xs); },
               [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  // -- events -----------------------------------------------------------------

  /// Consumes events until one of `kind` from supervisor `sup` about `child`
  /// arrives, or fails after `event_timeout`.
  std::optional<ft::supervisor_event>
  await_event(ft::event_kind kind, const std::string& sup,
              const std::string& child) {
    auto deadline = clock_type::now() + event_timeout;
    std::optional<ft::supervisor_event> found;
    bool timed_out = false;
    while (!found && !timed_out) {
      auto left = std::max(deadline - clock_type::now(),
                           clock_type::duration::zero());
      self_->receive(
        [&](ft::supervisor_event& ev) {
          tally(ev);
          if (ev.kind == kind && ev.supervisor == sup && ev.child == child)
            found = std::move(ev);
        },
        caf::after(std::chrono::duration_cast<caf::timespan>(left)) >>
          [&] { timed_out = true; });
    }
    if (!found)
      fail("no ", ft::to_string(kind), " event from ", sup, " for ", child);
    return found;
  }

  void tally(const ft::supervisor_event& ev) {
    if (ev.kind == ft::event_kind::child_restarted)
      ++restarts_[ev.supervisor + "/" + ev.child];
  }

  // -- output -----------------------------------------------------------------

  template <class... Ts>
  void say(Ts&&... xs) {
    // Cosmetic: give the event logger (another actor, on another thread) a
    // moment to print the events that led here, so the output reads in
    // order. Nothing depends on this pause.
    std::this_thread::sleep_for(10ms);
    // aout serialises whole lines with the event logger's output.
    auto out = caf::aout(self_);
    out << "demo: ";
    (out << ... << xs);
    out << std::endl;
  }

  template <class... Ts>
  bool fail(Ts&&... xs) {
    say("UNEXPECTED: ", std::forward<Ts>(xs)...);
    return false;
  }

  caf::scoped_actor self_;
  caf::actor app_;
  int served_ = 0;          // requests flaky's current incarnation got
  bool restarting_ = false; // flaky crashed; the next request waits for it
  int answered_ = 0;
  int crashes_ = 0;
  int escalations_ = 0;
  std::map<std::string, int> restarts_;
};

} // namespace

int main() {
  // Bounded run time, whatever happens: the demo runs unattended (CI,
  // `tools/ft demo`), so a hang must become a failure. All waits below have
  // their own timeouts; this only catches what they cannot.
  std::thread{[] {
    std::this_thread::sleep_for(30s);
    std::cerr << "supervision_tree: timed out after 30 s" << std::endl;
    std::_Exit(2);
  }}.detach();

  caf::actor_system_config cfg;
  // Lets CAF render libft errors by name in its own diagnostics.
  cfg.add_error_category(ft::error_category, ft::render_ft_error);
  bool ok = false;
  {
    caf::actor_system sys{cfg};
    auto logger = ft::spawn_event_logger(sys, std::cout);
    {
      driver d{sys};
      auto app = spawn_tree(sys, {logger, d.handle()});
      if (!app) {
        std::cerr << "cannot start the tree: " << ft::render(app.error())
                  << std::endl;
      } else {
        ok = d.run(*app);
        ok = d.shutdown() && ok;
        d.summary();
      }
    }
    // The tree is gone and sent its last events before it stopped; the exit
    // queues up behind them, so the logger prints everything, then ends.
    caf::anon_send_exit(logger, caf::exit_reason::user_shutdown);
  } // ~actor_system waits for all actors, the logger included
  std::cout << (ok ? "supervision_tree: OK" : "supervision_tree: FAILED")
            << std::endl;
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
