#include "ft/breaker_registry.hpp"

#include <chrono>

#include <nlohmann/json.hpp>

#include "actors/fixture.hpp"

using namespace std::chrono_literals;
using nlohmann::json;

namespace ft::test {
namespace {

breaker_config threshold(int n) {
  breaker_config cfg;
  cfg.failure_threshold = n;
  cfg.success_threshold = 1;
  cfg.recovery_timeout = 1s;
  cfg.half_open_max_calls = 1;
  return cfg;
}

struct reg_fixture : fixture {
  caf::actor reg;

  void spawn_reg(registry_options opts) {
    auto res = spawn_breaker_registry(*sys, std::move(opts));
    REQUIRE(res);
    reg = *res;
    run();
  }

  reg_fixture() {
    registry_options opts;
    opts.scopes["worker"] = threshold(2);
    opts.scopes["hardware"] = threshold(5);
    opts.default_config = threshold(3);
    spawn_reg(std::move(opts));
  }

  caf::expected<uint64_t> acquire(std::string scope, std::string key) {
    auto res = ask<uint64_t>(reg, registry_acquire_atom::value, scope, key);
    REQUIRE(res);
    return *res;
  }

  caf::error complete(uint64_t ticket, caf::error outcome = {}) {
    auto res = ask_void(reg, registry_complete_atom::value, ticket, outcome);
    REQUIRE(res);
    return *res;
  }

  caf::error release(uint64_t ticket) {
    auto res = ask_void(reg, registry_release_atom::value, ticket);
    REQUIRE(res);
    return *res;
  }

  /// One call through `(scope, key)` that fails.
  void fail(std::string scope, std::string key) {
    auto t = acquire(scope, key);
    REQUIRE(t);
    CHECK(!complete(*t, make_error(errc::start_failed, "boom")));
  }

  void succeed(std::string scope, std::string key) {
    auto t = acquire(scope, key);
    REQUIRE(t);
    CHECK(!complete(*t));
  }

  caf::expected<breaker_stats> stats(std::string scope, std::string key) {
    auto res = ask<breaker_stats>(reg, registry_stats_atom::value, scope, key);
    REQUIRE(res);
    return *res;
  }

  breaker_state state(std::string scope, std::string key) {
    auto st = stats(scope, key);
    REQUIRE(st);
    return st->state;
  }

  json health() {
    auto res = ask<std::string>(reg, registry_health_atom::value);
    REQUIRE(res);
    REQUIRE(*res);
    return json::parse(**res);
  }

