// The watchdog's pure part: config validation and YAML, the tracker's
// timing rules (each fault found exactly at its timeout), recovery
// bookkeeping and escalation, the hook rate limit and the hook runner.

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

#include "ft/error.hpp"
#include "ft/watchdog.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using ft::watchdog_config;
using ft::watchdog_fault;
using ft::watchdog_tracker;
using time_point = watchdog_tracker::time_point;

namespace {

const time_point t0 = time_point{} + 1h;

/// 1 s heartbeat timeout, 2 s progress timeout, 3 s zombie timeout,
/// 2 failed recoveries before escalation, 10 s healthy period.
watchdog_config small_config() {
  watchdog_config cfg;
  cfg.name = "wd";
  cfg.heartbeat_timeout = 1s;
  cfg.progress_timeout = 2s;
  cfg.zombie_timeout = 3s;
  cfg.max_recoveries = 2;
  cfg.healthy_period = 10s;
  return cfg;
}

watchdog_tracker make_tracker(watchdog_config cfg = small_config()) {
  auto res = watchdog_tracker::make(std::move(cfg));
  REQUIRE(res);
  return std::move(*res);
}

/// The one finding of `xs` (which must hold exactly one).
ft::watchdog_finding only(const std::vector<ft::watchdog_finding>& xs) {
  REQUIRE(xs.size() == 1);
  return xs.front();
}

std::string temp_path(const std::string& tag) {
  return "/tmp/ft-watchdog-" + tag + "-" + std::to_string(getpid());
}

std::string slurp(const std::string& path) {
  std::ifstream in{path};
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

} // namespace

// -- configuration --------------------------------------------------------------

TEST_CASE("watchdog configs are validated field by field", "[watchdog]") {
  CHECK_FALSE(ft::validate(watchdog_config{}));
  CHECK_FALSE(ft::validate(small_config()));
  auto bad = [](auto mutate, const char* field) {
    auto cfg = small_config();
    mutate(cfg);
    auto err = ft::validate(cfg);
    INFO(field);
    REQUIRE(err);
    CHECK(ft::is(err, ft::errc::invalid_config));
    CHECK_THAT(ft::render(err), Contains(field));
    CHECK_FALSE(watchdog_tracker::make(cfg));
  };
  bad([](auto& c) { c.name = ""; }, "name = ''");
  bad([](auto& c) { c.heartbeat_timeout = 0s; }, "heartbeat_timeout = 0s");
  bad([](auto& c) { c.progress_timeout = -1s; }, "progress_timeout = -1s");
  bad([](auto& c) { c.zombie_timeout = 0s; }, "zombie_timeout = 0s");
  bad([](auto& c) { c.check_interval = -1ms; }, "check_interval");
  bad([](auto& c) { c.kill_timeout = 0s; }, "kill_timeout = 0s");
  bad([](auto& c) { c.heartbeat_interval = 0s; }, "heartbeat_interval = 0s");
  bad([](auto& c) { c.max_recoveries = 0; }, "max_recoveries = 0");
  bad([](auto& c) { c.healthy_period = 1s; },
      "healthy_period = 1s (must be > heartbeat_timeout = 1s");
  bad([](auto& c) { c.progress_timeout = 20s; },
      "must be > progress_timeout = 20s");
  bad([](auto& c) { c.escalation_severity = 0; }, "escalation_severity = 0");
  bad([](auto& c) { c.escalation_severity = 5; }, "escalation_severity = 5");
  bad([](auto& c) { c.hook_min_interval = -1s; }, "hook_min_interval");
  bad([](auto& c) { c.hook_timeout = -1s; }, "hook_timeout");
}

TEST_CASE("watchdog configs read from YAML", "[watchdog]") {
  auto cfg = ft::watchdog_config_from_yaml("watchdog:\n"
                                           "  name: pool-wd\n"
                                           "  node: n1\n"
                                           "  heartbeat_timeout: 2\n"
                                           "  progress_timeout: 30\n"
                                           "  zombie_timeout: 0.5\n"
                                           "  check_interval: 0.1\n"
                                           "  kill_timeout: 3\n"
                                           "  heartbeat_interval: 0.25\n"
                                           "  max_recoveries: 5\n"
                                           "  healthy_period: 120\n"
                                           "  escalation_severity: 3\n"
                                           "  operator_hook: \"page me\"\n"
                                           "  hook_min_interval: 300\n"
                                           "  hook_timeout: 10\n"
                                           "  auto_register: false\n",
                                           "wd.yaml");
  REQUIRE(cfg);
  CHECK(cfg->name == "pool-wd");
  CHECK(cfg->node == "n1");
  CHECK(cfg->heartbeat_timeout == 2s);
  CHECK(cfg->progress_timeout == 30s);
  CHECK(cfg->zombie_timeout == 500ms);
  CHECK(cfg->check_interval == 100ms);
  CHECK(cfg->kill_timeout == 3s);
  CHECK(cfg->heartbeat_interval == 250ms);
  CHECK(cfg->max_recoveries == 5);
  CHECK(cfg->healthy_period == 120s);
  CHECK(cfg->escalation_severity == 3);
  CHECK(cfg->operator_hook == "page me");
  CHECK(cfg->hook_min_interval == 300s);
  CHECK(cfg->hook_timeout == 10s);
  CHECK_FALSE(cfg->auto_register);
  // Without the wrapper, and the empty document is the defaults.
  auto bare = ft::watchdog_config_from_yaml("heartbeat_timeout: 7\n");
  REQUIRE(bare);
  CHECK(bare->heartbeat_timeout == 7s);
  CHECK(bare->zombie_timeout == watchdog_config{}.zombie_timeout);
  auto empty = ft::watchdog_config_from_yaml("");
  REQUIRE(empty);
  CHECK(empty->heartbeat_timeout == watchdog_config{}.heartbeat_timeout);
  CHECK(empty->max_recoveries == watchdog_config{}.max_recoveries);
}

TEST_CASE("watchdog YAML errors name source, line, field and value",
          "[watchdog]") {
  auto fails = [](const std::string& text, const std::string& starts,
                  const std::string& contains) {
    auto res = ft::watchdog_config_from_yaml(text, "wd.yaml");
    INFO(text);
    REQUIRE_FALSE(res);
    CHECK(ft::is(res.error(), ft::errc::invalid_config));
    auto msg = ft::render(res.error());
    CHECK_THAT(msg, Contains(starts));
    CHECK_THAT(msg, Contains(contains));
  };
  fails("watchdog:\n  heartbeat_timeout: 1\n  zombie_timout: 2\n",
        "wd.yaml:3: zombie_timout", "is not a known field");
  fails("watchdog:\n  max_recoveries: two\n", "wd.yaml:2: max_recoveries",
        "'two' is not a number");
  fails("heartbeat_timeout: -1\n", "wd.yaml:1: heartbeat_timeout",
        "out of range");
  fails("name: x\nescalation_severity: 7\n", "wd.yaml:2: escalation_severity",
        "= 7 is not a severity");
  // validate() errors point at the field's line ...
  fails("name: x\nheartbeat_timeout: 0\n", "wd.yaml:2: heartbeat_timeout",
        "must be > 0");
  fails("name: x\n\nmax_recoveries: 0\n", "wd.yaml:3: max_recoveries",
        "must be >= 1");
  // ... or, for a default healthy_period beaten by a longer timeout, at the
  // timeout that beat it.
  fails("name: x\nheartbeat_timeout: 90\n", "wd.yaml:2: healthy_period = 60s",
        "heartbeat_timeout = 90s");
  fails("watchdog: [1, 2]\n", "wd.yaml:1: watchdog", "must be a mapping");
  fails("heartbeat_timeout: [1\n", "wd.yaml", "");
  auto missing = ft::watchdog_config_from_yaml_file("/nonexistent/wd.yaml");
  REQUIRE_FALSE(missing);
  CHECK_THAT(ft::render(missing.error()),
             Contains("/nonexistent/wd.yaml: cannot open file"));
}

// -- detection ------------------------------------------------------------------

TEST_CASE("stale: found exactly at heartbeat_timeout, heartbeats postpone it",
          "[watchdog]") {
  auto t = make_tracker();
  t.add("w", "", t0);
  CHECK(t.child_of("w") == "w");
  CHECK(t.next_deadline() == t0 + 1s);
  CHECK(t.check(t0 + 999ms).empty());
  // A heartbeat at 0.5 s moves the deadline to 1.5 s.
  CHECK(t.heartbeat("w", t0 + 500ms));
  CHECK(t.check(t0 + 1s).empty());
  CHECK(t.next_deadline() == t0 + 1500ms);
  CHECK(t.check(t0 + 1499ms).empty());
  auto f = only(t.check(t0 + 1500ms));
  CHECK(f.id == "w");
  CHECK(f.fault == watchdog_fault::stale);
  CHECK(f.silent_for == 1s);
  CHECK(f.failed_recoveries == 0);
  CHECK_FALSE(f.escalate);
  // Not found again until one full timeout after the finding.
  CHECK(t.check(t0 + 2499ms).empty());
  auto again = only(t.check(t0 + 2500ms));
  CHECK(again.silent_for == 2s);
  // Heartbeats of unknown workers are refused.
  CHECK_FALSE(t.heartbeat("nobody", t0));
  CHECK_FALSE(t.progress("nobody", 1, t0));
}

TEST_CASE("stuck: found exactly at progress_timeout; a changed value resets "
          "it, an unchanged one does not",
          "[watchdog]") {
  auto t = make_tracker();
  t.add("w", "child-w", t0);
  // Before any progress report, a heartbeating worker is never stuck.
  for (auto dt = 500ms; dt <= 5s; dt += 500ms) {
    t.heartbeat("w", t0 + dt);
    CHECK(t.check(t0 + dt).empty());
  }
  auto base = t0 + 5s;
  t.progress("w", 10, base);
  // Heartbeats and the same value keep it alive but not progressing.
  t.heartbeat("w", base + 900ms);
  t.progress("w", 10, base + 1800ms);
  CHECK(t.next_deadline() == base + 2s);
  CHECK(t.check(base + 1999ms).empty());
  auto f = only(t.check(base + 2s));
  CHECK(f.fault == watchdog_fault::stuck);
  CHECK(f.silent_for == 2s);
  // A new value is progress: the next stuck finding is 2 s after it.
  t.progress("w", 11, base + 2500ms);
  t.heartbeat("w", base + 3400ms);
  t.heartbeat("w", base + 4300ms);
  CHECK(t.check(base + 4499ms).empty());
  auto g = only(t.check(base + 4500ms));
  CHECK(g.fault == watchdog_fault::stuck);
  auto info = t.status(base + 4500ms);
  REQUIRE(info.size() == 1);
  CHECK(info[0].child_id == "child-w");
  CHECK(info[0].has_progress);
  CHECK(info[0].progress == 11);
  CHECK(info[0].since_progress == 2s);
  CHECK(info[0].last_fault == "stuck");
  CHECK(info[0].findings == 2);
}

TEST_CASE("stuck detection is off with progress_timeout 0", "[watchdog]") {
  auto cfg = small_config();
  cfg.progress_timeout = 0s;
  auto t = make_tracker(cfg);
  t.add("w", "", t0);
  t.progress("w", 1, t0);
  for (auto dt = 500ms; dt <= 10s; dt += 500ms) {
    t.progress("w", 1, t0 + dt);
    CHECK(t.check(t0 + dt).empty());
  }
}

TEST_CASE("stale wins over stuck: one finding per worker and check",
          "[watchdog]") {
  auto cfg = small_config();
  cfg.progress_timeout = 1s;
  cfg.heartbeat_timeout = 1s;
  auto t = make_tracker(cfg);
  t.add("w", "", t0);
  t.progress("w", 1, t0);
  auto f = only(t.check(t0 + 1s));
  CHECK(f.fault == watchdog_fault::stale);
}

TEST_CASE("zombie: found exactly zombie_timeout after death unless replaced",
          "[watchdog]") {
  auto t = make_tracker();
  t.add("a", "", t0);
  t.add("b", "", t0);
  t.heartbeat("a", t0 + 500ms);
  t.heartbeat("b", t0 + 500ms);
  CHECK(t.died("a", t0 + 600ms));
  CHECK_FALSE(t.died("a", t0 + 700ms));
  CHECK_FALSE(t.alive("a"));
  // A dead worker's heartbeats are ignored; it is never stale.
  CHECK_FALSE(t.heartbeat("a", t0 + 700ms));
  t.heartbeat("b", t0 + 1400ms);
  t.heartbeat("b", t0 + 2300ms);
  t.heartbeat("b", t0 + 3200ms);
  CHECK(t.check(t0 + 3599ms).empty());
  auto f = only(t.check(t0 + 3600ms));
  CHECK(f.id == "a");
  CHECK(f.fault == watchdog_fault::zombie);
  CHECK(f.silent_for == 3s);
  // b died too, but its replacement registered in time: no zombie.
  t.died("b", t0 + 3700ms);
  CHECK_FALSE(t.add("b", "", t0 + 4s));
  CHECK(t.alive("b"));
  auto info = t.status(t0 + 4s);
  REQUIRE(info.size() == 2);
  CHECK(info[1].incarnation == 2);
  CHECK(t.check(t0 + 4999ms).empty());
  // The replacement's own clock: stale 1 s after its registration.
  auto g = only(t.check(t0 + 5s));
  CHECK(g.id == "b");
  CHECK(g.fault == watchdog_fault::stale);
}

// -- recovery bookkeeping ---------------------------------------------------------

TEST_CASE("escalation after max_recoveries failed recoveries in a row",
          "[watchdog]") {
  auto t = make_tracker(); // max_recoveries = 2
  t.add("w", "", t0);
  // Finding 1 starts recovery 1.
  auto f1 = only(t.check(t0 + 1s));
  CHECK(f1.failed_recoveries == 0);
  CHECK_FALSE(f1.escalate);
  // The replacement goes stale again before it was healthy for 10 s:
  // recovery 1 failed.
  CHECK(t.add("w", "", t0 + 1100ms)); // a replacement of a recovering worker
  auto f2 = only(t.check(t0 + 2100ms));
  CHECK(f2.failed_recoveries == 1);
  CHECK_FALSE(f2.escalate);
  t.add("w", "", t0 + 2200ms);
  auto f3 = only(t.check(t0 + 3200ms));
  CHECK(f3.failed_recoveries == 2);
  CHECK(f3.escalate);
  // The count starts again after an escalation.
  auto info = t.status(t0 + 3200ms);
  CHECK(info[0].failed_recoveries == 0);
  CHECK(info[0].recovering);
  auto f4 = only(t.check(t0 + 4200ms));
  CHECK(f4.failed_recoveries == 1);
  CHECK_FALSE(f4.escalate);
}

TEST_CASE("a healthy period resets the failed-recovery count", "[watchdog]") {
  auto t = make_tracker();
  t.add("w", "", t0);
  only(t.check(t0 + 1s));
  t.add("w", "", t0 + 1s);
  CHECK(only(t.check(t0 + 2s)).failed_recoveries == 1);
  // The next replacement heartbeats for the whole healthy period.
  t.add("w", "", t0 + 3s);
  auto t1 = t0 + 3s;
  CHECK(t.next_deadline() == t1 + 1s);
  for (auto dt = 500ms; dt < 10s; dt += 500ms) {
    t.heartbeat("w", t1 + dt);
    REQUIRE(t.check(t1 + dt).empty());
  }
  CHECK(t.status(t1 + 9500ms)[0].failed_recoveries == 1);
  t.heartbeat("w", t1 + 10s);
  CHECK(t.check(t1 + 10s).empty());
  auto info = t.status(t1 + 10s);
  CHECK(info[0].failed_recoveries == 0);
  CHECK_FALSE(info[0].recovering);
  // A new fault starts counting from zero again.
  auto f = only(t.check(t1 + 11s));
  CHECK(f.failed_recoveries == 0);
  // A worker that stays stale is found again before it could count as
  // healthy, so the count never resets while it is faulty.
  std::vector<int> counts;
  std::vector<bool> escalations;
  for (int i = 1; i <= 4; ++i) {
    auto g = only(t.check(t1 + 11s + i * 1s));
    counts.push_back(g.failed_recoveries);
    escalations.push_back(g.escalate);
  }
  CHECK(counts == std::vector<int>{1, 2, 1, 2});
  CHECK(escalations == std::vector<bool>{false, true, false, true});
}

TEST_CASE("a failed restart counts at once and re-arms the zombie timer",
          "[watchdog]") {
  auto t = make_tracker(); // zombie_timeout 3 s, max_recoveries 2
  t.add("w", "sup-w", t0);
  t.died("w", t0);
  auto f1 = only(t.check(t0 + 3s));
  CHECK(f1.fault == watchdog_fault::zombie);
  CHECK(f1.failed_recoveries == 0);
  auto r1 = t.recovery_failed("w", t0 + 3s);
  REQUIRE(r1);
  CHECK(r1->failed_recoveries == 1);
  CHECK(r1->fault == watchdog_fault::zombie);
  CHECK_FALSE(r1->escalate);
  CHECK(t.next_deadline() == t0 + 6s);
  // The next finding does not count the failure a second time.
  CHECK(t.check(t0 + 5999ms).empty());
  auto f2 = only(t.check(t0 + 6s));
  CHECK(f2.failed_recoveries == 1);
  auto r2 = t.recovery_failed("w", t0 + 6s);
  REQUIRE(r2);
  CHECK(r2->failed_recoveries == 2);
  CHECK(r2->escalate);
  CHECK_FALSE(t.recovery_failed("nobody", t0));
  // Unregistered workers are forgotten.
  CHECK(t.remove("w"));
  CHECK_FALSE(t.remove("w"));
  CHECK(t.check(t0 + 1h).empty());
  CHECK_FALSE(t.next_deadline());
}

TEST_CASE("workers are found by child id; each has its own deadline",
          "[watchdog]") {
  auto t = make_tracker();
  t.add("a", "child-a", t0);
  t.add("b", "child-b", t0 + 300ms);
  CHECK(t.by_child("child-b") == std::string{"b"});
  CHECK_FALSE(t.by_child("b"));
  CHECK(t.next_deadline("a") == t0 + 1s);
  CHECK(t.next_deadline("b") == t0 + 1300ms);
  CHECK_FALSE(t.next_deadline("c"));
  t.progress("b", 1, t0 + 400ms);
  CHECK(t.next_deadline("b") == t0 + 1400ms);
  t.died("a", t0 + 500ms);
  CHECK(t.next_deadline("a") == t0 + 3500ms);
  CHECK(t.next_deadline() == t0 + 1400ms);
}

// -- the hook ---------------------------------------------------------------------

TEST_CASE("the hook limiter admits one run per interval and counts the rest",
          "[watchdog]") {
  ft::watchdog_hook_limiter lim{60s};
  CHECK(lim.admit(t0) == size_t{0});
  CHECK_FALSE(lim.admit(t0 + 1s));
  CHECK_FALSE(lim.admit(t0 + 59s));
  CHECK(lim.suppressed() == 2);
  CHECK(lim.admit(t0 + 60s) == size_t{2});
  CHECK(lim.suppressed() == 0);
  ft::watchdog_hook_limiter unlimited{0s};
  CHECK(unlimited.admit(t0));
  CHECK(unlimited.admit(t0));
}

TEST_CASE("run_hook runs the command with FT_* variables and arguments",
          "[watchdog]") {
  auto path = temp_path("hook");
  std::remove(path.c_str());
  ft::hook_invocation x;
  x.command = "printf '%s|%s|%s|%s|%s|%s|%s|%s\\n' \"$FT_SEVERITY\" "
              "\"$FT_WORKER\" \"$FT_KIND\" \"$FT_DETAIL\" \"$FT_NODE\" "
              "\"$FT_WATCHDOG\" \"$FT_FAILED_RECOVERIES\" \"$FT_SUPPRESSED\" > "
              + path + "; echo \"$1 $2 $3\" >> " + path + "; exit 3";
  x.severity = 4;
  x.worker = "w1";
  x.kind = "stale";
  x.detail = "w1 stale for 2s";
  x.node = "n1";
  x.watchdog = "wd";
  x.failed_recoveries = 3;
  x.suppressed = 1;
  auto res = ft::run_hook(x, 10s);
  REQUIRE(res);
  CHECK(*res == 3);
  CHECK(slurp(path) == "4|w1|stale|w1 stale for 2s|n1|wd|3|1\n4 w1 stale\n");
  std::remove(path.c_str());
  // A hook that runs too long is killed.
  x.command = "sleep 5";
  auto slow = ft::run_hook(x, 50ms);
  REQUIRE_FALSE(slow);
  CHECK(ft::is(slow.error(), ft::errc::call_timeout));
  CHECK_THAT(ft::render(slow.error()), Contains("killed after 0.05s"));
  x.command = "";
  CHECK_FALSE(ft::run_hook(x));
}

// -- events -----------------------------------------------------------------------

TEST_CASE("watchdog events and faults render for humans", "[watchdog]") {
  ft::watchdog_event ev;
  ev.kind = ft::watchdog_event_kind::escalated;
  ev.watchdog = "pool-wd";
  ev.worker = "w1";
  ev.fault = watchdog_fault::zombie;
  ev.detail = "w1: 3 failed recoveries in a row";
  ev.severity = 4;
  CHECK(ft::to_string(ev)
        == "[pool-wd] escalated worker=w1 fault=zombie severity=4: w1: 3 "
           "failed recoveries in a row");
  ev.kind = ft::watchdog_event_kind::stale;
  ev.fault = watchdog_fault::stale;
  ev.detail.clear();
  ev.severity = 2;
  CHECK(ft::to_string(ev) == "[pool-wd] stale worker=w1 severity=2");
  for (auto k : {watchdog_fault::stale, watchdog_fault::stuck,
                 watchdog_fault::zombie})
    CHECK(ft::parse_watchdog_fault(ft::to_string(k)) == k);
  CHECK_FALSE(ft::parse_watchdog_fault("dead"));
}
