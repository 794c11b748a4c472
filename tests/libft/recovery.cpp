#include <catch2/catch.hpp>

#include <chrono>
#include <climits>
#include <string>
#include <vector>

#include <caf/atom.hpp>
#include <caf/sec.hpp>

#include "ft/error.hpp"
#include "ft/recovery.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

using ft::errc;
using ft::recovery_action;
using ft::recovery_chain_config;
using ft::recovery_decision;
using ft::recovery_plan;
using ft::recovery_policy;
using ft::recovery_step;
using ft::recovery_step_kind;
using ft::recovery_targets;
using kind = ft::recovery_step_kind;

const caf::error boom = ft::make_error(errc::call_timeout, "worker slow");

/// One line per decision: `step#attempt[target]+delay`, `skip step (why)`,
/// `exhausted`.
std::string line(const recovery_action& x) {
  switch (x.decision) {
    case recovery_decision::exhausted:
      return "exhausted";
    case recovery_decision::skip:
      return std::string{"skip "} + ft::to_string(x.step) + " (" + x.reason
             + ")";
    case recovery_decision::attempt:
      break;
  }
  auto result = std::string{ft::to_string(x.step)} + "#"
                + std::to_string(x.attempt);
  if (x.step == kind::switch_worker || x.step == kind::switch_resource)
    result += "[" + std::to_string(x.target) + "]";
  if (x.delay.count() > 0)
    result += "+"
              + std::to_string(
                std::chrono::duration_cast<std::chrono::milliseconds>(x.delay)
                  .count())
              + "ms";
  return result;
}

/// Feeds `err` to `plan` until it is exhausted: every decision, in order.
std::vector<std::string> walk(recovery_plan& plan,
                              const caf::error& err = boom) {
  std::vector<std::string> result;
  for (int i = 0; i < 100; ++i) {
    auto x = plan.next(err);
    result.push_back(line(x));
    if (x.decision == recovery_decision::exhausted)
      return result;
  }
  FAIL("the plan never ran out");
  return result;
}

recovery_targets everything(size_t workers = 2, size_t resources = 1) {
  return {workers, resources, true, true};
}

/// Expects `err` to be invalid_config whose rendering starts with `prefix`.
void rejected(const caf::error& err, const std::string& prefix) {
  REQUIRE(err);
  CHECK(ft::is(err, errc::invalid_config));
  CHECK_THAT(ft::render(err), StartsWith("invalid_config: " + prefix));
}

} // namespace

// -- names --------------------------------------------------------------------

TEST_CASE("recovery: step kinds round-trip, seed names are aliases",
          "[recovery]") {
  for (auto k : {kind::immediate_retry, kind::delayed_retry, kind::restart,
                 kind::switch_worker, kind::switch_resource, kind::degrade,
                 kind::escalate}) {
    auto parsed = ft::parse_recovery_step_kind(ft::to_string(k));
    REQUIRE(parsed);
    CHECK(*parsed == k);
  }
  CHECK(ft::parse_recovery_step_kind("use_replica") == kind::switch_worker);
  CHECK(ft::parse_recovery_step_kind("failover") == kind::switch_resource);
  CHECK(ft::parse_recovery_step_kind("notify_operator") == kind::escalate);
  CHECK(ft::parse_recovery_step_kind("restart_kernel") == kind::restart);
  // The seed configs' Rust spellings.
  CHECK(ft::parse_recovery_step_kind("RestartKernel") == kind::restart);
  CHECK(ft::parse_recovery_step_kind("UseReplica") == kind::switch_worker);
  CHECK(ft::parse_recovery_step_kind("Degrade") == kind::degrade);
  CHECK(ft::parse_recovery_step_kind("Failover") == kind::switch_resource);
  CHECK(ft::parse_recovery_step_kind("NotifyOperator") == kind::escalate);
  CHECK_FALSE(ft::parse_recovery_step_kind("reboot"));
  CHECK_FALSE(ft::parse_recovery_step_kind(""));
}

