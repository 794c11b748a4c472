#include <catch2/catch.hpp>

#include "ft/health.hpp"

using Catch::Matchers::Contains;
using ft::evaluate_health;
using ft::health_inputs;
using ft::health_status;

namespace {

health_inputs good() {
  health_inputs in;
  in.started = true;
  return in;
}

health_status status_of(const ft::health_report& r, const std::string& name) {
  auto c = r.find(name);
  REQUIRE(c != nullptr);
  return c->status;
}

} // namespace

TEST_CASE("a started node with nothing wrong is healthy and ready",
          "[health]") {
  auto r = evaluate_health(good());
  CHECK(r.status == health_status::healthy);
  CHECK(r.live);
  CHECK(r.ready);
  CHECK(r.started);
  CHECK(r.readiness_reasons.empty());
  REQUIRE(r.components.size() == 4);
  CHECK(r.components[0].name == "supervision");
  CHECK(r.components[1].name == "breakers");
  CHECK(r.components[2].name == "snapshot_store");
  CHECK(r.components[3].name == "cluster");
  for (auto& c : r.components) {
    CHECK(c.status == health_status::healthy);
    CHECK(c.reasons.empty());
  }
  CHECK(r.find("nope") == nullptr);
}

TEST_CASE("supervision: restarts degrade, crash loops and give-ups fail",
          "[health]") {
  auto in = good();
  in.restarts_last_minute = 2;
  auto r = evaluate_health(in);
  CHECK(status_of(r, "supervision") == health_status::degraded);
  CHECK_THAT(r.find("supervision")->reasons.at(0),
             Contains("2 restart(s) in the last minute"));
  CHECK(r.status == health_status::degraded);
  CHECK(r.ready); // degraded still takes traffic
  in.restarts_last_minute = 60;
  CHECK(status_of(evaluate_health(in), "supervision")
        == health_status::unhealthy);
  in = good();
  in.escalations_last_minute = {"pool"};
  r = evaluate_health(in);
  CHECK(status_of(r, "supervision") == health_status::unhealthy);
  CHECK_THAT(r.find("supervision")->reasons.at(0), Contains("pool"));
  CHECK(r.status == health_status::unhealthy);
  in = good();
  in.restarting_children = {"pool/w1"};
  CHECK(status_of(evaluate_health(in), "supervision")
        == health_status::degraded);
  ft::health_thresholds th;
  th.degraded_restarts_per_minute = 5;
  in = good();
  in.restarts_last_minute = 4;
  CHECK(status_of(evaluate_health(in, th), "supervision")
        == health_status::healthy);
}

TEST_CASE("breakers: open circuits degrade, lost capacity fails", "[health]") {
  auto in = good();
  in.circuits = 4;
  in.open_circuits = {"worker/w1"};
  in.breaker_capacity = 75;
  auto r = evaluate_health(in);
  CHECK(status_of(r, "breakers") == health_status::degraded);
  CHECK_THAT(r.find("breakers")->reasons.at(0), Contains("worker/w1"));
  in.half_open_circuits = {"worker/w2"};
  in.open_circuits = {"worker/w1", "worker/w3"};
  in.breaker_capacity = 12.5;
  r = evaluate_health(in);
  CHECK(status_of(r, "breakers") == health_status::unhealthy);
  CHECK(r.find("breakers")->reasons.size() == 3);
  // No circuits: nothing to lose.
  in = good();
  in.breaker_capacity = 0;
  CHECK(status_of(evaluate_health(in), "breakers") == health_status::healthy);
}

TEST_CASE("snapshot store: failures degrade, a failing store is unhealthy",
          "[health]") {
  auto in = good();
  in.snapshot_failures_last_minute = 3;
  CHECK(status_of(evaluate_health(in), "snapshot_store")
        == health_status::degraded);
  in.last_snapshot_failed = true;
  in.last_snapshot_error = "disk full";
  auto r = evaluate_health(in);
  CHECK(status_of(r, "snapshot_store") == health_status::unhealthy);
  CHECK_THAT(r.find("snapshot_store")->reasons.at(0), Contains("disk full"));
}

TEST_CASE("cluster: unwell peers degrade, no lease or not up fails and is "
          "not ready",
          "[health]") {
  auto in = good();
  in.unwell_members = {"n2 (suspect)"};
  auto r = evaluate_health(in);
  CHECK(status_of(r, "cluster") == health_status::degraded);
  CHECK(r.ready);
  in.lease = false;
  r = evaluate_health(in);
  CHECK(status_of(r, "cluster") == health_status::unhealthy);
  CHECK_FALSE(r.ready);
  CHECK_THAT(r.readiness_reasons.at(0), Contains("lease"));
  in = good();
  in.member_state = "joining";
  r = evaluate_health(in);
  CHECK(status_of(r, "cluster") == health_status::unhealthy);
  CHECK_FALSE(r.ready);
}

TEST_CASE("a node that is starting is not ready; a stale watchdog is not "
          "live",
          "[health]") {
  auto in = good();
  in.started = false;
  auto r = evaluate_health(in);
  CHECK_FALSE(r.started);
  CHECK_FALSE(r.ready);
  CHECK(r.readiness_reasons.at(0) == "starting");
  in = good();
  in.watchdog_ok = false;
  r = evaluate_health(in);
  CHECK_FALSE(r.live);
  CHECK_FALSE(r.ready);
  CHECK(r.status == health_status::unhealthy);
}
