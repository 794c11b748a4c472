// custom_supervisor: failure policies that restart types cannot express.
//
// Part 1 writes a fault handler, registers it by name and lets a YAML config
// pick it (`strategy: retry_budget`): each child gets two restarts, the
// third failure stops it for good while its siblings keep running, and a
// failure the handler deems unrecoverable escalates.
//
// Part 2 makes the same kind of decision with a `decider` lambda set in
// code: bad input leaves the child down (`ignore`) until an operator calls
// restart_child; everything else restarts it.
//
// Exits with 0 if every step went as described, 1 otherwise.

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <caf/all.hpp>

#include "ft/all.hpp"

using namespace std::chrono_literals;

namespace {

// -- a worker that fails on demand -------------------------------------------

/// `(crash_atom, caf::error reason)`: the worker exits with `reason`.
using crash_atom = caf::atom_constant<caf::atom("crash")>;

/// `(ping_atom) -> std::string`.
using ping_atom = caf::atom_constant<caf::atom("ping")>;

caf::behavior worker(caf::event_based_actor* self) {
  return {
    [self](crash_atom, caf::error& reason) { self->quit(std::move(reason)); },
    [](ping_atom) { return std::string{"pong"}; },
  };
}

// -- part 1: a fault handler ---------------------------------------------------

/// Gives every child a budget of restarts. Past the budget the child is
/// stopped (its spec dropped), so a broken child cannot drag its siblings
/// into the supervisor's restart intensity. A child failing with
/// `invalid_argument` (standing in for "state corrupted, a restart will not
/// help") cannot be recovered here: the supervisor escalates.
///
/// The supervisor calls these member functions from its own thread, one
/// failure at a time, so no locking is needed.
class retry_budget : public ft::fault_handler {
public:
  explicit retry_budget(int restarts) : restarts_(restarts) {
    // nop
  }

  void handle_failure(const std::string& child_id,
                      const caf::error& reason) override {
    ++failures_[child_id];
    if (reason == caf::sec::invalid_argument)
      unrecoverable_[child_id] = true;
  }

  bool can_recover(const std::string& child_id) override {
    return !unrecoverable_[child_id];
  }

  ft::directive recover(const std::string& child_id) override {
    return failures_[child_id] <= restarts_ ? ft::directive::restart
                                            : ft::directive::stop;
  }

private:
  int restarts_;
  std::map<std::string, int> failures_;
  std::map<std::string, bool> unrecoverable_;
};

/// The handler is picked by name, so configs can refer to it. Registration
/// must happen before a config naming it is loaded.
constexpr auto handler_config = R"(
name: caches
strategy: retry_budget   # a registered fault handler instead of an OTP name
intensity: 10
period: 5
)";

// -- the driver ------------------------------------------------------------------

class driver {
public:
  explicit driver(caf::actor_system& sys)
    : self_(sys), logger_(ft::spawn_event_logger(sys, std::cout)) {
    // nop
  }

  ~driver() {
    // Events from the supervisors queue up before this exit, so the logger
    // prints them all before it ends.
    caf::anon_send_exit(logger_, caf::exit_reason::user_shutdown);
  }

  /// The logger and the driver itself receive every event.
  std::vector<caf::actor> subscribers() {
    return {logger_, caf::actor_cast<caf::actor>(self_)};
  }

  bool part1(caf::actor_system& sys) {
    say("part 1: fault handler 'retry_budget' picked by a YAML config");
    auto flags = ft::supervisor_flags_from_yaml(handler_config, "example");
    if (!flags)
      return fail("bad config: ", ft::render(flags.error()));
    flags->subscribers = subscribers();
    auto sup = ft::spawn_supervisor(sys, *flags,
                                    {ft::worker("cache", ft::start_fun(worker)),
                                     ft::worker("index",
                                                ft::start_fun(worker))});
    if (!sup)
      return fail("cannot start: ", ft::render(sup.error()));
    // Two failures are within the budget: restarted. The third: stopped.
    for (int i = 1; i <= 3; ++i) {
      crash(*sup, "cache", caf::sec::runtime_error);
      if (!await_event(ft::event_kind::child_exited, "cache"))
        return false;
      if (i <= 2 && !await_event(ft::event_kind::child_restarted, "cache"))
        return false;
    }
    auto ids = child_ids(*sup);
    if (ids != std::vector<std::string>{"index"})
      return fail("expected only 'index' to remain");
    say("cache used up its budget and was stopped; index kept running");
    // An unrecoverable failure escalates: the supervisor stops its children
    // and exits, so its parent (none here) would decide.
    self_->monitor(*sup);
    crash(*sup, "index", caf::sec::invalid_argument);
    std::optional<caf::error> reason;
    self_->receive_while([&] { return !reason; })(
      [&](caf::down_msg& msg) { reason = std::move(msg.reason); },
      [](const ft::supervisor_event&) {},
      caf::after(3s) >> [&] { reason = caf::make_error(caf::sec::request_timeout); });
    if (!ft::is(*reason, ft::errc::escalated))
      return fail("supervisor exited with ", ft::render(*reason));
    say("index failed unrecoverably; the supervisor escalated: ",
        ft::render(*reason));
    return true;
  }

