#include "ft/retry_request.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/fixture.hpp"

using namespace std::chrono_literals;

namespace ft::test {
namespace {

/// What the test target saw and how it misbehaves.
struct target_log {
  /// When each attempt arrived, relative to the fixture's start.
  std::vector<caf::timespan> at;
  /// The first `silent_first` attempts never get an answer.
  size_t silent_first = 0;
  /// The next `fail_first` attempts fail with `err`.
  size_t fail_first = 0;
  caf::error err = make_error(errc::child_stopped, "boom");
  /// Promises of silent attempts, kept so they never answer.
  std::vector<caf::response_promise> held;
  /// `current_deadline()` during each attempt.
  std::vector<deadline> deadlines;
};

using target_log_ptr = std::shared_ptr<target_log>;

/// Answers `int x` with `x + 1` and a string with `s + "!"`, after the
/// silent and failing attempts of its log.
caf::behavior flaky(caf::event_based_actor* self, target_log_ptr log,
                    caf::actor_clock::time_point t0) {
  auto admit = [self, log, t0]() -> std::optional<caf::error> {
    auto n = log->at.size();
    log->at.push_back(self->clock().now() - t0);
    log->deadlines.push_back(current_deadline());
    if (n < log->silent_first) {
      log->held.push_back(self->make_response_promise());
      return caf::error{};
    }
    if (n < log->silent_first + log->fail_first)
      return log->err;
    return std::nullopt;
  };
  return {
    [admit](int x) -> caf::result<int> {
      if (auto e = admit())
        return *e ? caf::result<int>{*e} : caf::result<int>{caf::delegated<int>{}};
      return x + 1;
    },
    [admit](std::string s) -> caf::result<std::string> {
      if (auto e = admit())
        return *e ? caf::result<std::string>{*e}
                  : caf::result<std::string>{caf::delegated<std::string>{}};
      return s + "!";
    },
  };
}

using result_ptr = std::shared_ptr<std::optional<caf::expected<caf::message>>>;

/// A retrying request made inside a handler with a deadline (see
/// rr_fixture::start_in_handler()).
struct handler_run {
  /// What the client got.
  result_ptr res = std::make_shared<std::optional<caf::expected<caf::message>>>();
  /// When the client got it, relative to the fixture's start.
  caf::timespan answered_at{-1};
  /// `current_deadline()` while the retrying request's handler ran.
  deadline done_ambient;
};

using handler_run_ptr = std::shared_ptr<handler_run>;

retry_policy fixed(caf::timespan delay, int max_attempts) {
  retry_policy p;
  p.backoff = backoff_kind::fixed;
  p.initial_delay = delay;
  p.max_delay = std::max(delay, caf::timespan{1s});
  p.max_attempts = max_attempts;
  return p;
}

struct rr_fixture : fixture {
  caf::actor_clock::time_point t0 = sys->clock().now();
  target_log_ptr log = std::make_shared<target_log>();
  caf::actor target = sys->spawn(flaky, log, t0);
  /// The same target (same log), but `deadline_aware`.
  caf::actor aware_target;
  caf::actor reg;

  rr_fixture() {
    keep_alive.push_back(target);
    auto lg = log;
    auto start = t0;
    aware_target = sys->spawn([=](caf::event_based_actor* self) {
      return deadline_aware(self, flaky(self, lg, start));
    });
    keep_alive.push_back(aware_target);
  }

