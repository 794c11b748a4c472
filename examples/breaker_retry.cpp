// breaker_retry: a flaky service behind a circuit breaker and a retrying
// caller with a fallback.
//
//   caller --ft::retry_request--> guard "service" --> service
//     |                            (ft::spawn_breaker_guard)
//     `-- fallback: a cached quote when the call cannot be answered
//
// The service fails its first `failing_calls` calls, then recovers. The
// breaker trips after 3 consecutive failures, rejects calls for 300 ms,
// then admits one trial call at a time (half_open) and closes again after 2
// successful trials. The caller retries each request with exponential
// backoff, but a `circuit_open` answer is not retryable (the breaker sheds
// load on purpose), so it falls back to its cached answer instead.
//
// The demo plays six requests, one after another:
//
//   1. the service fails three times (pauses 40, 80 ms between attempts);
//      the third failure trips the breaker, and the 4th attempt, 160 ms
//      later, is rejected (circuit_open) -> fallback;
//   2. sent at once: the open circuit fails it fast -> fallback;
//   3. after the open period: the half-open trial call reaches the service,
//      which still fails, so the circuit opens again (for twice as long);
//      the retry is rejected -> fallback;
//   4. after the longer open period: the service has recovered; the trial
//      succeeds (1 of 2);
//   5. the second trial succeeds and the circuit closes;
//   6. a normal call through the closed circuit.
//
// It exits with 0 if the breaker went closed -> open -> half_open -> closed,
// at least one request used the fallback and the final request was answered
// by the service; with 1 otherwise.
//
// Lines starting with "[service]" come from ft::spawn_event_logger,
// subscribed to the guard; "service:" lines from the service (one per call
// that got through, with the gap since the previous call: the backoff
// schedule); "caller:" lines from the caller.

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "ft/all.hpp"

using namespace std::chrono_literals;

namespace {

// -- messages -----------------------------------------------------------------

/// `(quote_atom, std::string symbol) -> std::string`: the service's price.
using quote_atom = caf::atom_constant<caf::atom("quote")>;

/// Internal to the caller: run the next request of the script.
using next_atom = caf::atom_constant<caf::atom("next")>;

// -- configuration ------------------------------------------------------------

/// The service fails this many calls, then recovers: 3 trip the breaker and
/// 1 more fails the first half-open trial.
constexpr int failing_calls = 4;

/// Bounds the whole run (the scenario itself takes about 2 s).
constexpr auto watchdog_timeout = 15s;

using clock_type = std::chrono::steady_clock;
const auto t0 = clock_type::now();

long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           clock_type::now() - t0)
    .count();
}