TEST_CASE("recovery: error names for on/except lists", "[recovery]") {
  CHECK(ft::recovery_error_name(boom) == "call_timeout");
  CHECK(ft::recovery_error_name(caf::make_error(caf::sec::request_timeout))
        == "request_timeout");
  CHECK(ft::recovery_error_name(caf::error{3, caf::atom("gpu")}) == "gpu:3");
  CHECK(ft::recovery_error_name(caf::error{}).empty());
  CHECK(ft::is_recovery_error_name("call_timeout"));
  CHECK(ft::is_recovery_error_name("recovery_exhausted"));
  CHECK(ft::is_recovery_error_name("request_receiver_down"));
  CHECK(ft::is_recovery_error_name("gpu:3"));
  CHECK_FALSE(ft::is_recovery_error_name("gpu:0"));
  CHECK_FALSE(ft::is_recovery_error_name("gpu:x"));
  CHECK_FALSE(ft::is_recovery_error_name(":3"));
  CHECK_FALSE(ft::is_recovery_error_name("out_of_memory"));
}

// -- chains -------------------------------------------------------------------

TEST_CASE("recovery: the default chain's order and defaults", "[recovery]") {
  recovery_chain_config cfg;
  std::vector<kind> order;
  for (auto& s : cfg.steps)
    order.push_back(s.kind);
  CHECK(order
        == std::vector<kind>{kind::immediate_retry, kind::delayed_retry,
                             kind::switch_worker, kind::switch_resource,
                             kind::degrade, kind::escalate});
  CHECK(cfg.steps[1].backoff.backoff == ft::backoff_kind::exponential);
  CHECK(cfg.steps[1].backoff.initial_delay == 100ms);
  CHECK(cfg.steps[1].backoff.max_delay == 2s);
  CHECK(cfg.call_timeout == 0s);
  CHECK_FALSE(ft::validate(cfg));
  CHECK(ft::default_attempts(kind::delayed_retry) == 3);
  CHECK(ft::default_attempts(kind::switch_worker) == INT_MAX);
}

TEST_CASE("recovery: the default plan walks every step in order with its "
          "attempts and delays",
          "[recovery]") {
  recovery_plan plan{recovery_chain_config{}, everything(2, 1)};
  CHECK(walk(plan)
        == std::vector<std::string>{
          "immediate_retry#1",
          "delayed_retry#1+100ms",
          "delayed_retry#2+200ms",
          "delayed_retry#3+400ms",
          "switch_worker#1[0]",
          "switch_worker#2[1]",
          "switch_resource#1[0]",
          "degrade#1",
          "escalate#1",
          "exhausted",
        });
  CHECK(plan.attempts() == 9);
  CHECK(plan.exhausted());
  // Once exhausted, it stays so.
  CHECK(plan.next(boom).decision == recovery_decision::exhausted);
}

TEST_CASE("recovery: steps without a target are skipped, with the reason",
          "[recovery]") {
  recovery_plan plan{recovery_chain_config{}, recovery_targets{}};
  CHECK(walk(plan)
        == std::vector<std::string>{
          "immediate_retry#1",
          "delayed_retry#1+100ms",
          "delayed_retry#2+200ms",
          "delayed_retry#3+400ms",
          "skip switch_worker (no other worker in the pool)",
          "skip switch_resource (no other resource)",
          "skip degrade (no fallback)",
          "escalate#1",
          "exhausted",
        });
  recovery_chain_config restart_only;
  restart_only.steps = {recovery_step{kind::restart, 2, 1s}};
  recovery_plan no_sup{restart_only, recovery_targets{}};
  CHECK(walk(no_sup)
        == std::vector<std::string>{
          "skip restart (no supervisor and child id to restart)",
          "exhausted"});
}

TEST_CASE("recovery: switch steps try each alternative once, capped by "
          "attempts",
          "[recovery]") {
  recovery_chain_config cfg;
  cfg.steps = {recovery_step{kind::switch_worker, 2},
               recovery_step{kind::switch_resource, 0, 50ms}};
  recovery_plan plan{cfg, everything(5, 2)};
  CHECK(walk(plan)
        == std::vector<std::string>{"switch_worker#1[0]", "switch_worker#2[1]",
                                    "switch_resource#1[0]+50ms",
                                    "switch_resource#2[1]+50ms",
                                    "exhausted"});
}

TEST_CASE("recovery: a chain without escalate ends exhausted; escalate ends "
          "it at once",
          "[recovery]") {
  recovery_chain_config cfg;
  cfg.steps = {recovery_step{kind::immediate_retry, 2}};
  recovery_plan plan{cfg, everything()};
  CHECK(walk(plan)
        == std::vector<std::string>{"immediate_retry#1", "immediate_retry#2",
                                    "exhausted"});
  cfg.steps = {recovery_step{kind::escalate}};
  recovery_plan esc{cfg, everything()};
  CHECK(esc.next(boom).step == kind::escalate);
  CHECK(esc.exhausted());
}

