#include "ft/health.hpp"

namespace ft {

const char* to_string(health_status x) noexcept {
  switch (x) {
    case health_status::healthy: return "healthy";
    case health_status::degraded: return "degraded";
    case health_status::unhealthy: return "unhealthy";
  }
  return "invalid";
}

const component_health* health_report::find(const std::string& name) const {
  for (auto& c : components)
    if (c.name == name)
      return &c;
  return nullptr;
}

namespace {

std::string join(const std::vector<std::string>& xs, size_t max = 5) {
  std::string result;
  for (size_t i = 0; i < xs.size() && i < max; ++i) {
    if (i > 0)
      result += ", ";
    result += xs[i];
  }
  if (xs.size() > max)
    result += " and " + std::to_string(xs.size() - max) + " more";
  return result;
}

component_health supervision(const health_inputs& in,
                             const health_thresholds& th) {
  component_health c{"supervision", health_status::healthy, {}};
  auto restarts = std::to_string(in.restarts_last_minute)
                  + " restart(s) in the last minute";
  if (in.restarts_last_minute >= th.unhealthy_restarts_per_minute)
    c.add(health_status::unhealthy, restarts + " (crash loop)");
  else if (in.restarts_last_minute >= th.degraded_restarts_per_minute
           && in.restarts_last_minute > 0)
    c.add(health_status::degraded, restarts);
  if (!in.escalations_last_minute.empty())
    c.add(health_status::unhealthy,
          "gave up in the last minute: " + join(in.escalations_last_minute));
  if (!in.restarting_children.empty())
    c.add(health_status::degraded,
          "waiting for a restart: " + join(in.restarting_children));
  return c;
}

component_health breakers(const health_inputs& in,
                          const health_thresholds& th) {
  component_health c{"breakers", health_status::healthy, {}};
  if (!in.open_circuits.empty())
    c.add(health_status::degraded, "open: " + join(in.open_circuits));
  if (!in.half_open_circuits.empty())
    c.add(health_status::degraded,
          "half-open: " + join(in.half_open_circuits));
  if (in.circuits > 0 && in.breaker_capacity < th.unhealthy_breaker_capacity)
    c.add(health_status::unhealthy,
          "only " + std::to_string(static_cast<int>(in.breaker_capacity))
            + "% of circuit capacity admits calls");
  return c;
}

component_health snapshot_store(const health_inputs& in) {
  component_health c{"snapshot_store", health_status::healthy, {}};
  if (in.last_snapshot_failed)
    c.add(health_status::unhealthy,
          "the latest commit failed: " + in.last_snapshot_error);
  else if (in.snapshot_failures_last_minute > 0)
    c.add(health_status::degraded,
          std::to_string(in.snapshot_failures_last_minute)
            + " failed write(s) in the last minute");
  return c;
}

component_health cluster(const health_inputs& in) {
  component_health c{"cluster", health_status::healthy, {}};
  if (in.member_state != "up")
    c.add(health_status::unhealthy, "this node is " + in.member_state);
  if (!in.lease)
    c.add(health_status::unhealthy,
          "no quorum lease: not serving entities");
  if (!in.unwell_members.empty())
    c.add(health_status::degraded, "members: " + join(in.unwell_members));
  return c;
}

} // namespace

health_report evaluate_health(const health_inputs& in,
                              const health_thresholds& th) {
  health_report r;
  r.started = in.started;
  r.live = in.watchdog_ok;
  if (!in.started)
    r.readiness_reasons.push_back("starting");
  if (in.member_state != "up")
    r.readiness_reasons.push_back("member state is " + in.member_state);
  if (!in.lease)
    r.readiness_reasons.push_back("no quorum lease");
  if (!in.watchdog_ok)
    r.readiness_reasons.push_back("the node watchdog is stale");
  r.ready = r.readiness_reasons.empty();
  r.components = {supervision(in, th), breakers(in, th), snapshot_store(in),
                  cluster(in)};
  r.status = r.live ? health_status::healthy : health_status::unhealthy;
  for (auto& c : r.components)
    r.status = worst(r.status, c.status);
  return r;
}

} // namespace ft