template <class Duration>
long long to_ms(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

ft::breaker_config make_breaker_config() {
  ft::breaker_config cfg;
  cfg.failure_threshold = 3;        // 3 consecutive failures trip it
  cfg.recovery_timeout = 300ms;     // first open period
  cfg.reset_timeout_factor = 2.0;   // a failed trial doubles it: 600 ms
  cfg.max_reset_timeout = 2s;
  cfg.success_threshold = 2;        // 2 good trials close it again
  cfg.half_open_max_calls = 1;
  return cfg;
}

ft::retry_policy make_retry_policy() {
  ft::retry_policy p;
  // No jitter, so the schedule printed below is exactly what happens.
  p.backoff = ft::backoff_kind::exponential;
  p.initial_delay = 40ms;
  p.multiplier = 2.0;
  p.max_delay = 1s;
  p.max_attempts = 4; // one call and up to three retries
  return p;
}

// -- the service --------------------------------------------------------------

struct service_state {
  int calls = 0;
  clock_type::time_point last;
  static inline const char* name = "service";
};

/// Fails its first `failing_calls` calls with an error, then answers. Prints
/// every call it sees with the gap since the previous one, which shows the
/// caller's backoff pauses (plus the breaker's open periods).
caf::behavior service(caf::stateful_actor<service_state>* self) {
  return {
    [self](quote_atom, const std::string& symbol) -> caf::result<std::string> {
      auto now = clock_type::now();
      auto n = ++self->state.calls;
      auto out = caf::aout(self);
      out << "service: call #" << n << " at " << now_ms() << " ms";
      if (n > 1)
        out << " (+" << to_ms(now - self->state.last) << " ms)";
      self->state.last = now;
      if (n <= failing_calls) {
        out << " -> error (still down)" << std::endl;
        return caf::make_error(caf::sec::runtime_error,
                               "service unavailable");
      }
      out << " -> ok" << std::endl;
      return symbol + " = 42.00 (live)";
    },
  };
}

// -- the caller ---------------------------------------------------------------

/// What the run produced; read by main after the caller is gone.
struct outcome {
  int by_service = 0;
  int by_fallback = 0;
  bool last_ok = false;
  std::vector<std::string> transitions; // "closed->open", ...
  bool ok = false;
};

using outcome_ptr = std::shared_ptr<outcome>;

struct caller_state {
  caf::actor guard;
  int step = 0;
  static inline const char* name = "caller";
};

/// One request of the script: how long to wait before sending it and why.
struct step {
  caf::timespan pause;
  const char* why;
};

const std::vector<step>& script() {
  static const std::vector<step> xs{
    {0ms, "the service is down; retry with backoff"},
    {0ms, "right away, while the circuit is open"},
    {400ms, "after the 300 ms open period: a half-open trial"},
    {700ms, "after the doubled (600 ms) open period: another trial"},
    {50ms, "the second trial"},
    {50ms, "through the closed circuit"},
  };
  return xs;
}

template <class... Ts>
void say(caf::event_based_actor* self, Ts&&... xs) {
  auto out = caf::aout(self);
  out << "caller: [" << now_ms() << " ms] ";
  (out << ... << xs);
  out << std::endl;
}

bool expected_sequence(const std::vector<std::string>& xs) {
  // closed->open, then (later) open->half_open, then half_open->closed.
  const char* want[] = {"closed->open", "open->half_open", "half_open->closed"};
  size_t i = 0;
  for (auto& x : xs)
    if (i < 3 && x == want[i])
      ++i;
  return i == 3;
}

void finish(caf::stateful_actor<caller_state>* self, const outcome_ptr& res) {
  // The guard sends its events and its replies on different paths; give the
  // last transition event a moment to arrive before judging.
  self->delayed_send(self, 100ms, caf::atom("judge"));
  self->become(caf::keep_behavior,
               [res](ft::breaker_event& ev) {
                 if (ev.kind == ft::breaker_event_kind::transition)
                   res->transitions.push_back(std::string{ft::to_string(ev.from)}
                                              + "->" + ft::to_string(ev.to));
               },
               [self, res](caf::atom_value x) {
                 if (x != caf::atom("judge"))
                   return;
                 auto out = caf::aout(self);
                 out << "summary: " << res->by_service
                     << " requests answered by the service, "
                     << res->by_fallback << " by the fallback" << std::endl
                     << "summary: transitions:";
                 for (auto& t : res->transitions)
                   out << " " << t;
                 out << std::endl;
                 res->ok = expected_sequence(res->transitions)
                           && res->by_fallback > 0 && res->last_ok;
                 if (!expected_sequence(res->transitions))
                   out << "UNEXPECTED: no closed->open->half_open->closed"
                       << std::endl;
                 if (res->by_fallback == 0)
                   out << "UNEXPECTED: no request used the fallback"
                       << std::endl;
                 if (!res->last_ok)
                   out << "UNEXPECTED: the final request failed" << std::endl;
                 self->quit();
               });
}

/// Waits for the guard's handle, then plays `script()`: each request goes
/// through `ft::retry_request` to the guard; the next one is scheduled when
/// it is done.
caf::behavior caller(caf::stateful_actor<caller_state>* self,
                     outcome_ptr res) {
  auto policy = make_retry_policy();
  {
    std::string sched;
    caf::timespan prev{0};
    for (int r = 1; r < policy.max_attempts; ++r) {
      prev = ft::backoff_delay(policy, r, prev, 0.0);
      sched += (r > 1 ? ", " : "") + std::to_string(to_ms(prev)) + " ms";
    }
    say(self, "retry policy: ", ft::to_string(policy.backoff), ", ",
        policy.max_attempts, " attempts, pauses ", sched);
  }
  return {
    [self](caf::actor guard) {
      self->state.guard = std::move(guard);
      self->send(self, next_atom::value);
    },
    [self, res, policy](next_atom) {
      auto& st = self->state;
      if (st.step >= static_cast<int>(script().size())) {
        finish(self, res);
        return;
      }
      auto n = ++st.step;
      say(self, "request ", n, ": ", script()[n - 1].why);
      ft::retry_options opts;
      opts.policy = policy;
      opts.call_timeout = 1s; // the service answers at once; just a bound
      ft::retry_request(
        self, st.guard, caf::make_message(quote_atom::value, std::string{"FT"}),
        opts, [self, res, n](caf::expected<caf::message> reply) {
          if (reply && reply->match_elements<std::string>()) {
            ++res->by_service;
            res->last_ok = true;
            say(self, "request ", n, " -> ", reply->get_as<std::string>(0));
          } else {
            res->last_ok = false;
            auto err = reply ? caf::make_error(caf::sec::unexpected_response)
                             : reply.error();
            if (ft::is(err, ft::errc::circuit_open)
                || ft::is(err, ft::errc::retries_exhausted)) {
              ++res->by_fallback;
              say(self, "request ", n, " -> fallback: FT = 41.50 (cached) [",
                  ft::render(err), "]");
            } else {
              say(self, "request ", n, " -> UNEXPECTED error: ",
                  ft::render(err));
            }
          }
          auto& s = script();
          auto pause = n < static_cast<int>(s.size()) ? s[n].pause
                                                      : caf::timespan{0};
          self->delayed_send(self, pause, next_atom::value);
        });
    },
    [res](ft::breaker_event& ev) {
      if (ev.kind == ft::breaker_event_kind::transition)
        res->transitions.push_back(std::string{ft::to_string(ev.from)} + "->"
                                   + ft::to_string(ev.to));
    },
  };
}

} // namespace