TEST_CASE("recovery: on/except route errors: exhaustion goes straight to "
          "degrade",
          "[recovery]") {
  recovery_chain_config cfg;
  recovery_step retry{kind::immediate_retry, 1};
  retry.except = {"gpu:7"};
  recovery_step delayed{kind::delayed_retry, 2};
  delayed.backoff.backoff = ft::backoff_kind::fixed;
  delayed.backoff.initial_delay = 10ms;
  delayed.on = {"call_timeout"};
  cfg.steps = {retry, delayed, recovery_step{kind::degrade},
               recovery_step{kind::escalate}};
  REQUIRE_FALSE(ft::validate(cfg));
  const caf::error oom{7, caf::atom("gpu")};
  SECTION("resource exhaustion skips the retries") {
    recovery_plan plan{cfg, everything()};
    CHECK(walk(plan, oom)
          == std::vector<std::string>{
            "skip immediate_retry (does not apply to gpu:7)",
            "skip delayed_retry (does not apply to gpu:7)", "degrade#1",
            "escalate#1", "exhausted"});
  }
  SECTION("a timeout takes every retry") {
    recovery_plan plan{cfg, everything()};
    CHECK(walk(plan)
          == std::vector<std::string>{"immediate_retry#1",
                                      "delayed_retry#1+10ms",
                                      "delayed_retry#2+10ms", "degrade#1",
                                      "escalate#1", "exhausted"});
  }
  SECTION("a step ends quietly when the error stops applying") {
    recovery_plan plan{cfg, everything()};
    CHECK(line(plan.next(boom)) == "immediate_retry#1");
    CHECK(line(plan.next(boom)) == "delayed_retry#1+10ms");
    // The retry now failed with resource exhaustion: on to degrade.
    CHECK(line(plan.next(oom)) == "degrade#1");
  }
  SECTION("the applies predicate filters too") {
    cfg.steps[0].applies = [](const caf::error& e) {
      return !ft::is(e, errc::call_timeout);
    };
    recovery_plan plan{cfg, everything()};
    CHECK(line(plan.next(boom))
          == "skip immediate_retry (does not apply to call_timeout)");
  }
}

TEST_CASE("recovery: delayed_retry follows its retry_policy schedule",
          "[recovery]") {
  recovery_step s{kind::delayed_retry, 4};
  s.backoff.backoff = ft::backoff_kind::linear;
  s.backoff.initial_delay = 100ms;
  s.backoff.max_delay = 250ms;
  recovery_chain_config cfg;
  cfg.steps = {s};
  recovery_plan plan{cfg, everything()};
  CHECK(walk(plan)
        == std::vector<std::string>{"delayed_retry#1+100ms",
                                    "delayed_retry#2+200ms",
                                    "delayed_retry#3+250ms",
                                    "delayed_retry#4+250ms", "exhausted"});
}

// -- policies -----------------------------------------------------------------

TEST_CASE("recovery: a policy expands to restart ×max_restarts with its "
          "delay, then the escalation",
          "[recovery]") {
  recovery_policy p;
  CHECK(p.strategy == kind::restart);
  CHECK(p.max_restarts == 3);
  CHECK(p.restart_delay == 5s);
  CHECK_FALSE(p.escalation);
  p.escalation = kind::escalate;
  REQUIRE_FALSE(ft::validate(p));
  auto chain = p.to_chain();
  REQUIRE(chain.steps.size() == 2);
  CHECK(chain.steps[0].kind == kind::restart);
  CHECK(chain.steps[0].attempts == 3);
  CHECK(chain.steps[0].delay == 5s);
  CHECK(chain.steps[1].kind == kind::escalate);
  CHECK_FALSE(ft::validate(chain));
  recovery_plan plan{chain, everything()};
  CHECK(walk(plan)
        == std::vector<std::string>{"restart#1+5000ms", "restart#2+5000ms",
                                    "restart#3+5000ms", "escalate#1",
                                    "exhausted"});
}