  /// A client asks a deadline-aware caller with `request_with_deadline`
  /// (own timeout `client_timeout`); the caller's handler answers by a
  /// retrying request of the same int to `dest` per `opts`.
  handler_run_ptr start_in_handler(const caf::actor& dest, retry_options opts,
                                   caf::timespan client_timeout) {
    auto hr = std::make_shared<handler_run>();
    auto caller = sys->spawn([=](caf::event_based_actor* self) {
      return deadline_aware(
        self, {[=](int x) -> caf::response_promise {
          auto rp = self->make_response_promise();
          retry_request(self, dest, caf::make_message(x), opts,
                        [=](caf::expected<caf::message> r) mutable {
                          hr->done_ambient = current_deadline();
                          if (r)
                            rp.deliver(std::move(*r));
                          else
                            rp.deliver(std::move(r.error()));
                        });
          return rp;
        }});
    });
    keep_alive.push_back(caller);
    auto start = t0;
    keep_alive.push_back(sys->spawn([=](caf::event_based_actor* self) {
      request_with_deadline(self, caller, client_timeout, caf::make_message(7),
                            [=](caf::expected<caf::message> r) {
                              hr->answered_at = self->clock().now() - start;
                              *hr->res = std::move(r);
                            });
    }));
    run();
    return hr;
  }

  /// Spawns a caller that makes one retrying request and records its
  /// outcome; the handler runs in the caller (checked via `ran_in`).
  result_ptr start(caf::message msg, retry_options opts,
                   caf::actor* caller_out = nullptr) {
    auto res = std::make_shared<std::optional<caf::expected<caf::message>>>();
    auto dest = target;
    auto caller = sys->spawn(
      [=](caf::event_based_actor* self) -> caf::behavior {
        auto me = self->id();
        retry_request(self, dest, msg, opts,
                      [=](caf::expected<caf::message> x) {
                        // The handler must run inside the caller.
                        CHECK(self->id() == me);
                        CHECK(self->current_mailbox_element() != nullptr);
                        *res = std::move(x);
                      });
        return {[](int) {}};
      });
    keep_alive.push_back(caller);
    if (caller_out)
      *caller_out = caller;
    run();
    return res;
  }

  /// Advances in steps of `step`, so each timer fires at its own time
  /// (one big advance fires them all at the final time, which shifts every
  /// pause scheduled in between).
  void advance_steps(caf::timespan total, caf::timespan step = 1ms) {
    for (caf::timespan t{0}; t < total; t += step)
      advance(step);
  }

  size_t attempts() const {
    return log->at.size();
  }

  void spawn_reg(breaker_config cfg) {
    registry_options opts;
    opts.default_config = cfg;
    auto res = spawn_breaker_registry(*sys, std::move(opts));
    REQUIRE(res);
    reg = *res;
    keep_alive.push_back(reg);
    run();
  }

  retry_options via_breaker(retry_policy p) {
    retry_options opts;
    opts.policy = std::move(p);
    opts.registry = reg;
    opts.scope = "worker";
    opts.key = "w1";
    return opts;
  }