int main() {
  // Bounded run time, whatever happens (the demo runs unattended in CI).
  std::thread{[] {
    std::this_thread::sleep_for(watchdog_timeout);
    std::cerr << "breaker_retry: timed out after 15 s" << std::endl;
    std::_Exit(1);
  }}.detach();

  caf::actor_system_config cfg;
  cfg.add_error_category(ft::error_category, ft::render_ft_error);
  auto res = std::make_shared<outcome>();
  bool started = false;
  {
    caf::actor_system sys{cfg};
    auto logger = ft::spawn_event_logger(sys, std::cout);
    auto svc = sys.spawn(service);
    // The caller subscribes itself to the guard below, so it is spawned
    // first and learns the guard's handle by message.
    // The caller subscribes to the guard (to count transitions) from the
    // start, so it is spawned first and gets the guard's handle by message.
    auto drv = sys.spawn(caller, res);
    ft::guard_options opts;
    opts.name = "service";
    opts.subscribers = {logger, drv};
    auto guard = ft::spawn_breaker_guard(sys, svc, make_breaker_config(),
                                         std::move(opts));
    if (!guard) {
      caf::anon_send_exit(drv, caf::exit_reason::user_shutdown);
      std::cerr << "cannot start the guard: " << ft::render(guard.error())
                << std::endl;
    } else {
      started = true;
      caf::scoped_actor self{sys};
      self->monitor(drv);
      self->send(drv, *guard);
      self->receive([](caf::down_msg&) {}); // the watchdog bounds this
      caf::anon_send_exit(*guard, caf::exit_reason::user_shutdown);
    }
    caf::anon_send_exit(svc, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(logger, caf::exit_reason::user_shutdown);
  }
  bool ok = started && res->ok;
  std::cout << (ok ? "breaker_retry: OK" : "breaker_retry: FAILED")
            << std::endl;
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