TEST_CASE("recovery: other policy strategies", "[recovery]") {
  recovery_policy p;
  p.strategy = kind::switch_worker; // use_replica
  p.max_restarts = 2;
  p.escalation = kind::degrade;
  auto chain = p.to_chain();
  REQUIRE(chain.steps.size() == 2);
  CHECK(chain.steps[0].kind == kind::switch_worker);
  CHECK(chain.steps[0].attempts == 2);
  CHECK(chain.steps[0].delay == 0s);
  CHECK(chain.steps[1].kind == kind::degrade);
  p.strategy = kind::restart;
  p.max_restarts = 0;
  p.escalation = kind::escalate;
  chain = p.to_chain();
  REQUIRE(chain.steps.size() == 1);
  CHECK(chain.steps[0].kind == kind::escalate);
  p.strategy = kind::delayed_retry;
  p.max_restarts = 2;
  p.restart_delay = 1s;
  p.escalation.reset();
  chain = p.to_chain();
  REQUIRE(chain.steps.size() == 1);
  recovery_plan plan{chain, everything()};
  CHECK(walk(plan)
        == std::vector<std::string>{"delayed_retry#1+1000ms",
                                    "delayed_retry#2+1000ms", "exhausted"});
}

TEST_CASE("recovery: validate names each bad field and value", "[recovery]") {
  SECTION("steps") {
    recovery_step s{kind::immediate_retry, -1};
    rejected(ft::validate(s), "attempts = -1 is < 0");
    s = recovery_step{kind::escalate, 2};
    rejected(ft::validate(s), "attempts = 2 must be 0 or 1 for escalate");
    s = recovery_step{kind::restart, 1, -1s};
    rejected(ft::validate(s), "delay = -1s is < 0");
    s = recovery_step{kind::immediate_retry, 1, 1s};
    rejected(ft::validate(s), "delay = 1s must be 0 for immediate_retry");
    s = recovery_step{kind::delayed_retry, 2};
    s.backoff.multiplier = 0.5;
    rejected(ft::validate(s), "multiplier = 0.5");
    s = recovery_step{kind::switch_worker};
    s.on = {"call_timeout", "nonsense"};
    rejected(ft::validate(s), "on = 'nonsense' is not an error name");
    s.on.clear();
    s.except = {"x:"};
    rejected(ft::validate(s), "except = 'x:'");
  }
  SECTION("chains") {
    recovery_chain_config cfg;
    cfg.steps.clear();
    rejected(ft::validate(cfg), "chain = [] must have at least one step");
    cfg.steps = {recovery_step{kind::escalate},
                 recovery_step{kind::degrade}};
    rejected(ft::validate(cfg), "chain[0].step = escalate must be the last");
    cfg.steps = {recovery_step{kind::degrade},
                 recovery_step{kind::restart, -2}};
    rejected(ft::validate(cfg), "chain[1].attempts = -2 is < 0");
    cfg.steps = {recovery_step{kind::degrade}};
    cfg.call_timeout = -1s;
    rejected(ft::validate(cfg), "call_timeout = -1s is < 0");
  }
  SECTION("policies") {
    recovery_policy p;
    p.max_restarts = -1;
    rejected(ft::validate(p), "max_restarts = -1 is < 0");
    p = recovery_policy{};
    p.restart_delay = -5s;
    rejected(ft::validate(p), "restart_delay = -5s is < 0");
    p = recovery_policy{};
    p.escalation = kind::restart;
    rejected(ft::validate(p), "escalation = restart escalates to the "
                              "strategy itself");
    p = recovery_policy{};
    p.strategy = kind::escalate;
    p.escalation = kind::degrade;
    rejected(ft::validate(p), "escalation = degrade cannot follow");
    p = recovery_policy{};
    p.max_restarts = 0;
    rejected(ft::validate(p), "max_restarts = 0 leaves no step");
  }
}

// -- YAML ---------------------------------------------------------------------

