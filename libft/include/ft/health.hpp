#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

/// Node health as operators and load balancers read it (`GET /health`):
/// liveness (is the process working at all), readiness (may it take
/// traffic), startup, and one verdict per component with the reasons, in
/// the style of Kubernetes probes and Spring's health groups. The verdicts
/// are pure functions of figures the node gathers, so the thresholds are
/// tested without a running node.
namespace ft {

enum class health_status : uint8_t { healthy, degraded, unhealthy };

const char* to_string(health_status x) noexcept;

/// The worse of two verdicts.
constexpr health_status worst(health_status x, health_status y) noexcept {
  return x > y ? x : y;
}

/// One component's verdict and why.
struct component_health {
  std::string name;
  health_status status = health_status::healthy;
  std::vector<std::string> reasons;

  /// Records a reason and lowers the verdict to at least `level`.
  void add(health_status level, std::string reason) {
    status = worst(status, level);
    reasons.push_back(std::move(reason));
  }
};

/// When a component counts as degraded or unhealthy.
struct health_thresholds {
  /// Restarts in the last minute from which supervision is degraded.
  uint64_t degraded_restarts_per_minute = 1;
  /// Restarts in the last minute from which supervision is unhealthy
  /// (a crash loop the intensity limits have not stopped yet).
  uint64_t unhealthy_restarts_per_minute = 60;
  /// Breakers are unhealthy when less than this share of their capacity
  /// (`overall_health`, percent) admits traffic.
  double unhealthy_breaker_capacity = 50;
};

/// What the node knows right now; each group feeds one component.
struct health_inputs {
  // -- node ----------------------------------------------------------------
  /// The node finished starting (joined or founded its cluster).
  bool started = false;
  /// The node watchdog answers its pulse (the actor system is not wedged).
  bool watchdog_ok = true;

  // -- supervision -----------------------------------------------------------
  uint64_t restarts_last_minute = 0;
  /// Supervisors that gave up (intensity exceeded, escalated) in the last
  /// minute, by name.
  std::vector<std::string> escalations_last_minute;
  /// Children waiting for a restart, as `supervisor/child`.
  std::vector<std::string> restarting_children;

  // -- breakers --------------------------------------------------------------
  size_t circuits = 0;
  /// Open or forced-open circuits, as `scope/key`.
  std::vector<std::string> open_circuits;
  std::vector<std::string> half_open_circuits;
  /// The registry's `overall_health` (percent of capacity admitting calls).
  double breaker_capacity = 100;

  // -- snapshot store --------------------------------------------------------
  uint64_t snapshot_writes = 0;
  uint64_t snapshot_failures_last_minute = 0;
  /// The latest commit failed (nothing committed since), and why.
  bool last_snapshot_failed = false;
  std::string last_snapshot_error;

  // -- cluster ---------------------------------------------------------------
  /// This node's membership state (`up`, `joining`, ...).
  std::string member_state = "up";
  /// Whether the node holds its quorum lease (may serve entities).
  bool lease = true;
  /// Other members that are suspect or down, as `name (state)`.
  std::vector<std::string> unwell_members;
};

/// The verdicts.
struct health_report {
  bool live = true;
  bool ready = true;
  bool started = true;
  /// Why the node is not ready (empty when ready).
  std::vector<std::string> readiness_reasons;
  /// supervision, breakers, snapshot_store, cluster (in that order).
  std::vector<component_health> components;
  /// The worst component, and unhealthy when not live.
  health_status status = health_status::healthy;

  /// The component named `name`, if any.
  const component_health* find(const std::string& name) const;
};

/// Judges `in` by `th`:
/// - supervision: degraded at `degraded_restarts_per_minute` restarts or a
///   child waiting for its restart; unhealthy at
///   `unhealthy_restarts_per_minute` or when a supervisor gave up;
/// - breakers: degraded while any circuit is open or half-open, unhealthy
///   below `unhealthy_breaker_capacity`;
/// - snapshot_store: degraded after failed writes in the last minute,
///   unhealthy while the latest commit failed;
/// - cluster: degraded while other members are suspect or down, unhealthy
///   when this node is not `up` or holds no lease;
/// - live unless the watchdog is stale; ready when started, `up` and
///   holding the lease.
health_report evaluate_health(const health_inputs& in,
                              const health_thresholds& th = {});

} // namespace ft