  breaker_stats stats() {
    auto res = ask<breaker_stats>(reg, registry_stats_atom::value,
                                  std::string{"worker"}, std::string{"w1"});
    REQUIRE(res);
    REQUIRE(*res);
    return **res;
  }
};

template <class T>
T value_of(const result_ptr& res) {
  REQUIRE(res->has_value());
  REQUIRE(**res);
  auto& msg = ***res;
  REQUIRE(msg.match_elements<T>());
  return msg.get_as<T>(0);
}

caf::error error_of(const result_ptr& res) {
  REQUIRE(res->has_value());
  REQUIRE(!**res);
  return (*res)->error();
}

} // namespace

TEST_CASE_METHOD(rr_fixture, "retry_request: succeeds on the first try",
                 "[retry_request]") {
  retry_options opts;
  opts.policy = fixed(1s, 3);
  auto res = start(caf::make_message(7), opts);
  CHECK(value_of<int>(res) == 8);
  CHECK(attempts() == 1);
  advance(10s);
  CHECK(attempts() == 1);
}

TEST_CASE_METHOD(rr_fixture,
                 "retry_request: two failures, then success, pauses per policy",
                 "[retry_request]") {
  log->fail_first = 2;
  retry_options opts;
  opts.policy = fixed(1s, 5);
  auto res = start(caf::make_message(7), opts);
  CHECK(attempts() == 1);
  CHECK(!res->has_value());
  advance(999ms);
  CHECK(attempts() == 1);
  advance(1ms);
  CHECK(attempts() == 2);
  CHECK(!res->has_value());
  advance(999ms);
  CHECK(attempts() == 2);
  advance(1ms);
  CHECK(attempts() == 3);
  CHECK(value_of<int>(res) == 8);
  CHECK(log->at == std::vector<caf::timespan>{0s, 1s, 2s});
  advance(10s);
  CHECK(attempts() == 3);
}

TEST_CASE_METHOD(rr_fixture,
                 "retry_request: gives up after max_attempts with the last "
                 "error",
                 "[retry_request]") {
  log->fail_first = 100;
  retry_options opts;
  opts.policy = fixed(1s, 3);
  auto res = start(caf::make_message(7), opts);
  advance(1s);
  CHECK(!res->has_value());
  advance(1s);
  CHECK(attempts() == 3);
  auto err = error_of(res);
  CHECK(is(err, errc::retries_exhausted));
  CHECK_THAT(render(err), Catch::Contains("boom"));
  advance(10s);
  CHECK(attempts() == 3);
}

TEST_CASE_METHOD(rr_fixture, "retry_request: a non-retryable error stops at once",
                 "[retry_request]") {
  log->fail_first = 100;
  log->err = make_error(errc::invalid_config, "bad input");
  retry_options opts;
  opts.policy = fixed(1s, 5);
  opts.policy.retryable = [](const caf::error& err) {
    return !is(err, errc::invalid_config);
  };
  auto res = start(caf::make_message(7), opts);
  auto err = error_of(res);
  CHECK(is(err, errc::invalid_config));
  CHECK_THAT(render(err), Catch::Contains("bad input"));
  advance(10s);
  CHECK(attempts() == 1);
}

TEST_CASE_METHOD(rr_fixture, "retry_request: a call timeout triggers a retry",
                 "[retry_request]") {
  log->silent_first = 1;
  retry_options opts;
  opts.policy = fixed(1s, 3);
  opts.call_timeout = 500ms;
  auto res = start(caf::make_message(7), opts);
  advance(499ms);
  CHECK(attempts() == 1);
  CHECK(!res->has_value());
  // Times out at 500ms, retries 1s later.
  advance(1ms);
  CHECK(!res->has_value());
  advance(999ms);
  CHECK(attempts() == 1);
  advance(1ms);
  CHECK(attempts() == 2);
  CHECK(value_of<int>(res) == 8);
}

TEST_CASE_METHOD(rr_fixture,
                 "retry_request: call timeouts exhaust the attempts",
                 "[retry_request]") {
  log->silent_first = 100;
  retry_options opts;
  opts.policy = fixed(1s, 2);
  opts.call_timeout = 500ms;
  auto res = start(caf::make_message(7), opts);
  advance(500ms);
  advance(1s);
  CHECK(attempts() == 2);
  CHECK(!res->has_value());
  advance(500ms);
  auto err = error_of(res);
  CHECK(is(err, errc::retries_exhausted));
  CHECK_THAT(render(err), Catch::Contains("no reply within"));
}

TEST_CASE_METHOD(rr_fixture,
                 "retry_request: a deadline shorter than the schedule cancels "
                 "the retries",
                 "[retry_request]") {
  log->fail_first = 100;
  retry_options opts;
  opts.policy = fixed(1s, 10);
  opts.until = deadline::after(sys->clock().now(), 2500ms);
  auto res = start(caf::make_message(7), opts);
  advance(1s);
  advance(999ms);
  CHECK(attempts() == 2);
  CHECK(!res->has_value());
  // The third attempt fails at 2s; a pause to 3s would outlast 2.5s.
  advance(1ms);
  CHECK(attempts() == 3);
  auto err = error_of(res);
  CHECK(is(err, errc::deadline_exceeded));
  CHECK_THAT(render(err), Catch::Contains("boom"));
  advance(10s);
  CHECK(attempts() == 3);
}

TEST_CASE_METHOD(rr_fixture,
                 "retry_request: deadline expiry during a call answers at once",
                 "[retry_request]") {
  log->silent_first = 100;
  retry_options opts;
  opts.policy = fixed(1s, 10);
  opts.until = deadline::after(sys->clock().now(), 2500ms);
  auto res = start(caf::make_message(7), opts);
  advance(2499ms);
  CHECK(!res->has_value());
  advance(1ms);
  CHECK(is(error_of(res), errc::deadline_exceeded));
  advance(10s);
  CHECK(attempts() == 1);
}

TEST_CASE_METHOD(rr_fixture, "retry_request: an expired deadline makes no call",
                 "[retry_request]") {
  retry_options opts;
  opts.until = deadline::after(sys->clock().now(), 0s);
  auto res = start(caf::make_message(7), opts);
  CHECK(is(error_of(res), errc::deadline_exceeded));
  CHECK(attempts() == 0);
}

TEST_CASE_METHOD(rr_fixture,
                 "retry_request: an open breaker keeps every attempt away",
                 "[retry_request]") {
  spawn_reg(breaker_config{});
  auto forced = ask_void(reg, registry_force_open_atom::value,
                         std::string{"worker"}, std::string{"w1"});
  REQUIRE(forced);
  REQUIRE(!*forced);
  auto res = start(caf::make_message(7), via_breaker(fixed(1s, 5)));
  CHECK(is(error_of(res), errc::circuit_open));
  advance(10s);
  CHECK(attempts() == 0);
  CHECK(stats().rejected_count == 1);
}

TEST_CASE_METHOD(rr_fixture,
                 "retry_request: failures are reported to the breaker, which "
                 "then stops the retries",
                 "[retry_request]") {
  breaker_config cfg;
  cfg.failure_threshold = 2;
  cfg.recovery_timeout = 30s;
  spawn_reg(cfg);
  log->fail_first = 100;
  auto res = start(caf::make_message(7), via_breaker(fixed(1s, 5)));
  advance(1s);
  // Two failures tripped the circuit: the third try is rejected.
  advance(1s);
  CHECK(attempts() == 2);
  CHECK(is(error_of(res), errc::circuit_open));
  auto st = stats();
  CHECK(st.failure_count == 2);
  CHECK(st.state == breaker_state::open);
}

TEST_CASE_METHOD(rr_fixture,
                 "retry_request: wait_for_half_open attempts once the breaker "
                 "half-opens",
                 "[retry_request]") {
  breaker_config cfg;
  cfg.failure_threshold = 1;
  cfg.success_threshold = 1;
  cfg.recovery_timeout = 3s;
  spawn_reg(cfg);
  // Trip the circuit at t = 0.
  auto ticket = ask<uint64_t>(reg, registry_acquire_atom::value,
                              std::string{"worker"}, std::string{"w1"});
  REQUIRE(ticket);
  REQUIRE(*ticket);
  auto done = ask_void(reg, registry_complete_atom::value, **ticket,
                       caf::make_error(caf::sec::runtime_error, "down"));
  REQUIRE(done);
  REQUIRE(stats().state == breaker_state::open);
  auto p = fixed(1s, 2);
  p.wait_for_half_open = true;
  auto res = start(caf::make_message(7), via_breaker(p));
  advance_steps(2999ms);
  CHECK(attempts() == 0);
  CHECK(!res->has_value());
  advance(1ms);
  REQUIRE(attempts() == 1);
  CHECK(log->at.front() == 3s);
  CHECK(value_of<int>(res) == 8);
  CHECK(stats().state == breaker_state::closed);
}

TEST_CASE_METHOD(rr_fixture,
                 "retry_request: waiting for half-open respects the deadline",
                 "[retry_request]") {
  spawn_reg(breaker_config{});
  auto forced = ask_void(reg, registry_force_open_atom::value,
                         std::string{"worker"}, std::string{"w1"});
  REQUIRE(forced);
  auto opts = via_breaker(fixed(1s, 5));
  opts.policy.wait_for_half_open = true;
  opts.until = deadline::after(sys->clock().now(), 2500ms);
  auto res = start(caf::make_message(7), opts);
  advance_steps(1999ms);
  CHECK(!res->has_value());
  // The probe at 2s is refused; the next (3s) would outlast 2.5s.
  advance(1ms);
  CHECK(is(error_of(res), errc::deadline_exceeded));
  CHECK(attempts() == 0);
}

TEST_CASE_METHOD(rr_fixture, "retry_request: caps the requests in flight",
                 "[retry_request]") {
  log->silent_first = 2;
  retry_options opts;
  opts.policy = fixed(1s, 1);
  opts.until = deadline::after(sys->clock().now(), 1s);
  opts.budget = std::make_shared<retry_budget>(2);
  auto a = start(caf::make_message(1), opts);
  auto b = start(caf::make_message(2), opts);
  CHECK(opts.budget->in_flight() == 2);
  auto c = start(caf::make_message(3), opts);
  auto err = error_of(c);
  CHECK(is(err, errc::too_many_retries));
  CHECK(attempts() == 2);
  CHECK(!a->has_value());
  CHECK(!b->has_value());
  advance(1s);
  CHECK(is(error_of(a), errc::deadline_exceeded));
  CHECK(is(error_of(b), errc::deadline_exceeded));
  CHECK(opts.budget->in_flight() == 0);
  opts.until = deadline::never();
  auto d = start(caf::make_message(4), opts);
  CHECK(value_of<int>(d) == 5);
  CHECK(opts.budget->in_flight() == 0);
}

TEST_CASE_METHOD(rr_fixture, "retry_request: replies of any type pass through",
                 "[retry_request]") {
  log->fail_first = 1;
  retry_options opts;
  opts.policy = fixed(1s, 3);
  auto i = start(caf::make_message(41), opts);
  advance(1s);
  CHECK(value_of<int>(i) == 42);
  auto s = start(caf::make_message(std::string{"hi"}), opts);
  CHECK(value_of<std::string>(s) == "hi!");
}

TEST_CASE_METHOD(rr_fixture,
                 "retry_request: the caller's death cancels pending retries",
                 "[retry_request]") {
  log->fail_first = 100;
  retry_options opts;
  opts.policy = fixed(1s, 10);
  opts.budget = std::make_shared<retry_budget>(1);
  caf::actor caller;
  auto res = start(caf::make_message(7), opts, &caller);
  CHECK(attempts() == 1);
  caf::anon_send_exit(caller, caf::exit_reason::kill);
  run();
  advance(10s);
  CHECK(attempts() == 1);
  CHECK(!res->has_value());
  CHECK(opts.budget->in_flight() == 0);
}

TEST_CASE_METHOD(rr_fixture,
                 "retry_request: an invalid policy fails without a call",
                 "[retry_request]") {
  retry_options opts;
  opts.policy.max_attempts = 0;
  auto res = start(caf::make_message(7), opts);
  CHECK(is(error_of(res), errc::invalid_breaker_config));
  CHECK(attempts() == 0);
}

// -- deadlines propagated from the caller ---------------------------------------

TEST_CASE_METHOD(rr_fixture,
                 "retry_request inside a handler inherits its deadline and "
                 "cancels its retries at expiry",
                 "[retry_request][deadline_request]") {
  retry_options opts;
  opts.policy = fixed(1s, 10);
  SECTION("failing attempts: the retry that would outlast it is cancelled") {
    log->fail_first = 100;
    auto hr = start_in_handler(aware_target, opts, 2500ms);
    advance(1s);
    advance(999ms);
    CHECK(attempts() == 2);
    CHECK(!hr->res->has_value());
    // The third attempt fails at 2s; a pause to 3s would outlast 2.5s.
    advance(1ms);
    auto err = error_of(hr->res);
    CHECK(is(err, errc::deadline_exceeded));
    CHECK_THAT(render(err), Catch::Contains("boom"));
    CHECK(hr->answered_at == 2s);
  }
  SECTION("silent attempts: expiry ends the one in flight") {
    log->silent_first = 100;
    opts.policy = fixed(200ms, 10);
    opts.call_timeout = 1s;
    auto hr = start_in_handler(aware_target, opts, 2500ms);
    // Attempts at 0, 1.2s and 2.4s (1s call timeout, 200ms pause).
    advance_steps(2400ms, 100ms);
    advance(99ms);
    CHECK(log->at == std::vector<caf::timespan>{0s, 1200ms, 2400ms});
    CHECK(!hr->res->has_value());
    advance(1ms);
    CHECK(is(error_of(hr->res), errc::deadline_exceeded));
    CHECK(hr->answered_at == 2500ms);
  }
  // No attempt reaches the target after expiry.
  auto n = attempts();
  advance(20s);
  CHECK(attempts() == n);
  // Every attempt carried the caller's deadline to the target.
  REQUIRE(log->deadlines.size() == n);
  for (auto& dl : log->deadlines)
    CHECK(dl == deadline::at(t0 + 2500ms));
}

TEST_CASE_METHOD(rr_fixture,
                 "retry_request: the earlier of until and the ambient deadline "
                 "wins, and done runs under the caller's deadline",
                 "[retry_request][deadline_request]") {
  log->fail_first = 1;
  retry_options opts;
  opts.policy = fixed(1s, 10);
  SECTION("until is earlier") {
    opts.until = deadline::at(t0 + 500ms);
    auto hr = start_in_handler(aware_target, opts, 2500ms);
    // The first attempt fails; a retry at 1s would outlast 500ms.
    CHECK(is(error_of(hr->res), errc::deadline_exceeded));
    REQUIRE(log->deadlines.size() == 1);
    CHECK(log->deadlines.front() == deadline::at(t0 + 500ms));
    CHECK(hr->done_ambient == deadline::at(t0 + 2500ms));
  }
  SECTION("the ambient deadline is earlier") {
    opts.until = deadline::at(t0 + 1h);
    auto hr = start_in_handler(aware_target, opts, 2500ms);
    advance(1s);
    CHECK(value_of<int>(hr->res) == 8);
    CHECK(log->deadlines
          == std::vector<deadline>(2, deadline::at(t0 + 2500ms)));
    CHECK(hr->done_ambient == deadline::at(t0 + 2500ms));
  }
}

TEST_CASE_METHOD(rr_fixture,
                 "retry_request: without propagate_deadline attempts stay "
                 "plain but are still bounded",
                 "[retry_request][deadline_request]") {
  retry_options opts;
  opts.policy = fixed(1s, 10);
  opts.propagate_deadline = false;
  SECTION("a plain target understands them") {
    auto hr = start_in_handler(target, opts, 2500ms);
    CHECK(value_of<int>(hr->res) == 8);
  }
  SECTION("the caller's deadline still cancels the retries") {
    log->fail_first = 100;
    auto hr = start_in_handler(target, opts, 2500ms);
    advance(1s);
    advance(1s);
    CHECK(is(error_of(hr->res), errc::deadline_exceeded));
    advance(10s);
    CHECK(attempts() == 3);
  }
}

TEST_CASE_METHOD(rr_fixture,
                 "retry_request: until alone is not sent to the target",
                 "[retry_request][deadline_request]") {
  log->fail_first = 1;
  retry_options opts;
  opts.policy = fixed(1s, 3);
  opts.until = deadline::after(sys->clock().now(), 5s);
  auto res = start(caf::make_message(7), opts);
  advance(1s);
  CHECK(value_of<int>(res) == 8);
  CHECK(log->deadlines
        == std::vector<deadline>(2, deadline::never()));
}

} // namespace ft::test