  template <class... Ts>
  caf::expected<uint64_t> reset(Ts... xs) {
    auto res = ask<uint64_t>(reg, registry_reset_atom::value, xs...);
    REQUIRE(res);
    return *res;
  }
};

int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

} // namespace

TEST_CASE_METHOD(reg_fixture, "circuits are created on first use with their "
                              "scope's config",
                 "[breaker_registry]") {
  CHECK(is(stats("worker", "w1").error(), errc::not_found));
  fail("worker", "w1");
  fail("worker", "w1");
  fail("hardware", "cuda");
  fail("hardware", "cuda");
  CHECK(state("worker", "w1") == breaker_state::open);
  CHECK(state("hardware", "cuda") == breaker_state::closed);
  // Another key in the same scope is a separate circuit.
  CHECK(acquire("worker", "w2"));
  // A scope without a config gets the default (threshold 3).
  fail("gpu_pool", "a");
  fail("gpu_pool", "a");
  CHECK(state("gpu_pool", "a") == breaker_state::closed);
  fail("gpu_pool", "a");
  CHECK(state("gpu_pool", "a") == breaker_state::open);
  for (int i = 0; i < 3; ++i)
    fail("hardware", "cuda");
  CHECK(state("hardware", "cuda") == breaker_state::open);
}

TEST_CASE_METHOD(reg_fixture, "an open circuit fails fast until its recovery "
                              "timeout",
                 "[breaker_registry]") {
  fail("worker", "w1");
  fail("worker", "w1");
  auto t = acquire("worker", "w1");
  REQUIRE(!t);
  CHECK(is(t.error(), errc::circuit_open));
  CHECK(render(t.error()).find("worker/w1") != std::string::npos);
  CHECK(stats("worker", "w1")->rejected_count == 1);
  advance(999ms);
  CHECK(is(acquire("worker", "w1").error(), errc::circuit_open));
  advance(1ms);
  auto trial = acquire("worker", "w1");
  REQUIRE(trial);
  CHECK(state("worker", "w1") == breaker_state::half_open);
  CHECK(!complete(*trial));
  CHECK(state("worker", "w1") == breaker_state::closed);
}

TEST_CASE_METHOD(reg_fixture, "tickets settle exactly once",
                 "[breaker_registry]") {
  auto t = acquire("worker", "w1");
  REQUIRE(t);
  CHECK(!complete(*t));
  CHECK(is(complete(*t), errc::not_found));
  CHECK(is(release(*t), errc::not_found));
  CHECK(is(complete(4711), errc::not_found));
  auto t2 = acquire("worker", "w1");
  REQUIRE(t2);
  CHECK(*t2 != *t);
  auto res = ask_void(reg, registry_timeout_atom::value, *t2);
  REQUIRE(res);
  CHECK(!*res);
  auto st = stats("worker", "w1");
  CHECK(st->success_count == 1);
  CHECK(st->failure_count == 1);
  CHECK(st->timeout_count == 1);
}

TEST_CASE_METHOD(reg_fixture, "release frees a half-open trial slot",
                 "[breaker_registry]") {
  fail("worker", "w1");
  fail("worker", "w1");
  advance(1s);
  auto trial = acquire("worker", "w1");
  REQUIRE(trial);
  CHECK(is(acquire("worker", "w1").error(), errc::half_open_limit));
  CHECK(!release(*trial));
  auto st = stats("worker", "w1");
  CHECK(st->state == breaker_state::half_open);
  CHECK(st->success_count == 0);
  CHECK(st->failure_count == 2);
  CHECK(acquire("worker", "w1"));
}

TEST_CASE_METHOD(fixture, "abandoned tickets expire after the ticket ttl",
                 "[breaker_registry]") {
  registry_options opts;
  opts.default_config = threshold(1);
  opts.scopes["timed"] = threshold(1);
  opts.scopes["timed"].call_timeout = 5s;
  opts.ticket_ttl = 2s;
  auto res = spawn_breaker_registry(*sys, std::move(opts));
  REQUIRE(res);
  auto reg = *res;
  run();
  auto acquire = [&](std::string scope) {
    auto r = ask<uint64_t>(reg, registry_acquire_atom::value, scope,
                           std::string{"k"});
    REQUIRE(r);
    return *r;
  };
  auto stats = [&](std::string scope) {
    auto r = ask<breaker_stats>(reg, registry_stats_atom::value, scope,
                                std::string{"k"});
    REQUIRE(r);
    REQUIRE(*r);
    return **r;
  };
  // Without a call timeout, an expired ticket is released: nothing counts.
  auto lost = acquire("plain");
  REQUIRE(lost);
  // With one, it counts as a timeout once max(call_timeout, ttl) passed.
  auto slow = acquire("timed");
  REQUIRE(slow);
  advance(2s);
  auto again = ask_void(reg, registry_complete_atom::value, *lost,
                        caf::error{});
  REQUIRE(again);
  CHECK(is(*again, errc::not_found));
  CHECK(stats("plain").success_count == 0);
  CHECK(stats("plain").failure_count == 0);
  CHECK(stats("timed").state == breaker_state::closed);
  advance(2s); // 4s: not yet expired
  CHECK(stats("timed").state == breaker_state::closed);
  advance(2s); // 6s: expired, swept
  auto st = stats("timed");
  CHECK(st.timeout_count == 1);
  CHECK(st.state == breaker_state::open);
}

TEST_CASE_METHOD(reg_fixture, "health JSON has the operators' shape",
                 "[breaker_registry]") {
  SECTION("empty registry") {
    auto h = health();
    for (auto scope : {"worker", "hardware", "task_type"}) {
      REQUIRE(h.contains(scope));
      CHECK(h[scope].is_object());
      CHECK(h[scope].empty());
    }
    CHECK(h["aggregate"]["total_circuits"] == 0);
    CHECK(h["aggregate"]["average_health"] == 100.0);
    CHECK(h["aggregate"]["overall_health"] == 100.0);
    CHECK(h.size() == 4);
  }
  SECTION("mixed states") {
    auto before = wall_ms();
    // w3 goes half-open.
    fail("worker", "w3");
    fail("worker", "w3");
    advance(1s);
    REQUIRE(acquire("worker", "w3"));
    succeed("worker", "w1");           // closed
    fail("worker", "w2");              // open
    fail("worker", "w2");
    fail("hardware", "cuda");          // closed, degraded
    succeed("gpu_pool", "a");          // custom scope
    auto ff = ask_void(reg, registry_force_open_atom::value,
                       std::string{"task_type"}, std::string{"bench"});
    REQUIRE(ff);
    CHECK(!*ff);
    auto h = health();
    auto after = wall_ms();
    auto& agg = h["aggregate"];
    CHECK(agg["total_circuits"] == 6);
    CHECK(agg["open_circuits"] == 2); // w2 and the forced bench
    CHECK(agg["half_open_circuits"] == 1);
    CHECK(agg["closed_circuits"] == 3);
    // The per-circuit entries agree with the aggregate.
    int open = 0, half = 0, closed = 0;
    double sum = 0;
    for (auto scope : {"worker", "hardware", "task_type", "gpu_pool"}) {
      REQUIRE(h.contains(scope));
      for (auto& it : h[scope].items()) {
        auto& c = it.value();
        INFO(scope << "/" << it.key());
        CHECK(c.size() == 6);
        for (auto field : {"state", "health_percentage", "successes",
                           "failures", "rejected", "last_transition"})
          CHECK(c.contains(field));
        auto s = c["state"].get<std::string>();
        open += s == "open" || s == "forced_open";
        half += s == "half_open";
        closed += s == "closed" || s == "disabled";
        sum += c["health_percentage"].get<double>();
        auto lt = c["last_transition"].get<int64_t>();
        CHECK(lt >= before - 1000);
        CHECK(lt <= after);
      }
    }
    CHECK(agg["open_circuits"] == open);
    CHECK(agg["half_open_circuits"] == half);
    CHECK(agg["closed_circuits"] == closed);
    CHECK(agg["average_health"].get<double>() == Approx(sum / 6));
    auto& w1 = h["worker"]["w1"];
    CHECK(w1["state"] == "closed");
    CHECK(w1["successes"] == 1);
    CHECK(w1["failures"] == 0);
    CHECK(w1["health_percentage"] == 100.0);
    CHECK(h["worker"]["w3"]["state"] == "half_open");
    CHECK(h["worker"]["w3"]["failures"] == 2);
    CHECK(h["task_type"]["bench"]["state"] == "forced_open");
    CHECK(h["task_type"]["bench"]["health_percentage"] == 0.0);
    CHECK(h["hardware"]["cuda"]["failures"] == 1);
    CHECK(h["gpu_pool"]["a"]["successes"] == 1);
  }
}

TEST_CASE("breaker_health_json aggregates snapshots", "[breaker_registry]") {
  caf::actor_clock::time_point now{std::chrono::hours(1)};
  breaker_stats closed;
  closed.state = breaker_state::closed;
  closed.health_percentage = 100;
  closed.success_count = 7;
  closed.last_transition = now - 1500ms;
  breaker_stats open = closed;
  open.state = breaker_state::open;
  open.health_percentage = 0;
  open.failure_count = 5;
  open.rejected_count = 3;
  breaker_stats half = closed;
  half.state = breaker_state::half_open;
  half.health_percentage = 25;
  breaker_stats disabled = closed;
  disabled.state = breaker_state::disabled;
  disabled.health_percentage = 75;
  auto h = json::parse(breaker_health_json(
    {{"worker", "w1", closed},
     {"worker", "w2", open},
     {"hardware", "cuda", half},
     {"custom", "x", disabled}},
    now, 1'000'000));
  auto& agg = h["aggregate"];
  CHECK(agg["total_circuits"] == 4);
  CHECK(agg["open_circuits"] == 1);
  CHECK(agg["half_open_circuits"] == 1);
  CHECK(agg["closed_circuits"] == 2); // disabled admits calls
  CHECK(agg["average_health"].get<double>() == Approx(50.0));
  CHECK(agg["overall_health"].get<double>() == Approx(62.5)); // (2+0.5)/4
  CHECK(h["worker"]["w1"]["last_transition"] == 1'000'000 - 1500);
  CHECK(h["worker"]["w2"]["rejected"] == 3);
  CHECK(h["worker"]["w2"]["failures"] == 5);
  CHECK(h["worker"]["w2"]["state"] == "open");
  CHECK(h["custom"]["x"]["state"] == "disabled");
  CHECK(h["task_type"].empty());
}

TEST_CASE_METHOD(reg_fixture, "reset closes one circuit, a scope, or all",
                 "[breaker_registry]") {
  fail("worker", "w1");
  fail("worker", "w1");
  fail("worker", "w2");
  fail("worker", "w2");
  for (int i = 0; i < 5; ++i)
    fail("hardware", "cuda");
  succeed("task_type", "bench");
  REQUIRE(state("worker", "w1") == breaker_state::open);
  REQUIRE(state("worker", "w2") == breaker_state::open);
  REQUIRE(state("hardware", "cuda") == breaker_state::open);

  auto one = reset(std::string{"worker"}, std::string{"w1"});
  REQUIRE(one);
  CHECK(*one == 1);
  CHECK(state("worker", "w1") == breaker_state::closed);
  CHECK(state("worker", "w2") == breaker_state::open);
  CHECK(acquire("worker", "w1"));
  CHECK(is(reset(std::string{"worker"}, std::string{"nope"}).error(),
           errc::not_found));

  auto scope = reset(std::string{"worker"});
  REQUIRE(scope);
  CHECK(*scope == 2);
  CHECK(state("worker", "w2") == breaker_state::closed);
  CHECK(state("hardware", "cuda") == breaker_state::open);
  auto none = reset(std::string{"no_such_scope"});
  REQUIRE(none);
  CHECK(*none == 0);

  auto all = reset();
  REQUIRE(all);
  CHECK(*all == 4);
  CHECK(state("hardware", "cuda") == breaker_state::closed);
  auto h = health();
  CHECK(h["aggregate"]["open_circuits"] == 0);
  CHECK(h["aggregate"]["closed_circuits"] == 4);
  // Lifetime counters survive resets.
  CHECK(h["hardware"]["cuda"]["failures"] == 5);
}

TEST_CASE_METHOD(reg_fixture, "force_open and disable override traffic "
                              "until reset",
                 "[breaker_registry]") {
  auto ff = ask_void(reg, registry_force_open_atom::value,
                     std::string{"worker"}, std::string{"w9"});
  REQUIRE(ff);
  CHECK(!*ff);
  CHECK(is(acquire("worker", "w9").error(), errc::circuit_open));
  advance(10min);
  CHECK(is(acquire("worker", "w9").error(), errc::circuit_open));
  auto dis = ask_void(reg, registry_disable_atom::value,
                      std::string{"worker"}, std::string{"w1"});
  REQUIRE(dis);
  CHECK(!*dis);
  for (int i = 0; i < 5; ++i)
    fail("worker", "w1");
  CHECK(state("worker", "w1") == breaker_state::disabled);
  CHECK(*reset(std::string{"worker"}) == 2);
  CHECK(acquire("worker", "w9"));
  fail("worker", "w1");
  fail("worker", "w1");
  CHECK(state("worker", "w1") == breaker_state::open);
}

TEST_CASE_METHOD(fixture, "a bad scope config fails the spawn naming the "
                          "scope",
                 "[breaker_registry]") {
  registry_options opts;
  opts.scopes["worker"] = threshold(2);
  opts.scopes["hardware"] = threshold(-1);
  auto res = spawn_breaker_registry(*sys, opts);
  REQUIRE(!res);
  CHECK(is(res.error(), errc::invalid_breaker_config));
  auto text = render(res.error());
  CHECK(text.find("scope hardware") != std::string::npos);
  CHECK(text.find("failure_threshold") != std::string::npos);
  opts.scopes["hardware"] = threshold(5);
  opts.default_config.success_threshold = 0;
  res = spawn_breaker_registry(*sys, opts);
  REQUIRE(!res);
  CHECK(render(res.error()).find("scope default") != std::string::npos);
  opts.default_config = threshold(3);
  opts.ticket_ttl = caf::timespan{0};
  CHECK(!spawn_breaker_registry(*sys, opts));
  opts.ticket_ttl = 1s;
  CHECK(spawn_breaker_registry(*sys, opts));
}

} // namespace ft::test