  bool part2(caf::actor_system& sys) {
    say("part 2: a decider lambda");
    ft::supervisor_flags flags;
    flags.name = "parsers";
    flags.intensity = 10;
    flags.subscribers = subscribers();
    // Called for each abnormal exit. Bad input will fail again on restart,
    // so leave the child down (spec kept) for an operator; restart anything
    // else.
    flags.decider = [](const std::string&, const caf::error& reason) {
      return reason == caf::sec::invalid_argument ? ft::directive::ignore
                                                  : ft::directive::restart;
    };
    auto sup = ft::spawn_supervisor(
      sys, flags, {ft::worker("parser", ft::start_fun(worker))});
    if (!sup)
      return fail("cannot start: ", ft::render(sup.error()));
    crash(*sup, "parser", caf::sec::runtime_error);
    if (!await_event(ft::event_kind::child_restarted, "parser"))
      return false;
    say("runtime_error: restarted");
    crash(*sup, "parser", caf::sec::invalid_argument);
    if (!await_event(ft::event_kind::child_exited, "parser"))
      return false;
    if (ping(*sup, "parser"))
      return fail("parser answered although the decider ignored it");
    say("invalid_argument: ignored, parser stays down");
    // The operator fixed the input: bring the child back by hand.
    std::optional<caf::error> err;
    ft::restart_child(self_, *sup, "parser", timeout_)
      .receive([&](caf::actor&) { err = caf::none; },
               [&](caf::error& x) { err = std::move(x); });
    if (*err)
      return fail("restart_child: ", ft::render(*err));
    if (!ping(*sup, "parser"))
      return fail("parser does not answer after restart_child");
    say("restart_child brought parser back");
    self_->send_exit(*sup, caf::exit_reason::user_shutdown);
    self_->wait_for(*sup);
    return true;
  }

private:
  void crash(const caf::actor& sup, const std::string& id, caf::sec reason) {
    // Through the supervisor, as any message to a child; no reply expected.
    self_->send(sup, ft::send_to_child_atom::value, id,
                caf::make_message(crash_atom::value,
                                  caf::make_error(reason)));
  }

  bool ping(const caf::actor& sup, const std::string& id) {
    bool ok = false;
    ft::request_child(self_, sup, id, timeout_, ping_atom::value)
      .receive([&](std::string& x) { ok = x == "pong"; },
               [](caf::error&) {});
    return ok;
  }

  std::vector<std::string> child_ids(const caf::actor& sup) {
    std::vector<std::string> result;
    ft::which_children(self_, sup, timeout_)
      .receive(
        [&](std::vector<ft::child_info>& rows) {
          for (auto& row : rows)
            result.push_back(row.id);
        },
        [](caf::error&) {});
    return result;
  }

  /// Skips events until one of `kind` about `child` arrives (at most 3 s).
  bool await_event(ft::event_kind kind, const std::string& child) {
    bool found = false;
    bool timed_out = false;
    self_->receive_while([&] { return !found && !timed_out; })(
      [&](const ft::supervisor_event& ev) {
        found = ev.kind == kind && ev.child == child;
      },
      caf::after(3s) >> [&] { timed_out = true; });
    return found || fail("no ", ft::to_string(kind), " event for ", child);
  }

  template <class... Ts>
  void say(Ts&&... xs) {
    // Cosmetic: give the event logger (another actor, on another thread) a
    // moment to print the events that led here, so the output reads in
    // order. Nothing depends on this pause.
    std::this_thread::sleep_for(10ms);
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
  caf::actor logger_;
  static constexpr auto timeout_ = 3s;
};

} // namespace

int main() {
  // Before loading any config that names the handler. Each load of such a
  // config asks the factory for a fresh handler instance.
  ft::register_fault_handler("retry_budget", [] {
    return std::make_shared<retry_budget>(2);
  });
  caf::actor_system_config cfg;
  cfg.add_error_category(ft::error_category, ft::render_ft_error);
  bool ok = false;
  {
    caf::actor_system sys{cfg};
    driver d{sys};
    ok = d.part1(sys) && d.part2(sys);
  } // ~actor_system waits for all actors
  std::cout << (ok ? "custom_supervisor: OK" : "custom_supervisor: FAILED")
            << std::endl;
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