TEST_CASE("recovery: recovery_chain_from_yaml reads a chain", "[recovery]") {
  auto cfg = ft::recovery_chain_from_yaml(
    "recovery:\n"
    "  chain:\n"
    "    - {step: immediate_retry, attempts: 2}\n"
    "    - step: delayed_retry\n"
    "      attempts: 3\n"
    "      backoff: linear\n"
    "      initial_delay: 0.25\n"
    "      max_delay: 1\n"
    "      multiplier: 3\n"
    "      on: [call_timeout, request_timeout]\n"
    "    - {step: restart, attempts: 2, delay: 1.5}\n"
    "    - use_replica\n"
    "    - {step: failover, except: gpu:7}\n"
    "    - degrade\n"
    "    - notify_operator\n"
    "  call_timeout: 5\n");
  REQUIRE(cfg);
  REQUIRE(cfg->steps.size() == 7);
  CHECK(cfg->call_timeout == 5s);
  CHECK(cfg->steps[0].kind == kind::immediate_retry);
  CHECK(cfg->steps[0].attempts == 2);
  auto& d = cfg->steps[1];
  CHECK(d.kind == kind::delayed_retry);
  CHECK(d.attempts == 3);
  CHECK(d.backoff.backoff == ft::backoff_kind::linear);
  CHECK(d.backoff.initial_delay == 250ms);
  CHECK(d.backoff.max_delay == 1s);
  CHECK(d.backoff.multiplier == 3.0);
  CHECK(d.on == std::vector<std::string>{"call_timeout", "request_timeout"});
  CHECK(cfg->steps[2].kind == kind::restart);
  CHECK(cfg->steps[2].attempts == 2);
  CHECK(cfg->steps[2].delay == 1500ms);
  CHECK(cfg->steps[3].kind == kind::switch_worker);
  CHECK(cfg->steps[3].attempts == 0);
  CHECK(cfg->steps[4].kind == kind::switch_resource);
  CHECK(cfg->steps[4].except == std::vector<std::string>{"gpu:7"});
  CHECK(cfg->steps[5].kind == kind::degrade);
  CHECK(cfg->steps[6].kind == kind::escalate);
}

TEST_CASE("recovery: recovery_chain_from_yaml reads the policy form",
          "[recovery]") {
  auto cfg = ft::recovery_chain_from_yaml("strategy: restart\n"
                                          "max_restarts: 2\n"
                                          "restart_delay: 0.5\n"
                                          "escalation: notify_operator\n"
                                          "call_timeout: 1\n");
  REQUIRE(cfg);
  REQUIRE(cfg->steps.size() == 2);
  CHECK(cfg->steps[0].kind == kind::restart);
  CHECK(cfg->steps[0].attempts == 2);
  CHECK(cfg->steps[0].delay == 500ms);
  CHECK(cfg->steps[1].kind == kind::escalate);
  CHECK(cfg->call_timeout == 1s);
  auto p = ft::recovery_policy_from_yaml("strategy: UseReplica\n"
                                         "max_restarts: 4\n"
                                         "escalation: degrade\n");
  REQUIRE(p);
  CHECK(p->strategy == kind::switch_worker);
  CHECK(p->max_restarts == 4);
  CHECK(p->restart_delay == 5s);
  CHECK(p->escalation == kind::degrade);
  auto none = ft::recovery_policy_from_yaml("escalation: none\n");
  REQUIRE(none);
  CHECK_FALSE(none->escalation);
  auto empty = ft::recovery_chain_from_yaml("");
  REQUIRE(empty);
  CHECK(empty->steps.size() == ft::default_recovery_steps().size());
}

TEST_CASE("recovery: to_yaml round-trips through recovery_chain_from_yaml",
          "[recovery]") {
  recovery_chain_config cfg;
  cfg.call_timeout = 300ms;
  cfg.steps[1].backoff.backoff = ft::backoff_kind::exponential_with_jitter;
  cfg.steps[1].backoff.jitter = ft::jitter_kind::decorrelated;
  cfg.steps[1].backoff.initial_delay = 123456789ns;
  cfg.steps[1].backoff.multiplier = 1.1;
  cfg.steps[1].on = {"call_timeout", "gpu:7"};
  cfg.steps[2].except = {"request_receiver_down"};
  cfg.steps.insert(cfg.steps.begin() + 2, recovery_step{kind::restart, 2, 3s});
  REQUIRE_FALSE(ft::validate(cfg));
  auto text = ft::to_yaml(cfg);
  CAPTURE(text);
  auto back = ft::recovery_chain_from_yaml(text, "roundtrip.yaml");
  REQUIRE(back);
  CHECK(back->call_timeout == cfg.call_timeout);
  REQUIRE(back->steps.size() == cfg.steps.size());
  for (size_t i = 0; i < cfg.steps.size(); ++i) {
    CAPTURE(i);
    auto& x = cfg.steps[i];
    auto& y = back->steps[i];
    CHECK(x.kind == y.kind);
    CHECK(x.attempts == y.attempts);
    CHECK(x.delay == y.delay);
    CHECK(x.on == y.on);
    CHECK(x.except == y.except);
    if (x.kind == kind::delayed_retry) {
      CHECK(x.backoff.backoff == y.backoff.backoff);
      CHECK(x.backoff.jitter == y.backoff.jitter);
      CHECK(x.backoff.initial_delay == y.backoff.initial_delay);
      CHECK(x.backoff.max_delay == y.backoff.max_delay);
      CHECK(x.backoff.multiplier == y.backoff.multiplier);
    }
  }
  CHECK(ft::to_yaml(*back) == text);
}

TEST_CASE("recovery: bad YAML names source:line, field and value",
          "[recovery]") {
  auto fails = [](const std::string& yaml, const std::string& expected) {
    CAPTURE(yaml);
    auto cfg = ft::recovery_chain_from_yaml(yaml, "rec.yaml");
    REQUIRE_FALSE(cfg);
    CHECK(ft::is(cfg.error(), errc::invalid_config));
    CHECK_THAT(ft::render(cfg.error()),
               StartsWith("invalid_config: " + expected));
    return ft::render(cfg.error());
  };
  SECTION("unknown step name") {
    auto text = fails("chain:\n  - immediate_retry\n  - {step: reboot}\n",
                      "rec.yaml:3: chain[1].step = 'reboot' is not a "
                      "recovery step");
    CHECK_THAT(text, Contains("use_replica"));
    fails("chain: [immediate_retry, reboot]\n",
          "rec.yaml:1: chain[1] = 'reboot' is not a recovery step");
  }
  SECTION("negative attempts") {
    fails("chain:\n  - degrade\n  - step: restart\n    attempts: -1\n",
          "rec.yaml:4: chain[1].attempts = -1 is < 0");
  }
  SECTION("negative or misplaced delays") {
    fails("chain:\n  - {step: restart, delay: -1}\n",
          "rec.yaml:2: delay = -1 is out of range");
    fails("chain:\n  - step: immediate_retry\n    delay: 2\n",
          "rec.yaml:3: chain[0].delay = 2s must be 0 for immediate_retry");
    fails("chain:\n  - step: switch_worker\n    initial_delay: 2\n",
          "rec.yaml:3: chain[0].initial_delay only applies to "
          "delayed_retry");
    fails("chain:\n  - step: delayed_retry\n    initial_delay: 2\n"
          "    max_delay: 1\n",
          "rec.yaml:4: chain[0].max_delay = 1s is < initial_delay");
  }
  SECTION("bad backoff") {
    fails("chain:\n  - {step: delayed_retry, backoff: wild}\n",
          "rec.yaml:2: chain[0].backoff = 'wild' is not fixed");
  }
  SECTION("bad error names") {
    fails("chain:\n  - step: degrade\n    on: [call_timeout, oops]\n",
          "rec.yaml:3: chain[0].on = 'oops' is not an error name");
  }
  SECTION("unknown fields") {
    auto text = fails("chain:\n  - {step: degrade, attempt: 2}\n",
                      "rec.yaml:2: attempt is not a known field");
    CHECK_THAT(text, Contains("attempts"));
    fails("call_timeout: 1\ncahin: []\n",
          "rec.yaml:2: cahin is not a known field");
  }
  SECTION("escalate not last, empty chain, both forms") {
    fails("chain:\n  - degrade\n  - notify_operator\n  - degrade\n",
          "rec.yaml:3: chain[1].step = escalate must be the last step");
    fails("chain: []\n", "rec.yaml:1: chain = [] must have at least one");
    fails("chain: [degrade]\nstrategy: restart\n",
          "rec.yaml:2: strategy cannot be combined with chain");
  }
  SECTION("policy fields") {
    fails("strategy: reboot\n", "rec.yaml:1: strategy = 'reboot' is not a "
                                "recovery step");
    fails("strategy: restart\nmax_restarts: -3\n",
          "rec.yaml:2: max_restarts = -3 is < 0");
    fails("strategy: restart\nrestart_delay: -1\n",
          "rec.yaml:2: restart_delay = -1 is out of range");
    fails("strategy: use_replica\nescalation: use_replica\n",
          "rec.yaml:2: escalation = switch_worker escalates to the strategy "
          "itself");
    fails("max_restarts: 1\ncall_timeout: soon\n",
          "rec.yaml:2: call_timeout = 'soon' is not a number");
  }
  SECTION("malformed documents") {
    fails("chain: [\n", "rec.yaml:");
    fails("- degrade\n", "rec.yaml: expected a mapping");
    fails("chain: degrade\n", "rec.yaml:1: chain must be a list of steps");
  }
}
